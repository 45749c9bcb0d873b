//! The `--webhooks` report as Markdown, and what in it makes the run not count.

use std::fmt::Write;

use super::{Ceiling, CreateRound, Latency, WebhookReport};
use crate::load::report::thousands;

/// How often webhook-load samples the backlog.
const SAMPLE_INTERVAL_SECS: f64 = 0.25;
/// The p99 commit-to-receipt latency the issue asks for, at half the ceiling rate.
const P99_TARGET_MS: f64 = 250.0;
/// Session creation is "unchanged" when the median ratio is within this of 1.0:
/// paired rounds on this VM differ by about this much between identical binaries.
const CREATE_NOISE: f64 = 0.05;

pub fn render(report: &WebhookReport) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "Measured {} on {} × {}{}, {}, {}; PostgreSQL {} ({}); {}. \
         Run: `{}` ({} s in all).\n",
        m.date,
        m.cores,
        m.cpu,
        if m.virtual_machine { " (VM)" } else { "" },
        m.memory,
        m.os,
        report.server_version,
        report.source,
        m.rustc,
        report.invocation,
        report.elapsed_secs
    );
    let _ = writeln!(
        out,
        "One session-server on PostgreSQL (`--webhook-concurrency 64`, \
         `--webhook-partner-concurrency {}`), one partner whose endpoint is \
         `webhook-load`'s receiver on loopback (it answers 200 at once); {} client \
         connections; each phase lasts {} s.\n",
        report.partner_concurrency, report.concurrency, report.duration_secs
    );
    if let Some(ceiling) = &report.run.ceiling {
        keeping_up(&mut out, ceiling);
    }
    if let Some(latency) = &report.run.latency {
        latency_table(&mut out, latency);
    }
    create_table(&mut out, report);
    targets(&mut out, report);
    let flaws = report.run.flaws;
    let _ = writeln!(
        out,
        "### Every delivery checked\n\nThe receiver saw {} repeated `webhook-id`s, {} \
         deliveries out of order for their transaction and {} bodies it could not read.\n",
        flaws.duplicates, flaws.out_of_order, flaws.unreadable
    );
    let _ = writeln!(out, "### Commands\n\n```sh");
    for line in &report.commands {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "```");
    if !report.server_warnings.is_empty() {
        let _ = writeln!(out, "\nServer warnings during the run:\n");
        for warning in &report.server_warnings {
            let _ = writeln!(out, "- `{warning}`");
        }
    }
    out
}

fn keeping_up(out: &mut String, c: &Ceiling) {
    let _ = writeln!(
        out,
        "### Keeping up: provider events as fast as they apply\n\n\
         Each connection applies `processing` then `completed` to one transaction after \
         another, waiting for each answer. The backlog is events applied minus webhooks \
         received, sampled every 250 ms.\n"
    );
    let _ = writeln!(
        out,
        "| events applied | in | events/s | deliveries/s in the window | deliveries ÷ events, second half | backlog at half / end / max | last delivery after the window |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {} | {:.1} s | {} | {} | **{:.2}×** | {} / {} / {} | {:.2} s |\n",
        thousands(c.events as f64),
        c.secs,
        thousands(c.events_per_sec),
        thousands(c.deliveries_per_sec),
        c.steady_ratio,
        c.backlog_mid,
        c.backlog_end,
        c.backlog_max,
        c.drain_secs
    );
}

fn latency_table(out: &mut String, l: &Latency) {
    let _ = writeln!(
        out,
        "### Commit to receipt at half that rate\n\n\
         Pairs of events are sent on a fixed schedule, whatever the answers do. A \
         delivery's latency is its arrival time minus the `updated_at` in its body (the \
         server's clock when it applied the event, just before the commit; one machine, \
         one clock).\n"
    );
    let _ = writeln!(
        out,
        "| target events/s | sent events/s | deliveries | p50 | p90 | p99 | max |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {:.0} | {:.0} | {} | {:.1} ms | {:.1} ms | **{:.1} ms** | {:.1} ms |\n",
        l.target_events_per_sec,
        l.events_per_sec,
        thousands(l.deliveries as f64),
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms
    );
}

