//! The command line: flags, each also readable from a `SESSION_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use session_http::defaults;

#[derive(Debug, Parser)]
#[command(
    name = "session-server",
    version,
    about = "The widget session service of a crypto on/off-ramp"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default). With nothing configured it runs the
    /// in-memory dev mode and prints a demo partner's token.
    Serve(Box<ServeArgs>),
    /// Manage partners, client tokens, origins, IP ranges, wallets and widget
    /// configuration in the store.
    Partners(crate::partners::PartnersArgs),
    /// List webhook deliveries and send them again.
    Webhooks(crate::webhooks::WebhooksArgs),
}

impl Default for Command {
    fn default() -> Self {
        Self::Serve(Box::default())
    }
}

/// What every operator command (`partners`, `webhooks`) takes: the store it
/// works on and the output format.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// PostgreSQL holding the partners and deliveries.
    #[arg(
        long,
        env = "SESSION_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Mem,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Public API address.
    #[arg(long, env = "SESSION_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Admin address (/healthz, /readyz, and /admin/ with an admin token).
    #[arg(long, env = "SESSION_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Where sessions and partners are kept.
    #[arg(long, env = "SESSION_STORE", value_enum)]
    pub store: Option<StoreKind>,

    /// PostgreSQL connection URL (implies `--store postgres`).
    #[arg(long, env = "SESSION_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Load partners from this TOML file into the store (idempotent).
    #[arg(long, env = "SESSION_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,

    /// Init token lifetime, in seconds.
    #[arg(long, env = "SESSION_INIT_TOKEN_TTL", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=86_400 * 7))]
    pub init_token_ttl: i64,

    /// How long an answer stays replayable under its Idempotency-Key
    /// (humantime, e.g. 24h); expired keys are deleted in the background.
    #[arg(long, env = "SESSION_IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,

    /// A proxy (IP or CIDR) whose X-Forwarded-For is believed. Repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "SESSION_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,

    /// A browser origin allowed to call the widget API (`*` for any). Repeatable.
    #[arg(
        long = "widget-origin",
        env = "SESSION_WIDGET_ORIGIN",
        value_delimiter = ','
    )]
    pub widget_origins: Vec<String>,

    /// Shared secret of the payment provider's event signatures. A value given
    /// as a flag is visible in the process list: prefer the variable or
    /// --provider-secret-file.
    #[arg(long, env = "SESSION_PROVIDER_SECRET", hide_env_values = true)]
    pub provider_secret: Option<String>,

    /// Read the provider's shared secret from this file (one trailing newline
    /// is ignored).
    #[arg(
        long,
        env = "SESSION_PROVIDER_SECRET_FILE",
        conflicts_with = "provider_secret"
    )]
    pub provider_secret_file: Option<PathBuf>,

    /// Bearer token of the admin API under /admin/ on the admin listener; the
    /// API is off (404) without it. Prefer the variable or
    /// --admin-token-file: a flag value is visible in the process list.
    #[arg(long, env = "SESSION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Read the admin API's token from this file (one trailing newline is
    /// ignored).
    #[arg(long, env = "SESSION_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,

    /// Secret (at least 32 bytes) that signs init tokens. Instances behind one
    /// load balancer must share it; with PostgreSQL it is kept in the database
    /// when not given.
    #[arg(long, env = "SESSION_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Most sessions the in-memory store holds. Past it, the oldest terminal
    /// or expired-unredeemed sessions are evicted; when none can be, creating
    /// a session answers 503.
    #[arg(long, env = "SESSION_MEM_MAX_SESSIONS", default_value_t = session_store_mem::DEFAULT_MAX_SESSIONS)]
    pub mem_max_sessions: usize,

    /// Run in-memory with a demo partner, printing its token (implies
    /// --sandbox).
    #[arg(long, env = "SESSION_DEV")]
    pub dev: bool,

    /// Serve the sandbox on any store: the stand-in widget (GET
    /// /widget/sdk.js) and the payment simulator (POST
    /// /sandbox/transactions/{id}/simulate), with which whoever holds the
    /// init token of a session opened with a ct_test_ token completes it
    /// without paying. Not on a store that holds real transactions.
    #[arg(long, env = "SESSION_SANDBOX")]
    pub sandbox: bool,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SESSION_BODY_LIMIT", default_value_t = defaults::BODY_LIMIT)]
    pub body_limit: usize,

    /// Seconds SIGTERM waits for in-flight requests.
    #[arg(long, env = "SESSION_DRAIN_TIMEOUT", default_value_t = defaults::DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout: u64,

    /// Seconds a connection may take to send a request head (also bounds idle keep-alive).
    #[arg(long, env = "SESSION_HEADER_READ_TIMEOUT", default_value_t = defaults::HEADER_READ_TIMEOUT.as_secs())]
    pub header_read_timeout: u64,

    /// Connections served at once per listener; further ones wait in the
    /// accept backlog.
    #[arg(long, env = "SESSION_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Partner API requests per second, on each instance, of a partner
    /// without a rate_limit of its own; the burst is twice as many. 0: those
    /// partners are not limited (a partner's own rate_limit still applies).
    #[arg(long, env = "SESSION_DEFAULT_RATE_LIMIT", value_name = "R", default_value_t = defaults::RATE_LIMIT_PER_SECOND)]
    pub default_rate_limit: u32,

    /// Record requests and domain events for GET /metrics on the admin
    /// listener (`false` only to measure what recording costs).
    #[arg(long, env = "SESSION_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Worker threads of the runtime (default: one per core).
    #[arg(long, env = "SESSION_WORKERS")]
    pub workers: Option<usize>,

    #[arg(long, env = "SESSION_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    #[command(flatten)]
    pub live: LiveArgs,
}

