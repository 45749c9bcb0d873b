//! `session-server`: runs the widget session service (`serve`, the default)
//! and manages partners (`partners ...`).

mod bootstrap;
mod cli;
mod config;
mod dev;
mod logging;
mod partners;
mod run;
mod system;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &command
        && let Some(workers) = args.workers
    {
        builder.worker_threads(workers.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("session-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        Command::Serve(args) => runtime.block_on(run::serve(args)),
        Command::Partners(_) => Err(
            "partners: needs --database-url (the PostgreSQL store is not wired in yet)".to_owned(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-server: {error}");
            ExitCode::FAILURE
        }
    }
}
