//! `cargo xtask load`: builds the release binaries, drives `POST /widget/session` with
//! wrk at several concurrencies, measures the same points against a bare hyper server
//! (and, with `--store postgres`, pgbench one-row inserts) in the same run, measures
//! the server's memory with thousands of idle keep-alive connections, and writes the
//! results to `docs/performance.md`.
//!
//! Every figure is reported next to a baseline measured on the same machine minutes
//! apart, interleaved point by point: this VM is too noisy for absolute numbers.

mod files;
mod http;
mod idempotency;
mod idle;
mod limits;
mod machine;
mod metrics;
mod pgbench;
mod procfs;
mod report;
mod scale;
mod server;
mod webhooks;
mod wrk;
mod ws;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};

use crate::cargo::{self, Cargo};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::pg;
use files::WorkDir;
use report::{IdlePair, IdleReport, MemPoint, PgPoint, PgReport, Report, Series};
use server::Server;
use wrk::{Wrk, WrkResult};

/// The flags of `cargo xtask load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Store to measure; `postgres` also measures `mem` in the same run, so one run
    /// documents both
    #[arg(long, value_enum, default_value = "mem")]
    pub store: StoreChoice,
    /// PostgreSQL URL of a role that may CREATE DATABASE, for `--store postgres`
    /// (default: SESSION_TEST_DATABASE_URL, else the local server, else a throwaway
    /// cluster, as `cargo xtask test` finds one)
    #[arg(long)]
    pub database_url: Option<String>,
    /// Length of each measured point (`10s`, `1m`, or plain seconds); each point is
    /// preceded by a 2 s warm-up that is not counted
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: u64,
    /// Concurrent connections of the measured points (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "16,64,256", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: Vec<u32>,
    /// How many times to run the whole sweep of paired points (baseline, then ours, at
    /// every concurrency); each row reports the round with the median ratio, next to
    /// every round's ratio
    #[arg(long, default_value_t = DEFAULT_ROUNDS, value_parser = clap::value_parser!(u32).range(1..=MAX_ROUNDS))]
    pub rounds: u32,
    /// Skip the idle-connection memory test
    #[arg(long)]
    pub no_idle: bool,
    /// How many idle keep-alive connections the memory test opens
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(256..=100_000))]
    pub idle_connections: u32,
    /// Print the results but leave docs/performance.md alone
    #[arg(long)]
    pub no_write: bool,
    /// wrk threads (and pgbench threads)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Give every request its own partner_user_id (`load-<thread>-<n>`) instead of the
    /// seed's single user, which makes every session write touch one end-user row
    #[arg(long)]
    pub distinct_users: bool,
    /// Only run the pgbench ceiling (no build, no HTTP): checks the PostgreSQL side alone
    #[arg(long, hide = true)]
    pub pgbench_only: bool,
    /// Measure webhook delivery on PostgreSQL instead: whether the dispatcher keeps up
    /// with the fastest rate provider events apply, and commit-to-receipt latency at
    /// half that rate; writes docs/performance-webhooks.md
    #[arg(long)]
    pub webhooks: bool,
    /// Measure `GET /ws` instead: idle sockets' memory, fan-out latency on one
    /// instance and across two on PostgreSQL, session creation beside 10,000
    /// sockets (docs/performance-websocket.md)
    #[arg(long, conflicts_with = "webhooks")]
    pub ws: bool,
    /// Measure what an `Idempotency-Key` costs session creation on PostgreSQL
    /// (unique keys against no key, same server, alternating rounds;
    /// docs/performance-idempotency.md)
    #[arg(long, conflicts_with_all = ["webhooks", "ws", "limits", "metrics"])]
    pub idempotency: bool,
    /// Measure per-partner rate limits instead: session-create throughput on the
    /// in-memory store with limits off against a budget that never refuses, and the
    /// limiter's memory for 100,000 partners that went idle
    /// (docs/performance-rate-limits.md)
    #[arg(long, conflicts_with_all = ["webhooks", "ws"])]
    pub limits: bool,
    /// Measure what recording Prometheus metrics costs instead: session-create
    /// throughput on the in-memory store with `--metrics false` against
    /// `--metrics true` (docs/performance-metrics.md)
    #[arg(long, conflicts_with_all = ["webhooks", "ws", "limits"])]
    pub metrics: bool,
    /// Measure the ceilings of several instances on one PostgreSQL instead: whole
    /// transaction lifecycles per second with 1, 2 and 3 instances, where the CPU
    /// goes, connections against max_connections, and how many NOTIFYs the database
    /// sustains (docs/scaling.md)
    #[arg(long, conflicts_with_all = ["webhooks", "ws", "idempotency", "limits", "metrics"])]
    pub scale: bool,
    /// With --webhooks: also build session-server at this git revision and compare its
    /// session-create throughput with this one's, round by round
    #[arg(long, requires = "webhooks")]
    pub before: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreChoice {
    Mem,
    Postgres,
}

/// The concurrency of the idle test's active clients, and of the targets.
pub const TARGET_CONNECTIONS: u32 = 64;

