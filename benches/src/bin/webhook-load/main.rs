//! `webhook-load`: the client side of `cargo xtask load --webhooks`. It is the
//! partner's webhook endpoint (answering 200 at once) and the load: it opens
//! sessions, then applies provider events as fast as session-server takes them, then
//! at half that rate, and reports what it measured as one JSON line.
//!
//! Usage: `webhook-load --token T --provider-secret S [--duration SECS]
//! [--concurrency N] [--create-only]`. It prints `receiver listening on ADDR`, then
//! reads session-server's public address from a line on stdin (the server's
//! bootstrap names the receiver, so the receiver must exist first), runs, and prints
//! `result {json}`.
//!
//! Phases, each on the same server and database:
//! 1. **create**: `POST /widget/session` with N connections for SECS; its rate is the
//!    session-create figure (with `--create-only`, the only phase).
//! 2. **ceiling**: N connections apply `processing` then `completed` to those
//!    transactions, as fast as answers come, for SECS. Deliveries are counted as they
//!    arrive; the backlog (applied minus delivered) is sampled every 250 ms.
//! 3. **latency**: the same pairs at half the ceiling's event rate, sent on a fixed
//!    schedule (not waiting for answers to decide when to send); each delivery's
//!    receipt time minus its `updated_at` is its commit-to-receipt latency.

mod receiver;

use std::collections::HashSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use session_core::provider::ProviderKey;
use session_core::secret::Secret;
use tokio::sync::mpsc;

use benches::client::{self, Connection};
use receiver::Received;

/// The seed request of SPEC.md.
const SEED_BODY: &str = session_core::example::SEED_BODY;
/// The two changes each transaction goes through, in order.
const STATUSES: [&str; 2] = ["processing", "completed"];
/// How often the ceiling phase samples the backlog.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long the run waits for the last deliveries of a phase.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

struct Args {
    token: String,
    provider_secret: String,
    duration: Duration,
    concurrency: usize,
    create_only: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("webhook-load: {message}");
            eprintln!(
                "usage: webhook-load --token T --provider-secret S [--duration SECS] \
                 [--concurrency N] [--create-only]"
            );
            return ExitCode::FAILURE;
        }
    };
    // One thread: the client must not take a core from the server it measures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("webhook-load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(result) => {
            let line = serde_json::to_string(&result).unwrap_or_default();
            println!("result {line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("webhook-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        token: String::new(),
        provider_secret: String::new(),
        duration: Duration::from_secs(10),
        concurrency: 32,
        create_only: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--token" => parsed.token = value()?,
            "--provider-secret" => parsed.provider_secret = value()?,
            "--duration" => {
                let text = value()?;
                let secs: u64 = text
                    .parse()
                    .map_err(|_| format!("--duration {text:?} is not whole seconds"))?;
                parsed.duration = Duration::from_secs(secs.max(1));
            }
            "--concurrency" => {
                let text = value()?;
                parsed.concurrency = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| format!("--concurrency {text:?} is not 1 to 1024"))?;
            }
            "--create-only" => parsed.create_only = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.token.is_empty() || parsed.provider_secret.is_empty() {
        return Err("--token and --provider-secret are required".into());
    }
    Ok(parsed)
}

/// Everything measured, as printed.
#[derive(Serialize)]
struct RunResult {
    create: CreateResult,
    ceiling: Option<CeilingResult>,
    latency: Option<LatencyResult>,
    flaws: receiver::Flaws,
}

#[derive(Serialize)]
struct CreateResult {
    sessions: u64,
    secs: f64,
    per_sec: f64,
    failures: u64,
}

#[derive(Serialize)]
struct CeilingResult {
    events: u64,
    secs: f64,
    events_per_sec: f64,
    delivered_in_window: u64,
    deliveries_per_sec: f64,
    /// Deliveries over events applied in the window's second half: at or above 1.0
    /// the dispatcher keeps up (the backlog does not grow).
    steady_ratio: f64,
    backlog_mid: u64,
    backlog_end: u64,
    backlog_max: u64,
    drain_secs: f64,
    failures: u64,
    /// The transactions ran out before the time was up.
    ran_out: bool,
}

