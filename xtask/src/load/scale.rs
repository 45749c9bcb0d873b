//! `cargo xtask load --scale`: how far several stateless instances on one
//! PostgreSQL go, and what gives first.
//!
//! - **Lifecycles per second** with 1, 2 and 3 instances on one fresh
//!   database: `lifecycle-load` (benches) drives whole transactions (create,
//!   WebSocket, redeem, two provider events, the WebSocket's `completed`, the
//!   `completed` webhook), each step on the next instance. Rounds rotate the
//!   order of the instance counts; each count is reported as its median round
//!   and as a ratio to one instance's median.
//! - **Where the CPU goes** during each point: the instances, PostgreSQL's
//!   processes, and everything else (the driver), in cores, from `/proc`.
//! - **Connections**: what the instances hold on the database against its
//!   `max_connections`.
//! - **NOTIFY**: notifying commits per second, and notifications per second in
//!   batches of 100, that the database sustains with three instances
//!   listening (pgbench).
//!
//! Results go to the generated block of docs/scaling.md.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use postgres::fallible_iterator::FallibleIterator;
use serde::Deserialize;

use super::pgbench::{LoadDatabase, Pgbench, Run};
use super::server::{self, Server};
use super::{Binaries, CommandLog, Plan, WARMUP_SECS, files, machine, report};
use crate::cargo;
use crate::error::{Error, Result};
use crate::{interrupt, process};

const DOC: &str = "scaling.md";
/// The provider's shared secret for the run (a load-only value).
const PROVIDER_SECRET: &str = "load-provider-secret";
/// Lifecycles in flight at once.
const CONCURRENCY: u32 = 32;
const INSTANCE_COUNTS: [usize; 3] = [1, 2, 3];
/// pgbench clients of the NOTIFY ceiling.
const NOTIFY_CLIENTS: u32 = 16;
/// Notifications per transaction in the batched NOTIFY ceiling.
const NOTIFY_BATCH: u32 = 100;

/// What `lifecycle-load` printed.
#[derive(Debug, Clone, Deserialize)]
struct Lifecycles {
    lifecycles_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: u64,
    first_failure: Option<String>,
}

/// CPU used during a point, in cores (seconds of CPU per second).
#[derive(Debug, Clone, Copy, Default)]
struct CpuSplit {
    instances: f64,
    postgres: f64,
    other: f64,
}

#[derive(Debug, Clone)]
struct Point {
    instances: usize,
    lifecycles: Lifecycles,
    cpu: CpuSplit,
    /// Connections the instances held on the database.
    connections: i64,
    /// Notifications per second the instances sent, by a listener's count.
    notifications: Notifications,
}

/// Notifications per second on the service's two busy channels.
#[derive(Debug, Clone, Copy, Default)]
struct Notifications {
    /// `session_status`: status announcements for the WebSocket feeds.
    status: f64,
    /// `session_outbox`: dispatcher wake-ups.
    outbox: f64,
}

/// Counts notifications on the service's channels until `stop` is set.
struct Counter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
    started: Instant,
}

