//! The session's life through the real server: widget redemption, provider
//! events, transaction and KYC status, and tenant isolation.

use std::sync::Arc;

use http::Method;

use crate::support::{
    Options, PROVIDER_SECRET, SEED_BODY, TestResponse, TestServer, TestStore, WIDGET_ORIGIN,
    init_body, seed_with,
};

pub(crate) async fn redeem(server: &TestServer, body: &serde_json::Value) -> TestResponse {
    server
        .request(Method::POST, "/widget/init")
        .header("origin", WIDGET_ORIGIN)
        .json(&body.to_string())
        .send()
        .await
}

pub(crate) async fn provider_event(server: &TestServer, body: &serde_json::Value) -> TestResponse {
    let raw = body.to_string();
    let signature = server.provider.sign_hex(raw.as_bytes());
    server
        .request(Method::POST, "/provider/events")
        .header("x-signature", &signature)
        .json(&raw)
        .send()
        .await
}

pub(crate) async fn new_session(server: &TestServer, body: &str) -> serde_json::Value {
    let response = server.create_session(&server.tokens.acme, body).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    response.json()
}

pub async fn widget_redeems_once<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = new_session(&server, SEED_BODY).await;
    let first = redeem(&server, &init_body(&session)).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(
        first.header("access-control-allow-origin"),
        Some(WIDGET_ORIGIN)
    );
    let body = first.json();
    for field in [
        "merchant_transaction_id",
        "widget_id",
        "address",
        "currency",
        "network",
        "amount",
        "type",
        "fiat_currency",
        "lang",
        "theme",
        "redirect_url",
    ] {
        assert_eq!(body[field], session[field], "{field} is the stored value");
    }
    assert_eq!(body["status"], "pending");
    assert_eq!(body["fix_network"], serde_json::json!(["TRC20"]));
    let again = redeem(&server, &init_body(&session)).await;
    again.assert_error(409, "conflict", "session_already_used");
    assert_eq!(
        again.header("access-control-allow-origin"),
        Some(WIDGET_ORIGIN),
        "errors are readable by the widget"
    );
    server.stop().await;
}

pub async fn tampered_parameters_do_not_consume_the_token<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = new_session(&server, SEED_BODY).await;
    for (field, value) in [
        ("amount", "1000"),
        ("address", "TXYZabcdefghijkmnopqrstuvwxyz99999"),
        ("network", "ERC20"),
        ("signature", "v2:00"),
    ] {
        let mut body = init_body(&session);
        body[field] = value.into();
        redeem(&server, &body)
            .await
            .assert_error(400, "invalid_request", "invalid_signature");
    }
    assert_eq!(
        redeem(&server, &init_body(&session)).await.status,
        200,
        "the untampered request still redeems"
    );
    server.stop().await;
}

pub async fn expired_and_forged_tokens<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.init_token_ttl_seconds = 30;
    let server = TestServer::start(store, options).await;
    let session = new_session(&server, SEED_BODY).await;
    let other = new_session(&server, SEED_BODY).await;

    let mut forged = init_body(&session);
    forged["init_token"] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into();
    redeem(&server, &forged)
        .await
        .assert_error(401, "unauthorised", "invalid_init_token");
    let mut swapped = init_body(&session);
    swapped["init_token"] = other["init_token"].clone();
    redeem(&server, &swapped)
        .await
        .assert_error(401, "unauthorised", "invalid_init_token");

    server.clock.advance(31);
    redeem(&server, &init_body(&session))
        .await
        .assert_error(410, "gone", "session_expired");
    server.stop().await;
}

