//! `cargo xtask load --metrics`: what recording Prometheus metrics costs,
//! written to docs/performance-metrics.md.
//!
//! `POST /widget/session` on the in-memory store with recording off
//! (`--metrics false`) against on (`--metrics true`, the default), both with
//! the load partner unlimited, each point on a fresh server, the two sides
//! interleaved point by point and their order swapped every round, as
//! `--limits` does.

use std::path::Path;

use super::server::{self, Server};
use super::{Bench, CommandLog, Paired, Plan, Side};
use crate::error::Result;

const DOC: &str = "performance-metrics.md";

/// The target of the issue that asked for this measurement: throughput with
/// recording on, at least this share of recording off.
const MIN_RATIO: f64 = 0.97;

pub(super) fn run(plan: &Plan) -> Result<()> {
    let mut bench = Bench::prepare(plan, &[])?;
    let paired = Paired::measure("metrics", plan, &mut bench, start)?;
    let text = render(plan, &bench, &paired);
    bench.publish(plan, DOC, &text, &paired.problems(MIN_RATIO))
}

/// A fresh in-memory server with recording `side`, checked to answer the seed
/// request with 200.
fn start(binary: &Path, bootstrap: &Path, side: Side, log: &mut CommandLog) -> Result<Server> {
    let (flag, name) = match side {
        Side::Off => ("false", "OURS_METRICS_OFF"),
        Side::On => ("true", "OURS_METRICS_ON"),
    };
    let server = Server::session_with(binary, bootstrap, server::Store::Mem, &["--metrics", flag])?;
    log.server(&server, name);
    server.verify_session_post()?;
    Ok(server)
}

fn render(plan: &Plan, bench: &Bench, paired: &Paired) -> String {
    let mut doc = bench.doc_head(plan, "Metrics: what recording costs", "metrics");
    doc.push_str(&paired.section(
        plan,
        "Session-create throughput with recording on",
        "Both sides run with `--default-rate-limit 0`, so the load partner is not \
         limited. *Off*: `--metrics false`: nothing is recorded and `GET /metrics` on the \
         admin listener answers 404. *On*: `--metrics true`, the default: every answer \
         observes the request-duration histogram of its route template, method and \
         status, and every session created counts in `session_created_total` under its \
         partner. Nothing scrapes `GET /metrics` during the run: the figures are the cost \
         of recording, not of encoding.",
        MIN_RATIO,
    ));
    // A median round below the target, with the spread of its rounds: on a
    // noisy machine that spread says whether the miss is a cost or noise.
    let below: Vec<String> = paired
        .medians()
        .filter(|(_, _, pair)| pair.ratio() < MIN_RATIO)
        .map(|(connections, rounds, pair)| {
            let ratios = rounds.iter().map(super::Pair::ratio);
            let low = ratios.clone().fold(f64::INFINITY, f64::min);
            let high = ratios.fold(f64::NEG_INFINITY, f64::max);
            format!(
                "{connections} connections ({:.3}×; its rounds from {low:.3} to {high:.3})",
                pair.ratio()
            )
        })
        .collect();
    if below.is_empty() {
        doc.push_str("\nThe target is met at every concurrency.\n");
    } else {
        doc.push_str(&format!("\nBelow the target: {}.\n", below.join(", ")));
    }
    doc.push_str(&bench.doc_commands(&paired.warnings));
    doc
}
