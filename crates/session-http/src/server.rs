//! Serving a handler on a listener: one task per connection, HTTP/1.1 with
//! keep-alive, a header-read timeout, and graceful draining on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::defaults;
use crate::response::HttpResponse;

/// hyper refuses a read buffer smaller than this.
const MIN_BUF_SIZE: usize = 8192;

/// Something that answers requests. Its answer is always a response: an error
/// from a hyper service would drop the connection instead of telling the client.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = HttpResponse> + Send;
}

/// Whether the process is draining; readiness turns red as soon as it is.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Connection settings shared by the public and admin listeners.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
}

/// Accepts connections until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (closing idle keep-alive connections at once) and
/// returns when all connections are closed or `drain_timeout` has passed.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    // `true` once draining: every connection finishes its request in flight
    // and closes (an idle keep-alive one at once).
    let (drain, draining) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // SPEC.md §1: a head over 16 KiB or 100 headers answers 431, and the
        // read buffer (hyper's default is ~400 KB) is bounded to match, so
        // memory per connection does not depend on what a client sends.
        .max_header_size(defaults::MAX_HEAD_BYTES)
        .max_headers(defaults::MAX_HEADERS)
        .max_buf_size(defaults::MAX_HEAD_BYTES.max(MIN_BUF_SIZE));
    // A permit per open connection. It is taken before `accept`, so a client
    // over the limit waits in the kernel's backlog instead of costing a task
    // and buffers here.
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => tokio::select! {
                    accepted = listener.accept() => accepted.map(|accepted| (accepted, permit)),
                    () = &mut shutdown => break,
                },
                // Never closed; stop serving rather than spin if it were.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        match accepted {
            Ok(((stream, peer), permit)) => {
                // Responses are written in one go; waiting to coalesce them
                // only adds latency.
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let service = service_fn(move |request| {
                    let handler = Arc::clone(&handler);
                    async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
                });
                // With upgrades: `GET /ws` hands its connection over to a
                // WebSocket, which ends this future (and frees its permit).
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                let mut draining = draining.clone();
                tokio::spawn(async move {
                    tokio::pin!(connection);
                    let served = tokio::select! {
                        served = connection.as_mut() => served,
                        () = until_set(&mut draining) => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "connection closed with an error");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drain.send_replace(true);
    // Every permit back means every connection closed.
    let all = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections drained"),
        () = tokio::time::sleep(options.drain_timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Returns once `flag` is `true`; never, if its sender is gone first.
pub(crate) async fn until_set(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}
