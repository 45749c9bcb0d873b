//! The results as Markdown: the tables printed at the end of a run and written to
//! `docs/performance.md` between the generated-block markers, the targets with their
//! verdicts, and the list of measurements that do not count.
//!
//! Everything here is a pure function of the measured values, so the wording and the
//! verdicts are unit-tested without running anything.
//!
//! This module holds what was measured and puts the sections together; each child
//! writes one part: `method` (how the run was made), `mem`, `pg` and `idle` (their
//! tables), `targets` (the verdicts), `splice` (the block in `docs/performance.md`),
//! with `rounds` (which round a row reports) and `format` (numbers) shared by all.

mod format;
mod idle;
mod mem;
mod method;
mod pg;
mod rounds;
mod splice;
mod targets;
#[cfg(test)]
mod tests;

use crate::load::idle::Memory;
use crate::load::machine::Machine;
use crate::load::pgbench::PgbenchPoint;
use crate::load::wrk::WrkResult;
use format::{at, ratio, round_suffix, valid};
use idle::idle_tables;
use mem::mem_table;
use method::{commands, intro, machine};
use pg::{pg_table, pgbench_failure};
use targets::targets_table;

pub use format::thousands;
pub use pg::render_pgbench_only;
pub use splice::splice;

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub threads: u32,
    /// How many times the sweep of paired points ran (`--rounds`).
    pub rounds: u32,
    /// Whether each request had its own partner_user_id (else the seed's one user).
    pub distinct_users: bool,
    pub invocation: String,
    /// Size of the `POST /widget/session` answer per server, as checked before the load.
    pub response_bytes: Vec<(String, usize)>,
    pub mem: Vec<Series<MemPoint>>,
    pub pg: Option<PgReport>,
    pub idle: Option<IdleReport>,
    pub commands: Vec<String>,
    pub server_warnings: Vec<String>,
    pub elapsed_secs: u64,
}

/// How much an in-memory server held after its point: its store keeps every session.
#[derive(Debug, Clone, Copy)]
pub struct StoreGrowth {
    /// Requests sent to it, warm-ups included: about the sessions it created.
    pub sessions: u64,
    pub memory: Memory,
}

/// Every round's paired run at one concurrency, in the order the rounds ran.
#[derive(Debug, Clone)]
pub struct Series<T> {
    pub connections: u32,
    pub rounds: Vec<T>,
}

impl<T> Series<T> {
    /// No rounds yet.
    pub fn new(connections: u32) -> Self {
        Self {
            connections,
            rounds: Vec::new(),
        }
    }
}

/// One paired run: bare hyper, then our in-memory server, back to back.
#[derive(Debug, Clone, Copy)]
pub struct MemPoint {
    pub ours: WrkResult,
    pub baseline: WrkResult,
    /// Our fresh server at the end of the point.
    pub store: StoreGrowth,
}

impl MemPoint {
    fn valid(&self) -> bool {
        valid(&[&self.ours, &self.baseline])
    }
}

/// One paired run: pgbench, then our PostgreSQL-backed server, back to back.
#[derive(Debug, Clone, Copy)]
pub struct PgPoint {
    pub ours: WrkResult,
    pub pgbench: PgbenchPoint,
}

impl PgPoint {
    /// Our requests per second over pgbench's transactions per second.
    pub fn throughput_ratio(&self) -> f64 {
        ratio(self.ours.requests_per_sec(), self.pgbench.result.tps)
    }

    fn valid(&self) -> bool {
        valid(&[&self.ours]) && self.pgbench.result.failed == 0
    }
}

#[derive(Debug)]
pub struct PgReport {
    pub server_version: String,
    pub pgbench_version: String,
    /// Where the database came from, password-free.
    pub source: String,
    pub points: Vec<Series<PgPoint>>,
}

/// The idle-connection test on fresh in-memory servers.
#[derive(Debug, Clone)]
pub struct IdleReport {
    pub few: u32,
    pub many: u32,
    pub at_start: Memory,
    pub at_few: Memory,
    pub at_many: Memory,
    pub after_load: Memory,
    pub open_secs: f64,
    pub active: u32,
    /// One fresh pair of servers per round: without, then with the idle connections.
    pub pairs: Vec<IdlePair>,
    pub idle_status: Option<u16>,
}

/// One idle round: the same active load on a server without idle connections and on
/// one holding them.
#[derive(Debug, Clone, Copy)]
pub struct IdlePair {
    pub without: WrkResult,
    pub with: WrkResult,
}

impl IdlePair {
    fn valid(&self) -> bool {
        valid(&[&self.without, &self.with])
    }
}

/// The generated Markdown, without the markers.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    intro(&mut out, report);
    machine(&mut out, report);
    mem_table(&mut out, report);
    pg_table(&mut out, report);
    idle_tables(&mut out, report);
    targets_table(&mut out, report);
    commands(&mut out, report);
    out
}

/// The measurements that do not count, one line each; empty when all do.
pub fn problems(report: &Report) -> Vec<String> {
    let mut runs: Vec<(String, &WrkResult)> = Vec::new();
    for series in &report.mem {
        for (i, point) in series.rounds.iter().enumerate() {
            let at = at(series.connections, i, report.rounds);
            runs.push((format!("ours (mem) at {at}"), &point.ours));
            runs.push((format!("bare hyper at {at}"), &point.baseline));
        }
    }
    let mut failures = Vec::new();
    if let Some(pg) = &report.pg {
        for series in &pg.points {
            for (i, point) in series.rounds.iter().enumerate() {
                let at = at(series.connections, i, report.rounds);
                runs.push((format!("ours (postgres) at {at}"), &point.ours));
                failures.extend(pgbench_failure(&point.pgbench, i, report.rounds));
            }
        }
    }
    if let Some(idle) = &report.idle {
        for (i, pair) in idle.pairs.iter().enumerate() {
            runs.push((
                format!(
                    "ours (mem) at {} connections without idle ones{}",
                    idle.active,
                    round_suffix(i, report.rounds)
                ),
                &pair.without,
            ));
            runs.push((
                format!(
                    "ours (mem) at {} connections with {} idle{}",
                    idle.active,
                    idle.many,
                    round_suffix(i, report.rounds)
                ),
                &pair.with,
            ));
        }
    }
    let mut found: Vec<String> = runs
        .into_iter()
        .filter_map(|(what, result)| result.warning().map(|w| format!("{what}: {w}")))
        .collect();
    found.extend(failures);
    found
}