/// `GET /ws`, live status over WebSocket (SPEC.md §2). Durations take
/// humantime values.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// The server pings every socket this often.
    #[arg(long, env = "SESSION_WS_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ws_ping_interval: Duration,

    /// A socket that has not answered a ping within this long is dropped.
    #[arg(long, env = "SESSION_WS_PONG_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_pong_timeout: Duration,

    /// Open WebSockets at most on this instance; beyond, the upgrade answers
    /// 503 ws_capacity.
    #[arg(long, env = "SESSION_WS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub ws_max_connections: usize,
}

/// Outbound partner webhooks (SPEC.md §2). Durations take humantime values:
/// `100ms`, `5s`, `6h`, `72h`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// A partner endpoint must answer 2xx within this long.
    #[arg(long, env = "SESSION_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,

    /// The first retry waits about this long; each later one twice as long.
    #[arg(long, env = "SESSION_WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_retry_base: Duration,

    /// No wait between retries is longer than this.
    #[arg(long, env = "SESSION_WEBHOOK_RETRY_CAP", default_value = "6h", value_parser = humantime::parse_duration)]
    pub webhook_retry_cap: Duration,

    /// A delivery still failing this long after its event is marked failed.
    #[arg(long, env = "SESSION_WEBHOOK_RETRY_FOR", default_value = "72h", value_parser = humantime::parse_duration)]
    pub webhook_retry_for: Duration,

    /// An address range webhooks may reach although it is not public
    /// (loopback, private...), and the only ones plain http:// may reach.
    /// Repeatable.
    #[arg(
        long = "webhook-allow-ip",
        env = "SESSION_WEBHOOK_ALLOW_IP",
        value_delimiter = ','
    )]
    pub webhook_allow_ip: Vec<String>,

    /// Webhook attempts in flight at once, in total.
    #[arg(long, env = "SESSION_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: usize,

    /// Webhook attempts in flight at once to one partner.
    #[arg(long, env = "SESSION_WEBHOOK_PARTNER_CONCURRENCY", default_value_t = 8)]
    pub webhook_partner_concurrency: usize,
}

impl Default for ServeArgs {
    fn default() -> Self {
        // Exactly what `session-server serve` with no flags and no environment means.
        match Cli::parse_from(["session-server", "serve"]).command {
            Some(Command::Serve(args)) => *args,
            Some(Command::Partners(_) | Command::Webhooks(_)) | None => {
                unreachable!("the serve subcommand always parses")
            }
        }
    }
}
