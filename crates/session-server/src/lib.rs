//! `session-server`: runs the widget session service (`serve`, the default)
//! and manages partners (`partners ...`) and webhook deliveries
//! (`webhooks ...`).
//!
//! The binary is [`main`]. The library exists for one other caller: a
//! program that runs the service in its own process, as the partner demo
//! starts a sandbox ([`serve_in_process`]).

// The doc comments on CLI arguments are clap's help text, read by operators in
// a terminal, where `host[:port]` means "optional port", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

mod bootstrap;
pub mod cli;
mod config;
mod dev;
mod logging;
mod metrics;
mod partners;
mod reaper;
mod run;
mod store;
mod system;
mod webhooks;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

pub use run::{Listening, serve_in_process};

/// The command line's entry point: parses it, runs the command, and says how
/// it ended.
pub fn main() -> ExitCode {
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
        Command::Serve(args) => runtime.block_on(run::serve(*args)),
        Command::Partners(args) => runtime.block_on(run_partners(args)),
        Command::Webhooks(args) => runtime.block_on(run_webhooks(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The PostgreSQL store an operator command (`command`) works on.
async fn operator_store(
    command: &str,
    args: &cli::OperatorArgs,
) -> Result<session_store_pg::PgStore, String> {
    let url = args
        .database_url
        .as_deref()
        .ok_or_else(|| format!("{command}: needs --database-url or SESSION_DATABASE_URL"))?;
    let mut config = session_store_pg::PgConfig::new(url);
    // One operator command at a time: a small pool is plenty.
    config.pool_size = 2;
    config.outbox_pool_size = 1;
    config.batch_writers = 1;
    store::connect_pg(config).await
}

/// `webhooks ...` against the PostgreSQL store named by `--database-url`.
async fn run_webhooks(args: webhooks::WebhooksArgs) -> Result<(), String> {
    let store = operator_store("webhooks", &args.operator).await?;
    let outcome = webhooks::run(
        &args.command,
        args.operator.json,
        &store,
        &system::SystemClock,
        &mut std::io::stdout().lock(),
    )
    .await;
    store.shutdown();
    outcome
}

/// `partners ...` against the PostgreSQL store named by `--database-url`.
async fn run_partners(mut args: partners::PartnersArgs) -> Result<(), String> {
    partners::read_secret_files(&mut args.command, &mut std::io::stdin().lock())?;
    let store = operator_store("partners", &args.operator).await?;
    let outcome = partners::run(
        &args.command,
        args.operator.json,
        &store,
        &system::SystemClock,
        &system::OsRandom,
        &mut std::io::stdout().lock(),
    )
    .await;
    store.shutdown();
    outcome
}
