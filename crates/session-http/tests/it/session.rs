//! `POST /widget/session` through the real server: the seed example, every
//! row of the error matrix this endpoint can produce, and the check order.

use std::sync::Arc;

use http::Method;

use session_core::client_token::{self, TokenEnv};
use session_core::partner::PartnerId;
use session_core::testing::CountingRandom;
use session_core::time::Clock;

use crate::support::{
    Options, SEED_BODY, TRON_WALLET, TestClock, TestServer, TestStore, WIDGET_ID, partner_spec,
    seed_with,
};

pub async fn seed_example_answers_the_22_fields<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let response = server.create_session(&server.tokens.acme, SEED_BODY).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    let object = body.as_object().expect("object");
    let expected_fields = [
        "merchant_transaction_id",
        "widget_id",
        "address",
        "signature",
        "init_token",
        "init_token_type",
        "currency",
        "currencies",
        "fix_currency",
        "network",
        "networks",
        "fix_network",
        "amount",
        "fix_amount",
        "fiat_currency",
        "fiat_currencies",
        "fix_fiat_currency",
        "fix_fiat_amount",
        "type",
        "lang",
        "theme",
        "redirect_url",
    ];
    let fields: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        fields, expected_fields,
        "exactly the 22 fields, in the seed page's order"
    );

    let text = |field: &str| {
        body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a string"))
    };
    uuid::Uuid::parse_str(text("merchant_transaction_id"))
        .expect("merchant_transaction_id is a UUID");
    assert_eq!(text("widget_id"), WIDGET_ID);
    assert_eq!(text("address"), TRON_WALLET);
    let signature = text("signature");
    assert!(
        signature.starts_with("v2:") && signature.len() == 131,
        "{signature}"
    );
    assert!(
        signature[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(text("init_token").split('.').count(), 3, "compact JWS");
    assert_eq!(text("init_token_type"), "sdk_partner_authorization");
    assert_eq!(
        (
            text("currency"),
            text("network"),
            text("amount"),
            text("type")
        ),
        ("USDT", "TRC20", "100", "buy")
    );
    assert_eq!(body["currencies"], serde_json::json!(["USDT"]));
    assert_eq!(
        body["networks"],
        serde_json::json!(["TRC20", "ERC20", "BEP20", "POLYGON"])
    );
    assert_eq!(body["fix_network"], serde_json::json!(["TRC20"]));
    assert_eq!(body["fiat_currencies"], serde_json::json!(["EUR", "USD"]));
    assert_eq!(text("fiat_currency"), "EUR");
    assert_eq!(
        (
            &body["fix_currency"],
            &body["fix_amount"],
            &body["fix_fiat_currency"],
            &body["fix_fiat_amount"]
        ),
        (&true.into(), &true.into(), &false.into(), &true.into())
    );
    assert_eq!(
        (text("lang"), text("theme"), text("redirect_url")),
        ("en", "light", "https://app.acme.example/done")
    );
    // The answer carries the URL the host check saw, never a text another
    // parser could read another host from.
    let tricky = seed_with(&[(
        "redirect_url",
        Some(r#""https://app.example.com\\@evil.example/""#),
    )]);
    let answer = server.create_session(&server.tokens.acme, &tricky).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.json()["redirect_url"],
        "https://app.example.com/@evil.example/"
    );
    server.stop().await;
}

pub async fn two_sessions_share_no_identifier<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let first = server
        .create_session(&server.tokens.acme, SEED_BODY)
        .await
        .json();
    let second = server
        .create_session(&server.tokens.acme, SEED_BODY)
        .await
        .json();
    for field in ["merchant_transaction_id", "init_token", "signature"] {
        assert_ne!(
            first[field], second[field],
            "{field} must differ between sessions"
        );
    }
    server.stop().await;
}

