//! `lifecycle-load`: the client side of `cargo xtask load --scale`. It drives
//! whole transaction lifecycles through one or more session-server instances
//! on one database, and is the partner's webhook endpoint.
//!
//! One lifecycle, each step on the next instance in turn so that every
//! hand-over crosses instances when there are several:
//! 1. `POST /widget/session` (instance i),
//! 2. `GET /ws?tx_id=...` opened and its first update read (instance i+1),
//! 3. `POST /widget/init` (instance i+2),
//! 4. `POST /provider/events` `processing`, then `completed` (instance i),
//! 5. done when the WebSocket has said `completed` and the webhook for
//!    `completed` has arrived.
//!
//! Usage: `lifecycle-load --receiver ADDR --instances ADDR,ADDR,... --token T
//! --provider-secret S [--duration SECS] [--warmup SECS] [--concurrency N]`.
//! It prints `result {json}`: lifecycles per second and their latency.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use benches::client::{Answer, Connection};
use benches::live::{Socket, subscribe};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use session_core::provider::ProviderKey;
use session_core::request::INIT_SCHEMA;
use session_core::secret::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const SEED_BODY: &str = session_core::example::SEED_BODY;
/// How long any one step may take before the lifecycle counts as failed.
const PATIENCE: Duration = Duration::from_secs(20);

struct Args {
    receiver: SocketAddr,
    instances: Vec<SocketAddr>,
    token: String,
    provider_secret: String,
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
}

#[derive(Serialize)]
struct Outcome {
    instances: usize,
    concurrency: usize,
    seconds: f64,
    lifecycles: u64,
    lifecycles_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: u64,
    first_failure: Option<String>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("lifecycle-load: {message}");
            eprintln!(
                "usage: lifecycle-load --receiver ADDR --instances ADDR,... --token T \
                 --provider-secret S [--duration SECS] [--warmup SECS] [--concurrency N]"
            );
            return ExitCode::FAILURE;
        }
    };
    // One thread: the client must take as little as it can of the cores it
    // shares with the servers and the database.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lifecycle-load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(outcome) => {
            let json = serde_json::to_string(&outcome).unwrap_or_default();
            println!("result {json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("lifecycle-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut values: HashMap<String, String> = HashMap::new();
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or_else(|| format!("{flag} needs a value"))?;
        values.insert(flag, value);
    }
    let mut take = |flag: &str| {
        values
            .remove(flag)
            .ok_or_else(|| format!("{flag} is required"))
    };
    let number = |text: String, flag: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("{flag} takes a whole number"))
    };
    let receiver = take("--receiver")?
        .parse()
        .map_err(|_| "--receiver takes an address".to_owned())?;
    let instances = take("--instances")?
        .split(',')
        .map(|text| text.parse().map_err(|_| format!("not an address: {text}")))
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    let token = take("--token")?;
    let provider_secret = take("--provider-secret")?;
    let duration = Duration::from_secs(number(
        take("--duration").unwrap_or_else(|_| "10".into()),
        "--duration",
    )?);
    let warmup = Duration::from_secs(number(
        take("--warmup").unwrap_or_else(|_| "2".into()),
        "--warmup",
    )?);
    let concurrency = usize::try_from(number(
        take("--concurrency").unwrap_or_else(|_| "32".into()),
        "--concurrency",
    )?)
    .map_err(|_| "--concurrency is too large".to_owned())?;
    if let Some(flag) = values.keys().next() {
        return Err(format!("unknown flag {flag}"));
    }
    if instances.is_empty() || concurrency == 0 {
        return Err("--instances and --concurrency must not be empty or zero".into());
    }
    Ok(Args {
        receiver,
        instances,
        token,
        provider_secret,
        duration,
        warmup,
        concurrency,
    })
}

/// Who waits for which transaction's `completed` webhook.
#[derive(Default)]
struct Waiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Waiters {
    fn expect(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.to_owned(), tx);
        rx
    }

    fn arrived(&self, id: &str) {
        if let Some(waiter) = self.lock().remove(id) {
            let _ = waiter.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What every worker shares.
struct Shared {
    args: Args,
    key: ProviderKey,
    waiters: Waiters,
    measuring: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
    samples: Mutex<Vec<Duration>>,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

async fn run(args: Args) -> Result<Outcome, String> {
    let key = ProviderKey::new(&Secret::new(args.provider_secret.as_str()))
        .ok_or("the provider secret must not be empty")?;
    let listener = TcpListener::bind(args.receiver)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.receiver))?;
    let shared = Arc::new(Shared {
        args,
        key,
        waiters: Waiters::default(),
        measuring: false.into(),
        stop: false.into(),
        samples: Mutex::new(Vec::new()),
        failures: AtomicU64::new(0),
        first_failure: Mutex::new(None),
    });
    serve_receiver(listener, Arc::clone(&shared));

    let mut workers = Vec::new();
    for worker in 0..shared.args.concurrency {
        let shared = Arc::clone(&shared);
        workers.push(tokio::spawn(async move { work(worker, shared).await }));
    }
    tokio::time::sleep(shared.args.warmup).await;
    shared.measuring.store(true, Ordering::Release);
    let measured_from = Instant::now();
    tokio::time::sleep(shared.args.duration).await;
    shared.measuring.store(false, Ordering::Release);
    let seconds = measured_from.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Release);
    for worker in workers {
        let _ = worker.await;
    }

    let mut samples = shared
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    samples.sort_unstable();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let lifecycles = samples.len() as u64;
    Ok(Outcome {
        instances: shared.args.instances.len(),
        concurrency: shared.args.concurrency,
        seconds,
        lifecycles,
        lifecycles_per_sec: lifecycles as f64 / seconds,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        failures: shared.failures.load(Ordering::Acquire),
        first_failure: shared
            .first_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    })
}

