//! `cargo xtask load --idempotency`: what an `Idempotency-Key` costs session
//! creation on PostgreSQL.
//!
//! One server on a fresh database; rounds of two paired points at 64
//! connections, alternating which goes first: the seed request with a unique
//! `Idempotency-Key` per request, and the same request with the same unique
//! value in a header the server ignores (so wrk does the same work for both).
//! Every key is new, so every keyed request creates a session and writes its
//! answer: the look-up, the larger statement and the extra row are all paid.
//! Results go to docs/performance-idempotency.md.

use std::time::Instant;

use super::pgbench::LoadDatabase;
use super::server::{self, Server};
use super::wrk::{self, Bodies, Wrk, WrkResult};
use super::{Binaries, CommandLog, Plan, TARGET_CONNECTIONS, WARMUP_SECS, files, machine};
use crate::cargo;
use crate::error::{Error, Result};
use crate::{interrupt, process};

const DOC: &str = "performance-idempotency.md";

/// Why the key lives on its transaction: what this measurement gave for the
/// designs tried before (same command, same machine, 3 to 5 rounds).
const EARLIER_DESIGNS: &str = "\
## Designs measured before this one

The same measurement, on earlier designs of the store (medians of 3 to 5 rounds):

| design | keyed / plain |
|---|---|
| answers in a table of their own, looked up before every create | 0.47× |
| the same, looked up only when a rule refuses or the key is taken | 0.68× |
| the same with an empty answer (what a slimmer row could gain) | 0.80× |
| the key and fingerprint as columns of the transaction (this one) | see above |

A second row per session (heap tuple, index entry, WAL record, speculative
insertion) cost about as much as the session's own row; its size did not
matter much. On the transaction's row a key costs two partial-index entries.

";

/// The issue's target: keyed creation keeps at least this share of plain.
const MIN_RATIO: f64 = 0.85;

/// Which request a point sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Plain,
    Keyed,
}

impl Side {
    fn header(self) -> &'static str {
        match self {
            Side::Plain => "X-Load-Tag",
            Side::Keyed => "Idempotency-Key",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Plain => "without a key",
            Side::Keyed => "with a unique key",
        }
    }
}

struct Round {
    plain: WrkResult,
    keyed: WrkResult,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.keyed.requests_per_sec() / self.plain.requests_per_sec()
    }
}

