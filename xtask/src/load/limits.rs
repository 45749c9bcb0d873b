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
use std::time::Duration;

use serde::Deserialize;

use super::files;
use super::server::{self, DEFAULT_RATE_LIMIT, Server};
use super::{Bench, CommandLog, Paired, Plan, Side};
use crate::error::{Error, Result};
use crate::{cargo, interrupt, process};

const DOC: &str = "performance-rate-limits.md";

/// Requests per second of the budget that never refuses: far above what one
/// instance serves on this machine.
const NEVER_REFUSES: &str = "1000000";

/// Distinct partners of the memory measurement.
const PARTNERS: &str = "100000";

/// The target of the issue that asked for this measurement: throughput with
/// a budget that never refuses, at least this share of limits off.
const MIN_RATIO: f64 = 0.97;

fn flag(side: Side) -> &'static str {
    match side {
        Side::Off => "0",
        Side::On => NEVER_REFUSES,
    }
}

fn name(side: Side) -> &'static str {
    match side {
        Side::Off => "OURS_LIMITS_OFF",
        Side::On => "OURS_LIMITS_ON",
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
    let mut bench = Bench::prepare(plan, &["limits-memory"])?;
    let measure_memory = bench.target.join("release").join("limits-memory");
    let paired = Paired::measure("limits", plan, &mut bench, start)?;

    cargo::header(
        "memory",
        &format!("the limiter's live heap bytes for {PARTNERS} partners"),
    );
    let memory = memory(&measure_memory, &mut bench.log)?;
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

    let text = render(plan, &bench, &paired, &memory);
    bench.publish(plan, DOC, &text, &problems(&paired, &memory))
}

/// A fresh in-memory server with limits `side`, checked to answer the seed
/// request with 200, and with the budget's headers exactly when limits are on.
fn start(binary: &Path, bootstrap: &Path, side: Side, log: &mut CommandLog) -> Result<Server> {
    let server = Server::session_with(
        binary,
        bootstrap,
        server::Store::Mem,
        &[DEFAULT_RATE_LIMIT, flag(side)],
    )?;
    log.server(&server, name(side));
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
            name(side),
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

fn problems(paired: &Paired, memory: &Memory) -> Vec<String> {
    let mut out = paired.problems(MIN_RATIO);
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

fn render(plan: &Plan, bench: &Bench, paired: &Paired, memory: &Memory) -> String {
    let mut doc = bench.doc_head(plan, "Rate limits: what they cost", "limits");
    doc.push_str(&paired.section(
        plan,
        "Throughput with a budget that never refuses",
        &format!(
            "*Off*: `--default-rate-limit 0`, so the load partner is not limited and no \
             limiter is consulted. *On*: `--default-rate-limit {NEVER_REFUSES}` (burst \
             2,000,000): every request is counted by the partner's GCRA and answered with \
             `RateLimit-Policy` and `RateLimit`, and none is refused."
        ),
        MIN_RATIO,
    ));
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
    doc.push_str(&bench.doc_commands(&paired.warnings));
    doc
}