/// Rounds of the sweep by default: an odd count, so the median is one round.
const DEFAULT_ROUNDS: u32 = 3;
/// More rounds than this is a mistake (each takes minutes).
const MAX_ROUNDS: i64 = 25;

/// How long each point warms up before the measured run.
const WARMUP_SECS: u64 = 2;

/// The idle test's first checkpoint, as many as the largest default point.
const FEW_IDLE: u32 = 256;

pub fn run(args: &LoadArgs) -> Result<()> {
    let plan = Plan::from_args(args)?;
    if plan.pgbench_only {
        return pgbench_only(&plan);
    }
    if plan.webhooks {
        return webhooks::run(&plan);
    }
    if plan.ws {
        return ws::run(&plan);
    }
    if plan.scale {
        return scale::run(&plan);
    }
    if plan.idempotency {
        return idempotency::run(&plan);
    }
    if plan.limits {
        return limits::run(&plan);
    }
    if plan.metrics {
        return metrics::run(&plan);
    }
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let wrk = Wrk::find_or_install()?;
    println!("==> wrk: {} ({})", wrk.path().display(), wrk.version());

    let build = build_command();
    let build_shown = format!("cargo {}", crate::process::display_args(&build));
    cargo::step("build", build)?;
    let bins = Binaries::in_target(&cargo::target_dir(&root)?)?;

    let work = WorkDir::create()?;
    let script = work.write("post.lua", &wrk::post_script(plan.bodies))?;
    let bootstrap = work.write("bootstrap.toml", files::BOOTSTRAP)?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let runner = Runner {
        wrk: &wrk,
        script: &script,
        plan: &plan,
    };

    // The database outlives the servers: fields drop in reverse order of declaration.
    let postgres = match plan.store {
        StoreChoice::Postgres => Some(PostgresSetup::provide(&plan, &work)?),
        StoreChoice::Mem => None,
    };
    if let Some(setup) = &postgres {
        log.database(setup.database.name());
    }

    cargo::header(
        "servers",
        "starting the bare hyper baseline and session-server",
    );
    let baseline = Server::baseline(&bins.baseline)?;
    log.server(&baseline, "BASELINE");
    let ours_pg = match &postgres {
        Some(setup) => {
            let server = Server::session(
                &bins.session_server,
                &bootstrap,
                server::Store::Postgres(setup.database.url()),
            )?;
            log.server(&server, "OURS_PG");
            Some(server)
        }
        None => None,
    };
    let mem = MemServers {
        binary: &bins.session_server,
        bootstrap: &bootstrap,
    };
    // A fresh in-memory server checks its answer as it starts; the others are
    // checked here, each in turn, so a broken setup fails before the load.
    let (ours, ours_bytes) = mem.start_as(&mut log, "OURS_MEM")?;
    let mut response_bytes = Vec::new();
    let mut answers = |server: &Server, bytes: usize| {
        println!(
            "    {}: POST /widget/session answers 200 ({bytes} bytes)",
            server.name()
        );
        response_bytes.push((server.name().to_owned(), bytes));
    };
    answers(&baseline, baseline.verify_session_post()?);
    answers(&ours, ours_bytes);
    if let Some(server) = &ours_pg {
        answers(server, server.verify_session_post()?);
    }
    drop(ours);

    // Interleaved point by point, so slow drift of the VM hits both sides alike, and
    // the whole sweep repeated in rounds, since one pair is too noisy to judge by. Each
    // in-memory point gets a fresh server: its store keeps every session, and a store
    // grown by the previous points would make a point depend on the ones before it.
    let mut mem_points: Vec<Series<MemPoint>> =
        plan.connections.iter().copied().map(Series::new).collect();
    let mut pg_points: Vec<Series<PgPoint>> = match &postgres {
        Some(_) => plan.connections.iter().copied().map(Series::new).collect(),
        None => Vec::new(),
    };
    let mut warnings = Vec::new();
    for round in 1..=plan.rounds {
        cargo::header(
            &format!("round {round}/{}", plan.rounds),
            "at each concurrency the baseline, then ours",
        );
        for (at, &connections) in plan.connections.iter().enumerate() {
            let base = runner.point(&baseline, connections, &mut log)?;
            let ours = mem.start(&mut log)?;
            let mine = runner.point(&ours, connections, &mut log)?;
            let store = report::StoreGrowth {
                sessions: ours.requests_sent(),
                memory: idle::memory(ours.pid())?,
            };
            warnings.extend(ours.warnings());
            drop(ours);
            print_ratio(
                "ours (mem) / bare hyper",
                mine.throughput_over(&base),
                Some(mine.p99_over(&base)),
            );
            mem_points[at].rounds.push(MemPoint {
                ours: mine,
                baseline: base,
                store,
            });
            if let (Some(setup), Some(server)) = (&postgres, &ours_pg) {
                let bench = setup.point(&plan, connections, &mut log)?;
                let mine = runner.point(server, connections, &mut log)?;
                let point = PgPoint {
                    ours: mine,
                    pgbench: bench,
                };
                print_ratio("ours (postgres) / pgbench", point.throughput_ratio(), None);
                pg_points[at].rounds.push(point);
            }
        }
    }
    for server in [Some(&baseline), ours_pg.as_ref()].into_iter().flatten() {
        server.check_running()?;
        warnings.extend(server.warnings());
    }
    drop(ours_pg);
    drop(baseline);

    let idle = if plan.idle {
        Some(idle_test(&runner, &mem, &mut log, &mut warnings)?)
    } else {
        None
    };

    let pg = postgres.as_ref().map(|setup| PgReport {
        server_version: setup.database.server_version().to_owned(),
        pgbench_version: setup.pgbench.version().to_owned(),
        source: setup.source.clone(),
        points: pg_points,
    });
    let report = Report {
        machine: machine::describe(wrk.version()),
        duration_secs: plan.duration_secs,
        warmup_secs: WARMUP_SECS,
        threads: plan.threads,
        rounds: plan.rounds,
        distinct_users: plan.bodies == wrk::Bodies::DistinctUsers,
        invocation: plan.invocation(),
        response_bytes,
        mem: mem_points,
        pg,
        idle,
        commands: log.lines,
        server_warnings: warnings,
        elapsed_secs: started.elapsed().as_secs(),
    };
    finish(&report, &plan, &root)
}

