//! `cargo xtask load --limits`: what per-partner rate limits cost, written to
//! docs/performance-rate-limits.md.
//!
//! Throughput: `POST /widget/session` on the in-memory store with limits off
//! (`--default-rate-limit 0`) against a budget high enough never to refuse
//! (`--default-rate-limit 1000000`, burst 2,000,000), each point on a fresh
//! server, the two sides interleaved point by point and their order swapped
//! every round, so drift of this noisy VM hits both alike. Memory: the
//! limiter's live heap bytes for 100,000 distinct partners after one request
//! each, and after they went idle and the sweep ran (benches/src/bin/limits-memory,
//! counting with its global allocator).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::files::{self, WorkDir};
use super::server::{self, DEFAULT_RATE_LIMIT, Server};
use super::wrk::{self, Wrk, WrkResult};
use super::{Binaries, CommandLog, Plan, Runner, machine, print_ratio};
use crate::cargo;
use crate::error::{Error, Result};
use crate::{interrupt, process};

const DOC: &str = "performance-rate-limits.md";

/// Requests per second of the budget that never refuses: far above what one
/// instance serves on this machine.
const NEVER_REFUSES: &str = "1000000";

/// Distinct partners of the memory measurement.
const PARTNERS: &str = "100000";

/// The target of the issue that asked for this measurement: throughput with
/// a budget that never refuses, at least this share of limits off.
const MIN_RATIO: f64 = 0.97;

/// One side of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Off,
    On,
}

impl Side {
    fn flag(self) -> &'static str {
        match self {
            Self::Off => "0",
            Self::On => NEVER_REFUSES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Off => "OURS_LIMITS_OFF",
            Self::On => "OURS_LIMITS_ON",
        }
    }
}

/// Both sides at one concurrency in one round.
struct Pair {
    off: WrkResult,
    on: WrkResult,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.on.requests_per_sec() / self.off.requests_per_sec()
    }
}

#[derive(Debug, Deserialize)]
struct Memory {
    partners: usize,
    per_second: u32,
    burst: u32,
    live_bytes_before: usize,
    live_bytes_filled: usize,
    live_bytes_after_sweep: usize,
    tracked_filled: usize,
    tracked_after_sweep: usize,
    bytes_per_partner: f64,
    fill_ms: f64,
    sweep_ms: f64,
}

