//! Two instances of the service on one PostgreSQL database, in one process:
//! what one instance creates, the other redeems, and a token is redeemed
//! exactly once however the attempts are spread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use session_store_pg::PgStore;
use session_store_pg::testing::TestDatabase;

use crate::support::{Options, SEED_BODY, TestServer, WIDGET_ORIGIN, init_body};

async fn two_instances() -> Option<(TestDatabase, TestServer, TestServer)> {
    two_instances_with(Options::standard).await
}

async fn two_instances_with(
    options: fn() -> Options,
) -> Option<(TestDatabase, TestServer, TestServer)> {
    let database = TestDatabase::create().await?;
    let a = PgStore::connect(database.config())
        .await
        .expect("instance a connects");
    let b = PgStore::connect(database.config())
        .await
        .expect("instance b connects");
    let first = TestServer::start(Arc::new(a), options()).await;
    let second = TestServer::start(Arc::new(b), options()).await;
    Some((database, first, second))
}

/// A partner created and given a token through instance a's admin API opens
/// sessions through instance b within two seconds; a token revoked through b
/// stops working on a within two seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_created_through_one_instance_works_through_the_other() {
    let Some((_database, a, b)) = two_instances_with(Options::with_admin).await else {
        return;
    };
    let created = a
        .admin_call(
            Method::POST,
            "/admin/partners",
            Some(&crate::admin::new_partner("across")),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let (token, token_id) = crate::admin::issue(&a, "across").await;
    crate::admin::session_answers(&b, &token, 200).await;
    let listed = b
        .admin_call(Method::GET, "/admin/partners/across", None)
        .await;
    assert_eq!(listed.status, 200, "b reads what a wrote");
    let revoked = b
        .admin_call(
            Method::DELETE,
            &format!("/admin/partners/across/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    crate::admin::session_answers(&a, &token, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_across_two_instances_have_one_winner() {
    let Some((_database, a, b)) = two_instances().await else {
        return;
    };
    let servers = Arc::new([a, b]);
    for round in 0..200 {
        let created = servers[round % 2]
            .create_session(&servers[round % 2].tokens.acme, SEED_BODY)
            .await;
        assert_eq!(created.status, 200, "{:?}", created.body);
        let session = created.json();
        let body = init_body(&session).to_string();
        let attempts: Vec<_> = (0..64)
            .map(|i| {
                let servers = Arc::clone(&servers);
                let body = body.clone();
                tokio::spawn(async move {
                    let server = &servers[i % 2];
                    let response = server
                        .request(Method::POST, "/widget/init")
                        .header("origin", WIDGET_ORIGIN)
                        .json(&body)
                        .send()
                        .await;
                    response.status.as_u16()
                })
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_on_one_instance_is_served_by_the_other() {
    let Some((_database, a, b)) = two_instances().await else {
        return;
    };
    let session = a.create_session(&a.tokens.acme, SEED_BODY).await.json();
    let id = session["merchant_transaction_id"].as_str().expect("id");
    let on_b = b
        .request(Method::GET, &format!("/widget/transactions/{id}"))
        .bearer(&b.tokens.acme)
        .send()
        .await;
    assert_eq!(
        (on_b.status.as_u16(), on_b.json()["status"].as_str()),
        (200, Some("pending"))
    );
    let kyc = b
        .request(Method::GET, "/widget/users/user-123/kyc-status")
        .bearer(&a.tokens.acme)
        .send()
        .await;
    assert_eq!(
        kyc.status, 200,
        "a token issued through instance a works on b at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_applied_on_one_instance_reaches_a_subscriber_on_the_other() {
    let Some((_database, a, b)) = two_instances().await else {
        return;
    };
    let created = a.create_session(&a.tokens.acme, SEED_BODY).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut client = crate::live::subscribe(a.addr, &a.tokens.acme, &id).await;
    let first = crate::live::next_update(&mut client, Duration::from_secs(1)).await;
    assert_eq!(first["sequence"], 1);

    let processing = serde_json::json!({"event_id": "across-1", "merchant_transaction_id": id,
        "status": "processing"});
    let applied = crate::lifecycle::provider_event(&b, &processing).await;
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    let started = Instant::now();
    let update = crate::live::next_update(&mut client, Duration::from_secs(1)).await;
    assert_eq!(
        (&update["status"], &update["sequence"]),
        (&"processing".into(), &2.into())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// 16 requests with one `Idempotency-Key`, 8 on each of two instances, at
/// once: one transaction, and every answer is its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_on_two_instances_creates_one_transaction() {
    let Some((_database, a, b)) = two_instances().await else {
        return;
    };
    let servers = Arc::new([a, b]);
    for round in 0..5 {
        let key = format!("spread-{round}");
        let requests: Vec<_> = (0..16)
            .map(|i| {
                let servers = Arc::clone(&servers);
                let key = key.clone();
                tokio::spawn(async move {
                    let server = &servers[i % 2];
                    server
                        .request(Method::POST, "/widget/session")
                        .bearer(&server.tokens.acme)
                        .header("idempotency-key", &key)
                        .json(SEED_BODY)
                        .send()
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for request in requests {
            answers.push(request.await.expect("task"));
        }
        let created: Vec<_> = answers
            .iter()
            .filter(|a| a.status == 200 && a.header("idempotent-replayed").is_none())
            .collect();
        assert_eq!(created.len(), 1, "round {round}: one creates");
        for answer in &answers {
            match answer.status.as_u16() {
                200 => assert_eq!(answer.body, created[0].body, "round {round}"),
                _ => answer.assert_error(409, "conflict", "idempotency_key_in_use"),
            }
        }
    }
}

/// A key's answer survives a restart: a new instance on the same database
/// replays it byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_restart_returns_the_same_bytes() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let first = TestServer::start(
        Arc::new(PgStore::connect(database.config()).await.expect("connect")),
        Options::standard(),
    )
    .await;
    let send = |server: &TestServer| {
        server
            .request(Method::POST, "/widget/session")
            .bearer(&server.tokens.acme)
            .header("idempotency-key", "survives")
            .json(SEED_BODY)
            .send()
    };
    let created = send(&first).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    first.stop().await;

    let restarted = TestServer::start(
        Arc::new(
            PgStore::connect(database.config())
                .await
                .expect("reconnect"),
        ),
        Options::standard(),
    )
    .await;
    let replayed = send(&restarted).await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.body);
    assert_eq!(replayed.body, created.body);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
}