pub async fn routes_and_methods<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    server
        .request(Method::GET, "/nope")
        .send()
        .await
        .assert_error(404, "not_found", "not_found");
    server
        .request(Method::POST, "/widget/session/")
        .send()
        .await
        .assert_error(404, "not_found", "not_found");
    let wrong_method = server
        .request(Method::GET, "/widget/session")
        .bearer(&server.tokens.acme)
        .send()
        .await;
    wrong_method.assert_error(405, "invalid_request", "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let preflight = server
        .request(Method::OPTIONS, "/widget/session")
        .header("origin", "https://app.acme.example")
        .send()
        .await;
    preflight.assert_error(405, "invalid_request", "method_not_allowed");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        None,
        "no CORS on partner routes"
    );
    server.stop().await;
}

pub async fn authentication<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let post = |authorization: Option<String>| {
        let mut request = server
            .request(Method::POST, "/widget/session")
            .json(SEED_BODY);
        if let Some(value) = authorization {
            request = request.header("authorization", &value);
        }
        request.send()
    };
    post(None)
        .await
        .assert_error(401, "unauthorised", "missing_token");
    post(Some(format!("Basic {}", server.tokens.acme)))
        .await
        .assert_error(401, "unauthorised", "missing_token");
    post(Some("Bearer".into()))
        .await
        .assert_error(401, "unauthorised", "missing_token");
    post(Some(
        "Bearer ct_test_unknownunknownunknownunknownunknownunkno".into(),
    ))
    .await
    .assert_error(401, "unauthorised", "invalid_token");
    post(Some("Bearer not-a-client-token".into()))
        .await
        .assert_error(401, "unauthorised", "invalid_token");
    post(Some(format!("Bearer {}", server.tokens.acme_revoked)))
        .await
        .assert_error(401, "unauthorised", "invalid_token");
    assert_eq!(
        post(Some(format!("Bearer {}", server.tokens.acme_rotated)))
            .await
            .status,
        200,
        "inside the grace period"
    );
    server.clock.advance(61);
    post(Some(format!("Bearer {}", server.tokens.acme_rotated)))
        .await
        .assert_error(401, "unauthorised", "invalid_token");
    assert_eq!(
        post(Some(format!("bearer {}", server.tokens.acme)))
            .await
            .status,
        200,
        "scheme is case-insensitive"
    );
    server.stop().await;
}

pub async fn origin_and_ip_gate<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let acme = &server.tokens.acme;
    let with_origin = |origin: &str| {
        server
            .request(Method::POST, "/widget/session")
            .bearer(acme)
            .header("origin", origin)
            .json(SEED_BODY)
            .send()
    };
    assert_eq!(with_origin("https://app.acme.example").await.status, 200);
    assert_eq!(
        with_origin("https://app.acme.example:443").await.status,
        200,
        "default port is the same origin"
    );
    with_origin("https://evil.example")
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    with_origin("http://app.acme.example")
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    with_origin("null")
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    // `gated` only admits 10.0.0.0/8; the test client is 127.0.0.1.
    server
        .create_session(&server.tokens.gated, SEED_BODY)
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    let spoofed = server
        .request(Method::POST, "/widget/session")
        .bearer(&server.tokens.gated)
        .header("x-forwarded-for", "10.1.2.3")
        .json(SEED_BODY)
        .send()
        .await;
    spoofed.assert_error(403, "forbidden", "forbidden_origin");
    server.stop().await;
}

pub async fn trusted_proxy_forwarded_address<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.trusted_proxies = vec!["127.0.0.0/8"];
    let server = TestServer::start(store, options).await;
    let via_proxy = |xff: &str| {
        server
            .request(Method::POST, "/widget/session")
            .bearer(&server.tokens.gated)
            .header("x-forwarded-for", xff)
            .json(SEED_BODY)
            .send()
    };
    assert_eq!(via_proxy("10.1.2.3").await.status, 200);
    assert_eq!(
        via_proxy("10.1.2.3, 127.0.0.5").await.status,
        200,
        "trusted hops are skipped"
    );
    via_proxy("192.0.2.1")
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    via_proxy("10.1.2.3, 192.0.2.1")
        .await
        .assert_error(403, "forbidden", "forbidden_origin");
    server.stop().await;
}