fn create_table(out: &mut String, report: &WebhookReport) {
    let Some(rev) = &report.before else {
        return;
    };
    let _ = writeln!(
        out,
        "### Session creation before and after webhooks\n\n\
         `POST /widget/session` with the same client, alternating between session-server \
         built at `{rev}` and this one (which goes first alternates too), each on a \
         database of its own.\n"
    );
    let _ = writeln!(
        out,
        "| round | `{rev}` sessions/s | this build sessions/s | ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for (at, round) in report.create_rounds.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}× |",
            at + 1,
            thousands(round.before.per_sec),
            thousands(round.ours.per_sec),
            create_ratio(round)
        );
    }
    out.push('\n');
}

fn create_ratio(round: &CreateRound) -> f64 {
    round.ours.per_sec / round.before.per_sec
}

/// The median of the rounds' ratios, if there were rounds.
fn median_create_ratio(rounds: &[CreateRound]) -> Option<f64> {
    let mut ratios: Vec<f64> = rounds.iter().map(create_ratio).collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied()
}

/// Whether the dispatcher kept up: at least as many deliveries as events in the
/// window's second half, or a backlog that did not grow over it. The backlog
/// is sampled every 250 ms, so two samples can differ by one interval's events
/// with no trend at all: that much is not growth.
pub fn keeps_up(c: &Ceiling) -> bool {
    let sampling_jitter = (c.events_per_sec * SAMPLE_INTERVAL_SECS).ceil() as u64;
    c.steady_ratio >= 1.0 || c.backlog_end <= c.backlog_mid + sampling_jitter
}

