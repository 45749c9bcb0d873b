//! `cargo xtask load --webhooks`: does the webhook dispatcher keep up with the
//! fastest rate at which `POST /provider/events` applies changes, how long does an
//! event take from commit to the partner's endpoint at half that rate, and does
//! session creation cost the same as before webhooks existed?
//!
//! The client side is `webhook-load` (benches): it is the partner's endpoint on
//! loopback, answering 200 at once, and it sends the load. Because session-server's
//! bootstrap names that endpoint, the driver starts first and says where it listens;
//! it is told the server's address once the server is up. With `--before REV`, the
//! session-server of that revision is built in a worktree of its own and measured
//! against this one, round by round, on session creation alone.
//!
//! Results go to the generated block of docs/performance-webhooks.md.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use serde::Deserialize;

use super::pgbench::LoadDatabase;
use super::server::{self, Server};
use super::{Binaries, CommandLog, Plan, files, machine, report};
use crate::cargo::{self, Cargo};
use crate::error::{Error, Result};
use crate::{interrupt, process};

mod render;

/// The provider's shared secret for the run (a load-only value, never a real one).
const PROVIDER_SECRET: &str = "load-provider-secret";
/// The run's client connections.
const CONCURRENCY: u32 = 32;
/// `--webhook-partner-concurrency` of the run: the run's one partner answers at
/// once and gets every event, so it is given more than the default 8 (a guard
/// for slow endpoints; with it the dispatcher delivers about half the event
/// rate here).
const PARTNER_CONCURRENCY: &str = "32";
/// Where the generated block goes.
const DOC: &str = "performance-webhooks.md";

