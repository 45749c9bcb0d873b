//! `cargo xtask schemathesis`: checks the running service against
//! `docs/openapi.yaml` with schemathesis, a property-based API tester from PyPI.
//!
//! It keeps a Python virtual environment with a pinned schemathesis under the
//! target directory (made once, reused while the pin holds), starts
//! `session-server serve --dev` on free loopback ports with an admin token of
//! this run in `SESSION_ADMIN_TOKEN` (so the admin API under `/admin/` is on),
//! reads the demo client token from its banner, and runs every check
//! schemathesis has, bounded in examples and time, first against the public
//! listener with the client token and then against the admin one with the
//! admin token. Any failure fails the task. `cargo xtask ci` runs it when python3
//! is available.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cargo::{self, Cargo};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::process;
use crate::tempdir::TempDir;

/// The flags of `cargo xtask schemathesis`.
#[derive(Debug, Args)]
pub struct SchemathesisArgs {
    /// Most test cases per operation and phase (schemathesis' `--max-examples`)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_examples: u32,
    /// Seconds for the public listener's pass (schemathesis' `--max-time`; its
    /// fuzzing and stateful phases repeat until it is spent); the admin pass
    /// takes a tenth, at least 10 s
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=3_600))]
    pub max_time: u64,
    /// Seed for the data generation, to replay a run (default: random, printed)
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SchemathesisArgs {
    /// What `cargo xtask ci` runs.
    pub fn for_ci() -> Self {
        Self {
            max_examples: 50,
            max_time: 100,
            seed: None,
        }
    }
}

/// The schemathesis release this task installs; a new one can change what is
/// generated and checked, so it moves only by a deliberate edit here.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// How long session-server may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where python3 is, if anywhere.
pub fn find_python() -> Option<PathBuf> {
    process::find_program("python3", &["/usr/bin", "/usr/local/bin"])
}

/// `cargo xtask schemathesis`: python3 is required.
pub fn run(args: &SchemathesisArgs) -> Result<()> {
    let python = find_python().ok_or_else(|| {
        Error::failed(
            "python3 is not on PATH; schemathesis needs it (apt-get install python3-venv)",
        )
    })?;
    run_with(&python, args)
}

/// The run itself, with python3 at `python`.
pub fn run_with(python: &Path, args: &SchemathesisArgs) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let state = cargo::target_dir(&root)?.join("schemathesis");
    fs::create_dir_all(&state)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", state.display())))?;
    let schemathesis = ensure_schemathesis(python, &state.join("venv"))?;

    let cargo = Cargo::from_env();
    cargo::step(
        "build session-server",
        cargo.command(&["build", "--quiet", "-p", "session-server"]),
    )?;
    let binary = cargo::target_dir(&root)?
        .join("debug")
        .join("session-server");

    let log = state.join("server.log");
    let admin_token = admin_token();
    let mut server = DevServer::start(&binary, &log, &admin_token)?;
    println!(
        "==> dev server: public {}, admin {} (log: {})",
        server.banner.public,
        server.banner.admin,
        log.display()
    );

    let work = TempDir::create("xtask-schemathesis")?;
    let config = work.path().join("schemathesis.toml");
    fs::write(&config, config_toml(&server.banner.token))
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", config.display())))?;
    let admin_config = work.path().join("schemathesis-admin.toml");
    fs::write(&admin_config, admin_config_toml(&admin_token))
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", admin_config.display())))?;
    let document = root.join("docs").join("openapi.yaml");

    let admin_time = (args.max_time / 10).max(10);
    let (public, admin) = (server.banner.public.clone(), server.banner.admin.clone());
    let passes = [
        Pass {
            name: "public listener",
            base: &public,
            config: &config,
            filter: ["--exclude-tag", "admin"],
            phases: "examples,coverage,fuzzing,stateful",
            max_time: args.max_time,
        },
        Pass {
            name: "admin listener",
            base: &admin,
            config: &admin_config,
            filter: ["--include-tag", "admin"],
            phases: "examples,coverage,fuzzing",
            max_time: admin_time,
        },
    ];
    let mut outcomes = Vec::new();
    for pass in &passes {
        interrupt::check()?;
        let mut command = Command::new(&schemathesis);
        command
            .current_dir(work.path())
            .arg("--no-color")
            .arg("--config-file")
            .arg(pass.config)
            .arg("run")
            .arg(&document)
            .args(["--url", &format!("http://{}", pass.base)])
            .args(pass.filter)
            .args(["--phases", pass.phases])
            .args(["--checks", "all"])
            .args(["--max-examples", &args.max_examples.to_string()])
            .args(["--max-time", &pass.max_time.to_string()])
            .args(["--workers", "2"])
            .args(["--generation-database", "none"]);
        if let Some(seed) = args.seed {
            command.args(["--seed", &seed.to_string()]);
        }
        cargo::header(
            &format!("schemathesis ({})", pass.name),
            &process::display(&command),
        );
        let outcome = run_pass(&mut command)?;
        server.check_running()?;
        outcomes.push((pass.name, outcome));
    }
    drop(server);

    println!();
    let mut failed = Vec::new();
    let mut total = 0;
    for (name, outcome) in &outcomes {
        let cases = outcome
            .cases
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!(
            "==> schemathesis ({name}): {cases} test cases, {}",
            if outcome.passed {
                "no failure"
            } else {
                "FAILED"
            }
        );
        total += outcome.cases.unwrap_or(0);
        if !outcome.passed {
            failed.push(*name);
        }
    }
    println!(
        "==> schemathesis: {total} test cases in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "schemathesis found failures on the {} (see above; the server's log is {})",
            failed.join(" and "),
            log.display()
        )))
    }
}

