//! Adapter-specific tests of the PostgreSQL store: migrations, several
//! instances on one database, the dispatcher's claim among them, group
//! commit, and behaviour while the database is unreachable, TLS. Each test
//! makes its own database (see `session_store_pg::testing`) and returns early
//! when none can be had.

mod claims;
mod group_commit;
mod instances;
mod legacy_keys;
mod migrations;
mod outage;
mod registry;
mod tls;

use std::time::{Duration, Instant};

use session_store_pg::testing::TestDatabase;
use session_store_pg::{PgConfig, PgStore};
use tokio_postgres::NoTls;

/// Short timeouts, so failures surface fast.
fn quick(url: &str) -> PgConfig {
    let mut config = PgConfig::new(url);
    config.pool_wait_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    config.statement_timeout = Duration::from_secs(1);
    config
}

async fn connect(url: &str) -> PgStore {
    PgStore::connect(quick(url))
        .await
        .expect("PgStore connects to the test database")
}

/// A raw connection to `url`, for looking at the database behind the store.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("raw connection to the test database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns how
/// long it took, or `None` on timeout.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A fresh database, or `None` (skip) where none can be had.
async fn database() -> Option<TestDatabase> {
    TestDatabase::create().await
}
