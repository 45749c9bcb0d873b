//! Turns command-line arguments into a checked configuration, once, before
//! anything starts. Pure: every rule here is testable without a server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use session_core::partner::RateLimit;
use session_core::secret::Secret;
use session_core::value::{IpRange, Origin};
use session_core::webhook::RetryPolicy;
use session_http::{LiveConfig, WidgetOrigins};
use session_webhooks::DispatcherConfig;

use crate::cli::{LogFormat, ServeArgs, StoreKind};

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Mem { max_sessions: usize },
    Postgres { url: Secret },
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub store: StoreConfig,
    pub bootstrap: Option<PathBuf>,
    /// In-memory with a demo partner printed at start.
    pub dev: bool,
    /// The sandbox's routes are served (`--sandbox`, or dev mode).
    pub sandbox: bool,
    pub init_token_ttl_seconds: i64,
    pub idempotency_ttl: Duration,
    pub trusted_proxies: Vec<IpRange>,
    pub widget_origins: WidgetOrigins,
    pub provider_secret: Option<Secret>,
    pub token_secret: Option<Secret>,
    /// The admin API's bearer token; `None`: the API is off.
    pub admin_token: Option<Secret>,
    pub body_limit: usize,
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub log_format: LogFormat,
    pub webhooks: DispatcherConfig,
    pub webhook_allow: Vec<IpRange>,
    pub live: LiveConfig,
    /// The budget of partners without one of their own (unlimited: off).
    pub default_rate_limit: RateLimit,
    /// Record and serve `GET /metrics`.
    pub metrics: bool,
}

