//! The report as a whole, from measured values made up here: the verdicts, the
//! runs that do not count, and the rendered tables.

use super::targets::*;
use super::*;
use crate::load::pgbench::PgbenchResult;
use crate::load::wrk::Errors;

fn wrk(rps: f64, p99_ms: f64) -> WrkResult {
    WrkResult {
        requests: (rps * 10.0) as u64,
        duration_us: 10_000_000,
        errors: Errors::default(),
        p50_us: 500.0,
        p99_us: p99_ms * 1000.0,
        p999_us: p99_ms * 2000.0,
    }
}

fn machine() -> Machine {
    Machine {
        cpu: "AMD EPYC".into(),
        cores: 2,
        virtual_machine: true,
        memory: "23.5 GiB".into(),
        kernel: "6.1".into(),
        os: "Debian 12".into(),
        rustc: "rustc 1.95.0".into(),
        wrk: "wrk 4.1.0".into(),
        date: "2026-11-24 01:00 UTC".into(),
    }
}

fn memory(rss_mib: u64) -> Memory {
    Memory {
        rss_kib: rss_mib * 1024,
        hwm_kib: rss_mib * 1024 + 100,
    }
}

fn mem_point(ours: WrkResult, baseline: WrkResult) -> MemPoint {
    MemPoint {
        ours,
        baseline,
        store: StoreGrowth {
            sessions: 1_200_000,
            memory: memory(900),
        },
    }
}

fn bench(tps: f64) -> PgbenchPoint {
    PgbenchPoint {
        clients: 64,
        result: PgbenchResult {
            tps,
            latency_avg_ms: 3.0,
            transactions: 1,
            failed: 0,
        },
    }
}

fn report(ours64: WrkResult, base64: WrkResult) -> Report {
    Report {
        machine: machine(),
        duration_secs: 10,
        warmup_secs: 2,
        threads: 2,
        rounds: 1,
        distinct_users: false,
        invocation: "cargo xtask load".into(),
        response_bytes: vec![("ours (mem)".into(), 997), ("bare hyper".into(), 997)],
        mem: vec![
            Series {
                connections: 16,
                rounds: vec![MemPoint {
                    ours: wrk(40_000.0, 2.0),
                    baseline: wrk(70_000.0, 1.5),
                    store: StoreGrowth {
                        sessions: 480_000,
                        memory: memory(450),
                    },
                }],
            },
            Series {
                connections: 64,
                rounds: vec![mem_point(ours64, base64)],
            },
        ],
        pg: None,
        idle: Some(IdleReport {
            few: 256,
            many: 10_000,
            at_start: memory(10),
            at_few: memory(11),
            at_many: memory(90),
            after_load: memory(120),
            open_secs: 1.2,
            active: 64,
            pairs: vec![IdlePair {
                without: wrk(45_000.0, 4.0),
                with: wrk(44_000.0, 4.4),
            }],
            idle_status: Some(404),
        }),
        commands: vec!["wrk -t 2 -c 64 ...".into()],
        server_warnings: Vec::new(),
        elapsed_secs: 125,
    }
}

fn verdicts(report: &Report) -> Vec<Verdict> {
    targets(report).into_iter().map(|row| row.verdict).collect()
}

#[test]
fn targets_are_judged_from_the_64_connection_point() {
    let good = report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2));
    assert_eq!(
        verdicts(&good),
        [
            Verdict::Met,
            Verdict::Met,
            Verdict::NotMeasured,
            Verdict::Met,
            Verdict::Met
        ]
    );
    let slow = report(wrk(30_000.0, 9.0), wrk(72_000.0, 4.0));
    assert_eq!(verdicts(&slow)[..2], [Verdict::NotMet, Verdict::NotMet]);
    let rows = targets(&slow);
    assert_eq!(
        rows[0].measured,
        "0.42× (30,000 vs 72,000 req/s); one paired round"
    );
    assert_eq!(
        rows[1].measured,
        "2.25× (9.00 vs 4.00 ms); one paired round"
    );
}

#[test]
fn error_responses_make_a_target_invalid_and_are_listed() {
    let mut fast_401s = wrk(150_000.0, 1.0);
    fast_401s.errors.status = fast_401s.requests;
    let report = report(fast_401s, wrk(72_000.0, 4.0));
    assert_eq!(verdicts(&report)[..2], [Verdict::Invalid, Verdict::Invalid]);
    let problems = problems(&report);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("ours (mem) at 64 connections"));
    assert!(render(&report).contains("⚠ ours at 64 connections"));
}

#[test]
fn the_pg_target_has_a_stretch_goal() {
    let cases = [
        (5_000.0, Verdict::NotMet),
        (9_000.0, Verdict::MetNotStretch),
        (21_000.0, Verdict::MetStretch),
    ];
    for (ours, expected) in cases {
        let mut report = report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2));
        report.pg = Some(PgReport {
            server_version: "15".into(),
            pgbench_version: "pgbench 15".into(),
            source: "local".into(),
            points: vec![Series {
                connections: 64,
                rounds: vec![PgPoint {
                    ours: wrk(ours, 5.0),
                    pgbench: bench(10_000.0),
                }],
            }],
        });
        assert_eq!(verdicts(&report)[2], expected, "ours at {ours} req/s");
    }
}

#[test]
fn failed_pgbench_transactions_are_listed_and_noted() {
    let mut report = report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2));
    let mut failing = bench(10_000.0);
    failing.result.failed = 12;
    report.pg = Some(PgReport {
        server_version: "15".into(),
        pgbench_version: "pgbench 15".into(),
        source: "local".into(),
        points: vec![Series {
            connections: 64,
            rounds: vec![PgPoint {
                ours: wrk(9_000.0, 5.0),
                pgbench: failing,
            }],
        }],
    });
    assert_eq!(
        problems(&report),
        ["pgbench at 64 clients: 12 failed transactions"]
    );
    assert!(render(&report).contains("\n⚠ pgbench at 64 clients: 12 failed transactions\n"));
    assert_eq!(verdicts(&report)[2], Verdict::Invalid);
}

