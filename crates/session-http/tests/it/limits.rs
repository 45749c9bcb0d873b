//! Per-partner request budgets through the real server (SPEC.md §2 "Rate
//! limits"): the partner `limited` has 5 requests a second with a burst of 10.
//!
//! Time is real here (the limiter reads the monotonic clock), so every bound
//! allows for a slow machine: a test counts what the budget could have
//! refilled while it ran, and waits out `Retry-After` with a margin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;

use crate::live::{subscribe, upgrade};
use crate::support::{
    LIMITED_BURST, LIMITED_PER_SECOND, Options, SEED_BODY, TestResponse, TestServer, TestStore,
};

/// What `limited`'s answers announce: `"default";q=10;w=2`.
fn limited_policy() -> String {
    format!(
        "\"default\";q={LIMITED_BURST};w={}",
        LIMITED_BURST.div_ceil(LIMITED_PER_SECOND)
    )
}

/// The most a budget can have admitted `elapsed` after it was full: the burst
/// and what refilled meanwhile, plus one for a refill that lands mid-count.
fn most_admitted(elapsed: Duration) -> u64 {
    let refilled = (elapsed.as_secs_f64() * f64::from(LIMITED_PER_SECOND)).ceil();
    u64::from(LIMITED_BURST) + refilled as u64 + 1
}

/// `RateLimit: "default";r=<r>;t=<t>` as (r, t).
fn rate_limit(response: &TestResponse) -> (u64, u64) {
    let value = response
        .header("ratelimit")
        .unwrap_or_else(|| panic!("RateLimit header on a {}", response.status));
    let mut r = None;
    let mut t = None;
    let mut parts = value.split(';');
    assert_eq!(parts.next(), Some("\"default\""), "{value}");
    for part in parts {
        match part.split_once('=') {
            Some(("r", n)) => r = n.parse().ok(),
            Some(("t", n)) => t = n.parse().ok(),
            _ => panic!("unexpected RateLimit parameter in {value}"),
        }
    }
    (r.expect("r"), t.expect("t"))
}

/// Checks a `429` of partner `limited` and returns its `Retry-After`.
#[track_caller]
fn assert_refused(response: &TestResponse) -> u64 {
    response.assert_error(429, "rate_limited", "rate_limit_exceeded");
    let retry: u64 = response
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "Retry-After is at least 1");
    assert!(
        retry <= u64::from(LIMITED_BURST.div_ceil(LIMITED_PER_SECOND)),
        "one request refills within the window: {retry}"
    );
    assert_eq!(
        response.header("ratelimit-policy"),
        Some(limited_policy().as_str())
    );
    assert_eq!(rate_limit(response), (0, retry), "r=0, t=Retry-After");
    retry
}

/// Checks an admitted answer of partner `limited`: both headers, no
/// `Retry-After`; returns what is left.
#[track_caller]
fn assert_admitted(response: &TestResponse) -> u64 {
    assert_eq!(
        response.header("ratelimit-policy"),
        Some(limited_policy().as_str()),
        "status {}",
        response.status
    );
    assert!(response.header("retry-after").is_none());
    let (remaining, reset) = rate_limit(response);
    assert!(remaining < u64::from(LIMITED_BURST), "{remaining}");
    assert_eq!(reset, u64::from(remaining == 0), "t is 0 while r > 0");
    remaining
}

/// Sends `request` until the first `429` (at most `limit` times); returns
/// the answers.
async fn until_refused<F, Fut>(limit: usize, mut request: F) -> Vec<TestResponse>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResponse>,
{
    let mut answers = Vec::new();
    for _ in 0..limit {
        let response = request().await;
        let refused = response.status == 429;
        answers.push(response);
        if refused {
            break;
        }
    }
    answers
}

