//! `GET /ws` through the real server on a loopback port: the refusals before
//! the upgrade, the messages and their order, the closes, liveness and
//! limits.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Method;
use session_http::LiveConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::lifecycle::{new_session, provider_event};
use crate::support::{Options, SEED_BODY, TestResponse, TestServer, TestStore};

pub type Client = WebSocketStream<TcpStream>;

/// SPEC.md §2 (and the issue): the first message within a second.
const FIRST_MESSAGE: Duration = Duration::from_secs(1);
/// Generous for anything else that should come.
const SOON: Duration = Duration::from_secs(5);
/// How long to listen before concluding nothing is coming.
const QUIET: Duration = Duration::from_millis(300);

/// Opens `GET /ws?tx_id=<id>` on `addr` as `token`.
pub async fn subscribe(addr: std::net::SocketAddr, token: &str, id: &str) -> Client {
    let mut request = format!("ws://{addr}/ws?tx_id={id}")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (client, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));
    client
}

/// The next data message, decoded; control frames are skipped.
pub async fn next_update(client: &mut Client, within: Duration) -> serde_json::Value {
    let read = async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("a JSON message");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no message within {within:?}"))
}

/// Reads until the server's close frame and returns its code.
async fn close_code(client: &mut Client) -> CloseCode {
    let read = async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(SOON, read)
        .await
        .expect("a close frame in time")
}

async fn nothing_more(client: &mut Client, why: &str) {
    if let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, client.next()).await {
        assert!(
            !matches!(message, Message::Text(_) | Message::Close(_)),
            "{why}: got {message:?}"
        );
    }
}

async fn event(server: &TestServer, event_id: &str, id: &str, status: &str) -> TestResponse {
    let body = serde_json::json!({"event_id": event_id, "merchant_transaction_id": id,
        "status": status, "fiat_amount": "92.15", "fiat_currency": "EUR", "payment_method": "card",
        "occurred_at": "2026-11-24T08:00:00Z"});
    let applied = provider_event(server, &body).await;
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    applied
}

async fn transaction(server: &TestServer) -> String {
    let session = new_session(server, SEED_BODY).await;
    session["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// An upgrade request made by hand, for the refusals (plain HTTP answers).
pub fn upgrade(server: &TestServer, path: &str) -> crate::support::RequestBuilder {
    upgrade_as(server, Method::GET, path)
}

fn upgrade_as(server: &TestServer, method: Method, path: &str) -> crate::support::RequestBuilder {
    server
        .request(method, path)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

pub async fn ws_refusals_come_before_the_upgrade<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.live = LiveConfig {
        max_connections: 1,
        ..LiveConfig::default()
    };
    let server = TestServer::start(store, options).await;
    let id = transaction(&server).await;
    let path = format!("/ws?tx_id={id}");
    let acme = server.tokens.acme.clone();

    upgrade(&server, &path)
        .send()
        .await
        .assert_error(401, "unauthorised", "missing_token");
    upgrade(&server, &path)
        .bearer(&server.tokens.acme_revoked)
        .send()
        .await
        .assert_error(401, "unauthorised", "invalid_token");
    upgrade(&server, &path)
        .bearer(&server.tokens.gated)
        .send()
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    upgrade(&server, "/ws")
        .bearer(&acme)
        .send()
        .await
        .assert_error(400, "invalid_request", "missing_param");
    upgrade(&server, "/ws?tx_id=not-a-uuid")
        .bearer(&acme)
        .send()
        .await
        .assert_error(400, "invalid_request", "validation_error");
    upgrade(&server, &format!("/ws?tx_id={}", uuid::Uuid::new_v4()))
        .bearer(&acme)
        .send()
        .await
        .assert_error(404, "not_found", "not_found");
    upgrade(&server, &path)
        .bearer(&server.tokens.other)
        .send()
        .await
        .assert_error(404, "not_found", "not_found");
    server
        .request(Method::GET, &path)
        .bearer(&acme)
        .send()
        .await
        .assert_error(400, "invalid_request", "validation_error");
    let post = upgrade_as(&server, Method::POST, &path)
        .bearer(&acme)
        .send()
        .await;
    post.assert_error(405, "invalid_request", "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET"));

    // The one place is taken: the next upgrade is refused, and freed when
    // the first socket closes.
    let mut first = subscribe(server.addr, &acme, &id).await;
    next_update(&mut first, FIRST_MESSAGE).await;
    upgrade(&server, &path)
        .bearer(&acme)
        .send()
        .await
        .assert_error(503, "unavailable", "ws_capacity");
    first.close(None).await.expect("close");
    drop(first);
    let reopened = tokio::time::timeout(SOON, async {
        loop {
            let answer = upgrade(&server, &path).bearer(&acme).send().await;
            if answer.status == 101 {
                return;
            }
            answer.assert_error(503, "unavailable", "ws_capacity");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "the place is freed when a socket closes");
    server.stop().await;
}

pub async fn ws_streams_each_change_in_order_then_closes<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let id = transaction(&server).await;
    let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;

    let first = next_update(&mut client, FIRST_MESSAGE).await;
    let fields: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "event",
            "merchant_transaction_id",
            "type",
            "status",
            "currency",
            "fiat_currency",
            "fiat_amount",
            "crypto_amount",
            "occurred_at",
            "sequence"
        ],
        "payment_method is left out while unknown"
    );
    assert_eq!(
        (
            &first["event"],
            &first["merchant_transaction_id"],
            &first["status"],
            &first["sequence"],
            &first["fiat_amount"],
        ),
        (
            &"tx.update".into(),
            &id.as_str().into(),
            &"pending".into(),
            &1.into(),
            &"".into()
        )
    );

    event(&server, "ws-1", &id, "processing").await;
    let processing = next_update(&mut client, SOON).await;
    assert_eq!(
        (
            &processing["status"],
            &processing["sequence"],
            &processing["payment_method"],
            &processing["fiat_amount"],
            &processing["occurred_at"],
        ),
        (
            &"processing".into(),
            &2.into(),
            &"card".into(),
            &"92.15".into(),
            &"2026-11-24T08:00:00.000000Z".into()
        )
    );

    // A replayed event and an ignored one change nothing: nothing is sent.
    event(&server, "ws-1", &id, "processing").await;
    event(&server, "ws-2", &id, "pending").await;
    nothing_more(&mut client, "replayed and ignored events").await;

    event(&server, "ws-3", &id, "completed").await;
    let completed = next_update(&mut client, SOON).await;
    assert_eq!(
        (&completed["status"], &completed["sequence"]),
        (&"completed".into(), &3.into())
    );
    assert_eq!(close_code(&mut client).await, CloseCode::Normal);
    server.stop().await;
}