/// Prints the report, writes the doc unless told not to, and fails on any point that
/// does not count (non-2xx answers, socket errors, failed transactions).
fn finish(report: &Report, plan: &Plan, root: &Path) -> Result<()> {
    let generated = report::render(report);
    println!("\n{generated}");
    if plan.write {
        let path = root.join("docs").join("performance.md");
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let text = report::splice(existing.as_deref(), &generated).map_err(|why| {
            Error::failed(format!(
                "{}: {why}; the results are printed above",
                path.display()
            ))
        })?;
        std::fs::write(&path, text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("==> load: wrote {}", path.display());
    }
    let problems = report::problems(report);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "some measurements do not count (marked ⚠ above):\n  {}",
        problems.join("\n  ")
    )))
}

/// Prints a pair's throughput ratio (and p99 ratio, if given) as the run goes; a
/// ratio that is not a number (the baseline measured nothing) is left out, and
/// without the throughput nothing is printed.
fn print_ratio(what: &str, throughput: f64, p99: Option<f64>) {
    if !throughput.is_finite() {
        return;
    }
    let p99 = p99
        .filter(|ratio| ratio.is_finite())
        .map(|ratio| format!(", p99 {ratio:.2}×"))
        .unwrap_or_default();
    println!("    {what}: throughput {throughput:.2}×{p99}");
}

/// What a same-build comparison (`--limits`, `--metrics`) works with: wrk, the
/// release binaries, the run's directory with wrk's script and the bootstrap
/// file, and the command log.
struct Bench {
    root: PathBuf,
    target: PathBuf,
    wrk: Wrk,
    bins: Binaries,
    script: PathBuf,
    bootstrap: PathBuf,
    log: CommandLog,
    started: Instant,
    _work: WorkDir,
}

impl Bench {
    /// Finds wrk and builds the release binaries, with `extra_bins` besides.
    fn prepare(plan: &Plan, extra_bins: &[&str]) -> Result<Self> {
        let started = Instant::now();
        let root = cargo::workspace_root()?;
        let wrk = Wrk::find_or_install()?;
        println!("==> wrk: {} ({})", wrk.path().display(), wrk.version());
        let mut build = build_command();
        for bin in extra_bins {
            build.args(["--bin", bin]);
        }
        let build_shown = format!("cargo {}", crate::process::display_args(&build));
        cargo::step("build", build)?;
        let target = cargo::target_dir(&root)?;
        let bins = Binaries::in_target(&target)?;
        let work = WorkDir::create()?;
        let script = work.write("post.lua", &wrk::post_script(plan.bodies))?;
        let bootstrap = work.write("bootstrap.toml", files::BOOTSTRAP)?;
        let mut log = CommandLog::new(&root, work.path());
        log.push(&build_shown);
        Ok(Self {
            root,
            target,
            wrk,
            bins,
            script,
            bootstrap,
            log,
            started,
            _work: work,
        })
    }

    /// The doc's title, where it comes from, the machine and the command.
    fn doc_head(&self, plan: &Plan, title: &str, source: &str) -> String {
        format!(
            "# {title}\n\n\
             Written by `cargo xtask load --{source}` (xtask/src/load/{source}.rs); run it \
             again rather than editing.\n\n\
             - Machine: {}\n\
             - Command: `{}` ({} s in all)\n\n",
            machine::describe(self.wrk.version()).summary(),
            plan.invocation(),
            self.started.elapsed().as_secs()
        )
    }

    /// The doc's last section: every command of the run, and what the servers
    /// warned about.
    fn doc_commands(&self, warnings: &[String]) -> String {
        let mut doc = String::from("\n## How it was run\n\n```sh\n");
        for line in &self.log.lines {
            doc.push_str(line);
            doc.push('\n');
        }
        doc.push_str("```\n");
        if !warnings.is_empty() {
            doc.push_str("\nServer warnings:\n\n");
            for warning in warnings {
                doc.push_str(&format!("- {warning}\n"));
            }
        }
        doc
    }