fn targets(out: &mut String, report: &WebhookReport) {
    let _ = writeln!(
        out,
        "### Targets\n\n| target | measured | verdict |\n|---|---|---|"
    );
    if let Some(c) = &report.run.ceiling {
        let _ = writeln!(
            out,
            "| deliveries/s ≥ 1.0× events applied/s, backlog not growing (by more than one 250 ms sample's events) | {:.2}× over the window's second half; backlog {} at half time, {} at the end | {} |",
            c.steady_ratio,
            c.backlog_mid,
            c.backlog_end,
            verdict(keeps_up(c))
        );
    }
    if let Some(l) = &report.run.latency {
        let _ = writeln!(
            out,
            "| commit-to-receipt p99 < {P99_TARGET_MS:.0} ms at half the ceiling rate | p50 {:.1} ms, p99 {:.1} ms at {:.0} events/s | {} |",
            l.p50_ms,
            l.p99_ms,
            l.events_per_sec,
            verdict(l.p99_ms < P99_TARGET_MS)
        );
    }
    match median_create_ratio(&report.create_rounds) {
        Some(ratio) => {
            let _ = writeln!(
                out,
                "| session-create throughput unchanged within noise (±{:.0} %) | median {ratio:.2}× the earlier build | {} |",
                CREATE_NOISE * 100.0,
                verdict((ratio - 1.0).abs() <= CREATE_NOISE || ratio > 1.0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| session-create throughput unchanged within noise | not measured (run with `--before REV`) | — |"
            );
        }
    }
    out.push('\n');
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// What makes the run not count: failed requests, lost, repeated or reordered
/// deliveries, transactions that ran out before the time was up.
pub fn problems(report: &WebhookReport) -> Vec<String> {
    let mut problems = Vec::new();
    let run = &report.run;
    let flaws = run.flaws;
    if flaws.duplicates + flaws.out_of_order + flaws.unreadable > 0 {
        problems.push(format!(
            "the receiver saw {} repeats, {} out of order, {} unreadable",
            flaws.duplicates, flaws.out_of_order, flaws.unreadable
        ));
    }
    if run.create.failures > 0 {
        problems.push(format!("{} session creations failed", run.create.failures));
    }
    for round in &report.create_rounds {
        if round.before.failures + round.ours.failures > 0 {
            problems.push("session creations failed in a before/after round".to_owned());
        }
    }
    if let Some(c) = &run.ceiling {
        if c.failures > 0 {
            problems.push(format!("{} provider events did not apply", c.failures));
        }
        if c.ran_out {
            problems.push(
                "the ceiling phase ran out of transactions before its time was up".to_owned(),
            );
        }
    }
    if let Some(l) = &run.latency {
        if l.failures > 0 {
            problems.push(format!(
                "{} provider events did not apply in the latency phase",
                l.failures
            ));
        }
        if l.deliveries as u64 != l.events {
            problems.push(format!(
                "{} events applied but {} delivered in the latency phase",
                l.events, l.deliveries
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::{Create, DriverResult, Flaws};
    use super::*;
    use crate::load::machine::Machine;

    fn ceiling(steady_ratio: f64, backlog_mid: u64, backlog_end: u64) -> Ceiling {
        Ceiling {
            events: 40_000,
            secs: 10.0,
            events_per_sec: 4_000.0,
            deliveries_per_sec: 3_999.0,
            steady_ratio,
            backlog_mid,
            backlog_end,
            backlog_max: backlog_mid.max(backlog_end),
            drain_secs: 0.01,
            failures: 0,
            ran_out: false,
        }
    }

    fn create(per_sec: f64) -> Create {
        Create {
            per_sec,
            failures: 0,
        }
    }

    fn report(rounds: Vec<CreateRound>, flaws: Flaws) -> WebhookReport {
        WebhookReport {
            machine: Machine {
                cpu: "CPU".into(),
                cores: 2,
                virtual_machine: true,
                memory: "24 GiB".into(),
                kernel: "6".into(),
                os: "Debian".into(),
                rustc: "rustc".into(),
                wrk: "webhook-load".into(),
                date: "today".into(),
            },
            server_version: "15".into(),
            source: "local".into(),
            duration_secs: 10,
            concurrency: 32,
            partner_concurrency: "32",
            before: Some("abc".into()),
            create_rounds: rounds,
            run: DriverResult {
                create: create(3_000.0),
                ceiling: Some(ceiling(1.0, 10, 8)),
                latency: Some(Latency {
                    target_events_per_sec: 2_000.0,
                    events: 20_000,
                    events_per_sec: 1_990.0,
                    deliveries: 20_000,
                    p50_ms: 2.0,
                    p90_ms: 3.0,
                    p99_ms: 9.0,
                    max_ms: 30.0,
                    failures: 0,
                }),
                flaws,
            },
            invocation: "cargo xtask load --webhooks".into(),
            commands: vec!["webhook-load --token T".into()],
            server_warnings: Vec::new(),
            elapsed_secs: 60,
        }
    }

    const CLEAN: Flaws = Flaws {
        duplicates: 0,
        out_of_order: 0,
        unreadable: 0,
    };

    #[test]
    fn keeping_up_means_no_growing_backlog() {
        // 4,000 events/s: one 250 ms sample interval is 1,000 events.
        assert!(keeps_up(&ceiling(1.02, 50, 10)), "shrinking");
        assert!(
            keeps_up(&ceiling(0.99, 3_000, 3_900)),
            "within one interval"
        );
        assert!(!keeps_up(&ceiling(0.90, 3_000, 4_100)), "growing");
    }

    #[test]
    fn the_create_ratio_is_the_median_round() {
        let rounds = vec![
            CreateRound {
                before: create(1_000.0),
                ours: create(900.0),
            },
            CreateRound {
                before: create(1_000.0),
                ours: create(1_010.0),
            },
            CreateRound {
                before: create(1_000.0),
                ours: create(1_200.0),
            },
        ];
        assert_eq!(median_create_ratio(&rounds), Some(1.01));
        assert_eq!(median_create_ratio(&[]), None);
    }

    #[test]
    fn a_clean_run_renders_its_figures_and_counts() {
        let rounds = vec![CreateRound {
            before: create(1_000.0),
            ours: create(990.0),
        }];
        let report = report(rounds, CLEAN);
        let text = render(&report);
        for expected in [
            "| 40,000 | 10.0 s | 4,000 | 3,999 | **1.00×** | 10 / 8 / 10 | 0.01 s |",
            "**9.0 ms**",
            "| 1 | 1,000 | 990 | 0.99× |",
            "median 0.99× the earlier build | met |",
            "webhook-load --token T",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert!(problems(&report).is_empty(), "{:?}", problems(&report));
    }

    #[test]
    fn repeats_and_reorders_make_the_run_not_count() {
        let report = report(
            Vec::new(),
            Flaws {
                duplicates: 1,
                out_of_order: 0,
                unreadable: 0,
            },
        );
        assert_eq!(problems(&report).len(), 1);
        assert!(render(&report).contains("not measured (run with `--before REV`)"));
    }
}
