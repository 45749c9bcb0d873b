//! `GET /ws`: a partner follows one transaction over a WebSocket (SPEC.md §2).
//!
//! Every check of the partner API runs before the upgrade and refuses with a
//! plain HTTP error (`App::dispatch`); then the handshake is answered with
//! `101`, and a task of its own serves the socket:
//!
//! - the current state at once, then each newer one as the feed yields it,
//!   each a `tx.update` text frame (`wire::tx_update`); close 1000 after a
//!   terminal status;
//! - a ping every `ping_interval`; a client that has not answered one within
//!   `pong_timeout` is dropped;
//! - client frames are read only for control frames and limits: a frame over
//!   [`MAX_CLIENT_FRAME`] closes with 1009; data frames are ignored;
//! - a subscriber that lags behind the feed's bounded queue is closed with
//!   1013 rather than buffered for;
//! - [`LiveSockets::close_all`] (shutdown) closes every socket with 1001.
//!
//! Sockets count against `max_connections` (503 `ws_capacity` beyond it), not
//! against the listener's HTTP connection limit: an upgraded connection
//! leaves hyper's hands.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use http::{HeaderName, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use session_core::live::{FeedNext, TxUpdate};
use session_core::{ErrorKind, Following, Rejection};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::response::{HttpResponse, empty};
use crate::server::until_set;

/// SPEC.md §2: a client frame over 4 KiB closes the connection with 1009.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// How long a closing socket waits for the client's close frame before it
/// drops the connection anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// Settings of `GET /ws`.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Open sockets at most, per instance.
    pub max_connections: usize,
}

impl Default for LiveConfig {
    /// SPEC.md §2's defaults: a ping every 25 s, 10 s to answer it, 10,000 sockets.
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// The open sockets of one listener.
#[derive(Debug)]
pub struct LiveSockets {
    config: LiveConfig,
    open: AtomicUsize,
    /// `true` once the instance shuts down.
    closing: watch::Sender<bool>,
}

/// A reserved socket; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot(Arc<LiveSockets>);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: wake a drain waiting for all to close.
            self.0.closing.send_modify(|_| {});
        }
    }
}

impl LiveSockets {
    pub fn new(config: LiveConfig) -> Self {
        Self {
            config,
            open: AtomicUsize::new(0),
            closing: watch::channel(false).0,
        }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A place for one more socket: `503 ws_capacity` when all are taken,
    /// `503 shutting_down` once closing.
    pub(crate) fn reserve(self: &Arc<Self>) -> Result<Slot, Rejection> {
        if *self.closing.borrow() {
            return Err(Rejection::of(ErrorKind::ShuttingDown));
        }
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(self));
        if taken >= self.config.max_connections {
            drop(slot);
            return Err(Rejection::of(ErrorKind::WsCapacity));
        }
        Ok(slot)
    }

    /// Closes every socket with 1001 (going away) and refuses new ones.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Returns once no socket is open, or after `limit`.
    pub async fn all_closed(&self, limit: Duration) {
        let mut changes = self.closing.subscribe();
        let _ = tokio::time::timeout(limit, async {
            while self.open() > 0 {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// The `tx_id` query parameter, percent-decoded: `None` when absent. Given
/// twice or not UTF-8, it is invalid.
pub(crate) fn tx_id(query: Option<&str>) -> Result<Option<String>, Rejection> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "tx_id" {
            continue;
        }
        if found.is_some() {
            return Err(Rejection::invalid("tx_id", "given more than once"));
        }
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| Rejection::invalid("tx_id", "must be a transaction id (a UUID)"))?;
        found = Some(decoded.into_owned());
    }
    Ok(found)
}

/// The `Sec-WebSocket-Accept` answering a valid RFC 6455 upgrade request;
/// anything else is `400 validation_error`.
pub(crate) fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, Rejection> {
    let not_an_upgrade = || {
        Rejection::invalid(
            "Upgrade",
            "GET /ws is a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket, \
             Sec-WebSocket-Version: 13, Sec-WebSocket-Key)",
        )
    };
    let has_token = |name: &HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(&CONNECTION, "upgrade") || !has_token(&UPGRADE, "websocket") {
        return Err(not_an_upgrade());
    }
    if headers
        .get(&SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(not_an_upgrade());
    }
    let key = headers
        .get(&SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| is_nonce(key))
        .ok_or_else(not_an_upgrade)?;
    HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| not_an_upgrade())
}

/// RFC 6455 §4.1: the key is 16 bytes, base64: 22 characters and `==`.
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The `101` that completes the handshake.
pub(crate) fn switching_protocols(accept: HeaderValue) -> HttpResponse {
    let mut response = empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT.clone(), accept);
    response
}