    /// Prints `text`, writes it to docs/`name` unless told not to, and fails
    /// with `problems`, if any.
    fn publish(&self, plan: &Plan, name: &str, text: &str, problems: &[String]) -> Result<()> {
        println!("\n{text}");
        if plan.write {
            let path = self.root.join("docs").join(name);
            std::fs::write(&path, text)
                .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
            println!("==> wrote docs/{name}");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::failed(format!(
                "targets missed:\n  {}",
                problems.join("\n  ")
            )))
        }
    }
}

/// A switch of the server measured off and on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Off,
    On,
}

/// Both sides at one concurrency in one round.
struct Pair {
    off: WrkResult,
    on: WrkResult,
}

impl Pair {
    /// Throughput on / off.
    fn ratio(&self) -> f64 {
        self.on.requests_per_sec() / self.off.requests_per_sec()
    }
}

/// Session-create throughput with a switch off and on: every round's pair at
/// each concurrency of the plan.
struct Paired {
    /// The switch, as the output names it (`limits`, `metrics`).
    what: &'static str,
    points: Vec<(u32, Vec<Pair>)>,
    warnings: Vec<String>,
}

impl Paired {
    /// Measures both sides at every concurrency of `plan`, each point on a fresh
    /// server from `start` (given the session-server binary and the bootstrap
    /// file), the sides interleaved point by point and their order swapped
    /// every round, so drift of this noisy VM hits both alike.
    fn measure(
        what: &'static str,
        plan: &Plan,
        bench: &mut Bench,
        start: impl Fn(&Path, &Path, Side, &mut CommandLog) -> Result<Server>,
    ) -> Result<Self> {
        let runner = Runner {
            wrk: &bench.wrk,
            script: &bench.script,
            plan,
        };
        let (binary, bootstrap, log) =
            (&bench.bins.session_server, &bench.bootstrap, &mut bench.log);
        let mut points: Vec<(u32, Vec<Pair>)> =
            plan.connections.iter().map(|&c| (c, Vec::new())).collect();
        let mut warnings = Vec::new();
        for round in 1..=plan.rounds {
            // Odd rounds measure the switch off first, even rounds on first.
            let order = if round % 2 == 1 {
                [Side::Off, Side::On]
            } else {
                [Side::On, Side::Off]
            };
            cargo::header(
                &format!("round {round}/{}", plan.rounds),
                &format!(
                    "at each concurrency {what} {} first, on a fresh in-memory server each",
                    if order[0] == Side::Off { "off" } else { "on" }
                ),
            );
            for (connections, rounds) in &mut points {
                let mut results = [None, None];
                for side in order {
                    let server = start(binary, bootstrap, side, log)?;
                    let result = runner.point(&server, *connections, log)?;
                    warnings.extend(server.warnings());
                    results[usize::from(side == Side::On)] = Some(result);
                }
                let [Some(off), Some(on)] = results else {
                    return Err(Error::failed("a side of the pair was not measured"));
                };
                let pair = Pair { off, on };
                print_ratio(&format!("{what} on / {what} off"), pair.ratio(), None);
                rounds.push(pair);
            }
        }
        Ok(Self {
            what,
            points,
            warnings,
        })
    }

    /// The round whose ratio is the median at each concurrency (rounds sorted
    /// by ratio).
    fn medians(&self) -> impl Iterator<Item = (u32, &[Pair], &Pair)> {
        self.points.iter().filter_map(|(connections, rounds)| {
            let mut sorted: Vec<&Pair> = rounds.iter().collect();
            sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
            let median = sorted.get(sorted.len() / 2).copied()?;
            Some((*connections, rounds.as_slice(), median))
        })
    }

    /// Every ratio of the run, lowest first.
    fn all_ratios(&self) -> Vec<f64> {
        let mut all: Vec<f64> = self
            .points
            .iter()
            .flat_map(|(_, rounds)| rounds.iter().map(Pair::ratio))
            .collect();
        all.sort_by(f64::total_cmp);
        all
    }

    /// Points that do not count, and concurrencies whose median round is below
    /// `min_ratio`.
    fn problems(&self, min_ratio: f64) -> Vec<String> {
        let what = self.what;
        let mut out = Vec::new();
        for (connections, rounds) in &self.points {
            for pair in rounds {
                for (side, result) in [("off", &pair.off), ("on", &pair.on)] {
                    if let Some(warning) = result.warning() {
                        out.push(format!(
                            "{connections} connections, {what} {side}: {warning}"
                        ));
                    }
                }
            }
        }
        for (connections, _, pair) in self.medians() {
            if pair.ratio() < min_ratio {
                out.push(format!(
                    "{connections} connections: {what} on / off {:.3}× (median round; at least \
                     {min_ratio})",
                    pair.ratio()
                ));
            }
        }
        out
    }