/// One schemathesis invocation: the operations of one listener.
struct Pass<'a> {
    name: &'static str,
    base: &'a str,
    /// The configuration: which token, and what each operation may answer.
    config: &'a Path,
    filter: [&'static str; 2],
    /// The stateful phase follows links, and only the public listener has any.
    phases: &'static str,
    max_time: u64,
}

/// What a pass came to.
#[derive(Debug)]
struct Outcome {
    passed: bool,
    /// From the "Test cases:" section of schemathesis' summary.
    cases: Option<u64>,
}

/// Runs `command`, echoing its output, and reads the number of test cases.
fn run_pass(command: &mut Command) -> Result<Outcome> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::failed(format!("cannot run schemathesis: {e}")))?;
    let mut summary = Summary::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            summary.read(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::failed(format!("cannot wait for schemathesis: {e}")))?;
    interrupt::check()?;
    Ok(Outcome {
        passed: status.success(),
        cases: summary.cases,
    })
}

/// Reads the summary schemathesis prints at the end:
/// `Test cases:` then `  10689 generated, 1 found 1 unique failure, 6 skipped`.
#[derive(Debug, Default)]
struct Summary {
    in_test_cases: bool,
    cases: Option<u64>,
}

impl Summary {
    fn read(&mut self, line: &str) {
        let line = line.trim();
        if line == "Test cases:" {
            self.in_test_cases = true;
            return;
        }
        if std::mem::take(&mut self.in_test_cases) {
            self.cases = line
                .split_once(" generated")
                .and_then(|(count, _)| count.trim().parse().ok());
        }
    }
}

/// The virtual environment's `schemathesis`, made (or remade) when it is missing
/// or not the pinned release.
fn ensure_schemathesis(python: &Path, venv: &Path) -> Result<PathBuf> {
    let program = venv.join("bin").join("schemathesis");
    let installed = process::is_executable(&program)
        && process::capture(Command::new(&program).arg("--version"))
            .is_ok_and(|version| version.contains(SCHEMATHESIS_VERSION));
    if installed {
        println!(
            "==> schemathesis {SCHEMATHESIS_VERSION}: reusing {}",
            venv.display()
        );
        return Ok(program);
    }
    cargo::header(
        "schemathesis",
        &format!(
            "installing {SCHEMATHESIS_VERSION} into {} (once)",
            venv.display()
        ),
    );
    let mut create = Command::new(python);
    create.args(["-m", "venv", "--clear"]).arg(venv);
    process::capture(&mut create).map_err(|e| {
        Error::failed(format!(
            "{e}\n(on Debian or Ubuntu, `apt-get install python3-venv` provides the venv module)"
        ))
    })?;
    let mut install = Command::new(venv.join("bin").join("python"));
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}"));
    let shown = process::display(&install);
    process::run(&mut install, &shown)?;
    Ok(program)
}