/// One worker: lifecycles back to back until told to stop. Only lifecycles
/// that start and end inside the measured window count.
async fn work(worker: usize, shared: Arc<Shared>) {
    let mut connections: Vec<Option<Connection>> =
        shared.args.instances.iter().map(|_| None).collect();
    let mut round = worker;
    while !shared.stop.load(Ordering::Acquire) {
        let counted = shared.measuring.load(Ordering::Acquire);
        let began = Instant::now();
        let outcome =
            tokio::time::timeout(PATIENCE * 3, lifecycle(&shared, &mut connections, round))
                .await
                .unwrap_or_else(|_| Err("a lifecycle took longer than a minute".into()));
        round += shared.args.concurrency;
        match outcome {
            Ok(()) if counted && shared.measuring.load(Ordering::Acquire) => shared
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(began.elapsed()),
            Ok(()) => {}
            Err(why) => {
                shared.failures.fetch_add(1, Ordering::AcqRel);
                shared
                    .first_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(why);
                // A connection that failed is opened again.
                connections.iter_mut().for_each(|c| *c = None);
            }
        }
    }
}

async fn lifecycle(
    shared: &Shared,
    connections: &mut [Option<Connection>],
    round: usize,
) -> Result<(), String> {
    let instances = &shared.args.instances;
    let at = |step: usize| (round + step) % instances.len();

    let created = post(
        connection(connections, instances, at(0)).await?,
        "/widget/session",
        SEED_BODY.into(),
        &[(
            AUTHORIZATION.as_str(),
            &format!("Bearer {}", shared.args.token),
        )],
    )
    .await?;
    expect_ok("POST /widget/session", &created)?;
    let session: serde_json::Value =
        serde_json::from_slice(&created.body).map_err(|e| format!("session answer: {e}"))?;
    let id = session["merchant_transaction_id"]
        .as_str()
        .ok_or("no merchant_transaction_id")?
        .to_owned();

    let webhook = shared.waiters.expect(&id);
    let mut socket = subscribe(instances[at(1)], &shared.args.token, &id).await?;
    next_status(&mut socket)
        .await
        .map_err(|why| format!("the first update: {why}"))?;

    let init: serde_json::Map<String, serde_json::Value> = INIT_SCHEMA
        .required
        .iter()
        .map(|field| ((*field).to_owned(), session[*field].clone()))
        .collect();
    let redeemed = post(
        connection(connections, instances, at(2)).await?,
        "/widget/init",
        serde_json::Value::Object(init).to_string(),
        &[],
    )
    .await?;
    expect_ok("POST /widget/init", &redeemed)?;

    for status in ["processing", "completed"] {
        let body = format!(
            r#"{{"event_id":"scale-{id}-{status}","merchant_transaction_id":"{id}","status":"{status}"}}"#
        );
        let signature = shared.key.sign_hex(body.as_bytes());
        let applied = post(
            connection(connections, instances, at(0)).await?,
            "/provider/events",
            body,
            &[("x-signature", &signature)],
        )
        .await?;
        expect_ok("POST /provider/events", &applied)?;
        let report: serde_json::Value =
            serde_json::from_slice(&applied.body).map_err(|e| format!("event report: {e}"))?;
        if report["applied"] != true {
            return Err(format!("the {status} event was not applied: {report}"));
        }
    }

    loop {
        let status = next_status(&mut socket)
            .await
            .map_err(|why| format!("waiting for completed: {why}"))?;
        if status == "completed" {
            break;
        }
    }
    let _ = socket.close(None).await;
    tokio::time::timeout(PATIENCE, webhook)
        .await
        .map_err(|_| format!("no completed webhook for {id} within {PATIENCE:?}"))?
        .map_err(|_| "the webhook waiter was dropped".to_owned())
}

/// `connection.post(...)`, failed when the answer takes longer than
/// [`PATIENCE`].
async fn post(
    connection: &mut Connection,
    path: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    tokio::time::timeout(PATIENCE, connection.post(path, body, headers))
        .await
        .map_err(|_| format!("{path} took longer than {PATIENCE:?}"))?
        .map_err(|e| format!("{path}: {e}"))
}

fn expect_ok(what: &str, answer: &Answer) -> Result<(), String> {
    if answer.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "{what} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ))
    }
}

async fn connection<'a>(
    connections: &'a mut [Option<Connection>],
    instances: &[SocketAddr],
    index: usize,
) -> Result<&'a mut Connection, String> {
    if connections[index].is_none() {
        connections[index] = Some(Connection::open(instances[index]).await?);
    }
    connections[index]
        .as_mut()
        .ok_or_else(|| "no connection".to_owned())
}

/// The `status` of the next update on `socket`.
async fn next_status(socket: &mut Socket) -> Result<String, String> {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let update: serde_json::Value =
                        serde_json::from_str(text.as_str()).map_err(|e| format!("update: {e}"))?;
                    return update["status"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("an update without status: {text}"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("the socket closed early: {frame:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket: {e}")),
                None => return Err("the socket ended early".into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .map_err(|_| format!("no WebSocket update within {PATIENCE:?}"))?
}

/// The partner's webhook endpoint: 200 at once; a `completed` wakes the
/// lifecycle waiting for it.
fn serve_receiver(listener: TcpListener, shared: Arc<Shared>) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let service = service_fn(move |request| receive(request, Arc::clone(&shared)));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn receive(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let status = match request.into_body().collect().await {
        Ok(body) => {
            let event: serde_json::Value =
                serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
            if event["status"] == "completed"
                && let Some(id) = event["merchant_transaction_id"].as_str()
            {
                shared.waiters.arrived(id);
            }
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
}