pub async fn ws_terminal_transaction_sends_its_state_and_closes<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let id = transaction(&server).await;
    event(&server, "t-1", &id, "failed").await;
    let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;
    let only = next_update(&mut client, FIRST_MESSAGE).await;
    assert_eq!(
        (&only["status"], &only["sequence"]),
        (&"failed".into(), &2.into())
    );
    assert_eq!(close_code(&mut client).await, CloseCode::Normal);
    server.stop().await;
}

pub async fn ws_fifty_subscribers_all_receive<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let id = transaction(&server).await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;
        assert_eq!(next_update(&mut client, FIRST_MESSAGE).await["sequence"], 1);
        clients.push(client);
    }
    event(&server, "fan-1", &id, "processing").await;
    for client in &mut clients {
        let update = next_update(client, SOON).await;
        assert_eq!(
            (&update["status"], &update["sequence"]),
            (&"processing".into(), &2.into())
        );
    }
    server.stop().await;
}

pub async fn ws_pings_and_drops_silent_clients<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.live = LiveConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(300),
        ..LiveConfig::default()
    };
    let server = TestServer::start(store, options).await;
    let id = transaction(&server).await;

    // A client that reads answers pings (tungstenite queues the pong and
    // sends it with its next write or flush) and stays.
    let mut lively = subscribe(server.addr, &server.tokens.acme, &id).await;
    let mut silent = subscribe(server.addr, &server.tokens.acme, &id).await;
    next_update(&mut lively, FIRST_MESSAGE).await;
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1_200);
    while let Ok(next) = tokio::time::timeout_at(until, lively.next()).await {
        match next {
            Some(Ok(Message::Ping(_))) => {
                pings += 1;
                lively.flush().await.expect("pong sent");
            }
            other => panic!("only pings expected, got {other:?}"),
        }
    }
    assert!(pings >= 5, "a ping every 100 ms; got {pings} in 1.2 s");
    event(&server, "live-1", &id, "processing").await;
    assert_eq!(next_update(&mut lively, SOON).await["sequence"], 2);

    // The client that never read (so never answered) was dropped without a
    // close frame: after the messages already sent, the stream ends.
    let ended = tokio::time::timeout(SOON, async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Text(_) | Message::Ping(_))) => {}
                Some(Ok(Message::Close(frame))) => panic!("dropped, not closed: {frame:?}"),
                Some(Ok(other)) => panic!("unexpected {other:?}"),
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the silent client's connection ended");
    server.stop().await;
}

pub async fn ws_client_data_is_ignored_and_large_frames_close_1009<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let id = transaction(&server).await;
    let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;
    next_update(&mut client, FIRST_MESSAGE).await;
    client
        .send(Message::text("hello"))
        .await
        .expect("small frames are fine");
    client
        .send(Message::binary(vec![0u8; session_http::MAX_CLIENT_FRAME]))
        .await
        .expect("a frame at the limit is fine");
    event(&server, "big-1", &id, "processing").await;
    assert_eq!(next_update(&mut client, SOON).await["sequence"], 2);

    client
        .send(Message::text(
            "x".repeat(session_http::MAX_CLIENT_FRAME + 1),
        ))
        .await
        .expect("sent");
    assert_eq!(close_code(&mut client).await, CloseCode::Size);
    server.stop().await;
}

pub async fn ws_shutdown_closes_1001<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let id = transaction(&server).await;
    let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;
    next_update(&mut client, FIRST_MESSAGE).await;
    let stopped = tokio::spawn(server.stop());
    assert_eq!(close_code(&mut client).await, CloseCode::Away);
    drop(client);
    tokio::time::timeout(SOON, stopped)
        .await
        .expect("the server stops once its sockets closed")
        .expect("server task");
}