/// Serves the socket once hyper hands the connection over (after the `101`
/// is written).
pub(crate) fn spawn(upgrade: OnUpgrade, following: Following, slot: Slot, request_id: String) {
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(request_id, %error, "WebSocket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            // Reads never need more than the largest frame allowed, and an
            // idle socket should hold little: this buffer is most of it.
            .read_buffer_size(MAX_CLIENT_FRAME)
            .max_frame_size(Some(MAX_CLIENT_FRAME))
            .max_message_size(Some(MAX_CLIENT_FRAME))
            // Messages are written as they come; nothing to batch.
            .write_buffer_size(0);
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let sockets = Arc::clone(&slot.0);
        let ended = serve(socket, following, &sockets).await;
        tracing::debug!(request_id, ended, "WebSocket closed");
        drop(slot);
    });
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a socket ended, for the log.
type Ended = &'static str;

async fn serve(mut socket: Socket, following: Following, sockets: &LiveSockets) -> Ended {
    let Following {
        current,
        mut updates,
    } = following;
    let config = sockets.config;
    let mut closing = sockets.closing.subscribe();
    if send(&mut socket, &current, config.pong_timeout)
        .await
        .is_err()
    {
        return "peer gone";
    }
    if current.is_final() {
        return close(socket, CloseCode::Normal, "terminal status").await;
    }
    let mut newest = current.sequence;
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Set while a ping is unanswered: when the client must have answered by.
    let mut pong_due: Option<Instant> = None;
    loop {
        let silent = async {
            match pong_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = updates.next() => match next {
                FeedNext::Update(update) if update.sequence > newest => {
                    newest = update.sequence;
                    if send(&mut socket, &update, config.pong_timeout).await.is_err() {
                        return "peer gone";
                    }
                    if update.is_final() {
                        return close(socket, CloseCode::Normal, "terminal status").await;
                    }
                }
                FeedNext::Update(_) => {}
                FeedNext::Lagged => return close(socket, CloseCode::Again, "fell behind").await,
                FeedNext::Closed => return close(socket, CloseCode::Away, "feed closed").await,
            },
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Pong(_))) => pong_due = None,
                // The pong tungstenite queued goes out with the flush.
                Some(Ok(Message::Ping(_))) => {
                    let flushed = tokio::time::timeout(config.pong_timeout, socket.flush()).await;
                    if !matches!(flushed, Ok(Ok(()))) {
                        return "peer gone";
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // tungstenite queued the answering close frame.
                    let _ = socket.flush().await;
                    return "client closed";
                }
                // SPEC.md §2: data from the client is ignored.
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(_))) => {
                    return close(socket, CloseCode::Size, "frame too large").await;
                }
                Some(Err(_)) | None => return "peer gone",
            },
            _ = ping.tick() => {
                let ping = Message::Ping(Default::default());
                if write(&mut socket, ping, config.pong_timeout).await.is_err() {
                    return "peer gone";
                }
                pong_due.get_or_insert(Instant::now() + config.pong_timeout);
            }
            () = silent => return "no pong",
            () = until_set(&mut closing) => {
                return close(socket, CloseCode::Away, "shutting down").await;
            }
        }
    }
}