/// Spends what is left of `limited`'s budget, then sends `probe` at once. A
/// probe that lands just after a request refilled is admitted, so this tries
/// again until one meets the empty budget (a few tries at most: a refill
/// comes every 200 ms, the probe follows the refusal within a millisecond or
/// two). Returns the probe's answer when the budget was empty for it.
async fn probe_when_spent<F, Fut>(server: &TestServer, mut probe: F) -> TestResponse
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResponse>,
{
    let token = server.tokens.limited.clone();
    for _ in 0..20 {
        let spent = until_refused(200, || server.create_session(&token, "{}")).await;
        assert_eq!(spent.last().map(|r| r.status.as_u16()), Some(429));
        let response = probe().await;
        // Every admitted answer of `limited` carries the budget's headers.
        let admitted = response.status != 429 && response.header("ratelimit").is_some();
        if !admitted {
            return response;
        }
    }
    panic!("the budget refilled before every probe");
}

/// A partner at 5/s with a burst of 10 gets at most its budget, 429s with
/// the headers for the rest, and is admitted again after `Retry-After`.
pub async fn rate_limit_admits_the_budget_and_refuses_the_rest<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let token = server.tokens.limited.clone();
    let started = Instant::now();
    let answers = until_refused(200, || server.create_session(&token, SEED_BODY)).await;
    let elapsed = started.elapsed();
    let (refused, admitted) = answers.split_last().expect("answers");
    assert_eq!(refused.status, 429, "a 429 within 200 requests");
    for response in admitted {
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert_admitted(response);
    }
    let admitted = admitted.len() as u64;
    assert!(
        admitted >= u64::from(LIMITED_BURST),
        "the whole burst is admitted: {admitted}"
    );
    assert!(
        admitted <= most_admitted(elapsed),
        "{admitted} admitted in {elapsed:?}"
    );
    let retry = assert_refused(refused);

    // After Retry-After a request is admitted again.
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(100)).await;
    let after = server.create_session(&token, SEED_BODY).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    assert_admitted(&after);
    server.stop().await;
}

/// Reads, KYC look-ups and WebSocket upgrades count against the same budget
/// as session creation; a refused upgrade is a plain HTTP 429.
pub async fn reads_and_websocket_upgrades_count<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let token = server.tokens.limited.clone();
    let started = Instant::now();
    let created = server.create_session(&token, SEED_BODY).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let read_path = format!("/widget/transactions/{id}");

    let socket = subscribe(server.addr, &token, &id).await;
    drop(socket);
    let kyc = server
        .request(Method::GET, "/widget/users/user-123/kyc-status")
        .bearer(&token)
        .send()
        .await;
    assert_eq!(kyc.status, 200, "{:?}", kyc.body);
    assert_admitted(&kyc);

    let reads = until_refused(200, || {
        server
            .request(Method::GET, &read_path)
            .bearer(&token)
            .send()
    })
    .await;
    let elapsed = started.elapsed();
    let (refused, admitted) = reads.split_last().expect("answers");
    assert_refused(refused);
    for response in admitted {
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert_admitted(response);
    }
    // The create, the upgrade and the KYC look-up took 3 of the budget.
    assert!(
        admitted.len() as u64 + 3 <= most_admitted(elapsed),
        "{} reads admitted after 3 other requests in {elapsed:?}",
        admitted.len()
    );

    // Whatever spent the budget, creating, reading and upgrading are refused;
    // the upgrade with a plain HTTP answer before any handshake.
    let create = probe_when_spent(&server, || server.create_session(&token, SEED_BODY)).await;
    assert_refused(&create);
    let read = probe_when_spent(&server, || {
        server
            .request(Method::GET, &read_path)
            .bearer(&token)
            .send()
    })
    .await;
    assert_refused(&read);
    let ws_path = format!("/ws?tx_id={id}");
    let ws = probe_when_spent(&server, || upgrade(&server, &ws_path).bearer(&token).send()).await;
    assert_refused(&ws);
    server.stop().await;
}

/// One partner's traffic never consumes another's budget; partners without a
/// budget of their own have the server default, and unlimited partners get
/// no headers.
pub async fn other_partners_are_unaffected<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let answers = until_refused(200, || {
        server.create_session(&server.tokens.limited, SEED_BODY)
    })
    .await;
    assert_eq!(answers.last().map(|r| r.status.as_u16()), Some(429));

    for token in [&server.tokens.acme, &server.tokens.other] {
        let response = server.create_session(token, SEED_BODY).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert_eq!(
            response.header("ratelimit-policy"),
            Some("\"default\";q=200;w=2"),
            "the default budget: 100/s, burst 200"
        );
        assert_eq!(rate_limit(&response), (199, 0), "its own full burst");
    }
    for _ in 0..3 * LIMITED_BURST {
        let response = server
            .create_session(&server.tokens.unlimited, SEED_BODY)
            .await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        for name in ["ratelimit-policy", "ratelimit", "retry-after"] {
            assert!(response.header(name).is_none(), "unlimited: no {name}");
        }
    }
    server.stop().await;
}

