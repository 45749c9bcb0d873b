//! The servers under test as child processes: started on loopback port 0, their
//! addresses read from what they print, ready when they say so, and killed when their
//! guard drops, whatever happened in between.
//!
//! Each server's output is read on a thread that keeps its last lines (to explain a
//! server that dies) and the warnings it logs during the run (accept failures and the
//! like would make a result suspect, so the report lists them).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::env;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::load::{files, http};
use crate::process;

/// How long a server may take to print its address (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a dead server's output an error shows.
const TAIL_LINES: usize = 20;
/// How many of the warnings a server logs during the run are kept word for word.
const KEPT_WARNINGS: usize = 5;
/// The log filter of session-server: warnings, and its own startup lines, which say
/// where it listens.
const RUST_LOG: &str = "warn,session_server=info";
/// Long enough that the idle test's connections outlive the whole run: the header
/// read timeout also closes idle keep-alive connections.
const HEADER_READ_TIMEOUT_SECS: &str = "600";

/// session-server's flag for the budget of partners without their own.
pub const DEFAULT_RATE_LIMIT: &str = "--default-rate-limit";

/// Which store a session-server runs on.
#[derive(Debug, Clone, Copy)]
pub enum Store<'a> {
    Mem,
    /// The database URL, given through the environment so it is never on a command
    /// line (a password would show in `ps` and in the doc).
    Postgres(&'a str),
}

/// A running server; dropping it kills it.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    child: RefCell<Child>,
    public: SocketAddr,
    shown: String,
    log: Arc<Mutex<Log>>,
    requests: Cell<u64>,
}

/// Where a server listens, as it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listening {
    public: SocketAddr,
    admin: Option<SocketAddr>,
}

/// What a server printed: its last lines, and its warnings once it was listening.
#[derive(Debug, Default)]
struct Log {
    tail: VecDeque<String>,
    listening: bool,
    warnings: Vec<String>,
    warning_count: usize,
}

/// How to read a server's output.
#[derive(Debug, Clone, Copy)]
enum Output {
    /// session-server's JSON log lines on stderr.
    JsonLog,
    /// baseline-server's `listening on ADDR` on stdout.
    Plain,
    /// baseline-server's stderr: anything it prints is a warning.
    Complaints,
}

impl Server {
    /// `session-server serve` on `store`, with the load partner bootstrapped.
    pub fn session(binary: &Path, bootstrap: &Path, store: Store<'_>) -> Result<Self> {
        Self::session_with(binary, bootstrap, store, &[])
    }

