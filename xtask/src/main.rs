//! Project tasks: `cargo xtask test | ci | bench | load | fuzz | schemathesis`.
//!
//! This file parses the command line and dispatches; each task lives in its own module.

mod bench;
mod browser;
mod cargo;
mod env;
mod error;
mod fuzz;
mod interrupt;
mod load;
mod pg;
mod process;
mod schemathesis;
mod suite;
mod tempdir;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Project tasks for the widget session service"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Lint, then run the whole test suite against a real PostgreSQL
    Test(TestArgs),
    /// What CI runs: `test`, rustdoc with warnings as errors, and `schemathesis` when
    /// python3 is available
    Ci(TestArgs),
    /// Run the criterion benches (`cargo bench -p benches`)
    Bench {
        /// Arguments for criterion, after `--`
        #[arg(last = true)]
        criterion_args: Vec<String>,
    },
    /// Load-test the release server against bare hyper (and pgbench) on this machine
    Load(load::LoadArgs),
    /// Run every cargo-fuzz target in turn for a bounded time and report what each did
    /// (nightly-style: not part of `test` or `ci`)
    Fuzz(fuzz::FuzzArgs),
    /// Check a dev-mode server against docs/openapi.yaml with schemathesis (needs python3)
    Schemathesis(schemathesis::SchemathesisArgs),
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Where the pg tests' PostgreSQL comes from
    #[arg(long, value_enum, default_value = "auto")]
    pg: pg::Mode,
    /// Skip `cargo fmt --check` and `cargo clippy` (for local iteration)
    #[arg(long)]
    no_lint: bool,
    /// Arguments for `cargo test`, after `--` (e.g. `-- -p session-core`)
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

/// Exit status after Ctrl-C, as a shell reports death by SIGINT.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = interrupt::install() {
        eprintln!("xtask: error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.task {
        Task::Test(args) => suite::run(&plan(args, false)),
        Task::Ci(args) => suite::run(&plan(args, true)),
        Task::Bench { criterion_args } => bench::run(&criterion_args),
        Task::Load(args) => load::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Schemathesis(args) => schemathesis::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            eprintln!("xtask: interrupted");
            ExitCode::from(INTERRUPTED)
        }
        Err(Error::Failed(message)) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn plan(args: TestArgs, docs: bool) -> suite::Plan {
    suite::Plan {
        pg: args.pg,
        lint: !args.no_lint,
        docs,
        schemathesis: docs,
        cargo_test_args: args.cargo_test_args,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_flags_and_pass_through_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "test",
            "--pg",
            "throwaway",
            "--no-lint",
            "--",
            "-p",
            "session-core",
        ]);
        let Ok(Cli {
            task: Task::Test(args),
        }) = cli
        else {
            panic!("expected `test` to parse, got {cli:?}");
        };
        assert!(matches!(args.pg, pg::Mode::Throwaway));
        assert!(args.no_lint);
        assert_eq!(args.cargo_test_args, ["-p", "session-core"]);
    }

    #[test]
    fn load_flags_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "load",
            "--store",
            "postgres",
            "--connections",
            "16,64",
            "--no-idle",
        ]);
        let Ok(Cli {
            task: Task::Load(args),
        }) = cli
        else {
            panic!("expected `load` to parse, got {cli:?}");
        };
        assert_eq!(args.store, load::StoreChoice::Postgres);
        assert_eq!(args.connections, [16, 64]);
        assert!(args.no_idle && !args.no_write);
    }

    #[test]
    fn fuzz_flags_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "fuzz",
            "--minutes",
            "5",
            "--runs",
            "1000",
            "--target",
            "values",
            "--target",
            "access",
        ]);
        let Ok(Cli {
            task: Task::Fuzz(args),
        }) = cli
        else {
            panic!("expected `fuzz` to parse, got {cli:?}");
        };
        assert_eq!(args.minutes, 5);
        assert_eq!(args.runs, Some(1000));
        assert_eq!(args.targets, ["values", "access"]);
        let without_minutes = Cli::try_parse_from(["xtask", "fuzz"]);
        assert!(
            without_minutes.is_err(),
            "expected an error, got {without_minutes:?}"
        );
    }

    #[test]
    fn unknown_pg_mode_is_rejected() {
        let cli = Cli::try_parse_from(["xtask", "test", "--pg", "docker"]);
        assert!(cli.is_err(), "expected an error, got {cli:?}");
    }
}