/// With `--default-rate-limit 0` partners without a budget of their own are
/// not limited (and get no headers); a partner's own budget still applies.
pub async fn a_default_of_zero_leaves_only_partners_own_budgets<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.default_rate_limit = session_core::partner::RateLimit::UNLIMITED;
    let server = TestServer::start(store, options).await;
    let response = server.create_session(&server.tokens.acme, SEED_BODY).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.header("ratelimit").is_none());
    assert!(response.header("ratelimit-policy").is_none());
    let answers = until_refused(200, || {
        server.create_session(&server.tokens.limited, SEED_BODY)
    })
    .await;
    assert_refused(answers.last().expect("answers"));
    server.stop().await;
}

/// 401 and 403 come before 429, and 429 before 415, 413 and 400; answers
/// after the budget check (errors included) carry its headers and count.
pub async fn rate_limit_check_order<S: TestStore>(store: Arc<S>) {
    let mut options = Options::standard();
    options.body_limit = 1_024;
    let server = TestServer::start(store, options).await;
    let token = server.tokens.limited.clone();

    // Before the budget is spent, a 400 carries the headers and costs a request.
    let invalid = server.create_session(&token, "{}").await;
    invalid.assert_error(400, "invalid_request", "missing_param");
    let first = assert_admitted(&invalid);
    assert_eq!(first, u64::from(LIMITED_BURST) - 1);
    let unsupported = server
        .request(Method::POST, "/widget/session")
        .bearer(&token)
        .header("content-type", "text/plain")
        .body(SEED_BODY.as_bytes())
        .send()
        .await;
    unsupported.assert_error(415, "invalid_request", "unsupported_media_type");
    let second = assert_admitted(&unsupported);
    assert!(second < first || second == 0, "{second} after {first}");

    let big = format!("{{{}", " ".repeat(2_000));
    let json = Some("application/json");
    let unknown = "ct_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        String,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "401 before 429 (no token)",
            None,
            None,
            json,
            SEED_BODY.into(),
            401,
            "missing_token",
        ),
        (
            "401 before 429 (unknown token)",
            Some(unknown),
            None,
            json,
            SEED_BODY.into(),
            401,
            "invalid_token",
        ),
        (
            "403 before 429",
            Some(&token),
            Some("https://evil.example"),
            json,
            SEED_BODY.into(),
            403,
            "forbidden_origin",
        ),
        (
            "429 before 415",
            Some(&token),
            None,
            Some("text/plain"),
            SEED_BODY.into(),
            429,
            "rate_limit_exceeded",
        ),
        (
            "429 before 413",
            Some(&token),
            None,
            json,
            big,
            429,
            "rate_limit_exceeded",
        ),
        (
            "429 before 400",
            Some(&token),
            None,
            json,
            "not json".into(),
            429,
            "rate_limit_exceeded",
        ),
    ];
    for (why, bearer, origin, content_type, body, status, code) in cases {
        let response = probe_when_spent(&server, || {
            let mut request = server.request(Method::POST, "/widget/session");
            if let Some(bearer) = bearer {
                request = request.bearer(bearer);
            }
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            request.body(body.as_bytes()).send()
        })
        .await;
        let answer = response.json();
        assert_eq!(
            (response.status.as_u16(), answer["code"].as_str()),
            (status, Some(code)),
            "{why}: {answer}"
        );
        if status == 429 {
            assert_refused(&response);
        } else {
            for name in ["ratelimit-policy", "ratelimit", "retry-after"] {
                assert!(
                    response.header(name).is_none(),
                    "{why}: no {name} before the budget is checked"
                );
            }
        }
    }
    server.stop().await;
}
