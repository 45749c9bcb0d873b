//! How the run was made: what is measured and how, the machine, and the exact
//! commands.

use std::fmt::Write as _;

use super::Report;
use super::format::minutes;

pub(super) fn intro(out: &mut String, report: &Report) {
    let users = if report.distinct_users {
        "the seed request of SPEC.md with a `partner_user_id` of its own per request \
         (`--distinct-users`), as many different end users would send it"
    } else {
        "the seed request of SPEC.md, every time: one end user for the whole run, so every \
         session write also touches that one user's row (a hot-row worst case; \
         `--distinct-users` gives each request its own user)"
    };
    let rounds = match report.rounds {
        1 => "This run did one round (`--rounds 1`), so every row below is a single paired run \
              and carries that noise in full."
            .to_owned(),
        n => format!(
            "This run did {n} rounds. For each concurrency a row reports the round whose ratio \
             is the median of the {n} rounds, so every number in a row comes from one real \
             paired run, never from numbers averaged across runs; next to it, all {n} rounds' \
             ratios, lowest first with the row's in bold, show the spread{even}. Throughput and \
             latency are picked separately, each round by its own ratio (ours/baseline req/s; \
             ours/baseline p99), because the round with the median throughput need not be the \
             one with the median p99, so the in-memory store has a throughput table and a \
             latency table whose rows may come from different rounds (the round column says \
             which). The targets are judged on these medians.",
            even = if n % 2 == 0 {
                " (with an even number of rounds there is no middle one: the row is the worse \
                 of the two middle rounds)"
            } else {
                ""
            }
        ),
    };
    let _ = write!(
        out,
        "## What is measured\n\n\
         `cargo xtask load` drives `POST /widget/session` with a valid client token and {users}, \
         with wrk over loopback. In the same run it sends the same requests to \
         `baseline-server`, a bare hyper 1.x server that reads the body and answers a fixed JSON \
         of the same size with no application work: the HTTP ceiling of this machine. With \
         `--store postgres` it also measures the PostgreSQL store against pgbench inserting one \
         row per transaction, the database ceiling.\n\n\
         Figures are ratios to those baselines because this VM drifts by 10-20 % (at times far \
         more) between runs: only numbers from the same run compare. Even one paired point (a \
         baseline run, then ours) is noisy: the same binary measured twice back to back can \
         differ by more than 30 %, and the ratio of a single pair swings by about ±10 % from run to \
         run. So the sweep runs in rounds: each round measures, at every concurrency in turn, \
         the baseline and then ours back to back (bare hyper, then ours on a fresh in-memory \
         server; with `--store postgres` also pgbench, then ours on the PostgreSQL store), so drift hits \
         both sides of a pair alike, and the rounds follow each other. {rounds}\n\n\
         Each point is a {warmup} s warm-up, thrown away, then {duration} s measured, with \
         {threads} wrk threads that share the machine's cores with the server (so latencies \
         include wrk's own scheduling). wrk measures closed-loop latency, which understates the \
         tail under overload.\n\n\
         Generated {date} by `{invocation}` (the whole run took {elapsed}).\n\n",
        warmup = report.warmup_secs,
        duration = report.duration_secs,
        threads = report.threads,
        date = report.machine.date,
        invocation = report.invocation,
        elapsed = minutes(report.elapsed_secs),
    );
}

pub(super) fn machine(out: &mut String, report: &Report) {
    let m = &report.machine;
    let sizes: Vec<String> = report
        .response_bytes
        .iter()
        .map(|(name, bytes)| format!("{name} {bytes} bytes"))
        .collect();
    let _ = writeln!(out, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| CPU | {} × {}{} |",
        m.cores,
        m.cpu,
        if m.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "| memory | {} |", m.memory);
    let _ = writeln!(out, "| OS, kernel | {}, Linux {} |", m.os, m.kernel);
    let _ = writeln!(
        out,
        "| Rust | {} (release profile of the workspace) |",
        m.rustc
    );
    let _ = writeln!(out, "| load generator | {} |", m.wrk);
    if let Some(pg) = &report.pg {
        let _ = writeln!(
            out,
            "| PostgreSQL | {} on {}; {} |",
            pg.server_version, pg.source, pg.pgbench_version
        );
    }
    let _ = writeln!(
        out,
        "| servers | both on a tokio multi-thread runtime with one worker per core, keep-alive, \
         TCP_NODELAY; nothing pinned |"
    );
    let _ = writeln!(out, "| response body | {} |\n", sizes.join(", "));
}

pub(super) fn commands(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "## Commands\n\n\
         To reproduce: `{}`. The exact commands it ran follow; `$BASELINE`, `$OURS_MEM`, \
         `$OURS_PG` and `$OURS_IDLE` stand for the address each server reported (a port the \
         kernel picked), `$DB` for the run's own database, and `$WORK` for the run's temporary directory with `post.lua` (the request, and a `done()` printing wrk's counters and \
         percentiles as one line), `bootstrap.toml` (one partner, `load`, selling USDT on TRC20 \
         for EUR) and, for PostgreSQL, `insert.sql`. Each wrk and pgbench line also ran for \
         {} s first as the warm-up. {}\n\n```sh",
        report.invocation,
        report.warmup_secs,
        if report.rounds > 1 {
            format!(
                "The wrk and pgbench lines of the sweep (all but the idle test's) ran once per \
                 round, {} times in all, each in-memory point on a fresh `$OURS_MEM` server; \
                 they are listed once.",
                report.rounds
            )
        } else {
            "Each in-memory point ran on a fresh `$OURS_MEM` server.".to_owned()
        }
    );
    for line in &report.commands {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n");
    if !report.server_warnings.is_empty() {
        out.push_str("\nThe servers logged these warnings during the run:\n\n");
        for line in &report.server_warnings {
            let _ = writeln!(out, "- `{}`", line.replace('`', "'"));
        }
    }
}
