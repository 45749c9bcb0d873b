//! An example partner integration, the code a partner would copy: a small
//! backend and page that sell 100 USDT through the widget.
//!
//! 1. The page's *Buy 100 USDT* asks this backend for an order
//!    (`POST /api/orders`).
//! 2. The backend opens a widget session with its client token, forwarding
//!    the browser's address as `client_ip` ([`service`]), and hands the answer
//!    to the page unmodified.
//! 3. The page launches the widget with it (`proofWidget.run`).
//! 4. The service tells the backend where the payment stands with signed
//!    webhooks, which it verifies ([`webhooks`]) before believing them.
//! 5. The page polls this backend (`GET /api/orders/{id}`) for what the
//!    webhooks said.
//!
//! Everything here talks to the service over HTTP only. Without
//! `--service-url`, [`sandbox`] starts a sandbox service in this process.

mod backend;
mod orders;
mod sandbox;
mod service;
mod webhooks;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// Runs the partner demo: prints the page's URL to open.
#[derive(Debug, Parser)]
#[command(name = "partner-demo", about)]
struct Args {
    /// Where the demo's page and backend listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// A running widget session service (its sandbox on) to use instead of
    /// starting one in this process.
    #[arg(long, requires_all = ["client_token", "webhook_secret"])]
    service_url: Option<String>,

    /// The partner's client token at that service.
    #[arg(long, env = "PARTNER_DEMO_CLIENT_TOKEN", hide_env_values = true)]
    client_token: Option<String>,

    /// The partner's webhook secret (`whsec_...`) at that service.
    #[arg(long, env = "PARTNER_DEMO_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,

    /// Keep the in-process sandbox's data in this PostgreSQL database instead
    /// of in memory.
    #[arg(long, conflicts_with = "service_url")]
    sandbox_database_url: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("partner-demo: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("partner-demo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let page_url = format!("http://{address}");

    // The service, its partner credentials, and where the browser finds it.
    let (connection, _sandbox) = match args.service_url {
        Some(url) => {
            let connection = service::Connection {
                url: url.trim_end_matches('/').to_owned(),
                client_token: args.client_token.unwrap_or_default(),
                webhook_secret: args.webhook_secret.unwrap_or_default(),
            };
            (connection, None)
        }
        None => {
            // The sandbox lets this page's origin call it and sends webhooks
            // to this address only on loopback.
            if !address.ip().is_loopback() {
                return Err(format!(
                    "--listen {address}: the in-process sandbox serves the demo on a loopback \
                     address only; pass --service-url to use a service elsewhere"
                ));
            }
            let started = sandbox::start(address, args.sandbox_database_url.as_deref()).await?;
            (started.connection.clone(), Some(started))
        }
    };
    let backend = backend::Backend::new(connection)?;

    println!("partner-demo: open {page_url}/ in a browser");
    println!(
        "  widget session service {}  (webhooks to {page_url}/webhooks)",
        backend.service_url()
    );
    tokio::select! {
        served = backend.serve(listener) => served,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
