//! The client side of `cargo xtask load --ws`: holds `GET /ws` sockets against
//! session-server and measures what they cost.
//!
//! `--mode single` (one instance, any store):
//!
//! 1. **create**: sessions for `--duration` seconds on `--concurrency`
//!    connections, throughput and p99, with no socket open;
//! 2. **fan-out**: `--rounds` times, `--fanout` sockets on one new transaction,
//!    then `processing` and `completed` applied; each message's latency is its
//!    receipt minus the instant just before the event was sent;
//! 3. **idle**: `--idle` sockets, one per transaction, opened and left idle; the
//!    server's resident memory (`/proc/<--pid>/status`) before and after;
//! 4. **create** again with those sockets open.
//!
//! `--mode across`: the fan-out only, with the sockets on `--addr` and the
//! events sent to `--events-addr` (a second instance on the same database).
//!
//! Prints `result {json}` on stdout.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use session_core::provider::ProviderKey;
use session_core::secret::Secret;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use benches::client::Connection;

const SEED_BODY: &str = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100","type":"buy"}"#;

/// How long every awaited message may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// Sockets opened at once.
const OPENING: usize = 64;
/// Let the server's allocator settle before reading its memory.
const SETTLE: Duration = Duration::from_secs(2);

struct Args {
    mode: String,
    addr: SocketAddr,
    events_addr: Option<SocketAddr>,
    token: String,
    provider_secret: String,
    pid: Option<u32>,
    idle: usize,
    fanout: usize,
    rounds: usize,
    duration: Duration,
    concurrency: usize,
}

#[derive(Serialize, Default)]
struct Create {
    sessions: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: u64,
}

#[derive(Serialize, Default)]
struct Fanout {
    subscribers: usize,
    rounds: usize,
    messages: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize, Default)]
struct Idle {
    sockets: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    per_socket_kib: f64,
}

#[derive(Serialize, Default)]
struct Outcome {
    mode: String,
    create_without: Option<Create>,
    create_with: Option<Create>,
    fanout: Option<Fanout>,
    idle: Option<Idle>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("ws-load: {message}");
            eprintln!(
                "usage: ws-load --mode single|across --addr A [--events-addr B] --token T \
                 --provider-secret S [--pid P] [--idle N] [--fanout N] [--rounds N] \
                 [--duration SECS] [--concurrency N]"
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = rlimit::increase_nofile_limit(args.idle as u64 + args.fanout as u64 + 1024) {
        eprintln!("ws-load: cannot raise the open-file limit: {e}");
    }
    // One thread: the client must not take a core from the server it measures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ws-load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(outcome) => {
            println!(
                "result {}",
                serde_json::to_string(&outcome).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ws-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        mode: "single".into(),
        addr: "127.0.0.1:8080".parse().map_err(|_| "default address")?,
        events_addr: None,
        token: String::new(),
        provider_secret: String::new(),
        pid: None,
        idle: 10_000,
        fanout: 1_000,
        rounds: 5,
        duration: Duration::from_secs(10),
        concurrency: 32,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("{text:?} is not a number"))
        };
        match flag.as_str() {
            "--mode" => parsed.mode = value()?,
            "--addr" => parsed.addr = value()?.parse().map_err(|_| "--addr is not ADDR:PORT")?,
            "--events-addr" => {
                parsed.events_addr = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--events-addr is not ADDR:PORT")?,
                );
            }
            "--token" => parsed.token = value()?,
            "--provider-secret" => parsed.provider_secret = value()?,
            "--pid" => parsed.pid = Some(value()?.parse().map_err(|_| "--pid is not a pid")?),
            "--idle" => parsed.idle = number(value()?)?,
            "--fanout" => parsed.fanout = number(value()?)?.max(1),
            "--rounds" => parsed.rounds = number(value()?)?.max(1),
            "--duration" => parsed.duration = Duration::from_secs(number(value()?)?.max(1) as u64),
            "--concurrency" => parsed.concurrency = number(value()?)?.clamp(1, 1024),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if parsed.token.is_empty() || parsed.provider_secret.is_empty() {
        return Err("--token and --provider-secret are required".into());
    }
    if !matches!(parsed.mode.as_str(), "single" | "across") {
        return Err(format!("--mode {:?} is not single or across", parsed.mode));
    }
    Ok(parsed)
}