/// Sends `update`. A write that cannot complete within `limit` (a client that
/// stopped reading, with its window full) counts as the peer gone: a socket
/// is never left holding the task forever.
async fn send(socket: &mut Socket, update: &TxUpdate, limit: Duration) -> Result<(), ()> {
    write(socket, Message::text(crate::wire::tx_update(update)), limit).await
}

async fn write(socket: &mut Socket, message: Message, limit: Duration) -> Result<(), ()> {
    match tokio::time::timeout(limit, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}

/// Sends a close frame with `code`, then waits (briefly) for the client's,
/// so the close frame is read before the connection goes.
async fn close(mut socket: Socket, code: CloseCode, why: Ended) -> Ended {
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let closed = tokio::time::timeout(CLOSE_GRACE, socket.close(Some(frame))).await;
    if matches!(closed, Ok(Ok(()))) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            SEC_WEBSOCKET_VERSION.clone(),
            HeaderValue::from_static("13"),
        );
        headers.insert(
            SEC_WEBSOCKET_KEY.clone(),
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers
    }

    #[test]
    fn the_rfc_6455_example_handshake_is_accepted() {
        assert_eq!(
            accept_key(&upgrade_headers()).expect("an upgrade"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn anything_short_of_an_upgrade_is_a_validation_error() {
        let spoil: [fn(&mut HeaderMap); 6] = [
            |h| {
                h.remove(CONNECTION);
            },
            |h| {
                h.insert(UPGRADE, HeaderValue::from_static("h2c"));
            },
            |h| {
                h.remove(&SEC_WEBSOCKET_VERSION);
            },
            |h| {
                h.insert(SEC_WEBSOCKET_VERSION.clone(), HeaderValue::from_static("8"));
            },
            |h| {
                h.remove(&SEC_WEBSOCKET_KEY);
            },
            |h| {
                h.insert(SEC_WEBSOCKET_KEY.clone(), HeaderValue::from_static("short"));
            },
        ];
        for (n, spoil) in spoil.iter().enumerate() {
            let mut headers = upgrade_headers();
            spoil(&mut headers);
            let refused = accept_key(&headers).expect_err("not an upgrade");
            assert_eq!(refused.kind(), ErrorKind::ValidationError, "case {n}");
        }
    }

    #[test]
    fn tx_id_is_read_decoded_once() {
        assert_eq!(tx_id(None).expect("valid"), None);
        assert_eq!(tx_id(Some("a=1&b")).expect("valid"), None);
        assert_eq!(
            tx_id(Some("x=1&tx_id=ab%2Dcd")).expect("valid").as_deref(),
            Some("ab-cd")
        );
        assert_eq!(tx_id(Some("tx_id")).expect("valid").as_deref(), Some(""));
        for invalid in ["tx_id=a&tx_id=b", "tx_id=%FF"] {
            let refused = tx_id(Some(invalid)).expect_err("invalid");
            assert_eq!(refused.kind(), ErrorKind::ValidationError, "{invalid}");
        }
    }

    #[tokio::test]
    async fn places_are_bounded_freed_and_refused_once_closing() {
        let sockets = Arc::new(LiveSockets::new(LiveConfig {
            max_connections: 2,
            ..LiveConfig::default()
        }));
        let first = sockets.reserve().expect("room");
        let _second = sockets.reserve().expect("room");
        assert_eq!(
            sockets.reserve().expect_err("full").kind(),
            ErrorKind::WsCapacity
        );
        assert_eq!(sockets.open(), 2);
        drop(first);
        let _third = sockets.reserve().expect("a place was freed");
        sockets.close_all();
        assert_eq!(
            sockets.reserve().expect_err("closing").kind(),
            ErrorKind::ShuttingDown
        );
    }
}