    /// The doc's throughput section under `heading`: how it was measured, what
    /// the two `sides` are, the target, the median rounds with every round's
    /// ratio, and the median over all pairs.
    fn section(&self, plan: &Plan, heading: &str, sides: &str, min_ratio: f64) -> String {
        let mut doc = format!(
            "## {heading}\n\n\
             `POST /widget/session` (the seed body) on the in-memory store, wrk with {} \
             threads, {} s per point after a {WARMUP_SECS} s warm-up, every point on a fresh \
             server. {sides} The two sides alternate point by point, off first in odd rounds \
             and on first in even ones. Target: on / off at least {min_ratio}× (the median \
             round at each concurrency).\n\n\
             | connections | off req/s | on req/s | on / off (median round) | every round |\n\
             |---|---|---|---|---|\n",
            plan.threads, plan.duration_secs,
        );
        for (connections, rounds, pair) in self.medians() {
            let every: Vec<String> = rounds.iter().map(|p| format!("{:.3}", p.ratio())).collect();
            doc.push_str(&format!(
                "| {connections} | {:.0} | {:.0} | **{:.3}×** | {} |\n",
                pair.off.requests_per_sec(),
                pair.on.requests_per_sec(),
                pair.ratio(),
                every.join(", ")
            ));
        }
        let all = self.all_ratios();
        if let Some(mid) = all.get(all.len() / 2) {
            doc.push_str(&format!(
                "\nOver all {} pairs the median ratio is **{mid:.3}×** (lowest {:.3}, highest \
                 {:.3}).\n",
                all.len(),
                all.first().copied().unwrap_or(f64::NAN),
                all.last().copied().unwrap_or(f64::NAN)
            ));
        }
        doc
    }
}

/// The idle-connection test: the active point on a fresh server without idle
/// connections; then another fresh server's memory at start and with a few and many
/// idle connections, and the same active point with those connections open. Fresh
/// servers, so neither memory nor speed carries the sweep's stored sessions.
fn idle_test(
    runner: &Runner<'_>,
    mem: &MemServers<'_>,
    log: &mut CommandLog,
    warnings: &mut Vec<String>,
) -> Result<IdleReport> {
    let many = runner.plan.idle_connections;
    cargo::header(
        "idle",
        &format!(
            "{TARGET_CONNECTIONS} active connections without idle ones, then memory and the same \
             load with {FEW_IDLE} and {many} idle connections"
        ),
    );
    idle::raise_open_file_limit(u64::from(many))?;
    let request = http::idle_request(files::TOKEN);
    // Each round is a fresh pair of servers (both stores start empty): without idle
    // connections, then with them. Memory is read in the first round.
    let mut pairs = Vec::new();
    let mut first = None;
    for round in 1..=runner.plan.rounds {
        println!("    idle round {round} of {}", runner.plan.rounds);
        let plain = mem.start(log)?;
        let without = runner.point(&plain, TARGET_CONNECTIONS, log)?;
        warnings.extend(plain.warnings());
        drop(plain);

        let (server, _) = mem.start_as(log, "OURS_IDLE")?;
        let at_start = idle::memory(server.pid())?;
        let mut idle = idle::Connections::default();
        idle.open_until(server.public(), FEW_IDLE, &request)?;
        let at_few = idle::memory(server.pid())?;
        let opening = Instant::now();
        idle.open_until(server.public(), many, &request)?;
        let open_secs = opening.elapsed().as_secs_f64();
        let at_many = idle::memory(server.pid())?;
        let alive = idle.check_alive(&request)?;
        println!(
            "    {many} idle connections opened in {open_secs:.1}s; {alive} re-checked, all \
             answer; VmRSS {} KiB at start, {} KiB with {FEW_IDLE}, {} KiB with {many}",
            at_start.rss_kib, at_few.rss_kib, at_many.rss_kib
        );
        let with = runner.point(&server, TARGET_CONNECTIONS, log)?;
        let still_alive = idle.check_alive(&request)?;
        let after_load = idle::memory(server.pid())?;
        println!("    after the load {still_alive} idle connections re-checked, all answer");
        idle.close();
        server.check_running()?;
        warnings.extend(server.warnings());
        pairs.push(IdlePair { without, with });
        first.get_or_insert((
            at_start,
            at_few,
            at_many,
            after_load,
            open_secs,
            idle.status(),
        ));
    }
    let Some((at_start, at_few, at_many, after_load, open_secs, idle_status)) = first else {
        return Err(Error::failed("the idle test needs at least one round"));
    };
    Ok(IdleReport {
        few: FEW_IDLE,
        many,
        at_start,
        at_few,
        at_many,
        after_load,
        open_secs,
        active: TARGET_CONNECTIONS,
        pairs,
        idle_status,
    })
}

/// Starts fresh in-memory session-servers, one per measurement.
struct MemServers<'a> {
    binary: &'a Path,
    bootstrap: &'a Path,
}

impl MemServers<'_> {
    /// A fresh in-memory server that has answered the seed request with 200.
    fn start(&self, log: &mut CommandLog) -> Result<Server> {
        self.start_as(log, "OURS_MEM").map(|(server, _)| server)
    }

    /// The same, logged as `name`, with the size of its answer in bytes.
    fn start_as(&self, log: &mut CommandLog, name: &str) -> Result<(Server, usize)> {
        let server = Server::session(self.binary, self.bootstrap, server::Store::Mem)?;
        log.server(&server, name);
        let bytes = server.verify_session_post()?;
        Ok((server, bytes))
    }
}