pub async fn widget_cors<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let preflight = server
        .request(Method::OPTIONS, "/widget/init")
        .header("origin", WIDGET_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(WIDGET_ORIGIN)
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    let foreign = server
        .request(Method::OPTIONS, "/widget/init")
        .header("origin", "https://evil.example")
        .send()
        .await;
    foreign.assert_error(403, "forbidden", "forbidden_origin");
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let session = new_session(&server, SEED_BODY).await;
    let from_evil = server
        .request(Method::POST, "/widget/init")
        .header("origin", "https://evil.example")
        .json(&init_body(&session).to_string())
        .send()
        .await;
    from_evil.assert_error(403, "forbidden", "forbidden_origin");
    assert_eq!(
        redeem(&server, &init_body(&session)).await.status,
        200,
        "the refused origin consumed nothing"
    );
    server.stop().await;
}

pub async fn concurrent_redemptions_have_one_winner<S: TestStore>(store: Arc<S>) {
    let server = Arc::new(TestServer::start(store, Options::standard()).await);
    for round in 0..200 {
        let session = new_session(&server, SEED_BODY).await;
        let body = init_body(&session);
        let attempts: Vec<_> = (0..64)
            .map(|_| {
                let server = Arc::clone(&server);
                let body = body.clone();
                tokio::spawn(async move { redeem(&server, &body).await.status.as_u16() })
            })
            .collect();
        let mut statuses = Vec::with_capacity(64);
        for attempt in attempts {
            statuses.push(attempt.await.expect("task"));
        }
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((ok, conflicts), (1, 63), "round {round}: {statuses:?}");
    }
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
}

pub async fn provider_events_drive_the_status<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = new_session(&server, SEED_BODY).await;
    let id = session["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let status = || {
        server
            .request(Method::GET, &format!("/widget/transactions/{id}"))
            .bearer(&server.tokens.acme)
            .send()
    };

    let initial = status().await;
    assert_eq!(initial.status, 200);
    let view = initial.json();
    let fields: Vec<&str> = view
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "merchant_transaction_id",
            "partner_user_id",
            "type",
            "status",
            "currency",
            "network",
            "crypto_amount",
            "fiat_currency",
            "fiat_amount",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(
        (
            view["status"].as_str(),
            view["crypto_amount"].as_str(),
            view["fiat_amount"].as_str()
        ),
        (Some("pending"), Some(""), Some(""))
    );
    assert!(
        view["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let processing = serde_json::json!({"event_id": "ev-1", "merchant_transaction_id": id, "status": "processing",
        "fiat_amount": "92.15", "fiat_currency": "EUR", "payment_method": "card", "kyc_status": "pending",
        "occurred_at": "2026-11-24T08:00:00Z"});
    let applied = provider_event(&server, &processing).await;
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    assert_eq!(applied.json()["applied"], true);
    let replay = provider_event(&server, &processing).await.json();
    assert_eq!(
        (&replay["applied"], &replay["duplicate"]),
        (&false.into(), &true.into())
    );

    let completed = serde_json::json!({"event_id": "ev-2", "merchant_transaction_id": id, "status": "completed", "crypto_amount": "100",
        "kyc_status": "verified", "occurred_at": "2026-11-24T08:05:00Z"});
    assert_eq!(
        provider_event(&server, &completed).await.json()["status"],
        "completed"
    );
    let late =
        serde_json::json!({"event_id": "ev-3", "merchant_transaction_id": id, "status": "failed"});
    let late = provider_event(&server, &late).await.json();
    assert_eq!(
        (&late["applied"], &late["status"], &late["ignored_because"]),
        (&false.into(), &"completed".into(), &"terminal".into())
    );

    let view = status().await.json();
    assert_eq!(
        (
            view["status"].as_str(),
            view["crypto_amount"].as_str(),
            view["fiat_amount"].as_str()
        ),
        (Some("completed"), Some("100"), Some("92.15"))
    );
    let kyc = server
        .request(Method::GET, "/widget/users/user-123/kyc-status")
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(
        kyc.json(),
        serde_json::json!({"partner_user_id": "user-123", "status": "verified"})
    );
    server.stop().await;
}

