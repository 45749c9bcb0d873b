//! Test support, for this crate's tests and any other crate's: a fresh, empty
//! database per test (`session_test_<uuid>`), dropped when the handle is.
//!
//! Where the server comes from:
//!
//! - `SESSION_TEST_DATABASE_URL`: an admin URL (a role that may create
//!   databases). When it is set it must work; a failure panics.
//! - otherwise, under `CI` or `SESSION_REQUIRE_PG`: panic with instructions; a
//!   pipeline never skips these tests silently;
//! - otherwise the local default `postgres://postgres@127.0.0.1:5432/postgres`
//!   is tried, and if nothing answers there [`TestDatabase::create`] prints one
//!   skip line and returns `None`.
//!
//! Each database carries its creation time in a comment; databases of this
//! kind older than an hour (left by a killed test run) are dropped by the
//! first `create` of a process.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::net::SocketAddr;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};

use crate::config::PgConfig;

mod proxy;

pub use proxy::{Mode, Proxy};

/// The admin URL of the server the tests may create databases on.
pub const URL_VAR: &str = "SESSION_TEST_DATABASE_URL";
/// Set (like `CI`) to make a missing database a failure instead of a skip.
pub const REQUIRE_VAR: &str = "SESSION_REQUIRE_PG";
/// What is tried when [`URL_VAR`] is unset and skipping is allowed.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const PREFIX: &str = "session_test_";
const STALE_AFTER: Duration = Duration::from_secs(3600);

static SWEPT: AtomicBool = AtomicBool::new(false);
static SKIP_REPORTED: OnceLock<()> = OnceLock::new();

/// A database created for one test; dropping the handle drops the database
/// (`WITH (FORCE)`, so connections still open do not keep it alive).
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database, or returns `None` (after printing why)
    /// when no server is configured or reachable and skipping is allowed.
    ///
    /// # Panics
    ///
    /// When a server is required (see the module documentation) and cannot be
    /// used.
    pub async fn create() -> Option<TestDatabase> {
        let configured = env(URL_VAR);
        let required = env("CI").is_some() || env(REQUIRE_VAR).is_some();
        let admin_url = match (configured, required) {
            (Some(url), _) => url,
            (None, true) => panic!(
                "PostgreSQL tests need a database: set {URL_VAR} to the URL of a role that \
                 may create databases, e.g. {DEFAULT_ADMIN_URL} (the tests create and drop \
                 databases named {PREFIX}*). They are required because CI or {REQUIRE_VAR} is set"
            ),
            (None, false) => {
                if let Err(why) = admin_connect(DEFAULT_ADMIN_URL).await {
                    report_skip(&why);
                    return None;
                }
                DEFAULT_ADMIN_URL.to_owned()
            }
        };
        let admin = admin_connect(&admin_url).await.unwrap_or_else(|why| {
            panic!("cannot connect to the test server given by {URL_VAR}: {why}")
        });
        if !SWEPT.swap(true, Ordering::Relaxed) {
            sweep_stale(&admin).await;
        }
        let name = format!("{PREFIX}{}", uuid::Uuid::new_v4().simple());
        let created = unix_seconds();
        // Two statements: CREATE DATABASE refuses to run in the implicit
        // transaction of a multi-statement query.
        let setup = [
            format!("CREATE DATABASE {name}"),
            format!(
                "COMMENT ON DATABASE {name} IS 'session-store-pg test database, created {created}'"
            ),
        ];
        for statement in setup {
            if let Err(error) = admin.batch_execute(&statement).await {
                panic!(
                    "cannot create test database {name}: {}",
                    crate::error::translate(&error)
                );
            }
        }
        Some(TestDatabase {
            url: with_dbname(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// The URL of the new database (same server and role as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin URL the database was created from.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// [`PgConfig::new`] for this database.
    pub fn config(&self) -> PgConfig {
        PgConfig::new(self.url.clone())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime, where blocking on another one is
        // refused: do the work on a thread of its own, and wait for it so the
        // database is gone before the test ends.
        let worker = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = admin_connect(&admin_url).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| crate::error::translate(&e).to_string())
            })
        });
        let outcome = worker
            .join()
            .unwrap_or_else(|_| Err("the drop thread panicked".into()));
        if let Err(why) = outcome {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {} (a later run drops it after an hour): {why}",
                self.name
            );
        }
    }
}