impl Counter {
    fn start(database: &LoadDatabase) -> Result<Self> {
        let mut client = database.listener(&["session_status", "session_outbox"])?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut status, mut outbox) = (0u64, 0u64);
            while !stopping.load(std::sync::atomic::Ordering::Acquire) {
                let mut notifications = client.notifications();
                let mut batch = notifications.timeout_iter(std::time::Duration::from_millis(100));
                while let Ok(Some(notification)) = batch.next() {
                    match notification.channel() {
                        "session_status" => status += 1,
                        _ => outbox += 1,
                    }
                }
            }
            (status, outbox)
        });
        Ok(Self {
            stop,
            thread,
            started: Instant::now(),
        })
    }

    fn finish(self) -> Notifications {
        let seconds = self.started.elapsed().as_secs_f64();
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let (status, outbox) = self.thread.join().unwrap_or((0, 0));
        Notifications {
            status: status as f64 / seconds,
            outbox: outbox as f64 / seconds,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct NotifyCeiling {
    single_tps: f64,
    batched_tps: f64,
}

pub(super) fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let root = cargo::workspace_root()?;
    let mut build = super::build_command();
    build.args(["--bin", "lifecycle-load"]);
    let build_shown = format!("cargo {}", process::display_args(&build));
    cargo::step("build", build)?;
    let target = cargo::target_dir(&root)?;
    let bins = Binaries::in_target(&target)?;
    let driver = target.join("release").join("lifecycle-load");
    let pgbench = Pgbench::find()?;

    let work = files::WorkDir::create()?;
    let mut log = CommandLog::new(&root, work.path());
    log.push(&build_shown);
    let (admin_url, _provided, source) = super::admin_database(plan)?;
    let database = LoadDatabase::create(&admin_url, "_scale")?;
    log.database(database.name());
    let receiver = free_loopback_port()?;
    let bootstrap = work.write(
        "bootstrap.toml",
        &files::bootstrap_with_webhook(&format!("http://{receiver}/hook")),
    )?;
    let max_connections = database.integer("SELECT current_setting('max_connections')::bigint")?;
    let autovacuum = database.autovacuum()?;
    let flags = [
        "--provider-secret",
        PROVIDER_SECRET,
        "--webhook-allow-ip",
        "127.0.0.1/32",
        "--webhook-partner-concurrency",
        "64",
    ];
    let start = |count: usize, log: &mut CommandLog| -> Result<Vec<Server>> {
        (0..count)
            .map(|i| {
                let server = Server::session_with(
                    &bins.session_server,
                    &bootstrap,
                    server::Store::Postgres(database.url()),
                    &flags,
                )?;
                log.server(&server, &format!("INSTANCE_{}", i + 1));
                Ok(server)
            })
            .collect()
    };

    let mut points = Vec::new();
    for round in 0..plan.rounds as usize {
        let mut order = INSTANCE_COUNTS;
        order.rotate_left(round % INSTANCE_COUNTS.len());
        for count in order {
            interrupt::check()?;
            cargo::header(
                &format!("round {}/{}", round + 1, plan.rounds),
                &format!("{count} instance(s), {CONCURRENCY} lifecycles in flight"),
            );
            let servers = start(count, &mut log)?;
            let point = measure(plan, &driver, &servers, &database, receiver, &mut log)?;
            println!(
                "    {:.0} lifecycles/s  p50 {:.1} ms  p99 {:.1} ms  cpu: instances {:.2}, postgres {:.2}, other {:.2} cores  {} connections  notifications/s: status {:.0}, outbox {:.0}",
                point.lifecycles.lifecycles_per_sec,
                point.lifecycles.p50_ms,
                point.lifecycles.p99_ms,
                point.cpu.instances,
                point.cpu.postgres,
                point.cpu.other,
                point.connections,
                point.notifications.status,
                point.notifications.outbox
            );
            for server in &servers {
                server.check_running()?;
            }
            points.push(point);
        }
    }

    cargo::header(
        "notify",
        &format!("pgbench, {NOTIFY_CLIENTS} clients, three instances listening"),
    );
    let listening = start(3, &mut log)?;
    let notify = notify_ceiling(plan, &pgbench, &database, &work, &mut log)?;
    drop(listening);
    println!(
        "    {:.0} notifying commits/s; {:.0} notifications/s in batches of {NOTIFY_BATCH}",
        notify.single_tps,
        notify.batched_tps * f64::from(NOTIFY_BATCH)
    );

    let context = format!(
        "- Machine: {}\n- Database: PostgreSQL {} on {source}, max_connections {max_connections}, \
         autovacuum {}\n\
         - Command: `{}` ({} s in all)\n",
        machine::describe("lifecycle-load (benches/src/bin/lifecycle-load)").summary(),
        database.server_version(),
        if autovacuum { "on" } else { "off" },
        plan.invocation(),
        started.elapsed().as_secs()
    );
    let generated = render(&points, notify, max_connections, &context, &log.lines);
    println!("\n{generated}");
    if plan.write {
        let path = root.join("docs").join(DOC);
        let existing = std::fs::read_to_string(&path).ok();
        let text = report::splice(existing.as_deref(), &generated)
            .map_err(|why| Error::failed(format!("{}: {why}", path.display())))?;
        std::fs::write(&path, text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("==> load: wrote docs/{DOC}");
    }
    let failed: u64 = points.iter().map(|p| p.lifecycles.failures).sum();
    if failed > 0 {
        let first = points
            .iter()
            .find_map(|p| p.lifecycles.first_failure.clone())
            .unwrap_or_default();
        return Err(Error::failed(format!(
            "{failed} lifecycles failed; the first: {first}"
        )));
    }
    Ok(())
}

/// One point: the driver against `servers`, with the CPU they and
/// PostgreSQL used meanwhile.
fn measure(
    plan: &Plan,
    driver: &Path,
    servers: &[Server],
    database: &LoadDatabase,
    receiver: std::net::SocketAddr,
    log: &mut CommandLog,
) -> Result<Point> {
    let connections = database.integer(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )?;
    let instances: Vec<String> = servers.iter().map(|s| s.public().to_string()).collect();
    let mut command = Command::new(driver);
    command
        .args(["--receiver", &receiver.to_string()])
        .args(["--instances", &instances.join(",")])
        .args(["--token", files::TOKEN])
        .args(["--provider-secret", PROVIDER_SECRET])
        .args(["--duration", &plan.duration_secs.to_string()])
        .args(["--warmup", &WARMUP_SECS.to_string()])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    log.push(&process::display(&command));

    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let counter = Counter::start(database)?;
    let before = Ticks::read(&pids);
    let began = Instant::now();
    let output = command
        .output()
        .map_err(|e| Error::failed(format!("cannot run lifecycle-load: {e}")))?;
    let wall = began.elapsed().as_secs_f64();
    let after = Ticks::read(&pids);
    let notifications = counter.finish();
    if !output.status.success() {
        return Err(Error::failed(format!(
            "lifecycle-load failed ({})",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout
        .lines()
        .find_map(|line| line.strip_prefix("result "))
        .ok_or_else(|| Error::failed(format!("lifecycle-load printed no result:\n{stdout}")))?;
    let lifecycles: Lifecycles = serde_json::from_str(json)
        .map_err(|e| Error::failed(format!("lifecycle-load's result: {e}: {json}")))?;
    Ok(Point {
        instances: servers.len(),
        lifecycles,
        cpu: after.since(&before, wall),
        connections,
        notifications,
    })
}

/// CPU ticks so far: the instances', PostgreSQL's processes', and the
/// machine's in all.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    instances: u64,
    postgres: u64,
    machine: u64,
}

/// Linux's `USER_HZ`, which `/proc` counts in on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

impl Ticks {
    fn read(instances: &[u32]) -> Self {
        let instances = instances.iter().map(|pid| process_ticks(*pid)).sum();
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "postgres")
            })
            .map(process_ticks)
            .sum();
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let cpu = stat.lines().next()?.strip_prefix("cpu ")?.to_owned();
                // user nice system idle iowait irq softirq steal: busy is all
                // but idle and iowait.
                let fields: Vec<u64> = cpu
                    .split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect();
                Some(
                    fields
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != 3 && *i != 4)
                        .take(6)
                        .map(|(_, v)| v)
                        .sum(),
                )
            })
            .unwrap_or(0);
        Self {
            instances,
            postgres,
            machine,
        }
    }

    fn since(&self, before: &Self, wall_secs: f64) -> CpuSplit {
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / wall_secs;
        let instances = self.instances.saturating_sub(before.instances);
        let postgres = self.postgres.saturating_sub(before.postgres);
        let machine = self.machine.saturating_sub(before.machine);
        CpuSplit {
            instances: cores(instances),
            postgres: cores(postgres),
            other: cores(machine.saturating_sub(instances + postgres)),
        }
    }
}

