//! The PostgreSQL store against pgbench: its table, pgbench's failed transactions,
//! and what `--pgbench-only` prints.

use std::fmt::Write as _;

use super::format::{at, finish_table, flag, note, percentiles, round_suffix, thousands, times};
use super::rounds::{Better, Pick, pick};
use super::{PgPoint, Report, Series};
use crate::load::pgbench::{PgbenchPoint, PgbenchResult};

pub(super) fn pg_by_throughput(series: &Series<PgPoint>) -> Option<Pick<'_, PgPoint>> {
    pick(
        &series.rounds,
        PgPoint::throughput_ratio,
        PgPoint::valid,
        Better::Higher,
    )
}

pub(super) fn pg_table(out: &mut String, report: &Report) {
    out.push_str("## PostgreSQL store vs pgbench\n\n");
    let Some(pg) = &report.pg else {
        out.push_str(
            "Not measured in this run: `cargo xtask load --store postgres` measures it, together \
             with the in-memory store, so both tables come from one run.\n\n",
        );
        return;
    };
    let _ = writeln!(
        out,
        "pgbench runs `INSERT INTO pgbench_one_row (payload) VALUES ('<~200 bytes>')`, one row per \
         transaction, in the run's own database, with as many clients as our point has \
         connections (fewer when `max_connections` leaves no room: the clients column says). \
         Our PostgreSQL-backed server is one server for the whole run, so its tables grow from \
         round to round. {}\n\n\
         | connections | ours req/s | ours p50 / p99 / p99.9 (ms) | pgbench clients | pgbench TPS \
         | pgbench avg latency (ms) | ours / pgbench | all rounds' ours / pgbench \
         | ours / bare hyper | round |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        if report.rounds > 1 {
            "Each row is the round whose ours / pgbench ratio is the median of the rounds; \
             ours / bare hyper divides by the bare hyper point of that same round and \
             concurrency."
        } else {
            "One round: each row is the only paired run; ours / bare hyper divides by the bare \
             hyper point at the same concurrency."
        }
    );
    let mut notes = Vec::new();
    for series in &pg.points {
        let Some(pick) = pg_by_throughput(series) else {
            continue;
        };
        let point = pick.point;
        let hyper = report
            .mem
            .iter()
            .find(|mem| mem.connections == series.connections)
            .and_then(|mem| mem.rounds.get(pick.round))
            .map(|mem| times(point.ours.throughput_over(&mem.baseline)))
            .unwrap_or_else(|| "–".to_owned());
        let bench: &PgbenchResult = &point.pgbench.result;
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {}{} | {:.2} | {} | {} | {} | {} |",
            series.connections,
            thousands(point.ours.requests_per_sec()),
            flag(&point.ours),
            percentiles(&point.ours),
            point.pgbench.clients,
            thousands(bench.tps),
            if bench.failed > 0 { " ⚠" } else { "" },
            bench.latency_avg_ms,
            times(pick.ratio),
            pick.spread(),
            hyper,
            pick.which(),
        );
        for (i, point) in series.rounds.iter().enumerate() {
            let at = at(series.connections, i, report.rounds);
            note(&mut notes, "ours (postgres)", &at, &point.ours);
            if let Some(failure) = pgbench_failure(&point.pgbench, i, report.rounds) {
                notes.push(format!("⚠ {failure}"));
            }
        }
    }
    finish_table(out, &notes);
}

/// What `--pgbench-only` prints.
pub fn render_pgbench_only(
    server_version: &str,
    points: &[(u32, PgbenchPoint)],
    commands: &[String],
) -> String {
    let mut out = format!(
        "## pgbench one-row insert (PostgreSQL {server_version})\n\n\
         | connections | pgbench clients | TPS | avg latency (ms) | failed |\n|---:|---:|---:|---:|---:|\n"
    );
    for (connections, point) in points {
        let _ = writeln!(
            out,
            "| {connections} | {} | {} | {:.2} | {} |",
            point.clients,
            thousands(point.result.tps),
            point.result.latency_avg_ms,
            point.result.failed
        );
    }
    out.push_str("\n```sh\n");
    for line in commands {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n");
    out
}

/// `pgbench at 64 clients, round 2: 12 failed transactions` when any failed.
pub(super) fn pgbench_failure(point: &PgbenchPoint, round: usize, rounds: u32) -> Option<String> {
    (point.result.failed > 0).then(|| {
        format!(
            "pgbench at {} clients{}: {} failed transactions",
            point.clients,
            round_suffix(round, rounds),
            point.result.failed
        )
    })
}