async fn run(args: Args) -> Result<Outcome, String> {
    let key = ProviderKey::new(&Secret::new(args.provider_secret.as_str()))
        .ok_or("the provider secret is unusable")?;
    let events_to = args.events_addr.unwrap_or(args.addr);
    let mut outcome = Outcome {
        mode: args.mode.clone(),
        ..Outcome::default()
    };
    if args.mode == "across" {
        outcome.fanout = Some(fanout(&args, &key, events_to).await?);
        return Ok(outcome);
    }
    // Warm up the server (and its allocator) before anything is measured.
    create_for(&args, Duration::from_secs(2)).await?;
    outcome.create_without = Some(create_for(&args, args.duration).await?);
    eprintln!("ws-load: create without sockets done");
    outcome.fanout = Some(fanout(&args, &key, events_to).await?);
    eprintln!("ws-load: fan-out done");

    let ids = create_count(&args, args.idle).await?;
    tokio::time::sleep(SETTLE).await;
    let before = rss_kib(args.pid)?;
    let (stop, stopped) = watch::channel(false);
    let mut held = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(OPENING) {
        let opened = futures_util::future::join_all(
            chunk.iter().map(|id| subscribe(args.addr, &args.token, id)),
        )
        .await;
        for socket in opened {
            let mut socket = socket?;
            first_message(&mut socket).await?;
            let mut stopped = stopped.clone();
            held.push(tokio::spawn(async move {
                // Idle: read (and so answer pings) until told to stop.
                loop {
                    tokio::select! {
                        next = socket.next() => match next {
                            Some(Ok(_)) => {}
                            _ => return false,
                        },
                        _ = stopped.changed() => return true,
                    }
                }
            }));
        }
    }
    tokio::time::sleep(SETTLE).await;
    let after = rss_kib(args.pid)?;
    eprintln!("ws-load: {} idle sockets open", held.len());
    outcome.idle = Some(Idle {
        sockets: held.len(),
        rss_before_kib: before,
        rss_after_kib: after,
        per_socket_kib: after.saturating_sub(before) as f64 / held.len().max(1) as f64,
    });
    outcome.create_with = Some(create_for(&args, args.duration).await?);
    let _ = stop.send(true);
    let mut alive = 0;
    for task in held {
        if task.await.unwrap_or(false) {
            alive += 1;
        }
    }
    if alive != ids.len() {
        return Err(format!(
            "{} of {} idle sockets were closed during the run",
            ids.len() - alive,
            ids.len()
        ));
    }
    Ok(outcome)
}

use benches::live::{Socket, subscribe};

/// The next text message's `sequence`, and when it was received (taken
/// before anything is decoded, so the client's own work adds little to the
/// measured latency).
async fn next_sequence(socket: &mut Socket) -> Result<(u64, Instant), String> {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    return sequence_of(text.as_str())
                        .map(|sequence| (sequence, at))
                        .ok_or_else(|| format!("a message without a sequence: {text}"));
                }
                Some(Ok(_)) => {}
                other => return Err(format!("the socket ended: {other:?}")),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .map_err(|_| "no message in time".to_owned())?
}

/// The `sequence` of a `tx.update`, read without decoding the whole message
/// (the server writes it last, as an integer).
fn sequence_of(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once("\"sequence\":")?;
    rest.trim_end_matches('}').trim().parse().ok()
}

async fn first_message(socket: &mut Socket) -> Result<(), String> {
    match next_sequence(socket).await?.0 {
        1 => Ok(()),
        other => Err(format!("the first message has sequence {other}")),
    }
}