/// What `webhook-load` printed as its result (the fields the report reads).
#[derive(Debug, Clone, Deserialize)]
pub struct DriverResult {
    pub create: Create,
    pub ceiling: Option<Ceiling>,
    pub latency: Option<Latency>,
    pub flaws: Flaws,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Create {
    pub per_sec: f64,
    pub failures: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Ceiling {
    pub events: u64,
    pub secs: f64,
    pub events_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub steady_ratio: f64,
    pub backlog_mid: u64,
    pub backlog_end: u64,
    pub backlog_max: u64,
    pub drain_secs: f64,
    pub failures: u64,
    pub ran_out: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Latency {
    pub target_events_per_sec: f64,
    pub events: u64,
    pub events_per_sec: f64,
    pub deliveries: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub failures: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Flaws {
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unreadable: u64,
}

/// One round of the before/after session-create comparison.
#[derive(Debug, Clone, Copy)]
pub struct CreateRound {
    pub before: Create,
    pub ours: Create,
}

/// Everything the report shows.
#[derive(Debug)]
pub struct WebhookReport {
    pub machine: machine::Machine,
    pub server_version: String,
    pub source: String,
    pub duration_secs: u64,
    pub concurrency: u32,
    pub partner_concurrency: &'static str,
    pub before: Option<String>,
    pub create_rounds: Vec<CreateRound>,
    pub run: DriverResult,
    pub invocation: String,
    pub commands: Vec<String>,
    pub server_warnings: Vec<String>,
    pub elapsed_secs: u64,
}

pub(super) fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let mut build = super::build_command();
    build.args(["--bin", "webhook-load"]);
    let build_shown = format!("cargo {}", process::display_args(&build));
    cargo::step("build", build)?;
    let target = cargo::target_dir(&root)?;
    let bins = Binaries::in_target(&target)?;
    let driver = target.join("release").join("webhook-load");
    let before = match &plan.before {
        Some(rev) => Some(build_before(&root, &target, rev)?),
        None => None,
    };

    let work = files::WorkDir::create()?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let (admin_url, _provided, source) = super::admin_database(plan)?;
    let database = LoadDatabase::create(&admin_url, "")?;
    log.database(database.name());
    println!(
        "==> postgres: created {} on {source} (PostgreSQL {})",
        database.name(),
        database.server_version()
    );

    let mut full = Driver::start(&driver, plan, false)?;
    let hook = format!("http://{}/hook", full.receiver);
    let bootstrap = work.write("bootstrap.toml", &files::bootstrap_with_webhook(&hook))?;
    log.push(&format!("# DRIVER: {}", full.shown));
    let server_flags = [
        "--provider-secret",
        PROVIDER_SECRET,
        "--webhook-allow-ip",
        "127.0.0.1/32",
        "--webhook-partner-concurrency",
        PARTNER_CONCURRENCY,
    ];
    let ours = Server::session_with(
        &bins.session_server,
        &bootstrap,
        server::Store::Postgres(database.url()),
        &server_flags,
    )?;
    log.server(&ours, "OURS_PG");

    let mut create_rounds = Vec::new();
    let mut warnings = Vec::new();
    if let Some(binary) = &before {
        let old_database = LoadDatabase::create(&admin_url, "_before")?;
        let plain = work.write("bootstrap-plain.toml", files::BOOTSTRAP)?;
        let old = Server::session_with(
            binary,
            &plain,
            server::Store::Postgres(old_database.url()),
            &server_flags[..2],
        )?;
        log.server(&old, "BEFORE_PG");
        for round in 1..=plan.rounds {
            // The order alternates, so what one run leaves behind in the
            // database server (a checkpoint, autovacuum) lands on each side
            // as often.
            let before_first = round % 2 == 1;
            cargo::header(
                &format!("create round {round}/{}", plan.rounds),
                if before_first {
                    "session creation: the earlier revision, then this one"
                } else {
                    "session creation: this revision, then the earlier one"
                },
            );
            let (before, mine) = if before_first {
                let before = create_only(&driver, plan, &old, &mut log)?;
                (before, create_only(&driver, plan, &ours, &mut log)?)
            } else {
                let mine = create_only(&driver, plan, &ours, &mut log)?;
                (create_only(&driver, plan, &old, &mut log)?, mine)
            };
            println!(
                "    before {:.0}/s, ours {:.0}/s: {:.2}×",
                before.per_sec,
                mine.per_sec,
                mine.per_sec / before.per_sec
            );
            create_rounds.push(CreateRound { before, ours: mine });
        }
        old.check_running()?;
        warnings.extend(old.warnings());
    }

    cargo::header(
        "webhooks",
        "create, then events as fast as they apply, then at half that rate",
    );
    full.go(ours.public())?;
    let run = full.finish()?;
    ours.check_running()?;
    warnings.extend(ours.warnings());

    let report = WebhookReport {
        machine: machine::describe("webhook-load (benches/src/bin/webhook-load)"),
        server_version: database.server_version().to_owned(),
        source,
        duration_secs: plan.duration_secs,
        concurrency: CONCURRENCY,
        partner_concurrency: PARTNER_CONCURRENCY,
        before: plan.before.clone(),
        create_rounds,
        run,
        invocation: plan.invocation(),
        commands: log.lines,
        server_warnings: warnings,
        elapsed_secs: started.elapsed().as_secs(),
    };
    let generated = render::render(&report);
    println!("\n{generated}");
    if plan.write {
        write_doc(&root.join("docs").join(DOC), &generated)?;
    }
    let problems = render::problems(&report);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "some measurements do not count:\n  {}",
        problems.join("\n  ")
    )))
}

fn write_doc(path: &Path, generated: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
    let text = report::splice(Some(&existing), generated).map_err(|why| {
        Error::failed(format!(
            "{}: {why}; the results are printed above",
            path.display()
        ))
    })?;
    std::fs::write(path, text)
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
    println!("==> load: wrote {}", path.display());
    Ok(())
}

/// One `--create-only` run of the driver against `server`.
fn create_only(
    binary: &Path,
    plan: &Plan,
    server: &Server,
    log: &mut CommandLog,
) -> Result<Create> {
    interrupt::check()?;
    let mut driver = Driver::start(binary, plan, true)?;
    log.push(&driver.shown);
    driver.go(server.public())?;
    let result = driver.finish()?;
    server.check_running()?;
    Ok(result.create)
}

/// A running `webhook-load`; dropping it kills it.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    receiver: SocketAddr,
    shown: String,
}

