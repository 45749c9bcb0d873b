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
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
    let graceful = GracefulShutdown::new();
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
                let connection =
                    graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
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
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(options.drain_timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}
