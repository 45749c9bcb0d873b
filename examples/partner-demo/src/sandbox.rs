//! Starts a sandbox widget session service in this process, for a demo that
//! needs nothing else running. The only module of the demo that uses the
//! service's crates (checked by xtask/tests/tidy.rs): a partner copying the
//! demo deletes it and passes `--service-url`.
//!
//! It registers one partner through a bootstrap file, as an operator would:
//! fresh client token and webhook secret, this demo's page as its origin and
//! its `/webhooks` as its webhook URL.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use session_server::Listening;
use session_server::cli::{Cli, Command};

use crate::service::Connection;

/// The running sandbox: what the demo connects with.
pub struct Sandbox {
    pub connection: Connection,
}

/// Starts the service on a free loopback port, its partner's webhooks going to
/// the demo at `demo`; on PostgreSQL when `database_url` is given.
pub async fn start(demo: SocketAddr, database_url: Option<&str>) -> Result<Sandbox, String> {
    let client_token = format!("ct_test_{}", random_hex());
    let webhook_secret = session_core::partner::webhook_secret(&random_hex());
    let bootstrap = BootstrapFile::write(&bootstrap(demo, &client_token, &webhook_secret))?;

    let page_origins = page_origins(demo);
    let mut argv: Vec<String> = [
        "session-server",
        "serve",
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "text",
        // The demo's webhook endpoint is on loopback.
        "--webhook-allow-ip",
        "127.0.0.0/8",
        "--webhook-allow-ip",
        "::1/128",
        // A demo retries sooner than production would.
        "--webhook-retry-base",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    // The simulator stands in for the provider; events signed with this
    // secret would be accepted too, but nobody else knows it.
    argv.push("--provider-secret".into());
    argv.push(random_hex());
    argv.push("--bootstrap".into());
    argv.push(bootstrap.path.display().to_string());
    for origin in &page_origins {
        argv.push("--widget-origin".into());
        argv.push(origin.clone());
    }
    if let Some(url) = database_url {
        argv.push("--database-url".into());
        argv.push(url.into());
    }
    // Only these arguments: the service's `SESSION_*` variables in the
    // caller's environment (a production database URL, say) must not reach
    // a sandbox.
    let command =
        Cli::command().mut_subcommand("serve", |serve| serve.mut_args(|arg| arg.env(None)));
    let matches = command
        .try_get_matches_from(&argv)
        .map_err(|e| format!("sandbox arguments: {e}"))?;
    let Some(Command::Serve(args)) = Cli::from_arg_matches(&matches)
        .map_err(|e| format!("sandbox arguments: {e}"))?
        .command
    else {
        return Err("sandbox arguments: not a serve command".into());
    };

    let (ready, listening) = tokio::sync::oneshot::channel::<Listening>();
    let mut serving = tokio::spawn(session_server::serve_in_process(*args, ready));
    let listening = tokio::select! {
        listening = listening => listening.map_err(|_| "the sandbox service did not start".to_owned())?,
        stopped = &mut serving => {
            return Err(format!("the sandbox service did not start: {}", match stopped {
                Ok(Err(error)) => error,
                Ok(Ok(())) => "it stopped".into(),
                Err(error) => error.to_string(),
            }));
        }
    };
    // Loaded: the file with the secrets is not needed any more.
    drop(bootstrap);
    tokio::spawn(async move {
        if let Ok(Err(error)) = serving.await {
            eprintln!("partner-demo: the sandbox service stopped: {error}");
            std::process::exit(1);
        }
    });
    Ok(Sandbox {
        connection: Connection {
            url: format!("http://{}", listening.public),
            client_token,
            webhook_secret,
        },
    })
}

/// The demo page's origins: as listened on, and as `localhost` for a
/// loopback address.
fn page_origins(demo: SocketAddr) -> Vec<String> {
    let mut origins = vec![format!("http://{demo}")];
    if demo.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", demo.port()));
    }
    origins
}

fn bootstrap(demo: SocketAddr, client_token: &str, webhook_secret: &str) -> String {
    format!(
        r#"[[partner]]
id = "partner-demo"
name = "Demo Shop"
client_tokens = ["{client_token}"]
allowed_origins = [{origins}]
webhook_url = "http://{demo}/webhooks"
webhook_secret = "{webhook_secret}"

[partner.widget]
widget_id = "{widget_id}"
currencies = ["USDT"]
networks = ["TRC20", "ERC20"]
fiat_currency = "EUR"
fiat_currencies = ["EUR", "USD"]
type = "buy"
lang = "en"
theme = "light"

[[partner.wallet]]
currency = "USDT"
network = "TRC20"
address = "{address}"
active = true
"#,
        origins = page_origins(demo)
            .iter()
            .map(|origin| format!("\"{origin}\""))
            .collect::<Vec<_>>()
            .join(", "),
        widget_id = uuid::Uuid::new_v4(),
        address = session_core::example::TRON_WALLET,
    )
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// The bootstrap file, readable by this user only, deleted when dropped.
struct BootstrapFile {
    path: PathBuf,
}

impl BootstrapFile {
    fn write(contents: &str) -> Result<Self, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!("partner-demo-{}.toml", random_hex()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write the sandbox's bootstrap file: {e}"))?;
        file.write_all(contents.as_bytes())
            .map_err(|e| format!("cannot write the sandbox's bootstrap file: {e}"))?;
        Ok(Self { path })
    }
}

impl Drop for BootstrapFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
