//! The targets of the issue, each with what the run measured and its verdict.

use std::fmt::Write as _;

use super::Report;
use super::format::{mib, ms, thousands, times};
use super::idle::{idle_by_p99, idle_by_throughput};
use super::mem::{mem_by_p99, mem_by_throughput};
use super::pg::pg_by_throughput;
use crate::load::TARGET_CONNECTIONS;

/// In-memory throughput at 64 connections, as a share of bare hyper's.
pub(super) const MEM_THROUGHPUT_TARGET: f64 = 0.6;

/// In-memory p99 at 64 connections, as a multiple of bare hyper's.
pub(super) const MEM_P99_TARGET: f64 = 1.5;

/// PostgreSQL-store throughput at 64 connections over pgbench's one-row insert TPS.
pub(super) const PG_TARGET: f64 = 0.8;

pub(super) const PG_STRETCH: f64 = 2.0;

/// What the idle connections may cost, in MiB.
pub(super) const IDLE_RSS_TARGET_MIB: f64 = 200.0;

/// The idle count the memory target is stated for.
pub(super) const IDLE_TARGET_CONNECTIONS: u32 = 10_000;

/// "Do not slow active clients": with the idle connections open, at least this share
/// of the throughput and at most this multiple of the p99 without them.
pub(super) const IDLE_THROUGHPUT_FLOOR: f64 = 0.9;

pub(super) const IDLE_P99_CEILING: f64 = 1.5;

/// A target's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Met,
    /// Met, and also this much more.
    MetStretch,
    /// Met, but not the stretch goal.
    MetNotStretch,
    NotMet,
    /// A measurement it depends on does not count (errors, failed transactions).
    Invalid,
    NotMeasured,
}

impl Verdict {
    pub(super) fn text(&self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::MetStretch => "met, stretch met too",
            Self::MetNotStretch => "met (stretch not met)",
            Self::NotMet => "**not met**",
            Self::Invalid => "⚠ invalid (errors in the run)",
            Self::NotMeasured => "not measured in this run",
        }
    }
}

/// A target, what was measured for it, and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
}

