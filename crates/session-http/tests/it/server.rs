//! Connection-level behaviour: timeouts, hostile bytes, health and draining.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use session_store_mem::MemStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Options, SEED_BODY, TestServer};

fn mem() -> Arc<MemStore> {
    Arc::new(MemStore::new())
}

/// Reads until the peer closes or `limit` passes; returns what arrived.
async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn slow_body_gets_408() {
    let mut options = Options::standard();
    options.body_read_timeout = Duration::from_millis(200);
    let server = TestServer::start(mem(), options).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /widget/session HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{",
        server.tokens.acme
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered before the test limit");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"));
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let mut options = Options::standard();
    options.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start(mem(), options).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /widget/session HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let closed = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "the server closes a connection whose head never completes"
    );
    server.stop().await;
}

#[tokio::test]
async fn hostile_bytes_never_crash_the_server() {
    let server = TestServer::start(mem(), Options::standard()).await;
    let garbage: [&[u8]; 6] = [
        b"\x00\x01\x02\xff\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /widget/session HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"POST /widget/session HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\nzz\r\n",
        b"GET /widget/users/%ff%fe/kyc-status HTTP/1.1\r\nhost: x\r\n\r\n",
        b"POST /widget/session HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe\r\ncontent-length: 0\r\n\r\n",
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        let _ = stream.shutdown().await;
        let _ = read_until_close(&mut stream, Duration::from_secs(5)).await;
    }
    let still_alive = server.create_session(&server.tokens.acme, SEED_BODY).await;
    assert_eq!(
        still_alive.status, 200,
        "the server still answers after hostile input"
    );
    server.stop().await;
}

/// Sends `head` (a request without a body) on a fresh connection and returns
/// what arrived before the server closed it or `limit` passed.
async fn send_head(server: &TestServer, head: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    read_until_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered before the test limit")
}

/// A GET with `extra` header lines and `connection: close`.
fn head_with(extra: &str) -> String {
    format!("GET /widget/transactions/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n")
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let server = TestServer::start(mem(), Options::standard()).await;
    let big = head_with(&format!("x-filler: {}\r\n", "a".repeat(17 * 1024)));
    let answer = send_head(&server, &big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "17 KiB head: {answer}");

    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let answer = send_head(&server, &head_with(&many)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "101 headers: {answer}");

    // Just inside both bounds, the request is served (401: no token).
    let fits = head_with(&format!("x-filler: {}\r\n", "a".repeat(15 * 1024)));
    let answer = send_head(&server, &fits).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "15 KiB head: {answer}");
    let few: String = (0..90).map(|i| format!("x-h{i}: v\r\n")).collect();
    let answer = send_head(&server, &head_with(&few)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "90 headers: {answer}");
    server.stop().await;
}

/// One request on a keep-alive connection, answered; the connection stays open.
async fn served_keep_alive(server: &TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /widget/transactions/x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("answered")
        .expect("read");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 401"), "served");
    stream
}

#[tokio::test]
async fn connections_over_the_limit_wait_in_the_backlog() {
    let mut options = Options::standard();
    options.max_connections = 2;
    let server = TestServer::start(mem(), options).await;
    let first = served_keep_alive(&server).await;
    let _second = served_keep_alive(&server).await;

    // The kernel completes the handshake, but the server does not take the
    // connection while two are open: the request waits unanswered.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third
        .write_all(head_with("").as_bytes())
        .await
        .expect("write");
    let mut buffer = [0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buffer)).await;
    assert!(early.is_err(), "the third connection is not served yet");

    drop(first);
    let answer = read_until_close(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    server.stop().await;
}

/// SPEC.md §6: a full in-memory store with nothing to evict refuses new
/// sessions with 503 instead of growing.
#[tokio::test]
async fn a_full_memory_store_answers_503_store_unavailable() {
    let server = TestServer::start(
        Arc::new(MemStore::with_max_sessions(2)),
        Options::standard(),
    )
    .await;
    for _ in 0..2 {
        let created = server.create_session(&server.tokens.acme, SEED_BODY).await;
        assert_eq!(created.status, 200, "{:?}", created.body);
    }
    server
        .create_session(&server.tokens.acme, SEED_BODY)
        .await
        .assert_error(503, "unavailable", "store_unavailable");
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start(mem(), Options::standard()).await;
    let health = server.admin(Method::GET, "/healthz").send().await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = server.admin(Method::GET, "/readyz").send().await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()["status"].as_str()),
        (200, Some("ready"))
    );
    server
        .admin(Method::POST, "/readyz")
        .send()
        .await
        .assert_error(405, "invalid_request", "method_not_allowed");
    server
        .admin(Method::GET, "/widget/session")
        .send()
        .await
        .assert_error(404, "not_found", "not_found");
    server.lifecycle.start_draining();
    server
        .admin(Method::GET, "/readyz")
        .send()
        .await
        .assert_error(503, "unavailable", "shutting_down");
    server.stop().await;
}

#[tokio::test]
async fn draining_finishes_in_flight_requests_then_stops_accepting() {
    let server = TestServer::start(mem(), Options::standard()).await;
    let addr = server.addr;
    // A request whose body is still arriving when shutdown begins.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /widget/session HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.tokens.acme,
        SEED_BODY.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(SEED_BODY.as_bytes())
        .await
        .expect("write body");
    let answer = read_until_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight request completes: {answer}"
    );
    stopping.await.expect("server stopped");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
