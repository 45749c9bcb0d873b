//! The HTTP load generator: finding (or installing) wrk, the Lua script that makes it
//! send the seed `POST /widget/session` and print its results as one parsable line,
//! and reading that line back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::load::files;
use crate::pg;
use crate::process;

/// The prefix of the one line the script's `done()` prints.
const RESULT_PREFIX: &str = "xtask-wrk ";

/// wrk counts a request slower than this as a timeout error (its default is 2 s).
const TIMEOUT: &str = "5s";

/// How to get a load generator when there is none.
const HOW_TO: &str = "\
cargo xtask load needs wrk on PATH:
  - Debian/Ubuntu: apt-get install wrk (as root)
  - other systems: your package manager's wrk, or build it from https://github.com/wg/wrk
(oha, `cargo install oha`, is an alternative load generator but this task drives wrk)";

/// A wrk binary and its version line.
#[derive(Debug)]
pub struct Wrk {
    path: PathBuf,
    version: String,
}

/// What one wrk run measures.
#[derive(Debug, Clone)]
pub struct Point {
    pub url: String,
    pub connections: u32,
    pub threads: u32,
    pub duration_secs: u64,
    pub script: PathBuf,
}

/// wrk's summary of one run; latencies in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub errors: Errors,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// wrk's error counters. `status` counts responses with a status above 399.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub status: u64,
    pub timeout: u64,
}

impl WrkResult {
    pub fn requests_per_sec(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 * 1e6 / self.duration_us as f64
    }

    /// Why this run does not count as a result, if it does not: an error response is
    /// not a served request (a fast 401 is not throughput), and a socket error means
    /// the clients were not all served.
    pub fn warning(&self) -> Option<String> {
        let e = self.errors;
        let socket = e.connect + e.read + e.write + e.timeout;
        match (e.status, socket) {
            (0, 0) => None,
            (status, 0) => Some(format!("{status} non-2xx responses")),
            (0, _) => Some(format!(
                "socket errors: connect {}, read {}, write {}, timeout {}",
                e.connect, e.read, e.write, e.timeout
            )),
            (status, _) => Some(format!(
                "{status} non-2xx responses; socket errors: connect {}, read {}, write {}, timeout {}",
                e.connect, e.read, e.write, e.timeout
            )),
        }
    }
}

impl Wrk {
    /// wrk from `$PATH`; if there is none and we are root on a system with apt-get,
    /// installs the distribution's package first, saying so.
    pub fn find_or_install() -> Result<Self> {
        if let Some(path) = process::find_program("wrk", &[]) {
            return Self::at(path);
        }
        let apt_get = process::find_program("apt-get", &["/usr/bin", "/bin"]);
        let root = pg::is_root().unwrap_or(false);
        let Some(apt_get) = apt_get.filter(|_| root) else {
            return Err(Error::failed(format!("wrk is not on PATH\n{HOW_TO}")));
        };
        println!("==> wrk: not on PATH; installing it with `apt-get install -y wrk`");
        let install = || {
            let mut command = Command::new(&apt_get);
            command
                .args(["install", "-y", "wrk"])
                .env("DEBIAN_FRONTEND", "noninteractive");
            process::run(&mut command, "apt-get install -y wrk")
        };
        if install().is_err() {
            // A fresh machine has no package lists yet.
            println!("==> wrk: install failed; running `apt-get update` and trying again");
            process::run(Command::new(&apt_get).arg("update"), "apt-get update")
                .and_then(|()| install())
                .map_err(|e| Error::failed(format!("{e}\n{HOW_TO}")))?;
        }
        let path = process::find_program("wrk", &["/usr/bin"])
            .ok_or_else(|| Error::failed(format!("installed wrk but cannot find it\n{HOW_TO}")))?;
        Self::at(path)
    }

