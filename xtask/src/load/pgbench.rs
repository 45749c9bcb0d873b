//! The database ceiling for `--store postgres`: a fresh database per run (dropped
//! afterwards), and pgbench inserting one ~200-byte row per transaction at the same
//! concurrency as the HTTP points.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use postgres::config::Host;
use postgres::{Config, NoTls};

use crate::error::{Error, Result};
use crate::pg::{self, DEBIAN_ROOT, conninfo};
use crate::process;

/// Long enough for a busy local server, short enough that a dead host costs little.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections left free beside pgbench's clients: our own query's, and slack.
const SPARE_CONNECTIONS: i32 = 2;

/// The table the pgbench script inserts into, in the run's own database.
const CREATE_TABLE: &str = "CREATE TABLE pgbench_one_row (\
     id bigserial PRIMARY KEY, \
     payload text NOT NULL, \
     created_at timestamptz NOT NULL DEFAULT now())";

/// A row about the size of a session's: ids, a token digest, amounts.
const PAYLOAD: &str = "488d93e9-8b2a-4e67-bbaf-202bcaf539e6|fb359d09-fff6-4b1f-906c-b9062b135065|load|user-123|user@example.com|TRC20|USDT|100|buy|203.0.113.42|9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The pgbench script: one single-row INSERT per transaction.
pub fn insert_script() -> String {
    format!("INSERT INTO pgbench_one_row (payload) VALUES ('{PAYLOAD}');\n")
}

/// A pgbench binary and its version.
#[derive(Debug)]
pub struct Pgbench {
    path: PathBuf,
    version: String,
}

/// One pgbench run.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub clients: u32,
    pub threads: u32,
    pub duration_secs: u64,
    pub script: &'a Path,
}

/// What pgbench reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgbenchResult {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub transactions: u64,
    /// Failed transactions (PostgreSQL 15 and later report them).
    pub failed: u64,
}

/// A pgbench point: how many clients it really ran with, and what it measured.
#[derive(Debug, Clone, Copy)]
pub struct PgbenchPoint {
    pub clients: u32,
    pub result: PgbenchResult,
}

/// Where pgbench connects, taken from a connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    dbname: Option<String>,
    password: Option<String>,
}