/// The targets of the issue, each with what this run measured and its verdict.
pub fn targets(report: &Report) -> Vec<TargetRow> {
    let mut rows = Vec::new();
    let at64 = report
        .mem
        .iter()
        .find(|series| series.connections == TARGET_CONNECTIONS);
    let throughput_target =
        format!("in-memory throughput at 64 connections ≥ {MEM_THROUGHPUT_TARGET}× bare hyper");
    rows.push(match at64.and_then(mem_by_throughput) {
        None => not_measured(&throughput_target),
        Some(pick) => TargetRow {
            target: throughput_target,
            measured: format!(
                "{} ({} vs {} req/s); {}",
                times(pick.ratio),
                thousands(pick.point.ours.requests_per_sec()),
                thousands(pick.point.baseline.requests_per_sec()),
                pick.median_of()
            ),
            verdict: judge(pick.all_valid(), pick.ratio >= MEM_THROUGHPUT_TARGET),
        },
    });
    let p99_target =
        format!("in-memory p99 at 64 connections ≤ {MEM_P99_TARGET}× bare hyper's p99");
    rows.push(match at64.and_then(mem_by_p99) {
        None => not_measured(&p99_target),
        Some(pick) => TargetRow {
            target: p99_target,
            measured: format!(
                "{} ({} vs {} ms); {}",
                times(pick.ratio),
                ms(pick.point.ours.p99_us),
                ms(pick.point.baseline.p99_us),
                pick.median_of()
            ),
            verdict: judge(pick.all_valid(), pick.ratio <= MEM_P99_TARGET),
        },
    });
    let pg_target = format!(
        "PostgreSQL store throughput at 64 connections ≥ {PG_TARGET}× pgbench one-row insert TPS \
         (stretch {PG_STRETCH}×)"
    );
    let pg64 = report.pg.as_ref().and_then(|pg| {
        pg.points
            .iter()
            .find(|series| series.connections == TARGET_CONNECTIONS)
    });
    rows.push(match pg64.and_then(pg_by_throughput) {
        None => not_measured(&pg_target),
        Some(pick) => TargetRow {
            target: pg_target,
            measured: format!(
                "{} ({} req/s vs {} TPS at {} clients); {}",
                times(pick.ratio),
                thousands(pick.point.ours.requests_per_sec()),
                thousands(pick.point.pgbench.result.tps),
                pick.point.pgbench.clients,
                pick.median_of()
            ),
            verdict: if !pick.all_valid() {
                Verdict::Invalid
            } else if pick.ratio >= PG_STRETCH {
                Verdict::MetStretch
            } else if pick.ratio >= PG_TARGET {
                Verdict::MetNotStretch
            } else {
                Verdict::NotMet
            },
        },
    });
    let idle_rss = format!(
        "{} idle keep-alive connections cost under {IDLE_RSS_TARGET_MIB:.0} MiB RSS",
        thousands(f64::from(IDLE_TARGET_CONNECTIONS))
    );
    let idle_speed = format!(
        "idle connections do not slow active clients ({} active: ≥ {IDLE_THROUGHPUT_FLOOR}× the \
         throughput and ≤ {IDLE_P99_CEILING}× the p99 without them)",
        TARGET_CONNECTIONS
    );
    match &report.idle {
        None => {
            rows.push(not_measured(&idle_rss));
            rows.push(not_measured(&idle_speed));
        }
        Some(idle) => {
            let cost = mib(idle.at_many.rss_kib.saturating_sub(idle.at_start.rss_kib));
            let scaled = idle.many != IDLE_TARGET_CONNECTIONS;
            rows.push(TargetRow {
                target: idle_rss,
                measured: format!(
                    "{cost:.1} MiB for {} (VmRSS {:.1} → {:.1} MiB)",
                    thousands(f64::from(idle.many)),
                    mib(idle.at_start.rss_kib),
                    mib(idle.at_many.rss_kib)
                ),
                verdict: if scaled {
                    Verdict::NotMeasured
                } else {
                    judge(true, cost < IDLE_RSS_TARGET_MIB)
                },
            });
            match (idle_by_throughput(idle), idle_by_p99(idle)) {
                (Some(by_throughput), Some(by_p99)) => {
                    let throughput = by_throughput.ratio;
                    let p99 = by_p99.ratio;
                    rows.push(TargetRow {
                        target: idle_speed,
                        measured: format!(
                            "throughput {}, p99 {} with {} idle (medians of {} paired rounds; \
                             throughput / p99 per round: {})",
                            times(throughput),
                            times(p99),
                            thousands(f64::from(idle.many)),
                            idle.pairs.len(),
                            idle.spread()
                        ),
                        verdict: judge(
                            by_throughput.all_valid(),
                            throughput >= IDLE_THROUGHPUT_FLOOR && p99 <= IDLE_P99_CEILING,
                        ),
                    });
                }
                _ => rows.push(not_measured(&idle_speed)),
            }
        }
    }
    rows
}

pub(super) fn targets_table(out: &mut String, report: &Report) {
    out.push_str("## Targets\n\n");
    if report.rounds > 1 {
        let _ = writeln!(
            out,
            "The in-memory and PostgreSQL figures are the median of {} paired rounds: the \
             median round's ratio and its numbers, then every round's ratio, lowest first, the \
             median in bold. The idle-connection memory is the first round's; the idle \
             throughput and p99 ratios are medians of the same number of paired rounds.\n",
            report.rounds
        );
    }
    out.push_str("| target | measured | result |\n|---|---|---|\n");
    for row in targets(report) {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.target,
            row.measured,
            row.verdict.text()
        );
    }
    out.push('\n');
}

pub(super) fn not_measured(target: &str) -> TargetRow {
    TargetRow {
        target: target.to_owned(),
        measured: "–".to_owned(),
        verdict: Verdict::NotMeasured,
    }
}

pub(super) fn judge(valid: bool, met: bool) -> Verdict {
    match (valid, met) {
        (false, _) => Verdict::Invalid,
        (true, true) => Verdict::Met,
        (true, false) => Verdict::NotMet,
    }
}