    fn at(path: PathBuf) -> Result<Self> {
        // `wrk -v` prints its version and usage on stderr and exits 1.
        let output = Command::new(&path)
            .arg("-v")
            .output()
            .map_err(|e| Error::failed(format!("cannot run {}: {e}", path.display())))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let version = version_line(&text)
            .ok_or_else(|| Error::failed(format!("{} -v printed no version", path.display())))?;
        Ok(Self { path, version })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The command line of `point`.
    pub fn command(&self, point: &Point) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("-t")
            // wrk refuses fewer connections than threads.
            .arg(point.threads.min(point.connections).to_string())
            .arg("-c")
            .arg(point.connections.to_string())
            .arg("-d")
            .arg(format!("{}s", point.duration_secs))
            .args(["--timeout", TIMEOUT, "-s"])
            .arg(&point.script)
            .arg(&point.url);
        command
    }

    /// Runs `point` and returns its result.
    pub fn run(&self, point: &Point) -> Result<WrkResult> {
        self.measure(point).map(|(result, _)| result)
    }

    /// Runs `point` and returns its result and the command line as shown.
    pub fn measure(&self, point: &Point) -> Result<(WrkResult, String)> {
        let mut command = self.command(point);
        let shown = format!("wrk {}", process::display_args(&command));
        let stdout = process::capture(&mut command)?;
        let result = parse(&stdout)
            .map_err(|why| Error::failed(format!("`{shown}`: {why}; it printed:\n{stdout}")))?;
        Ok((result, shown))
    }
}

/// Which bodies the script sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// The seed request every time: one end user for the whole run.
    Seed,
    /// The seed request with a `partner_user_id` of its own per request
    /// (`load-<thread>-<n>`), as many different users would send it.
    DistinctUsers,
    /// The seed request with header `header` set to a value of its own per
    /// request (`<tag>-<thread>-<n>`): an `Idempotency-Key`, or a header the
    /// server ignores for the comparison run, so both cost the client alike.
    SeedKeyed { header: &'static str, tag: u32 },
}

/// Lua that numbers wrk's threads (`tid`) and each thread's requests (`n`),
/// for scripts that make every request distinct.
const PER_THREAD_COUNT: &str = r#"local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  n = 0
end
"#;

/// The Lua script: the request, and a `done()` that prints one result line.
pub fn post_script(bodies: Bodies) -> String {
    let request = match bodies {
        Bodies::Seed => format!("wrk.body = {}\n", lua_string(files::SEED_BODY)),
        // wrk builds each request in Lua then, which costs it some speed: the
        // baseline gets the same script, so the ratio stays fair.
        Bodies::DistinctUsers => format!(
            r#"local body = {}
{PER_THREAD_COUNT}function request()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(body, tid, n))
end
"#,
            lua_string(&files::SEED_BODY.replace("\"user-123\"", "\"load-%d-%d\""))
        ),
        Bodies::SeedKeyed { header, tag } => format!(
            r#"wrk.body = {}
{PER_THREAD_COUNT}function request()
  n = n + 1
  wrk.headers[{}] = string.format("{tag}-%d-%d", tid, n)
  return wrk.format()
end
"#,
            lua_string(files::SEED_BODY),
            lua_string(header)
        ),
    };
    format!(
        r#"-- Written by `cargo xtask load`: POST /widget/session with the seed request, and
-- one machine-readable result line (latencies in microseconds).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {authorization}
{request}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{RESULT_PREFIX}requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
    "p50_us=%.1f p99_us=%.1f p999_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#,
        authorization = lua_string(&format!("Bearer {}", files::TOKEN)),
    )
}

/// `text` as a Lua string literal.
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The result line among wrk's output.
pub fn parse(stdout: &str) -> Result<WrkResult, String> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .ok_or("no result line from the script's done()")?;
    let mut fields = std::collections::HashMap::new();
    for pair in line.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        fields.insert(key, value);
    }
    let float = |key: &str| -> Result<f64, String> {
        fields
            .get(key)
            .ok_or_else(|| format!("no {key} in the result line"))?
            .parse::<f64>()
            .map_err(|_| format!("{key} is not a number"))
    };
    let int = |key: &str| -> Result<u64, String> {
        fields
            .get(key)
            .ok_or_else(|| format!("no {key} in the result line"))?
            .parse::<u64>()
            .map_err(|_| format!("{key} is not a whole number"))
    };
    Ok(WrkResult {
        requests: int("requests")?,
        duration_us: int("duration_us")?,
        errors: Errors {
            connect: int("connect")?,
            read: int("read")?,
            write: int("write")?,
            status: int("status")?,
            timeout: int("timeout")?,
        },
        p50_us: float("p50_us")?,
        p99_us: float("p99_us")?,
        p999_us: float("p999_us")?,
    })
}