/// The configuration schemathesis reads: the demo token on every request, and
/// what the dev partner's configuration decides (SPEC.md §2), which no schema can
/// state.
fn config_toml(token: &str) -> String {
    format!(
        r#"# Written by `cargo xtask schemathesis` for one run against `session-server serve --dev`.

# The demo partner's client token, printed by dev mode.
[headers]
Authorization = "Bearer {token}"

# The demo partner's currencies and networks (session-server's dev.rs), so that
# generated sessions are created and the document's links lead somewhere.
[dictionaries]
networks = {{ values = ["TRC20", "ERC20"] }}
currencies = {{ values = ["USDT"] }}

[[operations]]
include-operation-id = "createSession"
parameters = {{ "body.network" = {{ dictionary = "networks" }}, "body.currency" = {{ dictionary = "currencies" }} }}
# A well-formed request can still be refused with 400 by the partner's own
# configuration: its currencies, networks and wallets, the decimals of each
# currency, its redirect hosts. The document states the shapes, not a partner's
# choices.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "redeemInitToken"
# Every field must equal the stored session's: any other well-formed body is
# `400 invalid_signature`, a reused token 409 and an expired one 410.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "410", "429", "5xx"]
"#
    )
}

/// A token for this run's admin API: unguessable enough for a server that
/// lives for one run on a loopback port.
#[expect(
    clippy::disallowed_methods,
    reason = "a throwaway token for one local run; no clock port in xtask"
)]
fn admin_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("xtask-admin-{nanos:x}-{:x}", std::process::id())
}

/// The admin pass's configuration: the admin token on every request, and what
/// an operator's request may be refused with although it fits the document.
fn admin_config_toml(token: &str) -> String {
    format!(
        r#"# Written by `cargo xtask schemathesis` for the admin pass of one run.

# The admin API's token of this run (SESSION_ADMIN_TOKEN of the dev server).
[headers]
Authorization = "Bearer {token}"

[[operations]]
include-tag = "admin"
# A well-formed change can still be refused by what is stored: an unknown
# partner, token or delivery (404), a taken id or a token already rotated
# (409), or a partner configuration that does not build (400: a currency code
# the document cannot spell out, a wallet address of the wrong network, a
# rate_limit burst of 0 with a rate above 0).
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]
"#
    )
}

/// What dev mode's banner says.
#[derive(Debug, PartialEq, Eq)]
struct Banner {
    /// `host:port` of the public listener.
    public: String,
    /// `host:port` of the admin listener.
    admin: String,
    token: String,
}

/// Reads the banner lines `public API   http://…`, `admin        http://…/healthz
/// …` and `client_token ct_…` into a [`Banner`] once all three have been seen.
#[derive(Debug, Default)]
struct BannerReader {
    public: Option<String>,
    admin: Option<String>,
    token: Option<String>,
}

impl BannerReader {
    fn read(&mut self, line: &str) -> Option<Banner> {
        let line = line.trim();
        let first_word = |rest: &str| rest.split_whitespace().next().map(str::to_owned);
        let address = |url: &str| {
            url.strip_prefix("http://")
                .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
        };
        if let Some(rest) = line.strip_prefix("public API") {
            self.public = first_word(rest).and_then(|url| address(&url));
        } else if let Some(rest) = line.strip_prefix("admin ") {
            self.admin = first_word(rest).and_then(|url| address(&url));
        } else if let Some(rest) = line.strip_prefix("client_token ") {
            self.token = first_word(rest);
        }
        Some(Banner {
            public: self.public.clone()?,
            admin: self.admin.clone()?,
            token: self.token.clone()?,
        })
    }
}

