//! What the numbers were measured on: CPU, cores, memory, kernel, OS, toolchain and
//! tool versions, and when. Nothing here fails a run: an unknown fact says so.

use std::process::Command;

use crate::load::procfs;
use crate::process;

const UNKNOWN: &str = "unknown";

/// The machine and software of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub virtual_machine: bool,
    pub memory: String,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub wrk: String,
    pub date: String,
}

impl Machine {
    /// One line for a report: the hardware, the system, the toolchain, the
    /// load generator and the date.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} cores{}), {}, {}, {}; {}; {}; {}",
            self.cpu,
            self.cores,
            if self.virtual_machine {
                ", virtual machine"
            } else {
                ""
            },
            self.memory,
            self.os,
            self.kernel,
            self.rustc,
            self.wrk,
            self.date
        )
    }
}

/// Describes this machine, with the version of the run's load generator.
pub fn describe(load_generator: &str) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    Machine {
        cpu: cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN.to_owned()),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        virtual_machine: cpuinfo.lines().any(|line| {
            line.starts_with("flags") && line.split_whitespace().any(|f| f == "hypervisor")
        }),
        memory: mem_total(&meminfo).unwrap_or_else(|| UNKNOWN.to_owned()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| UNKNOWN.to_owned()),
        os: pretty_name(&os_release).unwrap_or_else(|| UNKNOWN.to_owned()),
        rustc: output(Command::new("rustc").arg("-V")),
        wrk: load_generator.to_owned(),
        date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
    }
}

fn output(command: &mut Command) -> String {
    process::capture(command)
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| UNKNOWN.to_owned())
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn mem_total(meminfo: &str) -> Option<String> {
    let kib = procfs::kib(meminfo, "MemTotal")?;
    Some(format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_and_etc_files() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: fpu hypervisor\n")
                .as_deref(),
            Some("AMD EPYC")
        );
        assert_eq!(
            mem_total("MemTotal:       24683520 kB\nMemFree: 1 kB\n").as_deref(),
            Some("23.5 GiB")
        );
        assert_eq!(
            pretty_name(
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
            )
            .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(cpu_model(""), None);
        assert_eq!(mem_total("MemTotal: lots"), None);
    }
}
