//! The admin API under `/admin/` (SPEC.md §6), on every store: off without a
//! token, 401 without the right one, partners listed without secrets, a
//! partner created, given a token and opening a session, a token rotated with
//! no grace and revoked, a request budget set and cleared, and the error
//! envelope on bad requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Options, SEED_BODY, TRON_WALLET, TestResponse, TestServer, TestStore, WIDGET_ID,
    partner_spec,
};

/// How long a change may take to reach the partner API (PostgreSQL reloads
/// its partner snapshot on `NOTIFY`): the spec's two seconds.
const WITHIN: Duration = Duration::from_secs(2);

impl TestServer {
    /// An admin request with the admin token and, when given, a JSON body.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let request = self.admin(method, path).bearer(ADMIN_TOKEN);
        match body {
            Some(body) => request.json(&body.to_string()).send().await,
            None => request.send().await,
        }
    }
}

/// A partner as `POST /admin/partners` takes it: the bootstrap entry's fields.
pub fn new_partner(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("{id} ltd"),
        "allowed_origins": [format!("https://app.{id}.example")],
        "signing_secret": format!("{id}-chosen-signing-secret"),
        "widget": {
            "widget_id": WIDGET_ID,
            "currencies": ["USDT"],
            "networks": ["TRC20"],
            "fiat_currency": "EUR",
            "fiat_currencies": ["EUR"],
        },
        "wallets": [{"currency": "USDT", "network": "TRC20", "address": TRON_WALLET}],
    })
}

/// Issues a client token for `id` through the admin API.
pub async fn issue(server: &TestServer, id: &str) -> (String, String) {
    let issued = server
        .admin_call(
            Method::POST,
            &format!("/admin/partners/{id}/tokens"),
            Some(&json!({"env": "test", "label": "admin test"})),
        )
        .await;
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    let body = issued.json();
    let token = body["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned();
    let token_id = body["token_id"].as_str().expect("token_id").to_owned();
    (token, token_id)
}

/// Polls `POST /widget/session` with `token` until it answers `status`,
/// failing after [`WITHIN`].
pub async fn session_answers(server: &TestServer, token: &str, status: u16) -> TestResponse {
    let started = Instant::now();
    loop {
        let answer = server.create_session(token, SEED_BODY).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            started.elapsed() < WITHIN,
            "still {} after {WITHIN:?}, wanted {status}: {:?}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn admin_api_is_off_without_a_token<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    for (method, path) in [
        (Method::GET, "/admin/partners"),
        (Method::POST, "/admin/partners"),
        (Method::GET, "/admin/partners/acme"),
        (Method::GET, "/admin/webhooks/deliveries"),
    ] {
        let answer = server.admin_call(method.clone(), path, None).await;
        answer.assert_error(404, "not_found", "not_found");
    }
    assert_eq!(
        server.admin(Method::GET, "/healthz").send().await.status,
        200
    );
    server.stop().await;
}

pub async fn admin_api_needs_its_token<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let anonymous = server.admin(Method::GET, "/admin/partners").send().await;
    anonymous.assert_error(401, "unauthorised", "missing_token");
    for wrong in [
        "not-the-admin-token",
        &server.tokens.acme,
        "admin-test-token-012345678",
    ] {
        let answer = server
            .admin(Method::GET, "/admin/partners")
            .bearer(wrong)
            .send()
            .await;
        answer.assert_error(401, "unauthorised", "invalid_token");
    }
    let basic = server
        .admin(Method::GET, "/admin/partners")
        .header("authorization", &format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await;
    basic.assert_error(401, "unauthorised", "missing_token");
    let unknown = server.admin_call(Method::GET, "/admin/nothing", None).await;
    unknown.assert_error(404, "not_found", "not_found");
    let wrong_method = server
        .admin_call(Method::PUT, "/admin/partners", None)
        .await;
    wrong_method.assert_error(405, "invalid_request", "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, POST"));
    server.stop().await;
}

pub async fn admin_lists_partners_without_secrets<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let listed = server
        .admin_call(Method::GET, "/admin/partners", None)
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let body = listed.json();
    let acme = body["partners"]
        .as_array()
        .expect("partners")
        .iter()
        .find(|p| p["id"] == "acme")
        .expect("acme is listed")
        .clone();
    assert_eq!(acme["widget"]["widget_id"], WIDGET_ID);
    assert_eq!(acme["wallets"][0]["address"], TRON_WALLET);
    assert_eq!(
        acme["token_counts"],
        json!({"active": 1, "rotating": 1, "expired": 0, "revoked": 1})
    );
    let shown = server
        .admin_call(Method::GET, "/admin/partners/acme", None)
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json()["tokens"].as_array().map(Vec::len), Some(3));
    let secret = partner_spec("acme").signing_keys[0]
        .secret
        .expose()
        .to_owned();
    for answer in [&listed, &shown] {
        let text = String::from_utf8_lossy(&answer.body);
        for never in [
            secret.as_str(),
            &server.tokens.acme,
            &server.tokens.acme_rotated,
            ADMIN_TOKEN,
        ] {
            assert!(!text.contains(never), "an answer carries a secret: {text}");
        }
    }
    let unknown = server
        .admin_call(Method::GET, "/admin/partners/nobody", None)
        .await;
    unknown.assert_error(404, "not_found", "not_found");
    server.stop().await;
}