/// SPEC.md §2: behind a trusted proxy, an `X-Forwarded-For` chain that
/// cannot be read up to an untrusted address leaves the caller unknown; the
/// proxy's own address never stands in for it. The partner here allows the
/// proxy's range, so taking the proxy for the caller would admit anyone.
pub async fn unreadable_forwarded_for_never_admits_the_proxy<S: TestStore>(store: Arc<S>) {
    let mut spec = partner_spec("proxied");
    spec.allowed_ips = vec!["127.0.0.0/8".into()];
    store.put_partner(&spec).await.expect("put partner");
    let random = CountingRandom::starting_at(u64::MAX / 2);
    let partner = PartnerId::parse("proxied").expect("id");
    let issued = client_token::issue(
        TokenEnv::Test,
        partner,
        "test",
        TestClock::default().now(),
        &random,
    );
    store.add_token(&issued.record).await.expect("add token");
    let mut options = Options::standard();
    options.trusted_proxies = vec!["127.0.0.1/32"];
    let server = TestServer::start(store, options).await;
    let via_proxy = |xff: &'static [u8]| {
        server
            .request(Method::POST, "/widget/session")
            .bearer(&issued.token)
            .header_bytes("x-forwarded-for", xff)
            .json(SEED_BODY)
            .send()
    };
    assert_eq!(
        via_proxy(b"127.0.0.2").await.status,
        200,
        "an allowed caller behind the proxy"
    );
    let unknown: [&[u8]; 6] = [
        "\u{e9}".as_bytes(),
        b"203.0.113.7, \xff",
        b"junk",
        b"",
        b"127.0.0.2, junk",
        b"127.0.0.1",
    ];
    for xff in unknown {
        via_proxy(xff)
            .await
            .assert_error(403, "forbidden", "forbidden_origin");
    }
    server.stop().await;
}

pub async fn media_type_and_size<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.body_limit = 1_024;
    let server = TestServer::start(store, options).await;
    let acme = &server.tokens.acme;
    let no_type = server
        .request(Method::POST, "/widget/session")
        .bearer(acme)
        .body(SEED_BODY.as_bytes())
        .send()
        .await;
    no_type.assert_error(415, "invalid_request", "unsupported_media_type");
    let text = server
        .request(Method::POST, "/widget/session")
        .bearer(acme)
        .header("content-type", "text/plain")
        .body(SEED_BODY.as_bytes())
        .send()
        .await;
    text.assert_error(415, "invalid_request", "unsupported_media_type");
    let with_charset = server
        .request(Method::POST, "/widget/session")
        .bearer(acme)
        .header("content-type", "application/json; charset=utf-8")
        .body(SEED_BODY.as_bytes())
        .send()
        .await;
    assert_eq!(with_charset.status, 200);
    let padded = format!("{}{}", " ".repeat(1_024), SEED_BODY);
    server.create_session(acme, &padded).await.assert_error(
        413,
        "invalid_request",
        "payload_too_large",
    );
    let exactly_at_limit = format!("{}{}", " ".repeat(1_024 - SEED_BODY.len()), SEED_BODY);
    assert_eq!(
        server.create_session(acme, &exactly_at_limit).await.status,
        200,
        "the limit itself is allowed"
    );
    server.stop().await;
}

