//! `Idempotency-Key` on `POST /widget/session` (SPEC.md §2, Idempotency),
//! through the real server.

use std::sync::Arc;

use http::Method;
use session_core::service::DEFAULT_IDEMPOTENCY_TTL_SECONDS;

use crate::support::{Options, SEED_BODY, TestResponse, TestServer, TestStore, seed_with};

async fn start(store: Arc<impl TestStore>) -> TestServer {
    TestServer::start(store, Options::standard()).await
}

async fn keyed(server: &TestServer, token: &str, key: &str, body: &str) -> TestResponse {
    server
        .request(Method::POST, "/widget/session")
        .bearer(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
}

fn id_of(response: &TestResponse) -> String {
    assert_eq!(response.status, 200, "{:?}", response.body);
    response.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The seed body with its members in another order, spaced differently.
fn seed_reordered() -> String {
    let seed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(SEED_BODY).expect("seed");
    let members: Vec<String> = seed
        .iter()
        .rev()
        .map(|(name, value)| format!("\n  {:?} :  {value}", name))
        .collect();
    format!("{{{}\n}}", members.join(" ,"))
}

pub async fn idempotency_replays_the_same_bytes(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let token = &server.tokens.acme;
    let first = keyed(&server, token, "order-1001", SEED_BODY).await;
    let id = id_of(&first);
    assert_eq!(first.header("idempotent-replayed"), None);

    for (key, body) in [
        ("order-1001", SEED_BODY.to_owned()),
        ("order-1001", seed_reordered()),
        ("\"order-1001\"", SEED_BODY.to_owned()),
    ] {
        let again = keyed(&server, token, key, &body).await;
        assert_eq!(again.status, 200, "{:?}", again.body);
        assert_eq!(again.body, first.body, "byte for byte ({key}, {body})");
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.header("content-type"), Some("application/json"));
        assert!(again.header("x-request-id").is_some());
    }

    // The replay created nothing: the transaction is the first one, still
    // pending, and its init token still redeems once.
    let read = server
        .request(Method::GET, &format!("/widget/transactions/{id}"))
        .bearer(token)
        .send()
        .await;
    assert_eq!(read.json()["status"], "pending");

    // A new key is a new transaction.
    let other = keyed(&server, token, "order-1002", SEED_BODY).await;
    assert_ne!(id_of(&other), id);
}

pub async fn idempotency_different_request_or_partner(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let first = keyed(&server, &server.tokens.acme, "k-1", SEED_BODY).await;
    let id = id_of(&first);

    for body in [
        seed_with(&[("amount", Some("\"101\""))]),
        seed_with(&[("type", None)]),
        // Refused by a partner rule too, but the key's check comes first.
        seed_with(&[("currency", Some("\"BTC\""))]),
    ] {
        let reused = keyed(&server, &server.tokens.acme, "k-1", &body).await;
        reused.assert_error(409, "conflict", "idempotency_key_reused");
        assert_eq!(reused.header("idempotent-replayed"), None);
    }

    // Another partner's key space is its own.
    let theirs = keyed(&server, &server.tokens.other, "k-1", SEED_BODY).await;
    assert_eq!(theirs.status, 200, "{:?}", theirs.body);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_ne!(id_of(&theirs), id);
}

pub async fn idempotency_bad_keys_name_the_header(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let token = &server.tokens.acme;
    let long = "k".repeat(256);
    for key in [
        &b""[..],
        long.as_bytes(),
        b"caf\xc3\xa9",
        b"\"open",
        b"a\tb",
    ] {
        let response = server
            .request(Method::POST, "/widget/session")
            .bearer(token)
            .header_bytes("idempotency-key", key)
            .json(SEED_BODY)
            .send()
            .await;
        response.assert_error(400, "invalid_request", "validation_error");
        let message = response.json()["message"]
            .as_str()
            .expect("message")
            .to_owned();
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    let twice = server
        .request(Method::POST, "/widget/session")
        .bearer(token)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(SEED_BODY)
        .send()
        .await;
    twice.assert_error(400, "invalid_request", "validation_error");

    // The body's own errors come first (SPEC.md §1 check order).
    let bad = |body: &'static str| {
        server
            .request(Method::POST, "/widget/session")
            .bearer(token)
            .header("idempotency-key", "")
            .json(body)
            .send()
    };
    bad("{")
        .await
        .assert_error(400, "invalid_request", "decode_error");
    bad("{}")
        .await
        .assert_error(400, "invalid_request", "missing_param");
}

pub async fn idempotency_errors_are_not_stored(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let token = &server.tokens.acme;
    let refused = [
        (seed_with(&[("network", Some("\"ERC20\""))]), 400),
        (
            seed_with(&[("partner_user_id", Some("\"fail-unavailable\""))]),
            503,
        ),
        (seed_with(&[("partner_user_id", Some("\"fail-db\""))]), 500),
    ];
    for (n, (body, status)) in refused.into_iter().enumerate() {
        let key = format!("err-{n}");
        let failed = keyed(&server, token, &key, &body).await;
        assert_eq!(failed.status, status, "{:?}", failed.body);
        // Were the error stored, a different body would now be "reused".
        let retried = keyed(&server, token, &key, SEED_BODY).await;
        assert_eq!(retried.status, 200, "{:?}", retried.body);
        assert_eq!(retried.header("idempotent-replayed"), None);
    }
}

pub async fn idempotency_concurrent_requests_create_one(store: Arc<impl TestStore>) {
    let server = Arc::new(start(store).await);
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(
                async move { keyed(&server, &server.tokens.acme, "burst", SEED_BODY).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.expect("task"));
    }
    let created: Vec<&TestResponse> = answers
        .iter()
        .filter(|a| a.status == 200 && a.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(created.len(), 1, "exactly one request creates");
    for answer in &answers {
        match answer.status.as_u16() {
            200 => assert_eq!(answer.body, created[0].body, "the others replay it"),
            _ => answer.assert_error(409, "conflict", "idempotency_key_in_use"),
        }
    }
}

pub async fn idempotency_keys_expire_after_the_ttl(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let token = &server.tokens.acme;
    let first = id_of(&keyed(&server, token, "daily", SEED_BODY).await);
    server.clock.advance(DEFAULT_IDEMPOTENCY_TTL_SECONDS - 1);
    let replay = keyed(&server, token, "daily", SEED_BODY).await;
    assert_eq!(
        (id_of(&replay), replay.header("idempotent-replayed")),
        (first.clone(), Some("true"))
    );
    server.clock.advance(2);
    let fresh = keyed(&server, token, "daily", SEED_BODY).await;
    assert_ne!(id_of(&fresh), first, "an expired key creates anew");
    assert_eq!(fresh.header("idempotent-replayed"), None);
    let replay = keyed(&server, token, "daily", SEED_BODY).await;
    assert_eq!(id_of(&replay), id_of(&fresh), "and the new answer is kept");
}

pub async fn without_a_key_nothing_is_deduplicated(store: Arc<impl TestStore>) {
    let server = start(store).await;
    let a = server.create_session(&server.tokens.acme, SEED_BODY).await;
    let b = server.create_session(&server.tokens.acme, SEED_BODY).await;
    assert_ne!(id_of(&a), id_of(&b));
    assert_eq!(b.header("idempotent-replayed"), None);
}
