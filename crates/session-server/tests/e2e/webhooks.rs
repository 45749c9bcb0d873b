//! Webhooks through the real binary on PostgreSQL: events committed by
//! `POST /provider/events` reach a receiver on loopback in order, survive a
//! SIGKILL of the instance, and show in `session-server webhooks list`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_core::provider::ProviderKey;
use session_core::secret::Secret;
use session_store_pg::testing::TestDatabase;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{Bootstrap, LOOPBACK, create_seed_session, request, start};

const TOKEN: &str = "ct_test_e2e-webhooks-token-0123456789abcdefghijklmnop";
const PROVIDER_SECRET: &str = "e2e-provider-secret";
/// Base64 of "e2e-webhook-secret".
const WEBHOOK_SECRET: &str = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0";

/// A receiver that answers with the statuses queued in `script` (200 when
/// none is queued) and reports each request's `webhook-id` and `status`.
async fn receiver() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<(String, String)>,
    Arc<Mutex<VecDeque<u16>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (sent, received) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let replies = Arc::clone(&script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (sent, replies) = (sent.clone(), Arc::clone(&replies));
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let (sent, replies) = (sent.clone(), Arc::clone(&replies));
                        async move {
                            let id = request
                                .headers()
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let _ =
                                sent.send((id, status["status"].as_str().unwrap_or("").to_owned()));
                            let code = replies.lock().expect("script").pop_front().unwrap_or(200);
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(code)
                                    .body(Full::new(Bytes::new()))
                                    .expect("response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received, script)
}

async fn provider_event(server: SocketAddr, body: &str) {
    let key = ProviderKey::new(&Secret::new(PROVIDER_SECRET)).expect("key");
    let signature = key.sign_hex(body.as_bytes());
    let answer = request(
        server,
        "POST",
        "/provider/events",
        &[
            ("content-type", "application/json"),
            ("x-signature", &signature),
        ],
        body,
    )
    .await
    .expect("provider event");
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_in_order_and_survive_a_sigkill() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let (hook, mut received, script) = receiver().await;
    // The endpoint is down at first: every attempt before the kill fails.
    script.lock().expect("script").extend([503; 1_000]);
    let bootstrap = Bootstrap::write_with(
        TOKEN,
        &format!("webhook_url = \"http://{hook}/hook\"\nwebhook_secret = \"{WEBHOOK_SECRET}\""),
    );
    let path = bootstrap.path();
    let args: Vec<&str> = [
        "serve",
        "--database-url",
        database.url(),
        "--bootstrap",
        &path,
        "--provider-secret",
        PROVIDER_SECRET,
        "--webhook-allow-ip",
        "127.0.0.0/8",
        "--webhook-retry-base",
        "100ms",
        "--webhook-retry-cap",
        "300ms",
        "--webhook-timeout",
        "2s",
    ]
    .into_iter()
    .chain(LOOPBACK)
    .collect();
    let mut server = start(&args).await;
    let created = create_seed_session(server.public, TOKEN)
        .await
        .expect("create");
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (n, status) in [(1, "processing"), (2, "completed")] {
        let body = format!(
            r#"{{"event_id":"ev-{n}","merchant_transaction_id":"{id}","status":"{status}"}}"#
        );
        provider_event(server.public, &body).await;
    }
    // Attempts are being made (and failing): kill the instance mid-retry.
    let first = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("a first attempt within 5 s")
        .expect("receiver");
    assert_eq!(first.1, "processing", "the earlier event is tried first");
    server.child.start_kill().expect("SIGKILL");
    let _ = server.child.wait().await;

    // The endpoint recovers; a new instance on the same database delivers.
    script.lock().expect("script").clear();
    while received.try_recv().is_ok() {}
    let server = start(&args).await;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    while statuses.len() < 2 {
        let (webhook_id, status) = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("every event arrives after the restart")
            .expect("receiver");
        if statuses.last() != Some(&status) {
            statuses.push(status);
            ids.push(webhook_id);
        }
    }
    assert_eq!(statuses, ["processing", "completed"], "in order");
    assert_eq!(ids[0], first.0, "the same webhook-id as before the kill");

    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args([
            "webhooks",
            "list",
            "--json",
            "--database-url",
            database.url(),
        ])
        .output()
        .await
        .expect("run webhooks list");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["state"], "delivered", "{row}");
        assert_eq!(row["partner"], "acme");
        assert_eq!(row["merchant_transaction_id"], id.as_str());
    }
    // The attempts counted are the recorded ones: an attempt cut short by the
    // kill may or may not have been recorded, so only at least one is certain.
    assert!(
        rows[1]["attempts"].as_u64().unwrap_or(0) >= 1,
        "{}",
        rows[1]
    );

    // The restarted instance counted its deliveries, their lag, its pools.
    let scraped = crate::support::request(server.admin, "GET", "/metrics", &[], "")
        .await
        .expect("scrape");
    assert_eq!(scraped.status, 200);
    let sample = |name: &str| -> f64 {
        scraped
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{}", scraped.body))
    };
    assert!(sample("session_webhook_attempts_total{outcome=\"delivered\"}") >= 2.0);
    assert!(sample("session_webhook_delivery_lag_seconds_count") >= 2.0);
    assert!(sample("session_store_pool_connections{state=\"idle\"}") >= 0.0);
    assert!(sample("session_webhook_pending") >= 0.0);
    assert!(sample("process_open_fds") > 0.0);
    crate::support::terminate(&server.child);
}