#[derive(Serialize)]
struct LatencyResult {
    target_events_per_sec: f64,
    events: u64,
    events_per_sec: f64,
    deliveries: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    drain_secs: f64,
    failures: u64,
}

async fn run(args: Args) -> Result<RunResult, String> {
    let key = ProviderKey::new(&Secret::new(args.provider_secret.as_str()))
        .ok_or("the provider secret is not usable as a key")?;
    let (listener, address) = receiver::bind().await?;
    let received = Arc::new(Received::default());
    receiver::serve(listener, Arc::clone(&received));
    println!("receiver listening on {address}");
    let server = read_server_address()?;

    let (transactions, create) = create_phase(server, &args).await?;
    eprintln!(
        "create: {} sessions in {:.1}s ({:.0}/s, {} failed)",
        create.sessions, create.secs, create.per_sec, create.failures
    );
    if args.create_only {
        return Ok(RunResult {
            create,
            ceiling: None,
            latency: None,
            flaws: received.flaws(),
        });
    }
    let events = Arc::new(Events { key });
    let pool = Arc::new(Pool::new(transactions));
    let ceiling = ceiling_phase(server, &args, &events, &pool, &received).await?;
    eprintln!(
        "ceiling: {} events in {:.1}s ({:.0}/s); delivered {:.0}/s, steady ratio {:.2}, \
         backlog mid {} end {} max {}, drained in {:.1}s",
        ceiling.events,
        ceiling.secs,
        ceiling.events_per_sec,
        ceiling.deliveries_per_sec,
        ceiling.steady_ratio,
        ceiling.backlog_mid,
        ceiling.backlog_end,
        ceiling.backlog_max,
        ceiling.drain_secs
    );
    let latency = latency_phase(
        server,
        &args,
        &events,
        ceiling.events_per_sec / 2.0,
        &pool,
        &received,
    )
    .await?;
    eprintln!(
        "latency: {} events at {:.0}/s (target {:.0}/s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latency.events,
        latency.events_per_sec,
        latency.target_events_per_sec,
        latency.p50_ms,
        latency.p99_ms,
        latency.max_ms
    );
    Ok(RunResult {
        create,
        ceiling: Some(ceiling),
        latency: Some(latency),
        flaws: received.flaws(),
    })
}

fn read_server_address() -> Result<SocketAddr, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the server address: {e}"))?;
    line.trim()
        .parse()
        .map_err(|_| format!("{:?} is not the server's address", line.trim()))
}

/// Opens sessions with `concurrency` connections for the run's duration.
async fn create_phase(
    server: SocketAddr,
    args: &Args,
) -> Result<(Vec<String>, CreateResult), String> {
    let started = Instant::now();
    let (transactions, failures) =
        create_sessions(server, args, Until::Deadline(started + args.duration)).await?;
    let secs = started.elapsed().as_secs_f64();
    let sessions = transactions.len() as u64;
    let result = CreateResult {
        sessions,
        secs,
        per_sec: sessions as f64 / secs,
        failures,
    };
    Ok((transactions, result))
}

/// At least `count` more sessions, for a phase the first ones did not cover.
async fn more_transactions(
    server: SocketAddr,
    args: &Args,
    count: usize,
) -> Result<Vec<String>, String> {
    let (transactions, _) = create_sessions(server, args, Until::Count(count)).await?;
    Ok(transactions)
}

/// When session creation stops.
#[derive(Clone, Copy)]
enum Until {
    Deadline(Instant),
    Count(usize),
}

/// Opens sessions with `concurrency` connections; returns their ids and how many
/// requests failed.
async fn create_sessions(
    server: SocketAddr,
    args: &Args,
    until: Until,
) -> Result<(Vec<String>, u64), String> {
    let created = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let mut connection = Connection::open(server).await?;
        let created = Arc::clone(&created);
        let failures = Arc::clone(&failures);
        let started = Arc::clone(&started);
        let token = args.token.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let more = match until {
                    Until::Deadline(deadline) => Instant::now() < deadline,
                    Until::Count(count) => started.fetch_add(1, Ordering::Relaxed) < count,
                };
                if !more {
                    break;
                }
                let answer = connection.create_session(&token, SEED_BODY).await?;
                match transaction_id(&answer) {
                    Some(id) => mine.push(id),
                    None => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            created
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(mine);
            Ok::<(), String>(())
        }));
    }
    join_all(workers).await?;
    let transactions = std::mem::take(&mut *created.lock().unwrap_or_else(PoisonError::into_inner));
    Ok((transactions, failures.load(Ordering::Relaxed)))
}

