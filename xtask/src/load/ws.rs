//! `cargo xtask load --ws`: what `GET /ws` sockets cost.
//!
//! - 10,000 idle subscribed sockets (one per transaction) on one in-memory
//!   instance: the server's resident memory per socket, and session creation
//!   with and without them (throughput and p99, the same run);
//! - one change fanned out to 1,000 subscribers of one transaction: latency
//!   from just before the provider event is sent to each receipt, on that
//!   instance, and across two instances on PostgreSQL (sockets on one, events
//!   through the other).
//!
//! The client side is `ws-load` (benches). Results go to
//! docs/performance-websocket.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Deserialize;

use super::pgbench::LoadDatabase;
use super::server::{self, Server};
use super::{Binaries, CommandLog, Plan, files, machine};
use crate::cargo;
use crate::error::{Error, Result};
use crate::{interrupt, process};

const PROVIDER_SECRET: &str = "load-provider-secret";
const IDLE: &str = "10000";
const FANOUT: &str = "1000";
const ROUNDS: &str = "5";
/// Idle sockets plus a fan-out's, with room to spare.
const MAX_SOCKETS: &str = "12000";
const DOC: &str = "performance-websocket.md";

/// What `ws-load` printed.
#[derive(Debug, Deserialize)]
struct Outcome {
    create_without: Option<Create>,
    create_with: Option<Create>,
    fanout: Option<Fanout>,
    idle: Option<Idle>,
}

#[derive(Debug, Deserialize)]
struct Create {
    sessions: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: u64,
}

#[derive(Debug, Deserialize)]
struct Fanout {
    subscribers: usize,
    rounds: usize,
    messages: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Deserialize)]
struct Idle {
    sockets: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    per_socket_kib: f64,
}

pub(super) fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let mut build = super::build_command();
    build.args(["--bin", "ws-load"]);
    let build_shown = format!("cargo {}", process::display_args(&build));
    cargo::step("build", build)?;
    let target = cargo::target_dir(&root)?;
    let bins = Binaries::in_target(&target)?;
    let driver = target.join("release").join("ws-load");

    let work = files::WorkDir::create()?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let bootstrap = work.write("bootstrap.toml", files::BOOTSTRAP)?;
    let flags = [
        "--provider-secret",
        PROVIDER_SECRET,
        "--ws-max-connections",
        MAX_SOCKETS,
    ];

    cargo::header(
        "one instance",
        "in memory: idle sockets, fan-out, session creation",
    );
    let single =
        Server::session_with(&bins.session_server, &bootstrap, server::Store::Mem, &flags)?;
    log.server(&single, "OURS_MEM");
    let pid = single.pid().to_string();
    let address = single.public().to_string();
    let duration = plan.duration_secs.to_string();
    let local = drive(
        &driver,
        &[
            "--mode",
            "single",
            "--addr",
            &address,
            "--pid",
            &pid,
            "--idle",
            IDLE,
            "--fanout",
            FANOUT,
            "--rounds",
            ROUNDS,
            "--duration",
            &duration,
        ],
        &mut log,
    )?;
    single.check_running()?;
    drop(single);

    cargo::header(
        "two instances",
        "PostgreSQL: sockets on one, events through the other",
    );
    let (admin_url, _provided, source) = super::admin_database(plan)?;
    let database = LoadDatabase::create(&admin_url, "_ws")?;
    log.database(database.name());
    let a = Server::session_with(
        &bins.session_server,
        &bootstrap,
        server::Store::Postgres(database.url()),
        &flags,
    )?;
    log.server(&a, "OURS_PG_A");
    let b = Server::session_with(
        &bins.session_server,
        &bootstrap,
        server::Store::Postgres(database.url()),
        &flags,
    )?;
    log.server(&b, "OURS_PG_B");
    let (a_addr, b_addr) = (a.public().to_string(), b.public().to_string());
    let across = drive(
        &driver,
        &[
            "--mode",
            "across",
            "--addr",
            &a_addr,
            "--events-addr",
            &b_addr,
            "--fanout",
            FANOUT,
            "--rounds",
            ROUNDS,
        ],
        &mut log,
    )?;
    a.check_running()?;
    b.check_running()?;

    let text = render(
        &local,
        &across,
        &Context {
            machine: machine::describe("ws-load (benches/src/bin/ws-load)").summary(),
            postgres: format!("PostgreSQL {} on {source}", database.server_version()),
            invocation: plan.invocation(),
            commands: log.lines.clone(),
            elapsed_secs: started.elapsed().as_secs(),
        },
    );
    println!("\n{text}");
    if plan.write {
        let path = root.join("docs").join(DOC);
        std::fs::write(&path, &text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("==> wrote docs/{DOC}");
    }
    let problems = problems(&local, &across);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "targets missed:\n  {}",
            problems.join("\n  ")
        )))
    }
}