/// The ranges dev mode lets webhooks reach when none are configured.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The dispatcher's settings and the ranges webhooks may reach.
fn webhooks(
    args: &crate::cli::WebhookArgs,
    drain: Duration,
) -> Result<(DispatcherConfig, Vec<IpRange>), String> {
    let allow = args
        .webhook_allow_ip
        .iter()
        .map(|text| {
            IpRange::parse(text.trim()).map_err(|why| format!("--webhook-allow-ip {text:?} {why}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.webhook_timeout.is_zero() || args.webhook_retry_base.is_zero() {
        return Err("--webhook-timeout and --webhook-retry-base must be positive".into());
    }
    if args.webhook_retry_cap < args.webhook_retry_base {
        return Err("--webhook-retry-cap must be at least --webhook-retry-base".into());
    }
    if args.webhook_concurrency == 0 || args.webhook_partner_concurrency == 0 {
        return Err(
            "--webhook-concurrency and --webhook-partner-concurrency must be positive".into(),
        );
    }
    let config = DispatcherConfig {
        policy: RetryPolicy {
            base_micros: micros(args.webhook_retry_base),
            cap_micros: micros(args.webhook_retry_cap),
            horizon_micros: micros(args.webhook_retry_for),
        },
        max_in_flight: args.webhook_concurrency,
        max_per_partner: args.webhook_partner_concurrency,
        poll_interval: Duration::from_secs(1),
        timeout: args.webhook_timeout,
        drain,
    };
    Ok((config, allow))
}

/// Resolves `args`. Dev mode is `--dev`, or the default when no store, database
/// or bootstrap file is configured and `--listen` is a loopback address.
pub fn resolve(args: &ServeArgs) -> Result<ServeConfig, String> {
    let nothing_configured =
        args.store.is_none() && args.database_url.is_none() && args.bootstrap.is_none();
    // The implicit default fails closed: a deployment that lost its database
    // URL must not come up on a public address with a demo partner, `*` CORS
    // and a printed token.
    if nothing_configured && !args.dev && !args.listen.ip().is_loopback() {
        return Err(format!(
            "nothing is configured (no --store, --database-url or --bootstrap) and --listen {} \
             is not a loopback address: refusing to start the in-memory demo there; \
             pass --dev to run dev mode on purpose, or configure a store",
            args.listen
        ));
    }
    let dev = args.dev || nothing_configured;
    let store = match (args.store, &args.database_url) {
        (Some(StoreKind::Postgres), _) | (None, Some(_)) if dev => {
            return Err(
                "--dev runs on the in-memory store; remove --store postgres / --database-url"
                    .into(),
            );
        }
        (Some(StoreKind::Postgres) | None, Some(url)) => StoreConfig::Postgres {
            url: Secret::new(url.as_str()),
        },
        (Some(StoreKind::Postgres), None) => {
            return Err("--store postgres needs --database-url (or SESSION_DATABASE_URL)".into());
        }
        (Some(StoreKind::Mem), Some(_)) => {
            return Err("--database-url is only used with --store postgres".into());
        }
        (Some(StoreKind::Mem) | None, None) => StoreConfig::Mem {
            max_sessions: args.mem_max_sessions,
        },
    };
    let trusted_proxies = args
        .trusted_proxies
        .iter()
        .map(|text| {
            IpRange::parse(text.trim()).map_err(|why| format!("--trusted-proxy {text:?} {why}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let widget_origins = if args.widget_origins.iter().any(|o| o.trim() == "*")
        || (dev && args.widget_origins.is_empty())
    {
        WidgetOrigins::Any
    } else {
        WidgetOrigins::List(
            args.widget_origins
                .iter()
                .map(|text| {
                    Origin::parse(text.trim())
                        .map_err(|why| format!("--widget-origin {text:?} {why}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let non_empty = |value: &Option<String>, flag: &str| match value.as_deref() {
        Some("") => Err(format!("{flag} must not be empty")),
        Some(text) => Ok(Some(Secret::new(text))),
        None => Ok(None),
    };
    let token_secret = non_empty(&args.token_secret, "--token-secret")?;
    if token_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
        return Err("--token-secret must be at least 32 bytes".into());
    }
    if args.idempotency_ttl < Duration::from_secs(1) {
        return Err("--idempotency-ttl must be at least one second".into());
    }
    if args.body_limit == 0 {
        return Err("--body-limit must be positive".into());
    }
    if args.mem_max_sessions == 0 {
        return Err("--mem-max-sessions must be positive".into());
    }
    if args.max_connections == 0 {
        return Err("--max-connections must be positive".into());
    }
    let (webhook_config, mut webhook_allow) =
        webhooks(&args.webhooks, Duration::from_secs(args.drain_timeout))?;
    if dev && webhook_allow.is_empty() {
        // The demo partner's webhooks go to a partner backend on this
        // machine (examples/partner-demo).
        webhook_allow = LOOPBACK
            .iter()
            .map(|range| IpRange::parse(range))
            .collect::<Result<_, _>>()
            .map_err(|why| format!("loopback range: {why}"))?;
    }
    let default_rate_limit = RateLimit::with_default_burst(args.default_rate_limit)
        .map_err(|why| format!("--default-rate-limit: {why}"))?;
    Ok(ServeConfig {
        listen: args.listen,
        admin_listen: args.admin_listen,
        store,
        bootstrap: args.bootstrap.clone(),
        dev,
        sandbox: dev || args.sandbox,
        init_token_ttl_seconds: args.init_token_ttl,
        idempotency_ttl: args.idempotency_ttl,
        trusted_proxies,
        widget_origins,
        provider_secret: match &args.provider_secret_file {
            Some(path) => Some(Secret::new(read_secret_file(
                "--provider-secret-file",
                path,
            )?)),
            None => non_empty(&args.provider_secret, "--provider-secret")?,
        },
        token_secret,
        admin_token: match &args.admin_token_file {
            Some(path) => Some(Secret::new(read_secret_file("--admin-token-file", path)?)),
            None => non_empty(&args.admin_token, "--admin-token")?,
        },
        body_limit: args.body_limit,
        header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        max_connections: args.max_connections,
        log_format: args.log_format,
        webhooks: webhook_config,
        webhook_allow,
        live: live(&args.live)?,
        default_rate_limit,
        metrics: args.metrics,
    })
}

/// The settings of `GET /ws`.
fn live(args: &crate::cli::LiveArgs) -> Result<LiveConfig, String> {
    if args.ws_ping_interval.is_zero() || args.ws_pong_timeout.is_zero() {
        return Err("--ws-ping-interval and --ws-pong-timeout must be positive".into());
    }
    Ok(LiveConfig {
        ping_interval: args.ws_ping_interval,
        pong_timeout: args.ws_pong_timeout,
        max_connections: args.ws_max_connections,
    })
}

/// The secret in the file at `path`, without one trailing newline; refused
/// when empty. The error names the flag and the path, never the contents.
pub(crate) fn read_secret_file(flag: &str, path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?;
    secret_text(flag, &path.display().to_string(), &text)
}

/// `text` without one trailing newline (LF or CRLF, as `echo` and editors add
/// one); refused when nothing is left.
pub(crate) fn secret_text(flag: &str, source: &str, text: &str) -> Result<String, String> {
    let secret = text
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(text);
    if secret.is_empty() {
        return Err(format!("{flag} {source}: the secret is empty"));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn resolve_args(args: &[&str]) -> Result<ServeConfig, String> {
        let cli = Cli::try_parse_from(["session-server", "serve"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Some(Command::Serve(serve)) => resolve(&serve),
            _ => Err("not serve".into()),
        }
    }

    #[test]
    fn nothing_configured_means_dev_in_memory() {
        let config = resolve_args(&[]).expect("defaults resolve");
        assert!(config.dev);
        assert!(matches!(
            config.store,
            StoreConfig::Mem {
                max_sessions: 1_000_000
            }
        ));
        assert!(matches!(config.widget_origins, WidgetOrigins::Any));
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.init_token_ttl_seconds, 3_600);
        assert_eq!(config.max_connections, 25_000);
        assert_eq!(
            config.default_rate_limit,
            RateLimit::new(100, 200).expect("valid")
        );
    }

    #[test]
    fn the_default_rate_limit_has_twice_its_rate_as_burst_and_0_is_off() {
        let config = resolve_args(&["--default-rate-limit", "5"]).expect("resolves");
        assert_eq!(
            config.default_rate_limit,
            RateLimit::new(5, 10).expect("valid")
        );
        let off = resolve_args(&["--default-rate-limit", "0"]).expect("resolves");
        assert!(off.default_rate_limit.is_unlimited());
        assert!(resolve_args(&["--default-rate-limit", "2000000"]).is_err());
        assert!(resolve_args(&["--default-rate-limit", "-1"]).is_err());
    }

    #[test]
    fn the_implicit_dev_default_only_starts_on_loopback() {
        for listen in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
            let error = resolve_args(&["--listen", listen]).expect_err(listen);
            assert!(error.contains("--dev"), "{listen}: {error}");
        }
        for listen in ["127.0.0.1:8080", "[::1]:0"] {
            assert!(resolve_args(&["--listen", listen]).is_ok_and(|c| c.dev));
        }
        let explicit = resolve_args(&["--dev", "--listen", "0.0.0.0:8080"]).expect("explicit");
        assert!(explicit.dev);
        let configured = resolve_args(&["--store", "mem", "--listen", "0.0.0.0:8080"]);
        assert!(configured.is_ok_and(|c| !c.dev));
    }

    #[test]
    fn the_sandbox_is_on_in_dev_mode_or_when_asked_for_only() {
        let dev = resolve_args(&[]).expect("dev");
        assert!(dev.dev && dev.sandbox);
        assert!(
            !dev.webhook_allow.is_empty(),
            "dev mode's demo partner sends webhooks to this machine"
        );
        let production = resolve_args(&["--database-url", "postgres://db/x"]).expect("pg");
        assert!(!production.sandbox && production.webhook_allow.is_empty());
        let asked = resolve_args(&["--sandbox", "--database-url", "postgres://db/x"]).expect("pg");
        assert!(asked.sandbox && !asked.dev);
        assert!(
            asked.webhook_allow.is_empty(),
            "nothing loosened beyond the routes"
        );
    }

    #[test]
    fn a_database_url_means_postgres() {
        let config = resolve_args(&["--database-url", "postgres://db/x"]).expect("resolves");
        assert!(!config.dev);
        assert!(matches!(config.store, StoreConfig::Postgres { .. }));
        let bootstrap_only = resolve_args(&["--bootstrap", "partners.toml"]).expect("resolves");
        assert!(!bootstrap_only.dev && matches!(bootstrap_only.store, StoreConfig::Mem { .. }));
    }

    #[test]
    fn contradictions_and_malformed_values_are_refused() {
        let cases: [&[&str]; 10] = [
            &["--mem-max-sessions", "0"],
            &["--max-connections", "0"],
            &[
                "--dev",
                "--store",
                "postgres",
                "--database-url",
                "postgres://x",
            ],
            &["--store", "postgres"],
            &["--store", "mem", "--database-url", "postgres://x"],
            &["--trusted-proxy", "10.0.0.0/33", "--store", "mem"],
            &["--widget-origin", "widget.example", "--store", "mem"],
            &["--token-secret", "short", "--store", "mem"],
            &["--init-token-ttl", "0"],
            &["--listen", "nonsense"],
        ];
        for args in cases {
            assert!(resolve_args(args).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn the_provider_secret_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("provider-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "provider-secret-from-a-file\n").expect("write");
        let file = path.to_string_lossy().into_owned();
        let config = resolve_args(&["--store", "mem", "--provider-secret-file", &file]);
        assert_eq!(
            config
                .expect("resolves")
                .provider_secret
                .map(|s| s.expose().to_owned()),
            Some("provider-secret-from-a-file".to_owned())
        );
        std::fs::write(&path, "").expect("write");
        let empty = resolve_args(&["--store", "mem", "--provider-secret-file", &file]);
        assert!(empty.is_err_and(|e| e.contains("--provider-secret-file")));
        let both = resolve_args(&[
            "--store",
            "mem",
            "--provider-secret",
            "x",
            "--provider-secret-file",
            &file,
        ]);
        assert!(both.is_err());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn repeatable_lists() {
        let config = resolve_args(&[
            "--store",
            "mem",
            "--trusted-proxy",
            "10.0.0.1",
            "--trusted-proxy",
            "192.168.0.0/16,::1",
            "--widget-origin",
            "https://widget.example",
        ])
        .expect("resolves");
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(matches!(config.widget_origins, WidgetOrigins::List(ref list) if list.len() == 1));
    }
}