#[test]
fn idle_targets_use_the_cost_over_the_fresh_server() {
    let mut report = report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2));
    let rows = targets(&report);
    assert_eq!(
        rows[3].measured,
        "80.0 MiB for 10,000 (VmRSS 10.0 → 90.0 MiB)"
    );
    if let Some(idle) = report.idle.as_mut() {
        idle.at_many = memory(260);
        idle.pairs[0].with = wrk(30_000.0, 4.0);
    }
    assert_eq!(verdicts(&report)[3..], [Verdict::NotMet, Verdict::NotMet]);
    // With three rounds the verdict follows the median round, not the worst one.
    if let Some(idle) = report.idle.as_mut() {
        idle.at_many = memory(90);
        let pair = |with: f64| IdlePair {
            without: wrk(45_000.0, 4.0),
            with: wrk(with, 4.0),
        };
        idle.pairs = vec![pair(30_000.0), pair(44_000.0), pair(46_000.0)];
    }
    assert_eq!(verdicts(&report)[3..], [Verdict::Met, Verdict::Met]);
    report.idle = None;
    assert_eq!(
        verdicts(&report)[3..],
        [Verdict::NotMeasured, Verdict::NotMeasured]
    );
}

#[test]
fn the_rendered_tables_carry_the_numbers() {
    let text = render(&report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2)));
    for expected in [
        "| 64 | 45,000 | 72,000 | 0.62× | 0.62 | 1 of 1 |",
        "| 64 | 0.50 / 4.00 / 8.00 | 0.50 / 4.20 / 8.40 | 0.95× | 0.95 | 1 of 1 |",
        "This run did one round (`--rounds 1`)",
        "| 10,000 idle connections | 90.0 | 90.1 |",
        "Each idle connection costs about 8.2 KiB",
        "| 1 | 45,000, 0.50 / 4.00 / 8.00 | 44,000, 0.50 / 4.40 / 8.80 | 0.98× | 1.10× |",
        "Not measured in this run: `cargo xtask load --store postgres`",
        "2 × AMD EPYC (virtual machine)",
        "the whole run took 2 min 5 s",
        "1,200,000 sessions and VmRSS 900 MiB after the 64-connection point",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn rounds_report_the_median_round_and_every_ratio() {
    let mut report = report(wrk(45_000.0, 4.0), wrk(72_000.0, 4.2));
    report.rounds = 3;
    report.mem[1].rounds = vec![
        // throughput 0.55×, p99 2.00×
        mem_point(wrk(44_000.0, 8.0), wrk(80_000.0, 4.0)),
        // throughput 0.65×, p99 3.00×
        mem_point(wrk(52_000.0, 9.0), wrk(80_000.0, 3.0)),
        // throughput 0.60×, p99 1.00×
        mem_point(wrk(48_000.0, 5.0), wrk(80_000.0, 5.0)),
    ];
    report.pg = Some(PgReport {
        server_version: "15".into(),
        pgbench_version: "pgbench 15".into(),
        source: "local".into(),
        points: vec![Series {
            connections: 64,
            rounds: vec![
                PgPoint {
                    ours: wrk(9_000.0, 5.0),
                    pgbench: bench(10_000.0),
                },
                PgPoint {
                    ours: wrk(7_000.0, 5.0),
                    pgbench: bench(10_000.0),
                },
                PgPoint {
                    ours: wrk(12_000.0, 5.0),
                    pgbench: bench(10_000.0),
                },
            ],
        }],
    });
    let rows = targets(&report);
    assert_eq!(
        rows[0].measured,
        "0.60× (48,000 vs 80,000 req/s); median of 3 paired rounds: 0.55 / **0.60** / 0.65"
    );
    assert_eq!(rows[0].verdict, Verdict::Met);
    assert_eq!(
        rows[1].measured,
        "2.00× (8.00 vs 4.00 ms); median of 3 paired rounds: 1.00 / **2.00** / 3.00"
    );
    assert_eq!(rows[1].verdict, Verdict::NotMet);
    assert_eq!(
        rows[2].measured,
        "0.90× (9,000 req/s vs 10,000 TPS at 64 clients); median of 3 paired rounds: \
         0.70 / **0.90** / 1.20"
    );
    assert_eq!(rows[2].verdict, Verdict::MetNotStretch);
    let text = render(&report);
    for expected in [
        "| 64 | 48,000 | 80,000 | 0.60× | 0.55 / **0.60** / 0.65 | 3 of 3 |",
        "| 64 | 0.50 / 8.00 / 16.00 | 0.50 / 4.00 / 8.00 | 2.00× | 1.00 / **2.00** / 3.00 \
         | 1 of 3 |",
        "| 64 | 9,000 | 0.50 / 5.00 / 10.00 | 64 | 10,000 | 3.00 | 0.90× | 0.70 / **0.90** / 1.20 \
         | 0.11× | 1 of 3 |",
        "This run did 3 rounds.",
        "median of 3 paired rounds",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // An error in any round makes the target invalid, and is listed with its round.
    report.mem[1].rounds[0].ours.errors.status = 5;
    assert_eq!(targets(&report)[0].verdict, Verdict::Invalid);
    assert_eq!(
        problems(&report),
        ["ours (mem) at 64 connections, round 1: 5 non-2xx responses"]
    );
    assert!(render(&report).contains("0.55 ⚠ / **0.60** / 0.65"));
}