impl Pgbench {
    /// pgbench on `$PATH`, else in Debian's newest `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<Self> {
        let path = pg::search_dirs()
            .into_iter()
            .map(|dir| dir.join("pgbench"))
            .find(|path| process::is_executable(path))
            .ok_or_else(|| {
                Error::failed(format!(
                    "pgbench is not on PATH or in {DEBIAN_ROOT}/*/bin; \
                     on Debian: apt-get install postgresql-client"
                ))
            })?;
        let version = process::capture(Command::new(&path).arg("--version"))?
            .trim()
            .to_owned();
        Ok(Self { path, version })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The command line of `run` against `target`; the password, if any, goes in
    /// `PGPASSWORD`, never on the line.
    pub fn command(&self, target: &Target, run: &Run<'_>) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("-n")
            .arg("-c")
            .arg(run.clients.to_string())
            .arg("-j")
            .arg(run.threads.min(run.clients).to_string())
            .arg("-T")
            .arg(run.duration_secs.to_string())
            .arg("-f")
            .arg(run.script);
        if let Some(host) = &target.host {
            command.args(["-h", host]);
        }
        if let Some(port) = target.port {
            command.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &target.user {
            command.args(["-U", user]);
        }
        if let Some(password) = &target.password {
            command.env("PGPASSWORD", password);
        }
        if let Some(dbname) = &target.dbname {
            command.arg(dbname);
        }
        command
    }

    /// Runs `run` against `target`; returns the result and the command line as shown.
    pub fn run(&self, target: &Target, run: &Run<'_>) -> Result<(PgbenchResult, String)> {
        let mut command = self.command(target, run);
        let shown = format!("pgbench {}", process::display_args(&command));
        let stdout = process::capture(&mut command)?;
        let result = parse(&stdout)
            .map_err(|why| Error::failed(format!("`{shown}`: {why}; it printed:\n{stdout}")))?;
        Ok((result, shown))
    }
}

/// The run's own database, created empty with the pgbench table and dropped on drop.
#[derive(Debug)]
pub struct LoadDatabase {
    admin_url: String,
    name: String,
    url: String,
    target: Target,
    server_version: String,
}

impl LoadDatabase {
    /// Creates `session_load_<pid><label>` through `admin_url`, a role that may
    /// create databases.
    pub fn create(admin_url: &str, label: &str) -> Result<Self> {
        let shown = conninfo::display(admin_url);
        let mut admin = connect(admin_url)
            .map_err(|e| Error::failed(format!("cannot connect to {shown}: {e}")))?;
        let server_version = admin
            .query_one("SHOW server_version", &[])
            .and_then(|row| row.try_get::<_, String>(0))
            .map_err(|e| Error::failed(format!("{shown}: SHOW server_version: {e}")))?;
        let name = format!("session_load_{}{label}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| Error::failed(format!("{shown}: CREATE DATABASE {name}: {e}")))?;
        let url = with_dbname(admin_url, &name);
        // From here a failure drops the guard, which drops the database.
        let database = Self {
            admin_url: admin_url.to_owned(),
            target: target(&url).map_err(Error::failed)?,
            name,
            url,
            server_version,
        };
        let mut client = connect(&database.url)
            .map_err(|e| Error::failed(format!("cannot connect to {}: {e}", database.name)))?;
        client
            .batch_execute(CREATE_TABLE)
            .map_err(|e| Error::failed(format!("{}: {CREATE_TABLE}: {e}", database.name)))?;
        Ok(database)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, password included: for the servers, never for printing.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// How many more client connections the server accepts now, less a little slack:
    /// pgbench runs with at most this many, since a client it cannot connect aborts it.
    /// The one integer `sql` answers, on this database.
    pub fn integer(&self, sql: &str) -> Result<i64> {
        let mut client = connect(&self.url)
            .map_err(|e| Error::failed(format!("cannot connect to {}: {e}", self.name)))?;
        client
            .query_one(sql, &[])
            .and_then(|row| row.try_get::<_, i64>(0))
            .map_err(|e| Error::failed(format!("{}: `{sql}`: {e}", self.name)))
    }

    /// Whether the server runs autovacuum.
    pub fn autovacuum(&self) -> Result<bool> {
        Ok(self.integer("SELECT (current_setting('autovacuum') = 'on')::int::bigint")? == 1)
    }

    /// A connection of its own to this database, listening on `channels`.
    pub fn listener(&self, channels: &[&str]) -> Result<postgres::Client> {
        let mut client = connect(&self.url)
            .map_err(|e| Error::failed(format!("cannot connect to {}: {e}", self.name)))?;
        for channel in channels {
            client
                .batch_execute(&format!("LISTEN {channel}"))
                .map_err(|e| Error::failed(format!("{}: LISTEN {channel}: {e}", self.name)))?;
        }
        Ok(client)
    }

    pub fn client_room(&self) -> Result<u32> {
        let mut client = connect(&self.url)
            .map_err(|e| Error::failed(format!("cannot connect to {}: {e}", self.name)))?;
        let room: i32 = client
            .query_one(
                "SELECT current_setting('max_connections')::int \
                 - current_setting('superuser_reserved_connections')::int \
                 - (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend')",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| Error::failed(format!("{}: counting free connections: {e}", self.name)))?;
        Ok(u32::try_from(room - SPARE_CONNECTIONS).unwrap_or(0).max(1))
    }
}

impl Drop for LoadDatabase {
    fn drop(&mut self) {
        let result = connect(&self.admin_url).and_then(|mut admin| {
            // WITH (FORCE) (PostgreSQL 13+) ends a killed server's lingering sessions.
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .or_else(|_| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name)))
        });
        match result {
            Ok(()) => println!("==> postgres: dropped {}", self.name),
            Err(e) => eprintln!(
                "xtask: warning: could not drop database {} on {}: {e}",
                self.name,
                conninfo::display(&self.admin_url)
            ),
        }
    }
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: Config = url.parse()?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.connect(NoTls)
}

/// `url` pointing at database `dbname` instead: the path of a URL, or a `dbname=`
/// key appended to a `key=value` string (the last one wins).
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={dbname}");
    };
    let after = scheme_end + 3;
    let query = url[after..].find('?').map(|at| after + at);
    let authority_end = url[after..query.unwrap_or(url.len())]
        .find('/')
        .map(|at| after + at);
    let path_start = authority_end.or(query).unwrap_or(url.len());
    let rest = query.map(|at| &url[at..]).unwrap_or_default();
    format!("{}/{dbname}{rest}", &url[..path_start])
}

/// pgbench's connection options for `url`.
pub fn target(url: &str) -> Result<Target, String> {
    let config: Config = url
        .parse()
        .map_err(|e| format!("not a valid connection string: {e}"))?;
    let host = config.get_hosts().first().map(|host| match host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(dir) => dir.to_string_lossy().into_owned(),
    });
    Ok(Target {
        host,
        port: config.get_ports().first().copied(),
        user: config.get_user().map(str::to_owned),
        dbname: config.get_dbname().map(str::to_owned),
        password: config
            .get_password()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
    })
}