pub(super) fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let wrk = Wrk::find_or_install()?;
    let build = super::build_command();
    let build_shown = format!("cargo {}", process::display_args(&build));
    cargo::step("build", build)?;
    let bins = Binaries::in_target(&cargo::target_dir(&root)?)?;

    let work = files::WorkDir::create()?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let bootstrap = work.write("bootstrap.toml", files::BOOTSTRAP)?;
    let (admin_url, _provided, source) = super::admin_database(plan)?;
    let database = LoadDatabase::create(&admin_url, "_idempotency")?;
    log.database(database.name());
    let server = Server::session(
        &bins.session_server,
        &bootstrap,
        server::Store::Postgres(database.url()),
    )?;
    log.server(&server, "OURS_PG");
    server.verify_session_post()?;

    cargo::header(
        "idempotency",
        &format!("{} rounds at {TARGET_CONNECTIONS} connections", plan.rounds),
    );
    let mut tags = 0u32;
    let mut point = |side: Side, log: &mut CommandLog| -> Result<WrkResult> {
        interrupt::check()?;
        // A tag per wrk run, so no run ever repeats a key (a repeat would be
        // a cheap replay, not a creation).
        let mut script = |duration_secs| -> Result<wrk::Point> {
            tags += 1;
            let text = wrk::post_script(Bodies::SeedKeyed {
                header: side.header(),
                tag: tags,
            });
            Ok(wrk::Point {
                url: format!("http://{}/widget/session", server.public()),
                connections: TARGET_CONNECTIONS,
                threads: plan.threads,
                duration_secs,
                script: work.write(&format!("post-{tags}.lua"), &text)?,
            })
        };
        let warm = wrk.run(&script(WARMUP_SECS)?)?;
        let (result, shown) = wrk.measure(&script(plan.duration_secs)?)?;
        server.count_requests(warm.requests + result.requests);
        log.push(&shown);
        server.check_running()?;
        println!(
            "    {:<18} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms{}",
            side.name(),
            result.requests_per_sec(),
            result.p50_us / 1000.0,
            result.p99_us / 1000.0,
            result
                .warning()
                .map(|w| format!("  ⚠ {w}"))
                .unwrap_or_default()
        );
        if let Some(warning) = result.warning() {
            return Err(Error::failed(format!(
                "{} run failed: {warning}",
                side.name()
            )));
        }
        Ok(result)
    };
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        println!("  round {}", round + 1);
        let (plain, keyed) = if round % 2 == 0 {
            let plain = point(Side::Plain, &mut log)?;
            (plain, point(Side::Keyed, &mut log)?)
        } else {
            let keyed = point(Side::Keyed, &mut log)?;
            (point(Side::Plain, &mut log)?, keyed)
        };
        rounds.push(Round { plain, keyed });
    }
    let warnings = server.warnings();
    drop(server);

    let context = format!(
        "- Machine: {}\n- Database: PostgreSQL {} on {source}\n- Command: `{}` ({} s in all)\n",
        machine::describe(&format!("wrk {}", wrk.version())).summary(),
        database.server_version(),
        plan.invocation(),
        started.elapsed().as_secs()
    );
    let median = median_ratio(&rounds);
    let text = render(&rounds, median, &context, &log.lines, &warnings);
    println!("\n{text}");
    if plan.write {
        let path = root.join("docs").join(DOC);
        std::fs::write(&path, &text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("==> wrote docs/{DOC}");
    }
    if median < MIN_RATIO {
        return Err(Error::failed(format!(
            "target missed: keyed creation {median:.2}× plain (at least {MIN_RATIO})"
        )));
    }
    Ok(())
}

fn median_ratio(rounds: &[Round]) -> f64 {
    let mut ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(0.0)
}

fn render(
    rounds: &[Round],
    median: f64,
    context: &str,
    commands: &[String],
    warnings: &[String],
) -> String {
    let mut doc = String::from(
        "# Idempotency-Key: what it costs session creation on PostgreSQL\n\n\
         Written by `cargo xtask load --idempotency` (xtask/src/load/idempotency.rs); run it \
         again rather than editing.\n\n",
    );
    doc.push_str(context);
    doc.push_str(&format!(
        "\nOne server on a fresh database, {TARGET_CONNECTIONS} connections. Each round \
         measures the seed `POST /widget/session` with a unique `Idempotency-Key` per request \
         (every request creates a session and stores its answer) and the same request with \
         the same unique value in a header the server ignores, in alternating order. Each \
         point follows a {WARMUP_SECS} s warm-up with keys of its own.\n\n\
         | round | without a key, req/s | p99 ms | with a unique key, req/s | p99 ms | ratio |\n\
         |---|---|---|---|---|---|\n"
    ));
    for (i, round) in rounds.iter().enumerate() {
        doc.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2}× |\n",
            i + 1,
            round.plain.requests_per_sec(),
            round.plain.p99_us / 1000.0,
            round.keyed.requests_per_sec(),
            round.keyed.p99_us / 1000.0,
            round.ratio()
        ));
    }
    doc.push_str(&format!(
        "\nMedian ratio: **{median:.2}×** the throughput without a key (target: at least \
         {MIN_RATIO}×).\n\n"
    ));
    doc.push_str(EARLIER_DESIGNS);
    if !warnings.is_empty() {
        doc.push_str("Server warnings:\n\n");
        for warning in warnings {
            doc.push_str(&format!("- {warning}\n"));
        }
        doc.push('\n');
    }
    doc.push_str("## Commands\n\n```text\n");
    for line in commands {
        doc.push_str(line);
        doc.push('\n');
    }
    doc.push_str("```\n");
    doc
}
