//! `PgConfig`: how to reach PostgreSQL and how hard to lean on it, and its
//! translation into the driver's connection settings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use session_core::ports::StoreError;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connection and tuning settings of a [`crate::PgStore`].
///
/// Build it with [`PgConfig::new`], which documents every default, then adjust
/// fields. `Debug` never shows the password.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/dbname?...` or a `key=value`
    /// connection string, as libpq accepts them.
    pub url: String,
    /// Pooled connections for requests, the listener's connection and the
    /// outbox's own (`outbox_pool_size`) not included.
    pub pool_size: usize,
    /// Connections of the webhook outbox's own pool (the dispatcher's claims
    /// and records, the NOTIFY after an event), so deliveries never queue
    /// behind request traffic for a connection, nor requests behind them.
    pub outbox_pool_size: usize,
    /// How long a call waits for a free pooled connection before it fails with
    /// `StoreError::Unavailable`.
    pub pool_wait_timeout: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// The server-side limit on one statement (`statement_timeout`). Calls are
    /// also abandoned client-side one second after it, so a silent network (no
    /// RST, no answer) fails as fast as a slow statement.
    pub statement_timeout: Duration,
    /// Group-commit writer tasks; each writes one batch at a time on its own
    /// pooled connection.
    pub batch_writers: usize,
    /// The most sessions one group commit writes.
    pub batch_max_rows: usize,
    /// The safety-net reload of the partner snapshot, on top of LISTEN/NOTIFY.
    pub reload_interval: Duration,
}

impl PgConfig {
    /// Settings for `url` with these defaults:
    ///
    /// - `pool_size`: 2 × available cores + 4 (10 on two cores);
    /// - `outbox_pool_size`: 4 (with 2, the dispatcher delivered 0.94× the
    ///   rate events applied at in `cargo xtask load --webhooks`; with 4, 1.00×);
    /// - `pool_wait_timeout`, `connect_timeout`: 2 s, so a dead database
    ///   answers fast instead of stacking up requests;
    /// - `statement_timeout`: 5 s;
    /// - `batch_writers`: 2, `batch_max_rows`: 128;
    /// - `reload_interval`: 30 s.
    pub fn new(url: impl Into<String>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            url: url.into(),
            pool_size: 2 * cores + 4,
            outbox_pool_size: 4,
            pool_wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            batch_writers: 2,
            batch_max_rows: 128,
            reload_interval: Duration::from_secs(30),
        }
    }

    /// `user@host:port/dbname`: where this config points, safe to log.
    pub fn target(&self) -> String {
        let parsed = crate::tls::split_url(&self.url)
            .ok()
            .and_then(|(url, _)| tokio_postgres::Config::from_str(&url).ok());
        match parsed {
            Some(config) => describe(&config),
            None => "<invalid database url>".to_owned(),
        }
    }

    /// The TLS connector the URL's `sslmode` and `sslrootcert` call for (see
    /// [`crate::tls`]), for the pool and the LISTEN connection alike.
    pub(crate) fn tls_connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        crate::tls::split_url(&self.url)?.1.connector()
    }

    /// The client-side deadline of one database call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.statement_timeout + Duration::from_secs(1)
    }

    /// How many sessions may wait for a group commit before callers wait to
    /// enqueue (backpressure instead of unbounded memory).
    pub(crate) fn batch_queue(&self) -> usize {
        self.batch_writers.max(1) * self.batch_max_rows.max(1) * 4
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let fail = |what: &str| Err(StoreError::Failed(format!("invalid store config: {what}")));
        if self.pool_size == 0 || self.outbox_pool_size == 0 {
            return fail("pool_size and outbox_pool_size must be at least 1");
        }
        if self.batch_writers == 0 || self.batch_max_rows == 0 {
            return fail("batch_writers and batch_max_rows must be at least 1");
        }
        if self.statement_timeout.is_zero() || self.connect_timeout.is_zero() {
            return fail("timeouts must be positive");
        }
        Ok(())
    }

    /// The driver's settings: the URL plus our timeouts, keepalives and an
    /// application name for `pg_stat_activity`.
    pub(crate) fn driver_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let (url, tls) = crate::tls::split_url(&self.url)?;
        // The parse error's cause may quote the URL, password included: keep it out.
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|_| {
            StoreError::Failed("invalid database url: not a PostgreSQL connection string".into())
        })?;
        config.ssl_mode(tls.ssl_mode());
        config.connect_timeout(self.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let statement_timeout = format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        );
        let options = match config.get_options() {
            Some(given) => format!("{given} {statement_timeout}"),
            None => statement_timeout,
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("session-store-pg");
        }
        Ok(config)
    }

    /// The driver settings of the outbox's own pool.
    ///
    /// Bitmap scans off: the dispatcher's queue changes faster than
    /// autovacuum's statistics; with too few rows estimated, the planner reads
    /// every due delivery through a bitmap and sorts them all, where walking
    /// the queue's index in order stops after the few a claim takes (measured:
    /// 17 ms against 2 ms per claim with 10,000 deliveries due). Nothing else
    /// on this pool gains from bitmap scans.
    ///
    /// `synchronous_commit` off: the dispatcher's bookkeeping (claims, attempt
    /// records) is at least once by design, so a commit need not wait for the
    /// WAL flush. A database crash can lose the last fraction of a second of
    /// it, which sends those deliveries again (partners deduplicate on
    /// `webhook-id`); the deliveries themselves are written durably with their
    /// events, on the request pool. Operator requeues and replays, which
    /// answer the operator, turn it back on for their transaction.
    pub(crate) fn outbox_driver_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut config = self.driver_config()?;
        let options = format!(
            "{} -c enable_bitmapscan=off -c synchronous_commit=off",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        Ok(config)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("target", &self.target())
            .field("pool_size", &self.pool_size)
            .field("outbox_pool_size", &self.outbox_pool_size)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("batch_writers", &self.batch_writers)
            .field("batch_max_rows", &self.batch_max_rows)
            .field("reload_interval", &self.reload_interval)
            .finish()
    }
}

/// `user@host:port/dbname` of a parsed config; never the password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{dbname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_target_never_show_the_password() {
        let config = PgConfig::new("postgres://app:hunter2@db.example:6432/sessions");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app@db.example:6432/sessions"), "{shown}");
        let keyword = PgConfig::new("host=db user=app password=hunter2 dbname=s");
        assert_eq!(keyword.target(), "app@db:5432/s");
        assert_eq!(
            PgConfig::new("nonsense://").target(),
            "<invalid database url>"
        );
    }

    #[test]
    fn driver_config_keeps_given_options_and_adds_the_statement_timeout() {
        let mut config = PgConfig::new("postgres://app@db/s?options=-c%20search_path%3Dx");
        config.statement_timeout = Duration::from_millis(1500);
        let driver = config.driver_config().expect("valid url");
        assert_eq!(
            driver.get_options(),
            Some("-c search_path=x -c statement_timeout=1500")
        );
        assert_eq!(driver.get_application_name(), Some("session-store-pg"));
        assert_eq!(driver.get_connect_timeout(), Some(&Duration::from_secs(2)));
    }

    #[test]
    fn invalid_urls_and_sizes_are_refused_without_echoing_the_url() {
        let error = PgConfig::new("postgres://app:hunter2@db:notaport/s")
            .driver_config()
            .expect_err("bad port");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let mut config = PgConfig::new("postgres://db/s");
        config.pool_size = 0;
        assert!(config.validate().is_err());
    }
}