/// The figures of pgbench's summary. The TPS line reads `(without initial connection
/// time)` since PostgreSQL 14 and `(excluding connections establishing)` before.
pub fn parse(stdout: &str) -> Result<PgbenchResult, String> {
    let mut tps = None;
    let mut latency_avg_ms = None;
    let mut transactions = None;
    let mut failed = 0;
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            if rest.contains("without initial connection time")
                || rest.contains("excluding connections establishing")
            {
                tps = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            latency_avg_ms = rest.strip_suffix(" ms").and_then(|n| n.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ")
        {
            transactions = rest.split('/').next().and_then(|n| n.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            failed = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    Ok(PgbenchResult {
        tps: tps.ok_or("no `tps = ... (without initial connection time)` line")?,
        latency_avg_ms: latency_avg_ms.ok_or("no `latency average = ... ms` line")?,
        transactions: transactions.ok_or("no `number of transactions actually processed` line")?,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: ins.sql
scaling factor: 1
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 41245
number of failed transactions: 0 (0.000%)
latency average = 0.386 ms
initial connection time = 16.788 ms
tps = 20707.701839 (without initial connection time)
";

    const PG12: &str = "\
transaction type: insert.sql
scaling factor: 1
query mode: simple
number of clients: 16
number of threads: 2
duration: 10 s
number of transactions actually processed: 65000
latency average = 2.461 ms
tps = 6500.123 (including connections establishing)
tps = 6512.456 (excluding connections establishing)
";

    #[test]
    fn parses_the_summary_of_both_wordings() {
        assert_eq!(
            parse(PG15),
            Ok(PgbenchResult {
                tps: 20707.701839,
                latency_avg_ms: 0.386,
                transactions: 41245,
                failed: 0
            })
        );
        let old = parse(PG12).expect("parses");
        assert_eq!(old.tps, 6512.456, "the figure without connection time");
        assert_eq!((old.transactions, old.failed), (65000, 0));
    }

    #[test]
    fn counts_failures_and_rejects_a_summary_without_tps() {
        let failing = PG15.replace(
            "failed transactions: 0 (0.000%)",
            "failed transactions: 12 (0.030%)",
        );
        assert_eq!(parse(&failing).map(|r| r.failed), Ok(12));
        let no_tps = PG15.replace("tps = 20707.701839 (without initial connection time)", "");
        assert!(parse(&no_tps).is_err());
        assert!(parse("pgbench: error: connection to server failed").is_err());
    }

    #[test]
    fn urls_get_the_run_database() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/session_load_1",
            ),
            (
                "postgresql://u:p%40ss@db:5433/app?sslmode=disable",
                "postgresql://u:p%40ss@db:5433/session_load_1?sslmode=disable",
            ),
            (
                "postgres://u@h:1?sslmode=disable",
                "postgres://u@h:1/session_load_1?sslmode=disable",
            ),
            ("postgres://u@h", "postgres://u@h/session_load_1"),
            (
                "host=/var/run/postgresql user=postgres dbname=postgres",
                "host=/var/run/postgresql user=postgres dbname=postgres dbname=session_load_1",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_dbname(url, "session_load_1"), expected, "{url}");
        }
        let config: Config = with_dbname("host=h user=u dbname=a", "b")
            .parse()
            .expect("parses");
        assert_eq!(config.get_dbname(), Some("b"), "the last dbname wins");
    }

    #[test]
    fn pgbench_gets_host_port_user_and_database_but_never_the_password_on_its_line() {
        let pgbench = Pgbench {
            path: PathBuf::from("pgbench"),
            version: String::new(),
        };
        let tcp = target("postgres://load:secret@127.0.0.1:5433/session_load_1").expect("parses");
        let run = Run {
            clients: 64,
            threads: 2,
            duration_secs: 10,
            script: Path::new("/tmp/insert.sql"),
        };
        let command = pgbench.command(&tcp, &run);
        assert_eq!(
            process::display(&command),
            "pgbench -n -c 64 -j 2 -T 10 -f /tmp/insert.sql -h 127.0.0.1 -p 5433 -U load session_load_1"
        );
        let password = command
            .get_envs()
            .find(|(key, _)| *key == "PGPASSWORD")
            .and_then(|(_, value)| value);
        assert_eq!(password, Some(std::ffi::OsStr::new("secret")));
        let socket =
            target("postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/db").expect("parses");
        assert_eq!(socket.host.as_deref(), Some("/var/run/postgresql"));
    }

    #[test]
    fn the_script_inserts_one_row_of_about_200_bytes() {
        assert!(
            (180..=220).contains(&PAYLOAD.len()),
            "{} bytes",
            PAYLOAD.len()
        );
        assert_eq!(insert_script().matches("INSERT").count(), 1);
    }
}