/// `--pgbench-only`: the PostgreSQL ceiling alone, printed, nothing written.
fn pgbench_only(plan: &Plan) -> Result<()> {
    let work = WorkDir::create()?;
    let root = cargo::workspace_root()?;
    let setup = PostgresSetup::provide(plan, &work)?;
    let mut log = CommandLog::new(&root, work.path());
    log.database(setup.database.name());
    let mut points = Vec::new();
    for &connections in &plan.connections {
        points.push((connections, setup.point(plan, connections, &mut log)?));
    }
    println!(
        "\n{}",
        report::render_pgbench_only(setup.database.server_version(), &points, &log.lines)
    );
    Ok(())
}

/// The flags, checked and resolved.
#[derive(Debug)]
struct Plan {
    store: StoreChoice,
    database_url: Option<String>,
    duration_secs: u64,
    connections: Vec<u32>,
    rounds: u32,
    idle: bool,
    idle_connections: u32,
    write: bool,
    threads: u32,
    bodies: wrk::Bodies,
    pgbench_only: bool,
    webhooks: bool,
    ws: bool,
    idempotency: bool,
    limits: bool,
    metrics: bool,
    scale: bool,
    before: Option<String>,
}

impl Plan {
    fn from_args(args: &LoadArgs) -> Result<Self> {
        let mut connections = Vec::new();
        for &c in &args.connections {
            if !connections.contains(&c) {
                connections.push(c);
            }
        }
        if connections.is_empty() {
            return Err(Error::failed("--connections needs at least one number"));
        }
        if args.database_url.is_some()
            && args.store != StoreChoice::Postgres
            && !args.pgbench_only
            && !args.webhooks
            && !args.ws
            && !args.idempotency
            && !args.scale
        {
            return Err(Error::failed(
                "--database-url is only used with --store postgres",
            ));
        }
        Ok(Self {
            store: args.store,
            database_url: args.database_url.clone(),
            duration_secs: args.duration,
            connections,
            rounds: args.rounds,
            idle: !args.no_idle,
            idle_connections: args.idle_connections,
            write: !args.no_write,
            threads: args.threads,
            bodies: if args.distinct_users {
                wrk::Bodies::DistinctUsers
            } else {
                wrk::Bodies::Seed
            },
            pgbench_only: args.pgbench_only,
            webhooks: args.webhooks,
            ws: args.ws,
            idempotency: args.idempotency,
            limits: args.limits,
            metrics: args.metrics,
            scale: args.scale,
            before: args.before.clone(),
        })
    }

    /// The `cargo xtask load` line that reproduces this run.
    fn invocation(&self) -> String {
        let mut line = String::from("cargo xtask load");
        if self.ws {
            line.push_str(" --ws");
        } else if self.scale {
            line.push_str(" --scale");
        } else if self.idempotency {
            line.push_str(" --idempotency");
        } else if self.limits {
            line.push_str(" --limits");
        } else if self.metrics {
            line.push_str(" --metrics");
        } else if self.webhooks {
            line.push_str(" --webhooks");
            if let Some(rev) = &self.before {
                line.push_str(&format!(" --before {rev}"));
            }
        } else if self.store == StoreChoice::Postgres {
            line.push_str(" --store postgres");
        }
        if self.duration_secs != 10 {
            line.push_str(&format!(" --duration {}s", self.duration_secs));
        }
        if self.connections != [16, 64, 256] {
            let list: Vec<String> = self.connections.iter().map(u32::to_string).collect();
            line.push_str(&format!(" --connections {}", list.join(",")));
        }
        if self.rounds != DEFAULT_ROUNDS {
            line.push_str(&format!(" --rounds {}", self.rounds));
        }
        if self.threads != 2 {
            line.push_str(&format!(" --threads {}", self.threads));
        }
        if self.bodies == wrk::Bodies::DistinctUsers {
            line.push_str(" --distinct-users");
        }
        if !self.idle {
            line.push_str(" --no-idle");
        } else if self.idle_connections != 10_000 {
            line.push_str(&format!(" --idle-connections {}", self.idle_connections));
        }
        line
    }
}

/// Runs wrk points with the run's script and settings.
struct Runner<'a> {
    wrk: &'a Wrk,
    script: &'a Path,
    plan: &'a Plan,
}

