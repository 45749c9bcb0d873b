//! A whole public `App` on a `MemStore`, wired like
//! `crates/session-http/tests/it/support.rs`, served over an in-memory duplex
//! pipe by the same hyper connection settings `session_http::serve` uses.
//!
//! `Handler::handle` needs a `hyper::body::Incoming`, which only hyper can make,
//! so requests travel as real HTTP/1.1 bytes through `tokio::io::duplex`
//! instead of a loopback socket: same code path, no ports, no kernel. The
//! runtime is current-thread with paused time, so every timeout in the stack
//! (header read, body read, request deadline) fires as soon as nothing else can
//! run: a slow-loris input costs microseconds, and the run is deterministic.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use session_core::access::TrustedProxies;
use session_core::client_token::{self, TokenDigest, TokenEnv};
use session_core::partner::PartnerId;
use session_core::ports::{ConfiguredWallets, PartnerRegistry};
use session_core::provider::ProviderKey;
use session_core::secret::Secret;
use session_core::time::Timestamp;
use session_core::value::{IpRange, Origin};
use session_core::{ErrorKind, Ports, SessionService, Settings};
use session_http::{App, Handler, HttpConfig, WidgetOrigins};
use session_store_mem::MemStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{CountingRandom, FixedClock, NOW_MICROS, PROVIDER_SECRET, WIDGET_ORIGIN, partner_spec};

/// Header-read and body-read timeouts (virtual time: they cost nothing).
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one whole fuzz iteration, in virtual time. Reaching it means a
/// request never got an answer although every timer had fired: a hang.
pub const ITERATION_BUDGET: Duration = Duration::from_secs(600);

/// The runtime every iteration runs on, built once.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

/// Client tokens issued in a fresh world.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub acme: String,
    pub gated: String,
    pub offramp: String,
    pub concat: String,
    pub revoked: String,
    pub expired: String,
}

/// One isolated service: a fresh store per iteration keeps runs reproducible
/// and memory flat.
pub struct World {
    pub app: Arc<App>,
    pub tokens: Tokens,
    pub provider: ProviderKey,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("World")
    }
}

async fn issue(store: &MemStore, partner: &str, random: &CountingRandom) -> (String, TokenDigest) {
    let partner = PartnerId::parse(partner).expect("partner id");
    let now = Timestamp::from_unix_micros(NOW_MICROS);
    let issued = client_token::issue(TokenEnv::Test, partner, "fuzz", now, random);
    store.add_token(&issued.record).await.expect("add token");
    (issued.token, issued.record.digest)
}

impl World {
    pub async fn new() -> Self {
        let store = Arc::new(MemStore::new());
        let random = Arc::new(CountingRandom::default());
        let now = Timestamp::from_unix_micros(NOW_MICROS);
        let mut gated = partner_spec("gated");
        gated.allowed_ips = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
        let mut offramp = partner_spec("offramp");
        offramp.offramp_enabled = true;
        offramp.redirect_hosts = vec!["app.example.com".into()];
        let mut concat = partner_spec("concat");
        concat.accept_client_address = true;
        concat.signature_scheme = "sha512-concat".into();
        concat.widget.decimals = vec![("USDT".into(), 6)];
        for spec in [partner_spec("acme"), gated, offramp, concat] {
            store.put_partner(&spec).await.expect("put partner");
        }
        let acme_id = PartnerId::parse("acme").expect("id");
        let (acme, _) = issue(&store, "acme", &random).await;
        let (revoked, revoked_digest) = issue(&store, "acme", &random).await;
        store
            .revoke_token(&acme_id, &revoked_digest, now)
            .await
            .expect("revoke");
        let (expired, expired_digest) = issue(&store, "acme", &random).await;
        store
            .expire_token(&acme_id, &expired_digest, now)
            .await
            .expect("expire");
        let tokens = Tokens {
            acme,
            gated: issue(&store, "gated", &random).await.0,
            offramp: issue(&store, "offramp", &random).await.0,
            concat: issue(&store, "concat", &random).await.0,
            revoked,
            expired,
        };
        let token_keys = session_core::testing::token_keys();
        let provider = ProviderKey::new(&Secret::new(PROVIDER_SECRET)).expect("provider key");
        let ports = Ports {
            partners: store.clone(),
            wallets: Arc::new(ConfiguredWallets),
            sessions: store.clone(),
            idempotency: store.clone(),
            feed: store.clone(),
            clock: Arc::new(FixedClock::default()),
            random,
        };
        let service = SessionService::new(
            ports,
            token_keys,
            Some(provider.clone()),
            Settings {
                init_token_ttl_seconds: 3_600,
                trusted_proxies: TrustedProxies::new(vec![
                    IpRange::parse("127.0.0.0/8").expect("range"),
                    IpRange::parse("::1/128").expect("range"),
                ]),
                idempotency_ttl_seconds: session_core::service::DEFAULT_IDEMPOTENCY_TTL_SECONDS,
            },
        );
        let config = HttpConfig {
            record_metrics: true,
            // The sandbox's routes read untrusted bytes too.
            sandbox: true,
            body_limit: 64 * 1024,
            body_read_timeout: IO_TIMEOUT,
            request_deadline: Duration::from_secs(30),
            widget_origins: WidgetOrigins::List(vec![
                Origin::parse(WIDGET_ORIGIN).expect("origin"),
            ]),
            live: session_http::LiveConfig::default(),
            // Budgets are off: a fuzzer's pace would turn most inputs into 429s.
            default_rate_limit: session_core::partner::RateLimit::UNLIMITED,
        };
        Self {
            app: Arc::new(App::new(service, config, 1)),
            tokens,
            provider,
        }
    }

