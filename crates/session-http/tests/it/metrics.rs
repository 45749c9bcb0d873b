//! `GET /metrics` on the admin listener (SPEC.md §6, *Metrics*): after known
//! traffic, the families, types, labels, cumulative buckets and counts; and
//! no label carries a value from a request (ids, users).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::Method;

use crate::lifecycle::{new_session, provider_event, redeem};
use crate::support::{Options, SEED_BODY, TestServer, TestStore, init_body, seed_with};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The Prometheus text format, parsed just enough: `# TYPE` lines and samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once("=\"").expect("label");
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    (types, samples)
}

async fn scrape(server: &TestServer) -> (BTreeMap<String, String>, Vec<Sample>) {
    let response = server.admin(Method::GET, "/metrics").send().await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(std::str::from_utf8(&response.body).expect("UTF-8"))
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels.len() == l.len() - usize::from(l.contains_key("le"))
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

pub async fn metrics_after_known_traffic<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let first = new_session(&server, SEED_BODY).await;
    new_session(&server, SEED_BODY).await;
    let refused = server.create_session("ct_test_nobody", SEED_BODY).await;
    assert_eq!(refused.status, 401);
    let id = first["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let read = server
        .request(Method::GET, &format!("/widget/transactions/{id}"))
        .bearer(&server.tokens.acme)
        .send()
        .await;
    assert_eq!(read.status, 200);
    let widget = init_body(&first);
    assert_eq!(redeem(&server, &widget).await.status, 200);
    assert_eq!(redeem(&server, &widget).await.status, 409);
    let event = serde_json::json!({"event_id": "m-1", "merchant_transaction_id": id,
        "status": "processing", "occurred_at": "2026-11-24T08:00:00Z"});
    assert_eq!(provider_event(&server, &event).await.status, 200);
    assert_eq!(provider_event(&server, &event).await.status, 200);

    let (types, samples) = scrape(&server).await;
    for (family, kind) in [
        ("http_server_request_duration_seconds", "histogram"),
        ("session_created_total", "counter"),
        ("session_redemptions_total", "counter"),
        ("session_provider_events_total", "counter"),
        ("session_rate_limited_total", "counter"),
        ("session_ws_connections", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }

    let requests = "http_server_request_duration_seconds";
    let created = [
        ("route", "/widget/session"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(
        value(&samples, &format!("{requests}_count"), &created),
        Some(2.0)
    );
    let unauthorised = [
        ("route", "/widget/session"),
        ("method", "POST"),
        ("status", "401"),
    ];
    assert_eq!(
        value(&samples, &format!("{requests}_count"), &unauthorised),
        Some(1.0)
    );
    let read = [
        ("route", "/widget/transactions/{merchant_transaction_id}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(
        value(&samples, &format!("{requests}_count"), &read),
        Some(1.0)
    );
    // Buckets are cumulative, bounded by +Inf = count, and the sum positive.
    let buckets: Vec<(String, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == &format!("{requests}_bucket")
                && created
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, l, v)| (l["le"].clone(), *v))
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds from 0.5 ms to 10 s, and +Inf");
    assert_eq!(buckets.first().map(|(le, _)| le.as_str()), Some("0.0005"));
    assert_eq!(buckets.last(), Some(&("+Inf".to_owned(), 2.0)));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
    assert!(value(&samples, &format!("{requests}_sum"), &created).is_some_and(|s| s > 0.0));

    assert_eq!(
        value(&samples, "session_created_total", &[("partner", "acme")]),
        Some(2.0)
    );
    for (outcome, n) in [("ok", 1.0), ("already_used", 1.0), ("expired", 0.0)] {
        assert_eq!(
            value(
                &samples,
                "session_redemptions_total",
                &[("outcome", outcome)]
            ),
            Some(n),
            "{outcome}"
        );
    }
    for (outcome, n) in [("applied", 1.0), ("duplicate", 1.0), ("rejected", 0.0)] {
        assert_eq!(
            value(
                &samples,
                "session_provider_events_total",
                &[("outcome", outcome)]
            ),
            Some(n),
            "{outcome}"
        );
    }
    assert_eq!(value(&samples, "session_ws_connections", &[]), Some(0.0));
    assert!(value(&samples, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));

    // OpenMetrics when asked for.
    let om = server
        .admin(Method::GET, "/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await;
    assert!(
        om.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text"))
    );
    assert!(om.body.ends_with(b"# EOF\n"));
}

pub async fn metrics_labels_carry_no_request_values<S: TestStore>(store: Arc<S>) {
    let server = TestServer::start(store, Options::standard()).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = format!("user-secret-{n}");
        let session = server
            .request(Method::POST, "/widget/session")
            .bearer(&server.tokens.acme)
            .header("x-request-id", &format!("req-marker-{n}"))
            .json(&seed_with(&[(
                "partner_user_id",
                Some(&format!("\"{user}\"")),
            )]))
            .send()
            .await;
        assert_eq!(session.status, 200);
        let id = session.json()["merchant_transaction_id"]
            .as_str()
            .expect("id")
            .to_owned();
        server
            .request(Method::GET, &format!("/widget/transactions/{id}"))
            .bearer(&server.tokens.acme)
            .send()
            .await;
        server
            .request(Method::GET, &format!("/widget/users/{user}/kyc-status"))
            .bearer(&server.tokens.acme)
            .send()
            .await;
        server
            .request(Method::GET, &format!("/unknown/{id}"))
            .send()
            .await;
        ids.push(id);
    }
    let (_, samples) = scrape(&server).await;
    let allowed_keys: BTreeSet<&str> = [
        "route", "method", "status", "le", "partner", "outcome", "state",
    ]
    .into_iter()
    .collect();
    for (name, labels, _) in &samples {
        for (key, value) in labels {
            assert!(allowed_keys.contains(key.as_str()), "{name}: label {key}");
            assert!(
                !value.contains("user-secret") && !value.contains("req-marker"),
                "{name}: {key}={value}"
            );
            assert!(
                !ids.iter().any(|id| value.contains(id.as_str())),
                "{name}: {key}={value} holds a transaction id"
            );
            if key == "route" {
                assert!(
                    value.starts_with("/widget/")
                        || value == "unmatched"
                        || ["/ws", "/provider/events"].contains(&value.as_str()),
                    "{value}"
                );
            }
        }
    }
    let routes: BTreeSet<&str> = samples
        .iter()
        .filter_map(|(_, labels, _)| labels.get("route").map(String::as_str))
        .collect();
    assert!(
        routes.contains("unmatched"),
        "unknown paths share one label"
    );
    assert!(routes.contains("/widget/users/{partner_user_id}/kyc-status"));
}
