//! `cargo xtask fuzz`: builds the cargo-fuzz targets in `fuzz/`, runs each in turn
//! for a bounded time (or number of executions), and reports per target how many
//! inputs ran, how fast, and what it found.
//!
//! A nightly-style task: it takes minutes per target, so `test` and `ci` never run
//! it. See fuzz/README.md for what each target checks.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Args;

use crate::cargo::{self, Cargo};
use crate::env;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::process;

/// The flags of `cargo xtask fuzz`.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Minutes each target runs (libFuzzer's `-max_total_time`)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    pub minutes: u64,
    /// Stop a target earlier, after this many executions (libFuzzer's `-runs`)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: Option<u64>,
    /// A target to run (repeatable, in this order); default: every target of
    /// `cargo fuzz list`
    #[arg(long = "target", value_name = "T")]
    pub targets: Vec<String>,
}

/// The cargo-fuzz release this task installs when none is present.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// A single input running longer than this many seconds is a finding (a hang).
const TIMEOUT_SECS: u32 = 10;

pub fn run(args: &FuzzArgs) -> Result<()> {
    let fuzz_dir = fuzz_dir()?;
    let cargo = Cargo::from_env();
    ensure_cargo_fuzz(&cargo)?;

    let available = list_targets(&cargo, &fuzz_dir)?;
    let targets = choose(&args.targets, &available)?;

    // One build of every target, as `cargo fuzz run -s none` builds them.
    let triple = host_triple()?;
    let mut build = fuzz_command(&cargo, &fuzz_dir, &["build", "-s", "none"]);
    build.args(["--target", &triple]);
    cargo::step("fuzz build", build)?;
    let binaries = fuzz_dir.join("target").join(&triple).join("release");

    let mut results = Vec::new();
    for (at, target) in targets.iter().enumerate() {
        interrupt::check()?;
        let binary = binaries.join(target);
        let result = run_target(&binary, &fuzz_dir, target, args, (at + 1, targets.len()))?;
        println!(
            "==> {target}: {} executions, {} exec/s, {} finding(s)",
            group_digits(result.executions),
            group_digits(result.execs_per_sec),
            result.findings.len()
        );
        results.push(result);
    }

    println!("\n{}", summary(&results));
    let found: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .map(|f| format!("{}: {}", r.target, f.display()))
        })
        .collect();
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.findings.is_empty() && !r.exited_cleanly)
        .map(|r| r.target.as_str())
        .collect();
    if !found.is_empty() {
        return Err(Error::failed(format!(
            "the fuzzers found {} input(s) to look at (reproduce with `cd fuzz && \
             RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <file>`):\n  {}",
            found.len(),
            found.join("\n  ")
        )));
    }
    if !failed.is_empty() {
        return Err(Error::failed(format!(
            "these fuzzers stopped with an error but left no artifact (see their output above): {}",
            failed.join(", ")
        )));
    }
    Ok(())
}

/// What one target's run came to.
#[derive(Debug)]
struct TargetResult {
    target: String,
    elapsed_secs: u64,
    executions: u64,
    execs_per_sec: u64,
    corpus: usize,
    /// Artifacts (crash, timeout, out-of-memory, leak) written by this run.
    findings: Vec<PathBuf>,
    exited_cleanly: bool,
}

fn fuzz_dir() -> Result<PathBuf> {
    let dir = cargo::workspace_root()?.join("fuzz");
    if !dir.join("Cargo.toml").is_file() {
        return Err(Error::failed(format!(
            "no cargo-fuzz project in {}",
            dir.display()
        )));
    }
    Ok(dir)
}

/// `cargo fuzz <args>` in the fuzz project. The stable toolchain accepts the nightly
/// flags cargo-fuzz passes with `RUSTC_BOOTSTRAP=1`. The fuzz project is its own
/// workspace, so it keeps its own target directory (`fuzz/target`) rather than
/// sharing one set for the main workspace.
fn fuzz_command(cargo: &Cargo, fuzz_dir: &Path, args: &[&str]) -> Command {
    let mut command = cargo.command(&["fuzz"]);
    command
        .args(args)
        .current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR");
    command
}

/// The triple rustc builds for by default, which is where cargo-fuzz puts binaries
/// (`fuzz/target/<triple>/release/<target>`).
fn host_triple() -> Result<String> {
    let rustc = env::var_os("RUSTC")
        .filter(|rustc| !rustc.is_empty())
        .unwrap_or_else(|| "rustc".into());
    let version = process::capture(Command::new(rustc).arg("-vV"))?;
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|triple| triple.trim().to_owned())
        .ok_or_else(|| Error::failed("`rustc -vV` names no host triple"))
}