pub(super) fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let wrk = Wrk::find_or_install()?;
    println!("==> wrk: {} ({})", wrk.path().display(), wrk.version());
    let mut build = super::build_command();
    build.args(["--bin", "limits-memory"]);
    let build_shown = format!("cargo {}", process::display_args(&build));
    cargo::step("build", build)?;
    let target = cargo::target_dir(&root)?;
    let bins = Binaries::in_target(&target)?;
    let measure_memory = target.join("release").join("limits-memory");

    let work = WorkDir::create()?;
    let script = work.write("post.lua", &wrk::post_script(plan.bodies))?;
    let bootstrap = work.write("bootstrap.toml", files::BOOTSTRAP)?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let runner = Runner {
        wrk: &wrk,
        script: &script,
        plan,
    };

    let mut pairs: Vec<(u32, Vec<Pair>)> =
        plan.connections.iter().map(|&c| (c, Vec::new())).collect();
    let mut warnings = Vec::new();
    for round in 1..=plan.rounds {
        // Odd rounds measure limits off first, even rounds on first.
        let order = if round % 2 == 1 {
            [Side::Off, Side::On]
        } else {
            [Side::On, Side::Off]
        };
        cargo::header(
            &format!("round {round}/{}", plan.rounds),
            &format!(
                "at each concurrency limits {} first, on a fresh in-memory server each",
                if order[0] == Side::Off { "off" } else { "on" }
            ),
        );
        for (connections, rounds) in &mut pairs {
            let mut results = [None, None];
            for side in order {
                let server = start(&bins.session_server, &bootstrap, side, &mut log)?;
                let result = runner.point(&server, *connections, &mut log)?;
                warnings.extend(server.warnings());
                results[usize::from(side == Side::On)] = Some(result);
            }
            let [Some(off), Some(on)] = results else {
                return Err(Error::failed("a side of the pair was not measured"));
            };
            let pair = Pair { off, on };
            print_ratio("limits on / limits off", pair.ratio(), None);
            rounds.push(pair);
        }
    }

    cargo::header(
        "memory",
        &format!("the limiter's live heap bytes for {PARTNERS} partners"),
    );
    let memory = memory(&measure_memory, &mut log)?;
    println!(
        "    {} partners: {} live bytes before, {} filled ({:.1} per partner), {} after the \
         sweep; {} tracked, then {}",
        memory.partners,
        memory.live_bytes_before,
        memory.live_bytes_filled,
        memory.bytes_per_partner,
        memory.live_bytes_after_sweep,
        memory.tracked_filled,
        memory.tracked_after_sweep
    );

    let text = render(
        plan,
        wrk.version(),
        &pairs,
        &memory,
        &log.lines,
        &warnings,
        started.elapsed().as_secs(),
    );
    println!("\n{text}");
    if plan.write {
        let path = root.join("docs").join(DOC);
        std::fs::write(&path, &text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("==> wrote docs/{DOC}");
    }
    let problems = problems(&pairs, &memory);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "targets missed:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// A fresh in-memory server with limits `side`, checked to answer the seed
/// request with 200, and with the budget's headers exactly when limits are on.
fn start(binary: &Path, bootstrap: &Path, side: Side, log: &mut CommandLog) -> Result<Server> {
    let server = Server::session_with(
        binary,
        bootstrap,
        server::Store::Mem,
        &[DEFAULT_RATE_LIMIT, side.flag()],
    )?;
    log.server(&server, side.name());
    let request = super::http::post_session(files::TOKEN, files::SEED_BODY);
    let response = super::http::once(server.public(), &request, Duration::from_secs(10))
        .map_err(|e| Error::failed(format!("POST /widget/session failed: {e}")))?;
    let policy = response.header("ratelimit-policy");
    let expected = match side {
        Side::Off => None,
        Side::On => Some("\"default\";q=2000000;w=2"),
    };
    if response.status != 200 || policy != expected {
        return Err(Error::failed(format!(
            "{}: POST /widget/session answered {} with RateLimit-Policy {policy:?}, \
             expected 200 with {expected:?}",
            side.name(),
            response.status
        )));
    }
    Ok(server)
}

fn memory(binary: &Path, log: &mut CommandLog) -> Result<Memory> {
    interrupt::check()?;
    let mut command = Command::new(binary);
    command
        .args(["--partners", PARTNERS])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    log.push(&process::display(&command));
    let output = command
        .output()
        .map_err(|e| Error::failed(format!("cannot run {}: {e}", binary.display())))?;
    if !output.status.success() {
        return Err(Error::failed(format!(
            "limits-memory failed: {}",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("result "))
        .ok_or_else(|| Error::failed("limits-memory printed no result"))?;
    serde_json::from_str(line).map_err(|e| Error::failed(format!("limits-memory's result: {e}")))
}

/// The round whose ratio is the median (rounds sorted by ratio).
fn median(rounds: &[Pair]) -> Option<&Pair> {
    let mut sorted: Vec<&Pair> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    sorted.get(sorted.len() / 2).copied()
}

fn problems(pairs: &[(u32, Vec<Pair>)], memory: &Memory) -> Vec<String> {
    let mut out = Vec::new();
    for (connections, rounds) in pairs {
        for pair in rounds {
            for (side, result) in [("off", &pair.off), ("on", &pair.on)] {
                if let Some(warning) = result.warning() {
                    out.push(format!(
                        "{connections} connections, limits {side}: {warning}"
                    ));
                }
            }
        }
        if let Some(pair) = median(rounds).filter(|p| p.ratio() < MIN_RATIO) {
            out.push(format!(
                "{connections} connections: limits on / off {:.3}× (median round; at least {MIN_RATIO})",
                pair.ratio()
            ));
        }
    }
    if memory.tracked_after_sweep != 0 {
        out.push(format!(
            "{} partners still tracked after the sweep",
            memory.tracked_after_sweep
        ));
    }
    if memory.live_bytes_after_sweep > memory.live_bytes_before + 64 * 1024 {
        out.push(format!(
            "{} live bytes after the sweep, {} before: not reclaimed",
            memory.live_bytes_after_sweep, memory.live_bytes_before
        ));
    }
    out
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn render(
    plan: &Plan,
    wrk_version: &str,
    pairs: &[(u32, Vec<Pair>)],
    memory: &Memory,
    commands: &[String],
    warnings: &[String],
    elapsed_secs: u64,
) -> String {
    let m = machine::describe(wrk_version);
    let mut doc = String::from(
        "# Rate limits: what they cost\n\n\
         Written by `cargo xtask load --limits` (xtask/src/load/limits.rs); run it again \
         rather than editing.\n\n",
    );
    doc.push_str(&format!(
        "- Machine: {} ({} cores{}), {}, {}, {}; {}; {}; {}\n- Command: `{}` ({elapsed_secs} s in all)\n\n",
        m.cpu,
        m.cores,
        if m.virtual_machine {
            ", virtual machine"
        } else {
            ""
        },
        m.memory,
        m.os,
        m.kernel,
        m.rustc,
        m.wrk,
        m.date,
        plan.invocation()
    ));
    doc.push_str(&format!(
        "## Throughput with a budget that never refuses\n\n\
         `POST /widget/session` (the seed body) on the in-memory store, wrk with {} threads, \
         {} s per point after a {} s warm-up, every point on a fresh server. *Off*: \
         `--default-rate-limit 0`, so the load partner is not limited and no limiter is \
         consulted. *On*: `--default-rate-limit {NEVER_REFUSES}` (burst 2,000,000): every \
         request is counted by the partner's GCRA and answered with `RateLimit-Policy` and \
         `RateLimit`, and none is refused. The two sides alternate point by point, off \
         first in odd rounds and on first in even ones. Target: on / off at least \
         {MIN_RATIO}× (the median round at each concurrency).\n\n\
         | connections | off req/s | on req/s | on / off (median round) | every round |\n\
         |---|---|---|---|---|\n",
        plan.threads,
        plan.duration_secs,
        super::WARMUP_SECS
    ));
    let mut all = Vec::new();
    for (connections, rounds) in pairs {
        let Some(pair) = median(rounds) else {
            continue;
        };
        let every: Vec<String> = rounds.iter().map(|p| format!("{:.3}", p.ratio())).collect();
        all.extend(rounds.iter().map(Pair::ratio));
        doc.push_str(&format!(
            "| {connections} | {:.0} | {:.0} | **{:.3}×** | {} |\n",
            pair.off.requests_per_sec(),
            pair.on.requests_per_sec(),
            pair.ratio(),
            every.join(", ")
        ));
    }
    all.sort_by(f64::total_cmp);
    if let Some(mid) = all.get(all.len() / 2) {
        doc.push_str(&format!(
            "\nOver all {} pairs the median ratio is **{mid:.3}×** (lowest {:.3}, highest {:.3}).\n",
            all.len(),
            all.first().copied().unwrap_or(f64::NAN),
            all.last().copied().unwrap_or(f64::NAN)
        ));
    }
    doc.push_str(&format!(
        "\n## Memory for {} partners that went idle\n\n\
         `limits-memory` (benches/src/bin/limits-memory.rs) counts live heap bytes with a \
         counting global allocator (`cap`), so the figures are what the limiter holds, not \
         resident pages an allocator keeps. It sends one request for each of {} distinct \
         partners through `RateLimits` with the server's default budget ({}/s, burst {}), \
         waits until every bucket has refilled (the partners are idle), and runs the sweep \
         that the server runs every 30 s.\n\n\
         | | live heap | partners tracked |\n|---|---|---|\n\
         | before any request | {} | 0 |\n\
         | after one request each | {} (**{:.0} bytes per partner**, its id included) | {} |\n\
         | after they went idle and the sweep ran | {} | {} |\n\n\
         Filling took {:.0} ms; the sweep {:.1} ms. After the sweep the limiter is back \
         to {} bytes above where it started: the memory of idle partners is reclaimed.\n",
        memory.partners,
        memory.partners,
        memory.per_second,
        memory.burst,
        kib(memory.live_bytes_before),
        kib(memory.live_bytes_filled),
        memory.bytes_per_partner,
        memory.tracked_filled,
        kib(memory.live_bytes_after_sweep),
        memory.tracked_after_sweep,
        memory.fill_ms,
        memory.sweep_ms,
        memory
            .live_bytes_after_sweep
            .saturating_sub(memory.live_bytes_before)
    ));
    doc.push_str("\n## How it was run\n\n```sh\n");
    for line in commands {
        doc.push_str(line);
        doc.push('\n');
    }
    doc.push_str("```\n");
    if !warnings.is_empty() {
        doc.push_str("\nServer warnings:\n\n");
        for warning in warnings {
            doc.push_str(&format!("- {warning}\n"));
        }
    }
    doc
}
