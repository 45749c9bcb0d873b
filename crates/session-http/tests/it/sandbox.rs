//! The sandbox (SPEC.md §7) through the real server: its routes exist only in
//! sandbox mode, and a simulated payment reaches the partner by every channel
//! a real one does: polling, the WebSocket, and the outbox webhooks read.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use session_core::client_token::{self, TokenEnv};
use session_core::partner::PartnerId;
use session_core::testing::CountingRandom;
use session_core::time::Clock;
use uuid::Uuid;

use crate::lifecycle::{new_session, redeem};
use crate::live::{next_update, subscribe};
use crate::support::{
    Options, SEED_BODY, TestResponse, TestServer, TestStore, WIDGET_ORIGIN, init_body,
};

const SOON: Duration = Duration::from_secs(5);

fn sandbox() -> Options {
    Options {
        sandbox: true,
        ..Options::standard()
    }
}

async fn simulate(server: &TestServer, session: &serde_json::Value, outcome: &str) -> TestResponse {
    let path = format!(
        "/sandbox/transactions/{}/simulate",
        session["merchant_transaction_id"].as_str().expect("id")
    );
    server
        .request(Method::POST, &path)
        .header("origin", WIDGET_ORIGIN)
        .bearer(session["init_token"].as_str().expect("token"))
        .json(&format!(r#"{{"outcome":"{outcome}"}}"#))
        .send()
        .await
}

/// A session the widget has redeemed, as the stand-in widget leaves it.
async fn redeemed_session(server: &TestServer) -> serde_json::Value {
    let session = new_session(server, SEED_BODY).await;
    let redeemed = redeem(server, &init_body(&session)).await;
    assert_eq!(redeemed.status, 200, "{:?}", redeemed.body);
    session
}

async fn status(server: &TestServer, session: &serde_json::Value) -> serde_json::Value {
    let id = session["merchant_transaction_id"].as_str().expect("id");
    let read = server
        .request(Method::GET, &format!("/widget/transactions/{id}"))
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    read.json()
}

pub async fn sandbox_routes_are_absent_outside_sandbox_mode<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = redeemed_session(&server).await;
    let path = format!(
        "/sandbox/transactions/{}/simulate",
        session["merchant_transaction_id"].as_str().expect("id")
    );
    for (method, path) in [
        (Method::GET, "/widget/sdk.js"),
        (Method::POST, path.as_str()),
        (Method::OPTIONS, path.as_str()),
        (Method::GET, path.as_str()),
    ] {
        let answer = server
            .request(method.clone(), path)
            .header("origin", WIDGET_ORIGIN)
            .send()
            .await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(answer.json()["code"], "not_found", "{method} {path}");
    }
    // Even with the session's own token, nothing is simulated.
    let refused = simulate(&server, &session, "completed").await;
    assert_eq!(refused.status, 404);
    assert_eq!(status(&server, &session).await["status"], "pending");
    server.stop().await;
}

pub async fn sandbox_payment_reaches_polling_websocket_and_outbox<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(Arc::clone(&store), sandbox()).await;
    let script = server.request(Method::GET, "/widget/sdk.js").send().await;
    assert_eq!(script.status, 200);
    let text = String::from_utf8(script.body.to_vec()).expect("UTF-8 script");
    assert!(text.contains("proofWidget") && text.contains("/simulate"));

    let session = new_session(&server, SEED_BODY).await;
    let id = session["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = simulate(&server, &session, "completed").await;
    assert_eq!(
        (before.status.as_u16(), before.json()["code"].clone()),
        (409, "conflict".into()),
        "the widget must redeem first"
    );
    let redeemed = redeem(&server, &init_body(&session)).await;
    assert_eq!(redeemed.status, 200, "{:?}", redeemed.body);

    let mut client = subscribe(server.addr, &server.tokens.acme, &id).await;
    assert_eq!(next_update(&mut client, SOON).await["status"], "pending");
    let paid = simulate(&server, &session, "completed").await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    assert_eq!(
        paid.header("access-control-allow-origin"),
        Some(WIDGET_ORIGIN)
    );
    assert_eq!(
        paid.json(),
        serde_json::json!({"merchant_transaction_id": id, "status": "completed", "applied": true})
    );
    // The WebSocket sees each step, as for a real provider.
    let processing = next_update(&mut client, SOON).await;
    assert_eq!(
        (&processing["status"], &processing["payment_method"]),
        (&"processing".into(), &"sandbox".into())
    );
    assert_eq!(next_update(&mut client, SOON).await["status"], "completed");
    // Polling.
    let polled = status(&server, &session).await;
    assert_eq!(
        (&polled["status"], &polled["crypto_amount"]),
        (&"completed".into(), &"100".into())
    );
    // The outbox the webhook dispatcher delivers from.
    let uuid = Uuid::parse_str(&id).expect("uuid");
    let events: Vec<&str> = store
        .status_events(uuid)
        .await
        .expect("outbox")
        .iter()
        .map(|event| event.status.as_str())
        .collect();
    assert_eq!(events, ["processing", "completed"]);

    // Another click changes nothing.
    let again = simulate(&server, &session, "failed").await;
    assert_eq!(
        again.json(),
        serde_json::json!({"merchant_transaction_id": id, "status": "completed", "applied": false})
    );
    assert_eq!(store.status_events(uuid).await.expect("outbox").len(), 2);
    server.stop().await;
}

pub async fn sandbox_never_pays_a_live_session<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(Arc::clone(&store), sandbox()).await;
    let issued = client_token::issue(
        TokenEnv::Live,
        PartnerId::parse("acme").expect("partner id"),
        "live",
        server.clock.now(),
        &CountingRandom::starting_at(1 << 60),
    );
    store.add_token(&issued.record).await.expect("add token");
    let opened = server.create_session(&issued.token, SEED_BODY).await;
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    let session = opened.json();
    let redeemed = redeem(&server, &init_body(&session)).await;
    assert_eq!(redeemed.status, 200, "{:?}", redeemed.body);
    let refused = simulate(&server, &session, "completed").await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["code"].clone()),
        (409, "conflict".into()),
        "{:?}",
        refused.body
    );
    assert_eq!(status(&server, &session).await["status"], "pending");
    server.stop().await;
}

pub async fn sandbox_fail_and_cancel<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, sandbox()).await;
    for (outcome, expected) in [("failed", "failed"), ("cancelled", "cancelled")] {
        let session = redeemed_session(&server).await;
        let answer = simulate(&server, &session, outcome).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.json()["status"], expected);
        assert_eq!(status(&server, &session).await["status"], expected);
    }
    // Someone else's token, a token for another transaction, no token.
    let mine = redeemed_session(&server).await;
    let theirs = redeemed_session(&server).await;
    let mut crossed = mine.clone();
    crossed["init_token"] = theirs["init_token"].clone();
    let refused = simulate(&server, &crossed, "completed").await;
    assert_eq!(
        (refused.status.as_u16(), refused.json()["code"].clone()),
        (401, "invalid_init_token".into())
    );
    let path = format!(
        "/sandbox/transactions/{}/simulate",
        mine["merchant_transaction_id"].as_str().expect("id")
    );
    let anonymous = server
        .request(Method::POST, &path)
        .json(r#"{"outcome":"completed"}"#)
        .send()
        .await;
    assert_eq!(
        (anonymous.status.as_u16(), anonymous.json()["code"].clone()),
        (401, "missing_token".into())
    );
    assert_eq!(status(&server, &mine).await["status"], "pending");
    server.stop().await;
}