/// Finds cargo-fuzz, installing the pinned release with `cargo install` when absent.
fn ensure_cargo_fuzz(cargo: &Cargo) -> Result<()> {
    let fallback = cargo_bin_dir();
    let fallback: Vec<&str> = fallback.iter().filter_map(|dir| dir.to_str()).collect();
    if process::find_program("cargo-fuzz", &fallback).is_some() {
        return Ok(());
    }
    println!("==> cargo-fuzz: not found; installing {CARGO_FUZZ_VERSION}");
    cargo::step(
        "install cargo-fuzz",
        cargo.command(&[
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]),
    )
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".cargo"))
        })
        .map(|home| home.join("bin"))
}

fn list_targets(cargo: &Cargo, fuzz_dir: &Path) -> Result<Vec<String>> {
    let listed = process::capture(&mut fuzz_command(cargo, fuzz_dir, &["list"]))?;
    Ok(listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The requested targets in the order given, or every target; an unknown name fails
/// before anything runs.
fn choose(requested: &[String], available: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(available.to_vec());
    }
    let unknown: Vec<&str> = requested
        .iter()
        .filter(|name| !available.contains(name))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::failed(format!(
            "unknown fuzz target(s): {}; the targets are: {}",
            unknown.join(", "),
            available.join(", ")
        )));
    }
    let mut seen = BTreeSet::new();
    Ok(requested
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .cloned()
        .collect())
}

fn run_target(
    binary: &Path,
    fuzz_dir: &Path,
    target: &str,
    args: &FuzzArgs,
    (at, of): (usize, usize),
) -> Result<TargetResult> {
    // libFuzzer writes new inputs into the first directory (untracked) and only reads
    // the curated seeds.
    let corpus = fuzz_dir.join("corpus").join(target);
    fs::create_dir_all(&corpus)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", corpus.display())))?;
    let seeds = fuzz_dir.join("seeds").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let before = artifact_files(&artifacts)?;

    let mut fuzzer_flags = vec![
        format!("-max_total_time={}", args.minutes * 60),
        format!("-timeout={TIMEOUT_SECS}"),
        "-print_final_stats=1".to_owned(),
    ];
    if let Some(runs) = args.runs {
        fuzzer_flags.push(format!("-runs={runs}"));
    }
    fs::create_dir_all(&artifacts)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", artifacts.display())))?;
    // The binary of the one build above, run directly as `cargo fuzz run` would: a
    // source edit during a long batch does not rebuild half-way, so every target of
    // the batch tests the same code.
    let mut command = Command::new(binary);
    command
        .current_dir(fuzz_dir)
        .arg(format!("-artifact_prefix=artifacts/{target}/"))
        .args(&fuzzer_flags)
        .arg(format!("corpus/{target}"));
    if seeds.is_dir() {
        command.arg(format!("seeds/{target}"));
    }
    cargo::header(
        &format!("fuzz {at}/{of}: {target}"),
        &format!(
            "(in fuzz/) {}{}",
            binary.strip_prefix(fuzz_dir).unwrap_or(binary).display(),
            match process::display_args(&command) {
                args if args.is_empty() => String::new(),
                args => format!(" {args}"),
            }
        ),
    );

    let started = Instant::now();
    // libFuzzer reports on stderr: pass every line through and keep what the summary
    // needs.
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::failed(format!("cannot run {}: {e}", binary.display())))?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            stats.read(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::failed(format!("cannot wait for {target}: {e}")))?;
    let elapsed = started.elapsed();
    interrupt::check()?;

    let after = artifact_files(&artifacts)?;
    let findings = after.difference(&before).cloned().collect();
    let executions = stats.executions.unwrap_or(0);
    let execs_per_sec = stats.execs_per_sec.unwrap_or_else(|| {
        let millis = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        executions.saturating_mul(1000) / millis
    });
    Ok(TargetResult {
        target: target.to_owned(),
        elapsed_secs: elapsed.as_secs(),
        executions,
        execs_per_sec,
        corpus: count_files(&corpus)?,
        findings,
        exited_cleanly: status.success(),
    })
}

/// The figures libFuzzer prints as it goes and when it stops.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    /// From `stat::number_of_executed_units`, else the last `#N` status line.
    executions: Option<u64>,
    /// From `stat::average_exec_per_sec`, else the last status line's `exec/s`.
    execs_per_sec: Option<u64>,
    final_stats: bool,
}