    /// Serves one connection on the server half of a duplex pipe, with the
    /// builder settings of `session_http::serve`.
    fn serve(&self, io: tokio::io::DuplexStream, peer: SocketAddr) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(&self.app);
        let service = service_fn(move |request: Request<Incoming>| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(app.handle(request, peer).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(IO_TIMEOUT)
            .keep_alive(true);
        // As `session_http::serve` does: `GET /ws` may take the connection over.
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::spawn(async move {
            // A protocol error just closes the connection, as in production.
            let _ = connection.await;
        })
    }

    /// Sends `requests` in order on one keep-alive connection from `peer` and
    /// returns each answer (status, headers, whole body). Stops at the first
    /// request the connection cannot carry (the server closed it).
    pub async fn exchange(
        &self,
        peer: SocketAddr,
        requests: Vec<Request<Full<Bytes>>>,
    ) -> Vec<Answer> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = self.serve(server_io, peer);
        let mut answers = Vec::new();
        {
            let Ok((mut sender, connection)) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(client_io))
                    .await
            else {
                panic!("client handshake on a fresh pipe failed");
            };
            let client = tokio::spawn(async move {
                let _ = connection.await;
            });
            for request in requests {
                if sender.ready().await.is_err() {
                    break;
                }
                let Ok(response) = sender.send_request(request).await else {
                    break;
                };
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .expect("a response body the server started must arrive whole")
                    .to_bytes();
                answers.push(Answer {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                });
            }
            drop(sender);
            let _ = client.await;
        }
        let _ = server.await;
        answers
    }

    /// Writes `bytes` as they are and returns every byte the server wrote
    /// back until it closed the connection or went idle. The write side is
    /// not shut down: with hyper's default (no half-close) a client EOF drops
    /// the in-flight response. "Idle" is [`RAW_IDLE`] of virtual time, longer
    /// than every server timeout, so a slow answer (408, a deadline) still
    /// arrives.
    pub async fn raw(&self, peer: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let (client_io, server_io) = tokio::io::duplex(256 * 1024);
        let server = self.serve(server_io, peer);
        let (mut read_half, mut write_half) = tokio::io::split(client_io);
        // Writing and reading concurrently: a large input must not deadlock
        // against a server that answers before reading everything.
        let write = async {
            let _ = write_half.write_all(bytes).await;
            write_half
        };
        let read = async {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tokio::time::timeout(RAW_IDLE, read_half.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                }
            }
            out
        };
        let (write_half, out) = tokio::join!(write, read);
        drop(write_half);
        drop(read_half);
        let _ = server.await;
        out
    }
}

/// How long raw mode waits for more bytes: past the request deadline, the
/// longest server-side timer.
const RAW_IDLE: Duration = Duration::from_secs(40);

/// One response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Checks the SPEC.md §1 error shape: a row of the error matrix for this
/// status, a JSON body whose keys are exactly `error`, `code`, `message` in
/// that order, and never the 500 a caught handler panic produces.
pub fn check_error_body(status: u16, content_type: Option<&str>, body: &[u8]) {
    assert_eq!(
        content_type,
        Some("application/json"),
        "error without JSON type"
    );
    let keys = ordered_keys(body).unwrap_or_else(|| {
        panic!(
            "error body is not a JSON object: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(keys, ["error", "code", "message"], "error body fields");
    let value: serde_json::Value = serde_json::from_slice(body).expect("error body JSON");
    let field = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("error body {name} is not a string"))
            .to_owned()
    };
    let (error, code, message) = (field("error"), field("code"), field("message"));
    let row = ErrorKind::ALL
        .iter()
        .find(|kind| kind.triple() == (status, error.as_str(), code.as_str()))
        .unwrap_or_else(|| panic!("({status}, {error}, {code}) is not a row of the error matrix"));
    assert_ne!(
        *row,
        ErrorKind::Internal,
        "handler panicked (caught as 500): {message}"
    );
    assert!(!message.is_empty(), "empty error message");
    assert!(
        !message.ends_with('.'),
        "error message ends with a period: {message}"
    );
}

/// The top-level keys of a JSON object in document order.
pub fn ordered_keys(body: &[u8]) -> Option<Vec<String>> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let keys = de.deserialize_map(Keys).ok()?;
    de.end().ok()?;
    Some(keys)
}