impl Runner<'_> {
    /// One point: a warm-up run that is thrown away, then the measured run.
    fn point(&self, server: &Server, connections: u32, log: &mut CommandLog) -> Result<WrkResult> {
        interrupt::check()?;
        let url = format!("http://{}/widget/session", server.public());
        let warmup = wrk::Point {
            url: url.clone(),
            connections,
            threads: self.plan.threads,
            duration_secs: WARMUP_SECS,
            script: self.script.to_path_buf(),
        };
        let warm = self.wrk.run(&warmup)?;
        let point = wrk::Point {
            duration_secs: self.plan.duration_secs,
            ..warmup
        };
        let (result, shown) = self.wrk.measure(&point)?;
        server.count_requests(warm.requests + result.requests);
        log.push(&shown);
        server.check_running()?;
        println!(
            "    {:<22} {connections:>4} conn: {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  \
             p99.9 {:>7.2} ms{}",
            server.name(),
            result.requests_per_sec(),
            result.p50_us / 1000.0,
            result.p99_us / 1000.0,
            result.p999_us / 1000.0,
            result
                .warning()
                .map(|w| format!("  ⚠ {w}"))
                .unwrap_or_default()
        );
        Ok(result)
    }
}

/// The PostgreSQL side of `--store postgres`: a fresh database and pgbench.
struct PostgresSetup {
    pgbench: pgbench::Pgbench,
    script: PathBuf,
    source: String,
    // Dropped before `_provided`, so the database goes before a throwaway cluster.
    database: pgbench::LoadDatabase,
    _provided: Option<pg::Database>,
}

impl PostgresSetup {
    fn provide(plan: &Plan, work: &WorkDir) -> Result<Self> {
        let pgbench = pgbench::Pgbench::find()?;
        let (admin_url, provided, source) = admin_database(plan)?;
        let database = pgbench::LoadDatabase::create(&admin_url, "")?;
        println!(
            "==> postgres: created {} on {source} (PostgreSQL {}); {}",
            database.name(),
            database.server_version(),
            pgbench.version()
        );
        let script = work.write("insert.sql", &pgbench::insert_script())?;
        Ok(Self {
            pgbench,
            script,
            source,
            database,
            _provided: provided,
        })
    }

    fn point(
        &self,
        plan: &Plan,
        connections: u32,
        log: &mut CommandLog,
    ) -> Result<pgbench::PgbenchPoint> {
        interrupt::check()?;
        let room = self.database.client_room()?;
        let clients = connections.min(room);
        let warmup = pgbench::Run {
            clients,
            threads: plan.threads,
            duration_secs: WARMUP_SECS,
            script: &self.script,
        };
        self.pgbench.run(self.database.target(), &warmup)?;
        let run = pgbench::Run {
            duration_secs: plan.duration_secs,
            ..warmup
        };
        let (result, shown) = self.pgbench.run(self.database.target(), &run)?;
        log.push(&shown);
        let capped = if clients < connections {
            format!(" (capped from {connections}: max_connections leaves room for {room})")
        } else {
            String::new()
        };
        println!(
            "    {:<22} {clients:>4} clients: {:>9.0} TPS  avg {:>7.2} ms{capped}",
            "pgbench one-row insert", result.tps, result.latency_avg_ms
        );
        Ok(pgbench::PgbenchPoint { clients, result })
    }
}

/// A role that may create the run's databases: `--database-url`, else what
/// `cargo xtask test` would find or start. Returns its URL, the throwaway cluster to
/// keep alive (if one was started) and how to name the server in the report.
fn admin_database(plan: &Plan) -> Result<(String, Option<pg::Database>, String)> {
    Ok(match &plan.database_url {
        Some(url) => {
            let source = format!("{} (--database-url)", pg::conninfo::display(url));
            (url.clone(), None, source)
        }
        None => {
            let database = pg::provide(pg::Mode::Auto)?;
            let source = database.to_string();
            (database.url().to_owned(), Some(database), source)
        }
    })
}

/// The release binaries the run drives.
struct Binaries {
    session_server: PathBuf,
    baseline: PathBuf,
}

impl Binaries {
    fn in_target(target: &Path) -> Result<Self> {
        let release = target.join("release");
        let found = |name: &str| {
            let path = release.join(name);
            if crate::process::is_executable(&path) {
                Ok(path)
            } else {
                Err(Error::failed(format!(
                    "the build succeeded but {} is missing",
                    path.display()
                )))
            }
        };
        Ok(Self {
            session_server: found("session-server")?,
            baseline: found("baseline-server")?,
        })
    }
}

/// The exact command lines of the run, for the doc, with the run's temporary
/// directory shown as `$WORK`, paths relative to the workspace, and each server's
/// address (a port the kernel picked) by the server's name and the run's database as
/// `$DB`, so reruns diff cleanly.
struct CommandLog {
    root: String,
    work: String,
    /// Text to show as a name: `(text, name)`.
    servers: Vec<(String, String)>,
    lines: Vec<String>,
}