pub async fn body_errors<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let acme = &server.tokens.acme;
    let cases: Vec<(String, u16, &str, &str)> = vec![
        ("{".into(), 400, "invalid_request", "decode_error"),
        ("[]".into(), 400, "invalid_request", "decode_error"),
        ("".into(), 400, "invalid_request", "decode_error"),
        (
            SEED_BODY.replace(
                "\"amount\": \"100\"",
                "\"amount\": \"100\", \"amount\": \"5\"",
            ),
            400,
            "invalid_request",
            "decode_error",
        ),
        (
            seed_with(&[("partner_user_id", None)]),
            400,
            "invalid_request",
            "missing_param",
        ),
        (
            seed_with(&[("currency", Some("null"))]),
            400,
            "invalid_request",
            "missing_param",
        ),
        (
            seed_with(&[("amount", Some("100"))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("amount", Some("\"1e3\""))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("user_email", Some("\"nope\""))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("client_ip", Some("\"999.1.1.1\""))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("redirect_url", Some("\"http://example.com\""))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("referrer", Some("\"x\""))]),
            400,
            "invalid_request",
            "validation_error",
        ),
        (
            seed_with(&[("type", Some("\"sell\""))]),
            403,
            "forbidden",
            "offramp_disabled",
        ),
        (
            seed_with(&[("currency", Some("\"BTC\""))]),
            400,
            "invalid_request",
            "currency_not_allowed",
        ),
        (
            seed_with(&[("network", Some("\"SOL\""))]),
            400,
            "invalid_request",
            "network_not_allowed",
        ),
        (
            seed_with(&[("network", Some("\"ERC20\""))]),
            400,
            "wallet_not_supported",
            "WALLET_NOT_SUPPORTED",
        ),
    ];
    for (body, status, error, code) in cases {
        let response = server.create_session(acme, &body).await;
        response.assert_error(status, error, code);
    }
    let missing = server
        .create_session(acme, &seed_with(&[("user_email", None)]))
        .await
        .json();
    assert_eq!(
        missing["message"], "user_email is required",
        "the message names the field"
    );
    let unknown = server
        .create_session(acme, &seed_with(&[("referrer", Some("1"))]))
        .await
        .json();
    assert!(
        unknown["message"]
            .as_str()
            .unwrap_or("")
            .contains("referrer")
    );
    server.stop().await;
}

pub async fn upstream_and_store_faults<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let upstream = &server.tokens.upstream;
    let on = |network: &str| seed_with(&[("network", Some(&format!("\"{network}\"")))]);
    server
        .create_session(upstream, &on("ERC20"))
        .await
        .assert_error(502, "upstream_error", "provider_error");
    server
        .create_session(upstream, &on("BEP20"))
        .await
        .assert_error(502, "upstream_unavailable", "upstream_unavailable");
    server
        .create_session(upstream, &on("POLYGON"))
        .await
        .assert_error(502, "upstream_unavailable", "upstream_invalid_response");
    let acme = &server.tokens.acme;
    let down = server
        .create_session(
            acme,
            &seed_with(&[("partner_user_id", Some("\"fail-unavailable\""))]),
        )
        .await;
    down.assert_error(503, "unavailable", "store_unavailable");
    assert!(
        !String::from_utf8_lossy(&down.body).contains("connection refused"),
        "no internals leak"
    );
    let failed = server
        .create_session(
            acme,
            &seed_with(&[("partner_user_id", Some("\"fail-db\""))]),
        )
        .await;
    failed.assert_error(500, "internal_error", "db_error");
    assert!(
        !String::from_utf8_lossy(&failed.body).contains("syntax"),
        "no internals leak"
    );
    server.stop().await;
}

