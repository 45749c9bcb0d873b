//! The in-memory store against bare hyper: the throughput and latency tables.

use std::fmt::Write as _;

use super::format::{at, finish_table, flag, mib, note, percentiles, thousands, times};
use super::rounds::{Better, Pick, pick};
use super::{MemPoint, Report, Series};

pub(super) fn mem_by_throughput(series: &Series<MemPoint>) -> Option<Pick<'_, MemPoint>> {
    pick(
        &series.rounds,
        |point| point.ours.throughput_over(&point.baseline),
        MemPoint::valid,
        Better::Higher,
    )
}

pub(super) fn mem_by_p99(series: &Series<MemPoint>) -> Option<Pick<'_, MemPoint>> {
    pick(
        &series.rounds,
        |point| point.ours.p99_over(&point.baseline),
        MemPoint::valid,
        Better::Lower,
    )
}

pub(super) fn mem_table(out: &mut String, report: &Report) {
    out.push_str("## In-memory store vs bare hyper\n\n");
    let several = report.rounds > 1;
    let _ = writeln!(
        out,
        "### Throughput\n\n{}\n\n\
         | connections | ours req/s | bare hyper req/s | ratio | all rounds' ratios | round |\n\
         |---:|---:|---:|---:|---:|---:|",
        if several {
            "Each row is the round whose throughput ratio is the median of the rounds."
        } else {
            "One round: each row is the only paired run."
        }
    );
    let mut growth = Vec::new();
    for series in &report.mem {
        let Some(pick) = mem_by_throughput(series) else {
            continue;
        };
        let point = pick.point;
        let _ = writeln!(
            out,
            "| {} | {}{} | {}{} | {} | {} | {} |",
            series.connections,
            thousands(point.ours.requests_per_sec()),
            flag(&point.ours),
            thousands(point.baseline.requests_per_sec()),
            flag(&point.baseline),
            times(pick.ratio),
            pick.spread(),
            pick.which(),
        );
        growth.push(format!(
            "{} sessions and VmRSS {:.0} MiB after the {}-connection point",
            thousands(point.store.sessions as f64),
            mib(point.store.memory.rss_kib),
            series.connections
        ));
    }
    let _ = writeln!(
        out,
        "\n### Latency\n\n{}\n\n\
         | connections | ours p50 / p99 / p99.9 (ms) | bare hyper p50 / p99 / p99.9 (ms) \
         | p99 ratio | all rounds' p99 ratios | round |\n\
         |---:|---:|---:|---:|---:|---:|",
        if several {
            "Each row is the round whose p99 ratio (ours over bare hyper's) is the median of the \
             rounds, which may be another round than the throughput row's."
        } else {
            "One round: each row is the only paired run."
        }
    );
    let mut notes = Vec::new();
    for series in &report.mem {
        let Some(pick) = mem_by_p99(series) else {
            continue;
        };
        let point = pick.point;
        let _ = writeln!(
            out,
            "| {} | {}{} | {}{} | {} | {} | {} |",
            series.connections,
            percentiles(&point.ours),
            flag(&point.ours),
            percentiles(&point.baseline),
            flag(&point.baseline),
            times(pick.ratio),
            pick.spread(),
            pick.which(),
        );
        for (i, point) in series.rounds.iter().enumerate() {
            let at = at(series.connections, i, report.rounds);
            note(&mut notes, "ours", &at, &point.ours);
            note(&mut notes, "bare hyper", &at, &point.baseline);
        }
    }
    finish_table(out, &notes);
    let _ = writeln!(
        out,
        "Each of our points ran on a fresh in-memory server, since its store keeps every \
         session and the points would otherwise depend on the ones before them. Within a point \
         the store still grows by every request (warm-up included){}: {}.\n",
        if several {
            "; in the throughput rows' rounds"
        } else {
            ""
        },
        growth.join("; ")
    );
}
