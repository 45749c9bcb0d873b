//! Idle keep-alive connections: the server's memory as they open, and active load
//! with and without them.

use std::fmt::Write as _;

use super::format::{flag, mib, percentiles, thousands, times};
use super::rounds::{Better, Pick, pick};
use super::{IdlePair, IdleReport, Report};

impl IdleReport {
    /// Every round's (throughput, p99) ratio, in round order.
    pub(super) fn spread(&self) -> String {
        self.pairs
            .iter()
            .map(|pair| {
                format!(
                    "{} / {}",
                    times(pair.with.throughput_over(&pair.without)),
                    times(pair.with.p99_over(&pair.without))
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The idle round with the median throughput ratio (with over without).
pub(super) fn idle_by_throughput(idle: &IdleReport) -> Option<Pick<'_, IdlePair>> {
    pick(
        &idle.pairs,
        |pair| pair.with.throughput_over(&pair.without),
        IdlePair::valid,
        Better::Higher,
    )
}

/// The idle round with the median p99 ratio (with over without); it may be another
/// round than the throughput one.
pub(super) fn idle_by_p99(idle: &IdleReport) -> Option<Pick<'_, IdlePair>> {
    pick(
        &idle.pairs,
        |pair| pair.with.p99_over(&pair.without),
        IdlePair::valid,
        Better::Lower,
    )
}

pub(super) fn idle_tables(out: &mut String, report: &Report) {
    out.push_str("## Idle connections and memory\n\n");
    let Some(idle) = &report.idle else {
        out.push_str("Not measured in this run (`--no-idle`).\n\n");
        return;
    };
    let status = idle
        .idle_status
        .map(|s| format!(" (it answers {s})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "A fresh in-memory server, so its memory is not the sweep's sessions. xtask opens \
         keep-alive connections one after another, sends one \
         `GET /widget/transactions/<nil uuid>` on each{status} and reads the answer, so each \
         connection has really been served, then holds them idle (opening {} took {:.1} s; 100 of \
         them were asked again afterwards and all answered). Memory is `VmRSS` (resident now) and \
         `VmHWM` (peak resident) from `/proc/<pid>/status`.\n\n\
         | server state | VmRSS (MiB) | VmHWM (MiB) |\n|---|---:|---:|",
        thousands(f64::from(idle.many)),
        idle.open_secs
    );
    let rows = [
        ("started, one request served".to_owned(), idle.at_start),
        (
            format!("{} idle connections", thousands(f64::from(idle.few))),
            idle.at_few,
        ),
        (
            format!("{} idle connections", thousands(f64::from(idle.many))),
            idle.at_many,
        ),
        (
            format!(
                "{} idle connections, after the active run below",
                thousands(f64::from(idle.many))
            ),
            idle.after_load,
        ),
    ];
    for (state, memory) in rows {
        let _ = writeln!(
            out,
            "| {state} | {:.1} | {:.1} |",
            mib(memory.rss_kib),
            mib(memory.hwm_kib)
        );
    }
    let per_connection = idle.at_many.rss_kib.saturating_sub(idle.at_start.rss_kib) as f64
        / f64::from(idle.many.max(1));
    let _ = writeln!(
        out,
        "\nEach idle connection costs about {per_connection:.1} KiB of resident memory (first \
         round).\n\n\
         wrk at {} connections, on a fresh server without idle connections and then on a fresh \
         one holding {} idle connections (both stores start empty), in {} paired rounds; the \
         target takes the median round of each ratio:\n\n\
         | round | without idle: req/s, p50 / p99 / p99.9 (ms) | with idle: req/s, p50 / p99 / \
         p99.9 (ms) | throughput with / without | p99 with / without |\n\
         |---:|---:|---:|---:|---:|",
        idle.active,
        thousands(f64::from(idle.many)),
        idle.pairs.len()
    );
    for (i, pair) in idle.pairs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {}{}, {} | {}{}, {} | {} | {} |",
            i + 1,
            thousands(pair.without.requests_per_sec()),
            flag(&pair.without),
            percentiles(&pair.without),
            thousands(pair.with.requests_per_sec()),
            flag(&pair.with),
            percentiles(&pair.with),
            times(pair.with.throughput_over(&pair.without)),
            times(pair.with.p99_over(&pair.without))
        );
    }
    out.push('\n');
}
