//! Building and running cargo commands, one headed, timed step at a time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::env;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::process;

/// The cargo that launched us (`$CARGO`), so `cargo +nightly xtask` stays on nightly.
#[derive(Debug)]
pub struct Cargo {
    program: OsString,
}

impl Cargo {
    pub fn from_env() -> Self {
        let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Self { program }
    }

    /// `cargo <args>`, ready for extra arguments or environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(args);
        command
    }
}

/// Prints a header naming `title` and the command, runs it, and reports how long it took.
pub fn step(title: &str, mut command: Command) -> Result<()> {
    interrupt::check()?;
    // `$CARGO` is a long toolchain path; the short form is what a person would retype.
    let shown = format!("cargo {}", process::display_args(&command));
    header(title, &shown);
    let started = Instant::now();
    process::run(&mut command, &shown)?;
    println!("==> {title}: ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The line that opens a step in the log, easy to find in CI output.
pub fn header(title: &str, detail: &str) {
    println!("\n==> {title}: {detail}");
}

/// Whether extra `cargo` arguments pick packages themselves; `--workspace` would
/// override that choice (cargo ignores `-p` next to `--workspace`).
pub fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|arg| *arg != "--").any(|arg| {
        arg == "-p"
            || arg == "--package"
            || arg.starts_with("--package=")
            || (arg.starts_with("-p") && !arg.starts_with("--"))
    })
}

/// The root of the workspace (xtask's parent directory).
pub fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::failed("xtask is not inside a workspace"))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to where cargo was
/// run, as cargo reads it), else `target/` in the workspace.
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                Ok(dir)
            } else {
                let here = std::env::current_dir().map_err(|e| {
                    Error::failed(format!("cannot read the current directory: {e}"))
                })?;
                Ok(here.join(dir))
            }
        }
        _ => Ok(root.join("target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_packages_sees_every_spelling_of_package() {
        let cases: [(&[&str], bool); 7] = [
            (&[], false),
            (&["-p", "session-core"], true),
            (&["-psession-core"], true),
            (&["--package", "session-core"], true),
            (&["--package=session-core"], true),
            (&["--release"], false),
            (&["--", "-p"], false),
        ];
        for (args, expected) in cases {
            let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
            assert_eq!(selects_packages(&args), expected, "args {args:?}");
        }
    }
}
