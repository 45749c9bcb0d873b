//! The partner's webhook endpoint: answers 200 at once and notes, for each delivery,
//! when it arrived against the status change's `updated_at` (the server's clock when
//! it applied the event, just before its commit; both run on this machine's clock),
//! and whether it repeats a `webhook-id` or arrives out of order.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use session_core::time::{Clock, Timestamp};
use tokio::net::TcpListener;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub transaction: String,
    /// Receipt time minus the change's `updated_at`, in microseconds.
    pub latency_us: i64,
}

/// What the endpoint saw; shared with its connection tasks.
#[derive(Default)]
pub struct Received {
    count: AtomicU64,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    receipts: Vec<Receipt>,
    webhook_ids: HashSet<String>,
    /// The rank of the latest status seen per transaction.
    latest: HashMap<String, u8>,
    duplicates: u64,
    out_of_order: u64,
    unreadable: u64,
}

/// The fields of the body the run reads.
#[derive(Deserialize)]
struct Body {
    merchant_transaction_id: String,
    status: String,
    updated_at: String,
}

/// Flaws seen across the run: each should be zero.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Flaws {
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unreadable: u64,
}

impl Received {
    /// Deliveries received so far, repeats included.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// The receipts of `transactions`' deliveries.
    pub fn receipts_of(&self, transactions: &HashSet<String>) -> Vec<Receipt> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.receipts
            .iter()
            .filter(|receipt| transactions.contains(&receipt.transaction))
            .cloned()
            .collect()
    }

    pub fn flaws(&self) -> Flaws {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        Flaws {
            duplicates: log.duplicates,
            out_of_order: log.out_of_order,
            unreadable: log.unreadable,
        }
    }

    fn record(&self, webhook_id: Option<String>, body: &[u8]) {
        let arrived = now_micros();
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let parsed = serde_json::from_slice::<Body>(body).ok().and_then(|body| {
            let updated = Timestamp::parse_rfc3339(&body.updated_at)?;
            Some((body, updated))
        });
        match (webhook_id, parsed) {
            (Some(id), Some((body, updated))) => {
                if !log.webhook_ids.insert(id) {
                    log.duplicates += 1;
                }
                let rank = rank(&body.status);
                let previous = log
                    .latest
                    .insert(body.merchant_transaction_id.clone(), rank)
                    .unwrap_or(0);
                if rank <= previous {
                    log.out_of_order += 1;
                }
                log.receipts.push(Receipt {
                    transaction: body.merchant_transaction_id,
                    latency_us: arrived - updated.unix_micros(),
                });
            }
            _ => log.unreadable += 1,
        }
        drop(log);
        self.count.fetch_add(1, Ordering::Release);
    }
}

/// The order the run's events are applied in.
fn rank(status: &str) -> u8 {
    match status {
        "processing" => 1,
        "completed" => 2,
        _ => u8::MAX,
    }
}

/// The server's own clock, so both ends of a latency read time alike.
fn now_micros() -> i64 {
    benches::SystemClock.now().unix_micros()
}

/// Listens on `listener` until the process ends.
pub fn serve(listener: TcpListener, received: Arc<Received>) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let received = Arc::clone(&received);
            let service = service_fn(move |request| answer(request, Arc::clone(&received)));
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    request: Request<Incoming>,
    received: Arc<Received>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let webhook_id = request
        .headers()
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let status = match request.into_body().collect().await {
        Ok(body) => {
            received.record(webhook_id, &body.to_bytes());
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
}

/// Binds the endpoint on loopback, on a port the kernel picks.
pub async fn bind() -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the receiver: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, address))
}