/// `wrk debian/4.1.0-3+b2 [epoll]` from the first line of `wrk -v`.
fn version_line(text: &str) -> Option<String> {
    let line = text.lines().find(|line| line.starts_with("wrk "))?;
    let line = line.split(" Copyright").next().unwrap_or(line);
    Some(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 3s test @ http://127.0.0.1:35379/widget/session
  2 threads and 64 connections
Requests/sec:  92460.51
xtask-wrk requests=277485 duration_us=3001119 connect=0 read=0 write=0 status=0 timeout=0 p50_us=548.0 p99_us=4242.0 p999_us=7516.0
";

    #[test]
    fn parses_the_result_line() {
        let result = parse(OUTPUT).expect("parses");
        assert_eq!(result.requests, 277_485);
        assert_eq!(result.duration_us, 3_001_119);
        assert_eq!(result.errors, Errors::default());
        assert_eq!(
            (result.p50_us, result.p99_us, result.p999_us),
            (548.0, 4242.0, 7516.0)
        );
        assert!((result.requests_per_sec() - 92_460.5).abs() < 1.0);
        assert_eq!(result.warning(), None);
    }

    #[test]
    fn error_responses_and_socket_errors_are_flagged() {
        let with_401s = OUTPUT.replace("status=0", "status=277485");
        let result = parse(&with_401s).expect("parses");
        assert_eq!(
            result.warning().as_deref(),
            Some("277485 non-2xx responses")
        );
        let with_timeouts = OUTPUT.replace("timeout=0", "timeout=3");
        let result = parse(&with_timeouts).expect("parses");
        assert!(result.warning().is_some_and(|w| w.contains("timeout 3")));
    }

    #[test]
    fn a_missing_or_broken_result_line_is_an_error() {
        assert!(parse("Requests/sec: 1\n").is_err());
        assert!(parse(&OUTPUT.replace("p99_us=4242.0 ", "")).is_err());
        assert!(parse(&OUTPUT.replace("requests=277485", "requests=lots")).is_err());
    }

    #[test]
    fn the_script_sends_the_seed_request() {
        let script = post_script(Bodies::Seed);
        assert!(script.contains(r#"wrk.method = "POST""#));
        assert!(script.contains(r#"wrk.body = "{\"partner_user_id\":\"user-123\","#));
        assert!(!script.contains("function request()"));
        assert!(script.contains(&format!(
            r#"wrk.headers["Authorization"] = "Bearer {}""#,
            files::TOKEN
        )));
        assert!(script.contains("latency:percentile(99.9)"));
    }

    #[test]
    fn distinct_users_get_a_user_id_per_request() {
        let script = post_script(Bodies::DistinctUsers);
        assert!(script.contains(r#"local body = "{\"partner_user_id\":\"load-%d-%d\","#));
        assert!(script.contains("string.format(body, tid, n)"));
        assert!(!script.contains("user-123") && !script.contains("wrk.body"));
        assert_eq!(
            files::SEED_BODY.matches('%').count(),
            0,
            "no stray format directives"
        );
    }

    #[test]
    fn lua_strings_escape_what_lua_needs() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lua_string("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn the_version_is_the_first_line_without_the_copyright() {
        let text = "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer\nUsage: wrk";
        assert_eq!(
            version_line(text).as_deref(),
            Some("wrk debian/4.1.0-3+b2 [epoll]")
        );
        assert_eq!(version_line("Usage: wrk <options>"), None);
    }

    #[test]
    fn the_command_never_asks_for_fewer_connections_than_threads() {
        let wrk = Wrk {
            path: PathBuf::from("wrk"),
            version: String::new(),
        };
        let point = Point {
            url: "http://127.0.0.1:1/widget/session".into(),
            connections: 1,
            threads: 2,
            duration_secs: 10,
            script: PathBuf::from("/tmp/post.lua"),
        };
        assert_eq!(
            process::display(&wrk.command(&point)),
            "wrk -t 1 -c 1 -d 10s --timeout 5s -s /tmp/post.lua http://127.0.0.1:1/widget/session"
        );
    }
}