impl Driver {
    /// Starts the driver and reads where its receiver listens.
    fn start(binary: &Path, plan: &Plan, create_only: bool) -> Result<Self> {
        let mut command = Command::new(binary);
        command.args([
            "--token",
            files::TOKEN,
            "--provider-secret",
            PROVIDER_SECRET,
            "--duration",
            &plan.duration_secs.to_string(),
            "--concurrency",
            &CONCURRENCY.to_string(),
        ]);
        if create_only {
            command.arg("--create-only");
        }
        let shown = process::display(&command);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start `{shown}`: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or_else(|| Error::failed("the driver has no stdout"))?;
        let mut driver = Self {
            child,
            stdin,
            stdout,
            receiver: SocketAddr::from(([127, 0, 0, 1], 0)),
            shown,
        };
        let line = driver.line()?;
        driver.receiver = line
            .strip_prefix("receiver listening on ")
            .and_then(|address| address.trim().parse().ok())
            .ok_or_else(|| {
                Error::failed(format!("the driver said {line:?}, not where it listens"))
            })?;
        Ok(driver)
    }

    /// Tells the driver where the server is, which starts its run.
    fn go(&mut self, server: SocketAddr) -> Result<()> {
        let mut stdin = self
            .stdin
            .take()
            .ok_or_else(|| Error::failed("the driver was already started"))?;
        writeln!(stdin, "{server}")
            .map_err(|e| Error::failed(format!("cannot tell the driver the address: {e}")))
    }

    /// Waits for the driver's result line.
    fn finish(mut self) -> Result<DriverResult> {
        loop {
            let line = self.line()?;
            if let Some(json) = line.strip_prefix("result ") {
                let result = serde_json::from_str(json).map_err(|e| {
                    Error::failed(format!("cannot read the driver's result {json:?}: {e}"))
                })?;
                let status = self
                    .child
                    .wait()
                    .map_err(|e| Error::failed(format!("the driver: {e}")))?;
                if !status.success() {
                    return Err(Error::failed(format!("the driver ended with {status}")));
                }
                return Ok(result);
            }
            println!("    {line}");
        }
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| Error::failed(format!("cannot read the driver: {e}")))?;
        if read == 0 {
            let status = self
                .child
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            return Err(Error::failed(format!(
                "the driver stopped ({status}); its errors are above"
            )));
        }
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Builds session-server at `rev` in a worktree of its own, into
/// `<target>/load-before`, and returns the binary.
fn build_before(root: &Path, target: &Path, rev: &str) -> Result<PathBuf> {
    let commit = process::capture(Command::new("git").current_dir(root).args([
        "rev-parse",
        "--verify",
        &format!("{rev}^{{commit}}"),
    ]))
    .map_err(|e| Error::failed(format!("--before {rev}: not a revision here: {e}")))?;
    let commit = commit.trim().to_owned();
    let before_target = target.join("load-before");
    let tree = before_target.join("src");
    if tree.exists() {
        remove_worktree(root, &tree);
        let _ = std::fs::remove_dir_all(&tree);
    }
    process::run(
        Command::new("git")
            .current_dir(root)
            .args(["worktree", "add", "--detach"])
            .arg(&tree)
            .arg(&commit),
        &format!("git worktree add --detach target/load-before/src {commit}"),
    )?;
    // The pg store's `testing` feature: revisions from before the server's
    // shipped build was kept free of test rigs build only with it. It adds
    // test hooks and nothing on the request path.
    let mut build = Cargo::from_env().command(&[
        "build",
        "--release",
        "-p",
        "session-server",
        "--bin",
        "session-server",
        "--features",
        "session-store-pg/testing",
    ]);
    build
        .current_dir(&tree)
        .env("CARGO_TARGET_DIR", before_target.join("target"));
    let built = cargo::step(&format!("build {rev}"), build);
    remove_worktree(root, &tree);
    built?;
    let binary = before_target
        .join("target")
        .join("release")
        .join("session-server");
    if process::is_executable(&binary) {
        Ok(binary)
    } else {
        Err(Error::failed(format!(
            "the build of {rev} succeeded but {} is missing",
            binary.display()
        )))
    }
}

/// Removes the worktree at `tree`; a failure leaves a directory for the next
/// run to clear, nothing worse.
fn remove_worktree(root: &Path, tree: &Path) {
    let _ = process::run(
        Command::new("git")
            .current_dir(root)
            .args(["worktree", "remove", "--force"])
            .arg(tree),
        "git worktree remove",
    );
}