    /// The same with `extra` flags after the usual ones.
    pub fn session_with(
        binary: &Path,
        bootstrap: &Path,
        store: Store<'_>,
        extra: &[&str],
    ) -> Result<Self> {
        let mut command = Command::new(binary);
        command.args(["serve", "--store"]);
        let (name, shown_env) = match store {
            Store::Mem => {
                // A point creates close to a million sessions, none of them
                // expired or terminal: at the default bound the store would
                // answer 503 and the point would measure refusals.
                command.args(["mem", "--mem-max-sessions", "100000000"]);
                ("ours (mem)", format!("RUST_LOG={RUST_LOG}"))
            }
            Store::Postgres(url) => {
                command.arg("postgres").env("SESSION_DATABASE_URL", url);
                (
                    "ours (postgres)",
                    format!(
                        "RUST_LOG={RUST_LOG} SESSION_DATABASE_URL={}",
                        crate::pg::conninfo::display(url)
                    ),
                )
            }
        };
        command
            .arg("--bootstrap")
            .arg(bootstrap)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--header-read-timeout",
                HEADER_READ_TIMEOUT_SECS,
            ])
            .args(extra);
        // The load partner is unlimited unless the run says otherwise: these runs
        // measure the service, and its default budget (100/s) would turn a point
        // into a count of 429s. `--limits` measures what budgets cost. A binary
        // from before rate limits (`--webhooks --before`) has no such flag.
        if !extra.contains(&DEFAULT_RATE_LIMIT) && knows_flag(binary, DEFAULT_RATE_LIMIT) {
            command.args([DEFAULT_RATE_LIMIT, "0"]);
        }
        command.env("RUST_LOG", RUST_LOG);
        let shown = format!("{shown_env} {}", process::display(&command));
        // `spawn` waits for /readyz on the admin port the server reports.
        Self::spawn(name, command, shown, Output::JsonLog)
    }

    /// `baseline-server 127.0.0.1:0`: bare hyper, the HTTP ceiling.
    pub fn baseline(binary: &Path) -> Result<Self> {
        let mut command = Command::new(binary);
        command.arg("127.0.0.1:0");
        let shown = process::display(&command);
        Self::spawn("bare hyper", command, shown, Output::Plain)
    }

    fn spawn(
        name: &'static str,
        mut command: Command,
        shown: String,
        output: Output,
    ) -> Result<Self> {
        // Only what we set: a SESSION_* variable of the caller's would change the run.
        let path = env::var_os("PATH").unwrap_or_default();
        let ours = saved_env(&command);
        let mut child = command
            .env_clear()
            .env("PATH", path)
            .envs(ours)
            .stdin(Stdio::null())
            .stdout(match output {
                Output::Plain => Stdio::piped(),
                Output::JsonLog | Output::Complaints => Stdio::null(),
            })
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start `{shown}`: {e}")))?;
        let log = Arc::new(Mutex::new(Log::default()));
        let (found, listening) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            watch(stdout, output, Arc::clone(&log), found.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            let stderr_output = match output {
                Output::JsonLog => Output::JsonLog,
                Output::Plain | Output::Complaints => Output::Complaints,
            };
            watch(stderr, stderr_output, Arc::clone(&log), found);
        }
        let mut server = Self {
            name,
            child: RefCell::new(child),
            // Replaced below; a guard must exist first so a failure kills the child.
            public: SocketAddr::from(([127, 0, 0, 1], 0)),
            shown,
            log,
            requests: Cell::new(0),
        };
        let address = server.wait_listening(&listening)?;
        server.public = address.public;
        if let Some(admin) = address.admin {
            server.admin_ready(admin)?;
        }
        Ok(server)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn public(&self) -> SocketAddr {
        self.public
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// Adds `requests` to the count of requests the load sent it.
    pub fn count_requests(&self, requests: u64) {
        self.requests.set(self.requests.get() + requests);
    }

    /// How many requests the load sent it, warm-ups included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.get()
    }

    /// The command line that started it, environment first.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Sends the seed `POST /widget/session` once; anything but a 200 means the
    /// server is not set up to be measured. Returns the response body's size.
    pub fn verify_session_post(&self) -> Result<usize> {
        let request = http::post_session(files::TOKEN, files::SEED_BODY);
        let response = http::once(self.public, &request, Duration::from_secs(10))
            .map_err(|e| self.failure(&format!("POST /widget/session failed: {e}")))?;
        if response.status != 200 {
            return Err(self.failure(&format!(
                "POST /widget/session answered {} instead of 200: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )));
        }
        Ok(response.body.len())
    }

    /// `Ok` while the server runs; an error with its last output once it died.
    pub fn check_running(&self) -> Result<()> {
        match self.child.borrow_mut().try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(&format!("exited ({status})"))),
            Err(e) => Err(self.failure(&format!("cannot tell whether it runs: {e}"))),
        }
    }

    /// The warnings it logged after it started listening, for the report.
    pub fn warnings(&self) -> Vec<String> {
        let Ok(log) = self.log.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<String> = log
            .warnings
            .iter()
            .map(|line| format!("{}: {line}", self.name))
            .collect();
        if log.warning_count > log.warnings.len() {
            lines.push(format!(
                "{}: … and {} more",
                self.name,
                log.warning_count - log.warnings.len()
            ));
        }
        lines
    }

    fn wait_listening(&self, listening: &mpsc::Receiver<Listening>) -> Result<Listening> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            interrupt::check()?;
            match listening.recv_timeout(Duration::from_millis(100)) {
                Ok(address) => return Ok(address),
                Err(RecvTimeoutError::Disconnected) => {
                    // Output closed without an address: it is exiting; let it finish.
                    std::thread::sleep(Duration::from_millis(200));
                    self.check_running()?;
                    return Err(self.failure("closed its output without saying where it listens"));
                }
                Err(RecvTimeoutError::Timeout) => self.check_running()?,
            }
            if Instant::now() > deadline {
                return Err(self.failure(&format!(
                    "did not say where it listens within {}s",
                    START_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// Waits for `GET /readyz` on the admin port to answer 200.
    fn admin_ready(&self, admin: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let request = http::get("/readyz");
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            interrupt::check()?;
            self.check_running()?;
            match http::once(admin, &request, Duration::from_secs(2)) {
                Ok(response) if response.status == 200 => return Ok(()),
                Ok(response) => last = format!("answered {}", response.status),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.failure(&format!("/readyz never answered 200 ({last})")))
    }

    fn failure(&self, what: &str) -> Error {
        if interrupt::requested() {
            return Error::Interrupted;
        }
        let tail = self
            .log
            .lock()
            .map(|log| log.tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Error::failed(format!(
            "{} ({}) {what}\nits last output:\n{tail}",
            self.name, self.shown
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// The variables set on `command` before `env_clear`, which forgets them.
/// Whether `binary serve --help` lists `flag`.
fn knows_flag(binary: &Path, flag: &str) -> bool {
    Command::new(binary)
        .args(["serve", "--help"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(flag))
}

fn saved_env(command: &Command) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    command
        .get_envs()
        .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
        .collect()
}

/// Reads `reader` line by line on a thread until it closes.
fn watch(
    reader: impl Read + Send + 'static,
    output: Output,
    log: Arc<Mutex<Log>>,
    found: Sender<Listening>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let listening = match output {
                Output::JsonLog => listening_in_json(&line),
                Output::Plain => listening_in_plain(&line),
                Output::Complaints => None,
            };
            let warning = match output {
                Output::JsonLog => is_json_warning(&line),
                Output::Plain => false,
                Output::Complaints => true,
            };
            if let Ok(mut log) = log.lock() {
                log.tail.push_back(line.clone());
                if log.tail.len() > TAIL_LINES {
                    log.tail.pop_front();
                }
                if warning && log.listening {
                    log.warning_count += 1;
                    if log.warnings.len() < KEPT_WARNINGS {
                        log.warnings.push(line);
                    }
                }
                if listening.is_some() {
                    log.listening = true;
                }
            }
            if let Some(address) = listening {
                // The receiver is gone once the server started; nothing to tell then.
                let _ = found.send(address);
            }
        }
    });
}

/// The addresses in session-server's `"message":"listening"` log line.
fn listening_in_json(line: &str) -> Option<Listening> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    // tracing-subscriber puts fields at the top level (flattened) or under "fields".
    let fields = match value.get("fields") {
        Some(fields) if fields.get("message").is_some() => fields,
        _ => &value,
    };
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    let public = fields.get("public")?.as_str()?.parse().ok()?;
    let admin = fields.get("admin")?.as_str()?.parse().ok()?;
    Some(Listening {
        public,
        admin: Some(admin),
    })
}

/// A WARN or ERROR line of session-server's JSON log.
fn is_json_warning(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).map_or(true, |value| {
        matches!(
            value.get("level").and_then(serde_json::Value::as_str),
            Some("WARN" | "ERROR")
        )
    })
}

/// The address in baseline-server's `listening on ADDR` line.
fn listening_in_plain(line: &str) -> Option<Listening> {
    let public = line.strip_prefix("listening on ")?.trim().parse().ok()?;
    Some(Listening {
        public,
        admin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_addresses_in_the_json_log() {
        let flat = r#"{"timestamp":"2026-11-24T01:06:03Z","level":"INFO","message":"listening","public":"127.0.0.1:41217","admin":"127.0.0.1:37651","target":"session_server::run"}"#;
        let nested = r#"{"level":"INFO","fields":{"message":"listening","public":"127.0.0.1:1","admin":"127.0.0.1:2"}}"#;
        assert_eq!(
            listening_in_json(flat),
            Some(Listening {
                public: "127.0.0.1:41217".parse().expect("addr"),
                admin: Some("127.0.0.1:37651".parse().expect("addr")),
            })
        );
        assert!(listening_in_json(nested).is_some());
        let others = [
            r#"{"level":"INFO","message":"bootstrap loaded","created":1}"#,
            r#"{"level":"INFO","message":"listening","public":"nowhere","admin":"127.0.0.1:2"}"#,
            "listening on 127.0.0.1:1",
            "",
        ];
        for line in others {
            assert_eq!(listening_in_json(line), None, "{line:?}");
        }
    }

    #[test]
    fn warnings_are_warn_and_error_lines_or_anything_unparsable() {
        assert!(is_json_warning(
            r#"{"level":"WARN","message":"accept failed"}"#
        ));
        assert!(is_json_warning(r#"{"level":"ERROR","message":"x"}"#));
        assert!(is_json_warning("thread 'main' panicked at ..."));
        assert!(!is_json_warning(
            r#"{"level":"INFO","message":"listening"}"#
        ));
    }

    #[test]
    fn finds_the_baseline_address() {
        assert_eq!(
            listening_in_plain("listening on 127.0.0.1:35379").map(|l| l.public.port()),
            Some(35379)
        );
        assert_eq!(listening_in_plain("starting"), None);
    }
}