impl Stats {
    /// Takes in one line of libFuzzer's output; other lines are ignored.
    fn read(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("stat::") {
            let Some((name, value)) = rest.split_once(':') else {
                return;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                return;
            };
            match name {
                "number_of_executed_units" => {
                    self.executions = Some(value);
                    self.final_stats = true;
                }
                "average_exec_per_sec" => self.execs_per_sec = Some(value),
                _ => {}
            }
            return;
        }
        // `#1048576	pulse  cov: 1353 ft: 6781 corp: 1999/97Kb exec/s: 90997 rss: 53Mb`
        // and the closing `#21930292	DONE   cov: ...`.
        if self.final_stats {
            return;
        }
        let Some(rest) = line.strip_prefix('#') else {
            return;
        };
        let mut words = rest.split_whitespace();
        let Some(Ok(count)) = words.next().map(str::parse::<u64>) else {
            return;
        };
        self.executions = Some(count);
        while let Some(word) = words.next() {
            if word == "exec/s:" {
                if let Some(Ok(rate)) = words.next().map(str::parse::<u64>) {
                    self.execs_per_sec = Some(rate);
                }
            }
        }
    }
}

/// Files in `dir` (none when it does not exist yet).
fn artifact_files(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.is_file())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(Error::failed(format!("cannot read {}: {e}", dir.display()))),
    }
}

fn count_files(dir: &Path) -> Result<usize> {
    artifact_files(dir).map(|files| files.len())
}

/// The closing table, in the order the targets ran.
fn summary(results: &[TargetResult]) -> String {
    let mut text = String::from(
        "| target | time | executions | exec/s | corpus | findings |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in results {
        let status = if r.findings.is_empty() && !r.exited_cleanly {
            " (stopped with an error)"
        } else {
            ""
        };
        text.push_str(&format!(
            "| `{}` | {} s | {} | {} | {} | {}{status} |\n",
            r.target,
            r.elapsed_secs,
            group_digits(r.executions),
            group_digits(r.execs_per_sec),
            r.corpus,
            r.findings.len()
        ));
    }
    text
}

/// `21930292` as `21,930,292`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(lines: &[&str]) -> Stats {
        let mut stats = Stats::default();
        for line in lines {
            stats.read(line);
        }
        stats
    }

    #[test]
    fn final_stats_win_over_status_lines() {
        let stats = read_all(&[
            "INFO: Seed: 1234",
            "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#1048576\tpulse  cov: 1353 ft: 6781 corp: 1999/97Kb exec/s: 90997 rss: 53Mb",
            "#21930292\tDONE   cov: 1353 ft: 6781 corp: 1999/97Kb lim: 4096 exec/s: 91000 rss: 54Mb",
            "Done 21930292 runs in 241 second(s)",
            "stat::number_of_executed_units: 21930293",
            "stat::average_exec_per_sec:     90997",
            "stat::new_units_added:          5",
            "stat::peak_rss_mb:              54",
        ]);
        assert_eq!(
            stats,
            Stats {
                executions: Some(21_930_293),
                execs_per_sec: Some(90_997),
                final_stats: true,
            }
        );
    }

    #[test]
    fn without_final_stats_the_last_status_line_counts() {
        // A crash stops libFuzzer before it prints its final statistics.
        let stats = read_all(&[
            "#65536\tpulse  cov: 100 ft: 200 corp: 30/1Kb exec/s: 32768 rss: 40Mb",
            "#70001\tNEW    cov: 101 ft: 201 corp: 31/1Kb lim: 4 exec/s: 31000 rss: 40Mb L: 3/3 MS: 1 ChangeBit-",
            "==123== ERROR: libFuzzer: deadly signal",
            "#junk",
        ]);
        assert_eq!(stats.executions, Some(70_001));
        assert_eq!(stats.execs_per_sec, Some(31_000));
        assert!(!stats.final_stats);
    }

    #[test]
    fn unrelated_lines_leave_nothing() {
        let stats = read_all(&[
            "   Compiling session-core v0.0.0",
            "stat::slowest_unit_time_sec: 0",
            "stat::number_of_executed_units: lots",
            "MS: 2 ChangeByte-CopyPart-; base unit: 0",
        ]);
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn targets_are_all_or_the_named_ones_in_order() {
        let available = ["a", "b", "c"].map(str::to_owned).to_vec();
        let all = choose(&[], &available);
        assert!(
            matches!(all, Ok(ref names) if *names == available),
            "{all:?}"
        );
        let named = ["c", "a", "c"].map(str::to_owned);
        let chosen = choose(&named, &available);
        assert!(
            matches!(chosen, Ok(ref names) if *names == ["c", "a"]),
            "{chosen:?}"
        );
        let unknown = choose(&["x".to_owned()], &available);
        assert!(
            matches!(unknown, Err(Error::Failed(ref m)) if m.contains("x") && m.contains("a, b, c")),
            "{unknown:?}"
        );
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (21_930_292, "21,930,292"),
        ];
        for (n, expected) in cases {
            assert_eq!(group_digits(n), expected, "grouping {n}");
        }
    }
}