pub async fn provider_requests_are_authenticated_and_validated<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = new_session(&server, SEED_BODY).await;
    let event = serde_json::json!({"event_id": "ev-1", "merchant_transaction_id": session["merchant_transaction_id"], "status": "processing"});
    let raw = event.to_string();
    let post = |signature: Option<&str>, body: &str| {
        let mut request = server.request(Method::POST, "/provider/events").json(body);
        if let Some(signature) = signature {
            request = request.header("x-signature", signature);
        }
        request.send()
    };
    post(None, &raw)
        .await
        .assert_error(401, "unauthorised", "invalid_signature");
    post(Some("00"), &raw)
        .await
        .assert_error(401, "unauthorised", "invalid_signature");
    let wrong_key = session_core::provider::ProviderKey::new(&session_core::secret::Secret::new(
        format!("{PROVIDER_SECRET}x"),
    ))
    .expect("key");
    post(Some(&wrong_key.sign_hex(raw.as_bytes())), &raw)
        .await
        .assert_error(401, "unauthorised", "invalid_signature");
    let tampered = raw.replace("processing", "completed");
    post(Some(&server.provider.sign_hex(raw.as_bytes())), &tampered)
        .await
        .assert_error(401, "unauthorised", "invalid_signature");
    let garbage = "{not json";
    post(Some(&server.provider.sign_hex(garbage.as_bytes())), garbage)
        .await
        .assert_error(400, "invalid_request", "decode_error");
    let unknown = serde_json::json!({"event_id": "ev-x", "merchant_transaction_id": uuid::Uuid::new_v4().to_string(), "status": "processing"});
    provider_event(&server, &unknown)
        .await
        .assert_error(404, "not_found", "not_found");
    let bad_status = serde_json::json!({"event_id": "ev-y", "merchant_transaction_id": session["merchant_transaction_id"], "status": "done"});
    provider_event(&server, &bad_status).await.assert_error(
        400,
        "invalid_request",
        "validation_error",
    );
    // The test clock reads 2026-11-24T08:35:30Z: a provider clock running ahead
    // by more than five minutes must not freeze the transaction.
    let ahead = serde_json::json!({"event_id": "ev-z", "merchant_transaction_id": session["merchant_transaction_id"],
        "status": "completed", "occurred_at": "2026-11-24T08:40:31Z"});
    let refused = provider_event(&server, &ahead).await;
    refused.assert_error(400, "invalid_request", "validation_error");
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("occurred_at")),
        "{:?}",
        refused.body
    );
    let status = server
        .request(
            Method::GET,
            &format!(
                "/widget/transactions/{}",
                session["merchant_transaction_id"].as_str().expect("id")
            ),
        )
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(status.json()["status"], "pending", "nothing was applied");
    server.stop().await;
}

pub async fn tenants_cannot_see_each_other<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let session = new_session(
        &server,
        &seed_with(&[("partner_user_id", Some("\"acme-user\""))]),
    )
    .await;
    let id = session["merchant_transaction_id"].as_str().expect("id");
    let as_other = |path: String| {
        server
            .request(Method::GET, &path)
            .bearer(&server.tokens.other)
            .send()
    };
    let foreign_tx = as_other(format!("/widget/transactions/{id}")).await;
    let unknown_tx = as_other(format!("/widget/transactions/{}", uuid::Uuid::new_v4())).await;
    foreign_tx.assert_error(404, "not_found", "not_found");
    assert_eq!(
        foreign_tx.body, unknown_tx.body,
        "a foreign id answers exactly like an unknown one"
    );
    let foreign_user = as_other("/widget/users/acme-user/kyc-status".into()).await;
    let unknown_user = as_other("/widget/users/nobody/kyc-status".into()).await;
    foreign_user.assert_error(404, "not_found", "not_found");
    assert_eq!(foreign_user.body, unknown_user.body);
    let own = server
        .request(Method::GET, "/widget/users/acme-user/kyc-status")
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(own.json()["status"], "not_started");
    let encoded = server
        .request(Method::GET, "/widget/users/acme%2Duser/kyc-status")
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(encoded.status, 200, "path segments are percent-decoded");
    server.stop().await;
}