/// The `merchant_transaction_id` of a 200 answer to `POST /widget/session`.
fn transaction_id(answer: &client::Answer) -> Option<String> {
    if answer.status != 200 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    value
        .get("merchant_transaction_id")?
        .as_str()
        .map(str::to_owned)
}

async fn join_all(workers: Vec<tokio::task::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    for worker in workers {
        worker
            .await
            .map_err(|e| format!("a worker panicked: {e}"))??;
    }
    Ok(())
}

/// The transactions the event phases take, each once.
struct Pool {
    transactions: Vec<String>,
    next: AtomicUsize,
}

impl Pool {
    fn new(transactions: Vec<String>) -> Self {
        Self {
            transactions,
            next: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> Option<&str> {
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        self.transactions.get(at).map(String::as_str)
    }

    fn left(&self) -> usize {
        self.transactions
            .len()
            .saturating_sub(self.next.load(Ordering::Relaxed))
    }
}

/// Signed provider events.
struct Events {
    key: ProviderKey,
}

impl Events {
    /// Applies both changes to `transaction`, in order; returns how many applied.
    async fn apply_pair(
        &self,
        connection: &mut Connection,
        transaction: &str,
    ) -> Result<u64, String> {
        let mut applied = 0;
        for status in STATUSES {
            let body = format!(
                r#"{{"event_id":"load-{transaction}-{status}","merchant_transaction_id":"{transaction}","status":"{status}"}}"#
            );
            let signature = self.key.sign_hex(body.as_bytes());
            let answer = connection.provider_event(body, &signature).await?;
            if answer.status == 200 && contains(&answer.body, br#""applied":true"#) {
                applied += 1;
            }
        }
        Ok(applied)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Applies events as fast as the server answers, for the run's duration.
async fn ceiling_phase(
    server: SocketAddr,
    args: &Args,
    events: &Arc<Events>,
    pool: &Arc<Pool>,
    received: &Arc<Received>,
) -> Result<CeilingResult, String> {
    let applied = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let delivered_before = received.count();
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut connections = Vec::new();
    for _ in 0..args.concurrency {
        connections.push(Connection::open(server).await?);
    }
    let mut workers = Vec::new();
    for mut connection in connections {
        let applied = Arc::clone(&applied);
        let failures = Arc::clone(&failures);
        let pool = Arc::clone(pool);
        let events = Arc::clone(events);
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Some(transaction) = pool.take() else {
                    return Ok::<bool, String>(true);
                };
                let count = events.apply_pair(&mut connection, transaction).await?;
                applied.fetch_add(count, Ordering::Relaxed);
                failures.fetch_add(2 - count, Ordering::Relaxed);
            }
            Ok(false)
        }));
    }
    let sampler = {
        let applied = Arc::clone(&applied);
        let received = Arc::clone(received);
        async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            loop {
                ticker.tick().await;
                let delivered = received.count() - delivered_before;
                samples.push((
                    started.elapsed().as_secs_f64(),
                    applied.load(Ordering::Relaxed),
                    delivered,
                ));
                if Instant::now() >= deadline {
                    return samples;
                }
            }
        }
    };
    let mut samples = sampler.await;
    let mut ran_out = false;
    for worker in workers {
        ran_out |= worker
            .await
            .map_err(|e| format!("a worker panicked: {e}"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    let events_applied = applied.load(Ordering::Relaxed);
    let delivered_in_window = received.count() - delivered_before;
    samples.push((secs, events_applied, delivered_in_window));
    let drain_started = Instant::now();
    wait_for(received, delivered_before + events_applied).await?;
    let drain_secs = drain_started.elapsed().as_secs_f64();

    let backlog = |(_, applied, delivered): (f64, u64, u64)| applied.saturating_sub(delivered);
    let mid = samples
        .iter()
        .copied()
        .find(|(at, _, _)| *at >= secs / 2.0)
        .unwrap_or((0.0, 0, 0));
    let end = samples.last().copied().unwrap_or(mid);
    let applied_late = end.1.saturating_sub(mid.1);
    let delivered_late = end.2.saturating_sub(mid.2);
    Ok(CeilingResult {
        events: events_applied,
        secs,
        events_per_sec: events_applied as f64 / secs,
        delivered_in_window,
        deliveries_per_sec: delivered_in_window as f64 / secs,
        steady_ratio: delivered_late as f64 / applied_late.max(1) as f64,
        backlog_mid: backlog(mid),
        backlog_end: backlog(end),
        backlog_max: samples.iter().copied().map(backlog).max().unwrap_or(0),
        drain_secs,
        failures: failures.load(Ordering::Relaxed),
        ran_out,
    })
}

/// Waits until `received` has counted `total` deliveries.
async fn wait_for(received: &Received, total: u64) -> Result<(), String> {
    let started = Instant::now();
    while received.count() < total {
        if started.elapsed() > DRAIN_LIMIT {
            return Err(format!(
                "only {} of {total} deliveries arrived within {}s",
                received.count(),
                DRAIN_LIMIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Sends pairs on a fixed schedule at `events_per_sec`, then reads the latency of
/// their deliveries.
async fn latency_phase(
    server: SocketAddr,
    args: &Args,
    events: &Arc<Events>,
    events_per_sec: f64,
    pool: &Arc<Pool>,
    received: &Arc<Received>,
) -> Result<LatencyResult, String> {
    let pairs_per_sec = (events_per_sec / 2.0).max(1.0);
    let pairs = (pairs_per_sec * args.duration.as_secs_f64()).ceil() as usize;
    let pool = if pool.left() >= pairs {
        Arc::clone(pool)
    } else {
        Arc::new(Pool::new(more_transactions(server, args, pairs).await?))
    };
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel();
    for _ in 0..args.concurrency {
        let _ = idle_tx.send(Connection::open(server).await?);
    }
    let applied = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut sent = HashSet::new();
    let delivered_before = received.count();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / pairs_per_sec);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = Vec::new();
    for _ in 0..pairs {
        ticker.tick().await;
        let Some(transaction) = pool.take() else {
            break;
        };
        sent.insert(transaction.to_owned());
        // A free connection, or a new one when all are busy: the schedule, not the
        // answers, decides when each pair goes.
        let connection = match idle_rx.try_recv() {
            Ok(connection) => connection,
            Err(_) => Connection::open(server).await?,
        };
        let transaction = transaction.to_owned();
        let applied = Arc::clone(&applied);
        let failures = Arc::clone(&failures);
        let idle_tx = idle_tx.clone();
        let events = Arc::clone(events);
        in_flight.push(tokio::spawn(async move {
            let mut connection = connection;
            let count = events.apply_pair(&mut connection, &transaction).await?;
            applied.fetch_add(count, Ordering::Relaxed);
            failures.fetch_add(2 - count, Ordering::Relaxed);
            let _ = idle_tx.send(connection);
            Ok::<(), String>(())
        }));
    }
    join_all(in_flight).await?;
    let secs = started.elapsed().as_secs_f64();
    let events_applied = applied.load(Ordering::Relaxed);
    let drain_started = Instant::now();
    wait_for(received, delivered_before + events_applied).await?;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let mut latencies: Vec<i64> = received
        .receipts_of(&sent)
        .into_iter()
        .map(|receipt| receipt.latency_us)
        .collect();
    latencies.sort_unstable();
    let quantile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let at = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[at] as f64 / 1000.0
    };
    Ok(LatencyResult {
        target_events_per_sec: pairs_per_sec * 2.0,
        events: events_applied,
        events_per_sec: events_applied as f64 / secs,
        deliveries: latencies.len(),
        p50_ms: quantile(0.50),
        p90_ms: quantile(0.90),
        p99_ms: quantile(0.99),
        max_ms: quantile(1.0),
        drain_secs,
        failures: failures.load(Ordering::Relaxed),
    })
}