/// Prints the skip line once per process. Every caller waits until it is
/// out: a caller may end the process right after (the contract binary does).
fn report_skip(why: &str) {
    SKIP_REPORTED.get_or_init(|| {
        let line = format!(
            "skipping PostgreSQL tests: {URL_VAR} is unset and nothing answers at \
             {DEFAULT_ADMIN_URL} ({why}); set {URL_VAR} to run them\n"
        );
        // Straight to stderr: the test harness captures the print macros of
        // passing tests, and this line must be seen.
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
}

/// Connects with a short timeout and drives the connection on the current runtime.
async fn admin_connect(url: &str) -> Result<Client, String> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|_| "invalid database url".to_owned())?;
    config.connect_timeout(Duration::from_secs(2));
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| crate::error::translate(&e).to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops test databases left behind by runs that died more than an hour ago.
async fn sweep_stale(admin: &Client) {
    let rows = match admin
        .query(
            "SELECT datname, shobj_description(oid, 'pg_database') AS note \
             FROM pg_database WHERE datname LIKE 'session\\_test\\_%'",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(_) => return,
    };
    let now = unix_seconds();
    for row in rows {
        let (Ok(name), Ok(note)) = (
            row.try_get::<_, String>("datname"),
            row.try_get::<_, Option<String>>("note"),
        ) else {
            continue;
        };
        let created = note
            .as_deref()
            .and_then(|note| note.rsplit(' ').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let stale = created.is_some_and(|at| now.saturating_sub(at) > STALE_AFTER.as_secs());
        let ours = name.len() == PREFIX.len() + 32
            && name[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit());
        if stale && ours {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A non-empty environment variable.
#[allow(
    clippy::disallowed_methods,
    reason = "test support decides from the environment whether a database is required"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Wall-clock seconds, for the age of leftover test databases.
#[allow(
    clippy::disallowed_methods,
    reason = "database ages are compared with the server's wall clock, not a test clock"
)]
fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// `url` with its database replaced by `dbname`, for both URL forms libpq
/// accepts (`postgres://...` and `key=value`).
fn with_dbname(url: &str, dbname: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Keyword form: a later keyword overrides an earlier one.
        return format!("{url} dbname={dbname}");
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after_authority = &rest[authority_end..];
    let query = after_authority
        .find('?')
        .map_or("", |at| &after_authority[at..]);
    format!("{}/{dbname}{query}", &url[..rest_start + authority_end])
}

/// A connection string for `url`'s database reached through `proxy`, or `None` when the
/// server is not on TCP.
pub fn through(url: &str, proxy: SocketAddr) -> Option<String> {
    let config: tokio_postgres::Config = url.parse().ok()?;
    let mut keywords = format!(
        "host={} port={} dbname={} user={}",
        proxy.ip(),
        proxy.port(),
        config.get_dbname()?,
        config.get_user()?
    );
    if let Some(password) = config.get_password() {
        keywords.push_str(&format!(
            " password='{}'",
            String::from_utf8_lossy(password)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
        ));
    }
    Some(keywords)
}

/// The TCP address of the server `url` points at (`None` for a Unix socket).
pub fn upstream(url: &str) -> Option<SocketAddr> {
    let config: tokio_postgres::Config = url.parse().ok()?;
    let Some(Host::Tcp(host)) = config.get_hosts().first() else {
        return None;
    };
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host.as_str()
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_swapped_in_both_url_forms() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t"),
            ("postgres://u@h:5432", "postgres://u@h:5432/t"),
            (
                "postgresql://u:p@h/db?sslmode=disable",
                "postgresql://u:p@h/t?sslmode=disable",
            ),
            ("postgres://u@h?x=1", "postgres://u@h/t?x=1"),
            (
                "host=h user=u dbname=postgres",
                "host=h user=u dbname=postgres dbname=t",
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(with_dbname(given, "t"), expected, "{given}");
        }
    }
}