/// A dev-mode session-server on free loopback ports, killed on drop.
struct DevServer {
    child: Child,
    banner: Banner,
}

impl DevServer {
    fn start(binary: &Path, log: &Path, admin_token: &str) -> Result<Self> {
        let log_file = File::create(log)
            .map_err(|e| Error::failed(format!("cannot create {}: {e}", log.display())))?;
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--dev",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env("SESSION_ADMIN_TOKEN", admin_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start {}: {e}", binary.display())))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(Error::failed("session-server's stdout is not a pipe"));
        };
        // A thread reads the banner, hands it over, and keeps draining stdout so
        // the server can never block on a full pipe.
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BannerReader::default();
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sent {
                    continue;
                }
                if let Some(banner) = reader.read(&line) {
                    // The receiver may have given up waiting; nothing to do then.
                    let _ = sender.send(banner);
                    sent = true;
                }
            }
        });
        let mut server = Self {
            child,
            banner: Banner {
                public: String::new(),
                admin: String::new(),
                token: String::new(),
            },
        };
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(banner) => {
                server.banner = banner;
                Ok(server)
            }
            Err(_) => Err(Error::failed(format!(
                "session-server printed no dev banner within {}s (its log: {})",
                START_TIMEOUT.as_secs(),
                log.display()
            ))),
        }
    }

    /// Fails when the server has exited: it should serve until we stop it.
    fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::failed(format!(
                "session-server exited during the run ({status})"
            ))),
            Err(e) => Err(Error::failed(format!(
                "cannot tell whether session-server still runs: {e}"
            ))),
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_banner_gives_both_listeners_and_the_token() {
        let banner = "\
session-server is running in dev mode (in-memory store: nothing is kept after exit)

  public API   http://127.0.0.1:42667
  admin        http://127.0.0.1:44765/healthz  http://127.0.0.1:44765/readyz
  partner      demo
  client_token ct_test_TYjmioLt8NrSNI1-spuyFRg0IOnQIlyBafEA4sdR0e8
  provider secret (X-Signature key for POST /provider/events) 48473d10
";
        let mut reader = BannerReader::default();
        let read: Vec<Banner> = banner.lines().filter_map(|l| reader.read(l)).collect();
        assert_eq!(
            read.first(),
            Some(&Banner {
                public: "127.0.0.1:42667".to_owned(),
                admin: "127.0.0.1:44765".to_owned(),
                token: "ct_test_TYjmioLt8NrSNI1-spuyFRg0IOnQIlyBafEA4sdR0e8".to_owned(),
            })
        );
        let mut partial = BannerReader::default();
        assert_eq!(partial.read("  public API   http://127.0.0.1:1"), None);
        assert_eq!(partial.read("  client_token ct_test_x"), None);
    }

    #[test]
    fn the_summary_gives_the_number_of_test_cases() {
        let mut summary = Summary::default();
        for line in [
            "Failures:",
            "  ❌ ST202 Schema-valid request rejected: 1",
            "Test cases:",
            "  10689 generated, 1 found 1 unique failure, 6 skipped",
            "",
            "Seed: 4",
        ] {
            summary.read(line);
        }
        assert_eq!(summary.cases, Some(10_689));
        let mut nothing = Summary::default();
        nothing.read("  12 generated, 0 found");
        assert_eq!(
            nothing.cases, None,
            "only the line after `Test cases:` counts"
        );
    }

    #[test]
    fn the_admin_config_carries_the_admin_token() {
        let config = admin_config_toml("xtask-admin-1");
        assert!(config.contains("Authorization = \"Bearer xtask-admin-1\""));
        assert!(config.contains("include-tag = \"admin\""));
        assert_ne!(admin_token(), "", "a token is made");
    }

    #[test]
    fn the_config_carries_the_token() {
        let config = config_toml("ct_test_abc");
        assert!(config.contains("Authorization = \"Bearer ct_test_abc\""));
        assert!(config.contains("include-operation-id = \"createSession\""));
    }
}