pub async fn admin_creates_a_partner_whose_token_opens_sessions<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let body = new_partner("newco");
    let created = server
        .admin_call(Method::POST, "/admin/partners", Some(&body))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let view = created.json();
    assert_eq!(
        (&view["id"], &view["name"]),
        (&json!("newco"), &json!("newco ltd"))
    );
    assert_eq!(
        view["signing_keys"],
        json!([{"kid": "k1", "current": true, "not_after": null}])
    );
    assert!(
        !String::from_utf8_lossy(&created.body).contains("chosen-signing-secret"),
        "the answer has no secret"
    );
    let again = server
        .admin_call(Method::POST, "/admin/partners", Some(&body))
        .await;
    again.assert_error(409, "conflict", "conflict");

    let (token, token_id) = issue(&server, "newco").await;
    assert!(token.starts_with("ct_test_"), "{token}");
    let opened = session_answers(&server, &token, 200).await;
    assert_eq!(opened.json()["widget_id"], WIDGET_ID);

    let shown = server
        .admin_call(Method::GET, "/admin/partners/newco", None)
        .await;
    let tokens = shown.json()["tokens"].clone();
    assert_eq!(tokens[0]["token_id"], token_id.as_str());
    assert_eq!(tokens[0]["state"], "active");
    assert!(!String::from_utf8_lossy(&shown.body).contains(&token));

    // A partner without a wallet for the network cannot open that session.
    let patched = server
        .admin_call(
            Method::PATCH,
            "/admin/partners/newco",
            Some(&json!({"name": "NewCo", "widget": {"networks": ["TRC20", "ERC20"]}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(
        patched.json(),
        json!({"partner_id": "newco", "changed": true, "summary": "name, widget.networks updated"})
    );
    let same = server
        .admin_call(
            Method::PATCH,
            "/admin/partners/newco",
            Some(&json!({"name": "NewCo"})),
        )
        .await;
    assert_eq!(same.json()["changed"], false);
    server.stop().await;
}

pub async fn admin_rotation_without_grace_ends_the_old_token<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let (old, old_id) = issue(&server, "acme").await;
    session_answers(&server, &old, 200).await;
    let rotated = server
        .admin_call(
            Method::POST,
            &format!("/admin/partners/acme/tokens/{old_id}/rotate"),
            Some(&json!({"grace": "0"})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let body = rotated.json();
    assert_eq!(body["replaces"]["token_id"], old_id.as_str());
    let new = body["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned();
    assert_ne!(new, old);
    session_answers(&server, &old, 401)
        .await
        .assert_error(401, "unauthorised", "invalid_token");
    session_answers(&server, &new, 200).await;
    let twice = server
        .admin_call(
            Method::POST,
            &format!("/admin/partners/acme/tokens/{old_id}/rotate"),
            Some(&json!({})),
        )
        .await;
    twice.assert_error(409, "conflict", "conflict");
    server.stop().await;
}

pub async fn admin_revocation_ends_a_token<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let (token, token_id) = issue(&server, "acme").await;
    session_answers(&server, &token, 200).await;
    let path = format!("/admin/partners/acme/tokens/{token_id}");
    let revoked = server.admin_call(Method::DELETE, &path, None).await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.json()["changed"], true);
    session_answers(&server, &token, 401).await;
    let again = server.admin_call(Method::DELETE, &path, None).await;
    assert_eq!(
        again.json()["changed"],
        false,
        "revoking twice changes nothing"
    );
    let foreign = server
        .admin_call(
            Method::DELETE,
            &format!("/admin/partners/other/tokens/{token_id}"),
            None,
        )
        .await;
    foreign.assert_error(404, "not_found", "not_found");
    server.stop().await;
}

pub async fn admin_edits_and_refusals<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let call = |method: Method, path: &'static str, body: Value| {
        let server = &server;
        async move { server.admin_call(method, path, Some(&body)).await }
    };
    let added = call(
        Method::POST,
        "/admin/partners/acme/ips",
        json!({"range": "10.0.0.0/8"}),
    )
    .await;
    assert_eq!(
        added.json()["summary"],
        "ip range 10.0.0.0/8 added (the IP gate is now on: only listed ranges may call)"
    );
    // The test client calls from 127.0.0.1, outside the new allowlist.
    session_answers(&server, &server.tokens.acme, 403).await;
    let removed = server
        .admin_call(
            Method::DELETE,
            "/admin/partners/acme/ips?range=10.0.0.0%2F8",
            None,
        )
        .await;
    assert_eq!(removed.json()["changed"], true, "{:?}", removed.body);
    session_answers(&server, &server.tokens.acme, 200).await;
    let origin = call(
        Method::POST,
        "/admin/partners/acme/origins",
        json!({"origin": "https://shop.acme.example"}),
    )
    .await;
    assert_eq!(origin.json()["changed"], true);
    let wallet = call(
        Method::PATCH,
        "/admin/partners/acme/wallets",
        json!({"currency": "USDT", "network": "TRC20", "active": false}),
    )
    .await;
    assert_eq!(
        wallet.json()["summary"],
        format!("wallet USDT/TRC20 {TRON_WALLET} is now inactive")
    );
    session_answers(&server, &server.tokens.acme, 400)
        .await
        .assert_error(400, "wallet_not_supported", "WALLET_NOT_SUPPORTED");

    let refusals: Vec<(TestResponse, u16, &str, &str)> = vec![
        (
            server
                .admin(Method::PATCH, "/admin/partners/acme")
                .bearer(ADMIN_TOKEN)
                .header("content-type", "text/plain")
                .body(b"{}")
                .send()
                .await,
            415,
            "invalid_request",
            "unsupported_media_type",
        ),
        (
            call(
                Method::PATCH,
                "/admin/partners/acme",
                json!({"name": "x".repeat(70_000)}),
            )
            .await,
            413,
            "invalid_request",
            "payload_too_large",
        ),
        (
            server
                .admin(Method::PATCH, "/admin/partners/acme")
                .bearer(ADMIN_TOKEN)
                .json("{\"name\": \"a\", \"name\": \"b\"}")
                .send()
                .await,
            400,
            "invalid_request",
            "decode_error",
        ),
        (
            call(Method::POST, "/admin/partners", json!({"id": "x"})).await,
            400,
            "invalid_request",
            "missing_param",
        ),
        (
            call(
                Method::PATCH,
                "/admin/partners/acme",
                json!({"offramp_enabled": "yes"}),
            )
            .await,
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            call(
                Method::PATCH,
                "/admin/partners/acme",
                json!({"widget": {"networks": []}}),
            )
            .await,
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            call(Method::PATCH, "/admin/partners/ghost", json!({"name": "x"})).await,
            404,
            "not_found",
            "not_found",
        ),
        (
            call(
                Method::POST,
                "/admin/partners/acme/signing-key/rotate",
                json!({"grace": "1w"}),
            )
            .await,
            400,
            "invalid_request",
            "validation_error",
        ),
    ];
    for (answer, status, error, code) in &refusals {
        answer.assert_error(*status, error, code);
    }
    let rotated = call(
        Method::POST,
        "/admin/partners/acme/signing-key/rotate",
        json!({"grace": "1h", "secret": "a-new-signing-secret"}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(rotated.json()["kid"], "k2");
    assert!(!String::from_utf8_lossy(&rotated.body).contains("a-new-signing-secret"));
    let no_webhook = call(
        Method::POST,
        "/admin/partners/acme/webhook-secret/rotate",
        json!({}),
    )
    .await;
    no_webhook.assert_error(409, "conflict", "conflict");
    server.stop().await;
}

/// Sends `POST /widget/session` as `token` until an answer carries
/// `policy` in `RateLimit-Policy` (the edit has reached the limiter), failing
/// after [`WITHIN`].
async fn budget_applies(server: &TestServer, token: &str, policy: &str) {
    let started = Instant::now();
    loop {
        let answer = server.create_session(token, SEED_BODY).await;
        if answer.header("ratelimit-policy") == Some(policy) {
            return;
        }
        assert!(
            started.elapsed() < WITHIN,
            "no answer with {policy} after {WITHIN:?}: {} {:?}",
            answer.status,
            answer.header("ratelimit-policy")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A budget set through the admin API reaches the partner API (one request a
/// second, burst 1: the second quick request is refused), `null` gives the
/// server's default back, and the admin listener itself has no budget.
pub async fn admin_sets_a_partners_rate_limit<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let path = "/admin/partners/acme";
    let shown = server.admin_call(Method::GET, path, None).await;
    assert_eq!(
        shown.json()["rate_limit"],
        Value::Null,
        "the server default"
    );

    let tight = json!({"rate_limit": {"per_second": 1, "burst": 1}});
    let patched = server.admin_call(Method::PATCH, path, Some(&tight)).await;
    assert_eq!(
        patched.json(),
        json!({"partner_id": "acme", "changed": true, "summary": "rate_limit updated"})
    );
    let shown = server.admin_call(Method::GET, path, None).await;
    assert_eq!(
        shown.json()["rate_limit"],
        json!({"per_second": 1, "burst": 1})
    );
    let token = server.tokens.acme.clone();
    budget_applies(&server, &token, "\"default\";q=1;w=1").await;
    // The budget's one request a second went to the answer above (or, on a
    // slow machine, a second passed: then one more request spends it).
    let mut refused = None;
    for _ in 0..5 {
        let answer = server.create_session(&token, SEED_BODY).await;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a quick request past the budget is refused");
    refused.assert_error(429, "rate_limited", "rate_limit_exceeded");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=1;w=1")
    );

    // The operator is not a partner: the admin API answers however fast it is
    // called, with no budget headers, while acme's budget is spent.
    for _ in 0..10 {
        let answer = server.admin_call(Method::GET, path, None).await;
        assert_eq!(answer.status, 200);
        assert!(answer.header("ratelimit").is_none());
        assert!(answer.header("ratelimit-policy").is_none());
    }

    let refusals = [
        (
            json!({"rate_limit": {"per_second": 1, "burst": 0}}),
            "burst",
        ),
        (
            json!({"rate_limit": {"per_second": 2_000_000}}),
            "per_second",
        ),
        (json!({"rate_limit": {"burst": 3}}), "rate_limit.per_second"),
        (json!({"rate_limit": "fast"}), "rate_limit"),
    ];
    for (body, field) in &refusals {
        let answer = server.admin_call(Method::PATCH, path, Some(body)).await;
        assert_eq!(answer.status, 400, "{body}: {:?}", answer.body);
        assert!(
            answer.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{body}: {:?}",
            answer.body
        );
    }

    let cleared = server
        .admin_call(Method::PATCH, path, Some(&json!({"rate_limit": null})))
        .await;
    assert_eq!(cleared.json()["summary"], "rate_limit updated");
    let shown = server.admin_call(Method::GET, path, None).await;
    assert_eq!(shown.json()["rate_limit"], Value::Null);
    let started = Instant::now();
    loop {
        let answer = server.create_session(&token, SEED_BODY).await;
        let policy = answer.header("ratelimit-policy").map(str::to_owned);
        if answer.status == 200 && policy.as_deref() != Some("\"default\";q=1;w=1") {
            assert!(policy.is_some(), "the default budget announces itself");
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "still {} {policy:?} after {WITHIN:?}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut body = new_partner("newco");
    body["rate_limit"] = json!({"per_second": 7});
    let created = server
        .admin_call(Method::POST, "/admin/partners", Some(&body))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(
        created.json()["rate_limit"],
        json!({"per_second": 7, "burst": 14}),
        "the burst defaults to twice the rate"
    );
    server.stop().await;
}

pub async fn admin_webhook_deliveries<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::with_admin()).await;
    let hooked = server
        .admin_call(
            Method::PATCH,
            "/admin/partners/acme",
            Some(&json!({"webhook_url": "https://hooks.acme.example/x", "webhook_secret": "whsec_c2VjcmV0LXNlY3JldA=="})),
        )
        .await;
    assert_eq!(hooked.status, 200, "{:?}", hooked.body);
    let created = server.create_session(&server.tokens.acme, SEED_BODY).await;
    let id = created.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let event =
        json!({"event_id": "admin-1", "merchant_transaction_id": id, "status": "processing"});
    let applied = crate::lifecycle::provider_event(&server, &event).await;
    assert_eq!(applied.status, 200, "{:?}", applied.body);

    let listed = server
        .admin_call(
            Method::GET,
            &format!("/admin/webhooks/deliveries?partner=acme&transaction={id}&state=pending"),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let rows = listed.json()["deliveries"].clone();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(
        (&rows[0]["status"], &rows[0]["partner"]),
        (&json!("processing"), &json!("acme"))
    );
    let delivery = rows[0]["id"].as_str().expect("id").to_owned();
    let retried = server
        .admin_call(
            Method::POST,
            &format!("/admin/webhooks/deliveries/{delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.json(), json!({"id": delivery, "state": "pending"}));
    let missing = server
        .admin_call(
            Method::POST,
            "/admin/webhooks/deliveries/evt_999999/retry",
            None,
        )
        .await;
    missing.assert_error(404, "not_found", "not_found");
    let replayed = server
        .admin_call(
            Method::POST,
            "/admin/webhooks/replay",
            Some(&json!({"partner": "acme", "since": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(replayed.json(), json!({"partner": "acme", "queued": 1}));
    let bad = server
        .admin_call(Method::GET, "/admin/webhooks/deliveries?state=lost", None)
        .await;
    bad.assert_error(400, "invalid_request", "validation_error");
    server.stop().await;
}