/// `--rounds` transactions, each followed by `--fanout` sockets; each change's
/// delivery latency on every socket.
async fn fanout(args: &Args, key: &ProviderKey, events_to: SocketAddr) -> Result<Fanout, String> {
    let mut latencies = Vec::new();
    let mut events = Connection::open(events_to).await?;
    for round in 0..args.rounds {
        let id = create_count(args, 1)
            .await?
            .pop()
            .ok_or("no session was created")?;
        let (receipts, mut received) = mpsc::unbounded_channel::<(u64, Instant)>();
        let mut tasks = Vec::new();
        let mut sockets = Vec::new();
        for _ in 0..args.fanout {
            sockets.push(subscribe(args.addr, &args.token, &id).await?);
        }
        for mut socket in sockets {
            first_message(&mut socket).await?;
            let receipts = receipts.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..2 {
                    let _ = receipts.send(next_sequence(&mut socket).await?);
                }
                Ok::<_, String>(())
            }));
        }
        drop(receipts);
        for (n, status) in ["processing", "completed"].into_iter().enumerate() {
            let body = format!(
                r#"{{"event_id":"ws-load-{round}-{status}-{id}","merchant_transaction_id":"{id}","status":"{status}"}}"#
            );
            let signature = key.sign_hex(body.as_bytes());
            let sent = Instant::now();
            let answer = events.provider_event(body, &signature).await?;
            if answer.status != 200 {
                return Err(format!("the {status} event answered {}", answer.status));
            }
            for _ in 0..args.fanout {
                let (sequence, at) = tokio::time::timeout(PATIENCE, received.recv())
                    .await
                    .map_err(|_| "a subscriber missed an update")?
                    .ok_or("the subscribers stopped early")?;
                if sequence != n as u64 + 2 {
                    return Err(format!("expected sequence {}, got {sequence}", n + 2));
                }
                latencies.push(at.duration_since(sent));
            }
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
    }
    latencies.sort();
    Ok(Fanout {
        subscribers: args.fanout,
        rounds: args.rounds,
        messages: latencies.len(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    })
}

fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1e3
}

/// Creates sessions for `duration`; throughput and latency.
async fn create_for(args: &Args, duration: Duration) -> Result<Create, String> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let (ids, latencies, failures) = create(args, move |_| Instant::now() < deadline).await?;
    let secs = started.elapsed().as_secs_f64();
    let mut latencies = latencies;
    latencies.sort();
    Ok(Create {
        sessions: ids.len() as u64,
        per_sec: ids.len() as f64 / secs,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        failures,
    })
}

/// Creates `count` sessions; their ids.
async fn create_count(args: &Args, count: usize) -> Result<Vec<String>, String> {
    let (ids, _, failures) = create(args, move |started| started < count).await?;
    if failures > 0 {
        return Err(format!("{failures} session creations failed"));
    }
    Ok(ids)
}

type Created = (Vec<String>, Vec<Duration>, u64);

async fn create(
    args: &Args,
    more: impl Fn(usize) -> bool + Clone + Send + 'static,
) -> Result<Created, String> {
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let mut connection = Connection::open(args.addr).await?;
        let token = args.token.clone();
        let started = Arc::clone(&started);
        let more = more.clone();
        workers.push(tokio::spawn(async move {
            let mut mine: Created = (Vec::new(), Vec::new(), 0);
            while more(started.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                let sent = Instant::now();
                let answer = connection.create_session(&token, SEED_BODY).await?;
                mine.1.push(sent.elapsed());
                let id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["merchant_transaction_id"].as_str().map(str::to_owned));
                match (answer.status, id) {
                    (200, Some(id)) => mine.0.push(id),
                    _ => mine.2 += 1,
                }
            }
            Ok::<_, String>(mine)
        }));
    }
    let mut all: Created = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (ids, latencies, failures) = worker.await.map_err(|e| e.to_string())??;
        all.0.extend(ids);
        all.1.extend(latencies);
        all.2 += failures;
    }
    Ok(all)
}

fn rss_kib(pid: Option<u32>) -> Result<u64, String> {
    let Some(pid) = pid else {
        return Ok(0);
    };
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path} has no VmRSS"))
}