/// utime + stime of `pid` (all its threads), 0 when it is gone.
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name is in parentheses and may hold spaces: count fields
    // after the last ')'. utime and stime are fields 14 and 15.
    stat.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

fn free_loopback_port() -> Result<std::net::SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| Error::failed(format!("no free loopback port: {e}")))
}

/// pgbench: one `pg_notify` per transaction, then batches.
fn notify_ceiling(
    plan: &Plan,
    pgbench: &Pgbench,
    database: &LoadDatabase,
    work: &files::WorkDir,
    log: &mut CommandLog,
) -> Result<NotifyCeiling> {
    // Payloads shaped like the feed's announcements; distinct within a
    // transaction, since PostgreSQL folds identical ones.
    let single = work.write(
        "notify-single.sql",
        "SELECT pg_notify('scale_probe', 'c5a1b6a8-1111-4c44-9e2b-123456789abc 7');\n",
    )?;
    let batched = work.write(
        "notify-batched.sql",
        &format!(
            "SELECT pg_notify('scale_probe', 'c5a1b6a8-1111-4c44-9e2b-123456789abc ' || g) \
             FROM generate_series(1, {NOTIFY_BATCH}) AS g;\n"
        ),
    )?;
    let mut tps = |script: &Path| -> Result<f64> {
        interrupt::check()?;
        let (result, shown) = pgbench.run(
            database.target(),
            &Run {
                clients: NOTIFY_CLIENTS,
                threads: 2,
                duration_secs: plan.duration_secs,
                script,
            },
        )?;
        log.push(&shown);
        Ok(result.tps)
    };
    Ok(NotifyCeiling {
        single_tps: tps(&single)?,
        batched_tps: tps(&batched)?,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn render(
    points: &[Point],
    notify: NotifyCeiling,
    max_connections: i64,
    context: &str,
    commands: &[String],
) -> String {
    let mut doc =
        String::from("### Measured (`cargo xtask load --scale`, xtask/src/load/scale.rs)\n\n");
    doc.push_str(context);
    doc.push_str(&format!(
        "\nOne fresh database. A lifecycle is `POST /widget/session`, `GET /ws` and its first \
         update, `POST /widget/init`, `processing` and `completed` provider events, then the \
         WebSocket's `completed` and the `completed` webhook; each step goes to the next \
         instance in turn, so with several instances every hand-over crosses instances. \
         {CONCURRENCY} lifecycles in flight; each point follows a {WARMUP_SECS} s warm-up. \
         CPU in cores of the machine's {}: the instances, PostgreSQL's processes, and the \
         rest (mostly the load driver). NOTIFY: notifications per second on the service's \
         two busy channels, counted by a listener of the run's own.\n\n\
         | round | instances | lifecycles/s | p50 ms | p99 ms | CPU instances | CPU PostgreSQL | CPU other | connections | NOTIFY status/s | NOTIFY outbox/s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    let per_round = INSTANCE_COUNTS.len();
    for (i, point) in points.iter().enumerate() {
        doc.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.0} |\n",
            i / per_round + 1,
            point.instances,
            point.lifecycles.lifecycles_per_sec,
            point.lifecycles.p50_ms,
            point.lifecycles.p99_ms,
            point.cpu.instances,
            point.cpu.postgres,
            point.cpu.other,
            point.connections,
            point.notifications.status,
            point.notifications.outbox
        ));
    }
    let medians: Vec<(usize, f64, i64)> = INSTANCE_COUNTS
        .iter()
        .map(|&count| {
            let mut rates: Vec<f64> = points
                .iter()
                .filter(|p| p.instances == count)
                .map(|p| p.lifecycles.lifecycles_per_sec)
                .collect();
            let connections = points
                .iter()
                .filter(|p| p.instances == count)
                .map(|p| p.connections)
                .max()
                .unwrap_or(0);
            (count, median(&mut rates), connections)
        })
        .collect();
    let one = medians.first().map_or(0.0, |m| m.1);
    doc.push_str(
        "\n| instances | median lifecycles/s | ratio to 1 instance | connections held | of max_connections |\n\
         |---|---|---|---|---|\n",
    );
    for (count, rate, connections) in &medians {
        doc.push_str(&format!(
            "| {count} | {rate:.0} | {:.2}× | {connections} | {:.0} % |\n",
            if one > 0.0 { rate / one } else { 0.0 },
            *connections as f64 * 100.0 / max_connections.max(1) as f64
        ));
    }
    doc.push_str(&format!(
        "\nNOTIFY on this database, {NOTIFY_CLIENTS} pgbench clients, with three instances \
         listening: **{:.0}** notifying commits per second (one `pg_notify` each), and \
         **{:.0}** notifications per second in commits of {NOTIFY_BATCH}.\n",
        notify.single_tps,
        notify.batched_tps * f64::from(NOTIFY_BATCH)
    ));
    doc.push_str("\nCommands:\n\n```text\n");
    for line in commands {
        doc.push_str(line);
        doc.push('\n');
    }
    doc.push_str("```\n");
    doc
}