fn drive(driver: &Path, args: &[&str], log: &mut CommandLog) -> Result<Outcome> {
    interrupt::check()?;
    let mut command = Command::new(driver);
    command
        .args([
            "--token",
            files::TOKEN,
            "--provider-secret",
            PROVIDER_SECRET,
        ])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    log.push(&process::display(&command));
    let output = command
        .output()
        .map_err(|e| Error::failed(format!("cannot run {}: {e}", driver.display())))?;
    if !output.status.success() {
        return Err(Error::failed(format!("ws-load failed: {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("result "))
        .ok_or_else(|| Error::failed("ws-load printed no result"))?;
    serde_json::from_str(line).map_err(|e| Error::failed(format!("ws-load's result: {e}")))
}

struct Context {
    machine: String,
    postgres: String,
    invocation: String,
    commands: Vec<String>,
    elapsed_secs: u64,
}

/// The targets of the issue that asked for this measurement.
const MAX_KIB_PER_SOCKET: f64 = 24.0;
const MAX_LOCAL_P99_MS: f64 = 50.0;
const MAX_ACROSS_P99_MS: f64 = 250.0;
const MIN_CREATE_RATIO: f64 = 0.9;
const MAX_P99_RATIO: f64 = 1.5;

fn problems(local: &Outcome, across: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(idle) = &local.idle {
        if idle.per_socket_kib > MAX_KIB_PER_SOCKET {
            out.push(format!(
                "{:.1} KiB per idle socket (at most {MAX_KIB_PER_SOCKET})",
                idle.per_socket_kib
            ));
        }
    }
    for (name, outcome, limit) in [
        ("one instance", local, MAX_LOCAL_P99_MS),
        ("two instances", across, MAX_ACROSS_P99_MS),
    ] {
        if let Some(fanout) = &outcome.fanout {
            if fanout.p99_ms > limit {
                out.push(format!(
                    "fan-out p99 {:.1} ms on {name} (under {limit})",
                    fanout.p99_ms
                ));
            }
        }
    }
    if let (Some(without), Some(with)) = (&local.create_without, &local.create_with) {
        if with.failures + without.failures > 0 {
            out.push("session creations failed".into());
        }
        if with.per_sec < MIN_CREATE_RATIO * without.per_sec {
            out.push(format!(
                "session creation {:.2}× with idle sockets (at least {MIN_CREATE_RATIO})",
                with.per_sec / without.per_sec
            ));
        }
        if with.p99_ms > MAX_P99_RATIO * without.p99_ms {
            out.push(format!(
                "session creation p99 {:.2}× with idle sockets (at most {MAX_P99_RATIO})",
                with.p99_ms / without.p99_ms
            ));
        }
    }
    out
}

fn render(local: &Outcome, across: &Outcome, context: &Context) -> String {
    let mut doc = String::from(
        "# GET /ws: what live subscribers cost\n\n\
         Written by `cargo xtask load --ws` (xtask/src/load/ws.rs); run it again rather \
         than editing. The client is `ws-load` (benches/src/bin/ws-load), on one thread.\n\n",
    );
    doc.push_str(&format!(
        "- Machine: {}\n- Database (two-instance fan-out): {}\n- Command: `{}` ({} s in all)\n\n",
        context.machine, context.postgres, context.invocation, context.elapsed_secs
    ));
    doc.push_str("## Idle sockets (one instance, in memory)\n\n");
    if let Some(idle) = &local.idle {
        doc.push_str(&format!(
            "{} subscribed sockets, one per transaction, each sent its first message and then \
             idle. Server resident memory {} KiB before, {} KiB after: **{:.1} KiB per \
             socket** (target: at most {MAX_KIB_PER_SOCKET}; {:.0} MiB for all of them).\n\n",
            idle.sockets,
            idle.rss_before_kib,
            idle.rss_after_kib,
            idle.per_socket_kib,
            (idle.rss_after_kib.saturating_sub(idle.rss_before_kib)) as f64 / 1024.0
        ));
    }
    if let (Some(without), Some(with)) = (&local.create_without, &local.create_with) {
        doc.push_str(
            "Session creation, 32 connections, the same server, before and after the idle \
             sockets were opened:\n\n| | sessions/s | p50 ms | p99 ms | failures |\n|---|---|---|---|---|\n",
        );
        for (name, c) in [
            ("without sockets", without),
            ("with the idle sockets", with),
        ] {
            doc.push_str(&format!(
                "| {name} | {:.0} | {:.2} | {:.2} | {} |\n",
                c.per_sec, c.p50_ms, c.p99_ms, c.failures
            ));
        }
        doc.push_str(&format!(
            "\nRatio with/without: throughput **{:.2}×** (target ≥ {MIN_CREATE_RATIO}), p99 \
             **{:.2}×** (target ≤ {MAX_P99_RATIO}); {} and {} sessions.\n\n",
            with.per_sec / without.per_sec,
            with.p99_ms / without.p99_ms,
            without.sessions,
            with.sessions
        ));
    }
    doc.push_str(
        "## Fan-out: one change to many subscribers of one transaction\n\n\
         Latency runs from just before `POST /provider/events` is sent to each subscriber's \
         receipt of the message (so it includes the commit); two changes per round \
         (`processing`, `completed`).\n\n\
         | | subscribers | rounds | messages | p50 ms | p99 ms | max ms | target p99 |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (name, outcome, limit) in [
        ("one instance, in memory", local, MAX_LOCAL_P99_MS),
        ("two instances, PostgreSQL", across, MAX_ACROSS_P99_MS),
    ] {
        if let Some(f) = &outcome.fanout {
            doc.push_str(&format!(
                "| {name} | {} | {} | {} | {:.1} | {:.1} | {:.1} | < {limit} |\n",
                f.subscribers, f.rounds, f.messages, f.p50_ms, f.p99_ms, f.max_ms
            ));
        }
    }
    doc.push_str("\n## Commands\n\n```text\n");
    for line in &context.commands {
        doc.push_str(line);
        doc.push('\n');
    }
    doc.push_str("```\n");
    doc
}