impl CommandLog {
    fn new(root: &Path, work: &Path) -> Self {
        Self {
            root: format!("{}/", root.display()),
            work: work.display().to_string(),
            servers: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Logs how `server` was started, under `# NAME:`, and names its address `$NAME`.
    fn server(&mut self, server: &Server, name: &str) {
        self.servers.push((
            format!("http://{}/", server.public()),
            format!("http://${name}/"),
        ));
        self.push(&format!("# {name}: {}", server.shown()));
    }

    /// Shows the run's database name as `$DB`.
    fn database(&mut self, name: &str) {
        self.servers.push((name.to_owned(), "$DB".to_owned()));
    }

    fn push(&mut self, line: &str) {
        let mut line = line.replace(&self.work, "$WORK").replace(&self.root, "");
        for (address, name) in &self.servers {
            line = line.replace(address, name);
        }
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }
}

/// `cargo build --release` of exactly the two binaries the run drives.
fn build_command() -> Command {
    Cargo::from_env().command(&[
        "build",
        "--release",
        "-p",
        "session-server",
        "-p",
        "benches",
        "--bin",
        "session-server",
        "--bin",
        "baseline-server",
    ])
}

/// The workspace root: xtask lives directly in it.
/// `10s`, `2m` or `15` (seconds) as whole seconds, at least one.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 1m"))?;
    let seconds = match unit {
        "s" => Some(value),
        "m" => value.checked_mul(60),
        _ => None,
    }
    .ok_or_else(|| format!("{text:?} is not a duration like 10s or 1m"))?;
    if seconds == 0 {
        return Err("the duration must be at least 1s".to_owned());
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let wrapper = Wrapper::try_parse_from(std::iter::once("load").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Plan::from_args(&wrapper.args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_run() {
        let plan = plan(&[]).expect("defaults parse");
        assert_eq!(plan.store, StoreChoice::Mem);
        assert_eq!(plan.duration_secs, 10);
        assert_eq!(plan.connections, [16, 64, 256]);
        assert_eq!(plan.rounds, 3);
        assert!(plan.idle && plan.write && !plan.pgbench_only);
        assert_eq!((plan.threads, plan.idle_connections), (2, 10_000));
        assert_eq!(plan.invocation(), "cargo xtask load");
    }

    #[test]
    fn flags_parse_and_reproduce_the_invocation() {
        let plan = plan(&[
            "--store",
            "postgres",
            "--duration",
            "1m",
            "--connections",
            "64,16,64",
            "--rounds",
            "1",
            "--no-idle",
            "--no-write",
            "--threads",
            "4",
            "--distinct-users",
        ])
        .expect("flags parse");
        assert_eq!(plan.store, StoreChoice::Postgres);
        assert_eq!(plan.duration_secs, 60);
        assert_eq!(plan.connections, [64, 16], "duplicates dropped, order kept");
        assert_eq!(plan.rounds, 1);
        assert!(!plan.idle && !plan.write);
        assert_eq!(plan.bodies, wrk::Bodies::DistinctUsers);
        assert_eq!(
            plan.invocation(),
            "cargo xtask load --store postgres --duration 60s --connections 64,16 --rounds 1 \
             --threads 4 --distinct-users --no-idle"
        );
    }

    #[test]
    fn metrics_is_a_mode_of_its_own() {
        let metrics = plan(&["--metrics", "--rounds", "5"]).expect("--metrics parses");
        assert!(metrics.metrics && !metrics.limits);
        assert_eq!(
            metrics.invocation(),
            "cargo xtask load --metrics --rounds 5"
        );
        for other in ["--webhooks", "--ws", "--idempotency", "--limits"] {
            assert!(
                plan(&["--metrics", other]).is_err(),
                "--metrics with {other} should be rejected"
            );
        }
    }

    #[test]
    fn bad_flags_are_rejected() {
        let cases: [(&[&str], &str); 8] = [
            (&["--connections", "0"], "zero connections"),
            (&["--connections", ""], "empty list"),
            (&["--duration", "0s"], "zero duration"),
            (&["--duration", "10h"], "unknown unit"),
            (&["--threads", "0"], "zero threads"),
            (&["--rounds", "0"], "zero rounds"),
            (&["--rounds", "26"], "too many rounds"),
            (
                &["--database-url", "postgres://x@y/z"],
                "url without postgres",
            ),
        ];
        for (args, why) in cases {
            assert!(plan(args).is_err(), "{why}: {args:?} should be rejected");
        }
    }

    #[test]
    fn durations_parse() {
        let cases = [
            ("10s", Ok(10)),
            ("2m", Ok(120)),
            ("15", Ok(15)),
            (" 3s ", Ok(3)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text:?}");
        }
        for text in ["", "s", "1.5s", "0", "10ms", "-1s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn the_command_log_hides_temporary_paths_and_drops_repeats() {
        let mut log = CommandLog::new(Path::new("/src/session"), Path::new("/tmp/xtask-load-1-0"));
        log.servers
            .push(("http://127.0.0.1:1/".into(), "http://$BASELINE/".into()));
        log.push("wrk -s /tmp/xtask-load-1-0/post.lua http://127.0.0.1:1/x");
        log.push("/src/session/target/release/baseline-server 127.0.0.1:0");
        log.push("wrk -s /tmp/xtask-load-1-0/post.lua http://127.0.0.1:1/x");
        log.push("wrk http://127.0.0.1:12/x");
        assert_eq!(
            log.lines,
            [
                "wrk -s $WORK/post.lua http://$BASELINE/x",
                "target/release/baseline-server 127.0.0.1:0",
                "wrk http://127.0.0.1:12/x",
            ]
        );
    }
}