/// Each request breaks two rules; the one earlier in SPEC.md §1's order answers.
pub async fn check_order<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.body_limit = 1_024;
    let server = TestServer::start(store, options).await;
    let acme = server.tokens.acme.clone();
    let big_invalid = format!("{{{}", " ".repeat(2_000));
    struct Case {
        why: &'static str,
        method: Method,
        token: Option<String>,
        origin: Option<&'static str>,
        content_type: Option<&'static str>,
        body: String,
        expect: (u16, &'static str),
    }
    let case = |why, token: Option<&String>, origin, content_type, body: String, expect| Case {
        why,
        method: Method::POST,
        token: token.cloned(),
        origin,
        content_type,
        body,
        expect,
    };
    let json = Some("application/json");
    let mut cases = vec![
        case(
            "route before auth",
            None,
            None,
            json,
            SEED_BODY.into(),
            (405, "method_not_allowed"),
        ),
        case(
            "401 before 403",
            None,
            Some("https://evil.example"),
            json,
            SEED_BODY.into(),
            (401, "missing_token"),
        ),
        case(
            "403 before 415",
            Some(&acme),
            Some("https://evil.example"),
            Some("text/plain"),
            SEED_BODY.into(),
            (403, "forbidden_origin"),
        ),
        case(
            "415 before 413",
            Some(&acme),
            None,
            Some("text/plain"),
            big_invalid.clone(),
            (415, "unsupported_media_type"),
        ),
        case(
            "413 before decode",
            Some(&acme),
            None,
            json,
            big_invalid,
            (413, "payload_too_large"),
        ),
        case(
            "decode before missing",
            Some(&acme),
            None,
            json,
            r#"{"a":1,"a":2}"#.into(),
            (400, "decode_error"),
        ),
        case(
            "missing before validation",
            Some(&acme),
            None,
            json,
            seed_with(&[("amount", None), ("type", Some("\"x\""))]),
            (400, "missing_param"),
        ),
        case(
            "validation before offramp",
            Some(&acme),
            None,
            json,
            seed_with(&[("type", Some("\"sell\"")), ("amount", Some("\"-1\""))]),
            (400, "validation_error"),
        ),
        case(
            "offramp before currency",
            Some(&acme),
            None,
            json,
            seed_with(&[("type", Some("\"sell\"")), ("currency", Some("\"BTC\""))]),
            (403, "offramp_disabled"),
        ),
        case(
            "currency before network",
            Some(&acme),
            None,
            json,
            seed_with(&[("currency", Some("\"BTC\"")), ("network", Some("\"SOL\""))]),
            (400, "currency_not_allowed"),
        ),
        case(
            "network before wallet",
            Some(&acme),
            None,
            json,
            seed_with(&[("network", Some("\"SOL\""))]),
            (400, "network_not_allowed"),
        ),
    ];
    cases[0].method = Method::PUT;
    for case in cases {
        let mut request = server
            .request(case.method, "/widget/session")
            .body(case.body.as_bytes());
        if let Some(token) = &case.token {
            request = request.bearer(token);
        }
        if let Some(origin) = case.origin {
            request = request.header("origin", origin);
        }
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await;
        let body = response.json();
        assert_eq!(
            (
                response.status.as_u16(),
                body["code"].as_str().unwrap_or("")
            ),
            case.expect,
            "{}",
            case.why
        );
    }
    server.stop().await;
}

pub async fn request_ids<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let echoed = server
        .request(Method::GET, "/nope")
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-42.a_b"));
    let replaced = server
        .request(Method::GET, "/nope")
        .header("x-request-id", "bad id!")
        .send()
        .await;
    let minted = replaced.header("x-request-id").expect("minted id");
    assert_ne!(minted, "bad id!");
    let ok = server.create_session(&server.tokens.acme, SEED_BODY).await;
    let other = server.create_session(&server.tokens.acme, SEED_BODY).await;
    assert_ne!(ok.header("x-request-id"), other.header("x-request-id"));
    let admin = server.admin(Method::GET, "/healthz").send().await;
    assert!(admin.header("x-request-id").is_some());
    server.stop().await;
}

pub async fn sell_needs_offramp<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let sell = seed_with(&[("type", Some("\"sell\""))]);
    server
        .create_session(&server.tokens.acme, &sell)
        .await
        .assert_error(403, "forbidden", "offramp_disabled");
    let response = server.create_session(&server.tokens.offramp, &sell).await;
    assert_eq!(
        (response.status.as_u16(), response.json()["type"].as_str()),
        (200, Some("sell"))
    );
    let default_type = server
        .create_session(&server.tokens.offramp, &seed_with(&[("type", None)]))
        .await;
    assert_eq!(
        default_type.json()["type"],
        "buy",
        "type defaults to widget_config.type"
    );
    server.stop().await;
}
