//! The store while PostgreSQL is unreachable: calls fail fast with
//! `Unavailable`, known tokens still authenticate from the snapshot, and the
//! same store works again once the database is back.

use std::time::{Duration, Instant};

use session_core::client_token::TokenDigest;
use session_core::ports::{
    ClientTokenRecord, Health, PartnerDirectory, PartnerRegistry, SessionStore, StoreError,
};
use session_store_contract::{at, partner, sample_session, token};
use session_store_pg::PgStore;

use crate::{connect, database, eventually, quick, raw};
use session_store_pg::testing::{Mode, Proxy, through, upstream};

/// A store reaching the test database through a proxy, with one partner and
/// one token registered.
async fn behind_proxy(url: &str) -> Option<(Proxy, PgStore, ClientTokenRecord)> {
    let Some(upstream) = upstream(url) else {
        println!("skipping: the test server is not reached over TCP");
        return None;
    };
    let proxy = Proxy::start(upstream).await;
    let proxied = through(url, proxy.addr)?;
    let store = PgStore::connect(quick(&proxied))
        .await
        .expect("connect through the proxy");
    partner(&store, "acme").await;
    let token = token("acme", 0);
    store.add_token(&token).await.expect("add token");
    Some((proxy, store, token))
}

/// Runs every kind of call once and checks each fails with `Unavailable`
/// within `limit`.
async fn every_call_is_unavailable(store: &PgStore, limit: Duration) {
    let acme = session_store_contract::partner_spec("acme")
        .build()
        .expect("fixture builds");
    let session = sample_session(&acme, "u-down", "down@example.com", 7);
    let id = session.merchant_transaction_id;
    let unknown = TokenDigest::of("ct_test_never_seen");
    let checks: Vec<(&str, Result<(), StoreError>, Duration)> = vec![
        timed("health", store.check()).await,
        timed("insert_session", store.insert_session(&session)).await,
        timed("session", async { store.session(id).await.map(drop) }).await,
        timed("redeem", async {
            store.redeem(id, "jti", at(1)).await.map(drop)
        })
        .await,
        timed("unknown token", async {
            store.find_by_token(&unknown).await.map(drop)
        })
        .await,
        timed("partners", async { store.partners().await.map(drop) }).await,
    ];
    for (what, result, took) in checks {
        println!("{what}: {took:?}");
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{what}: expected Unavailable, got {result:?}"
        );
        assert!(took < limit, "{what} took {took:?}");
    }
}

async fn timed<F>(what: &'static str, call: F) -> (&'static str, Result<(), StoreError>, Duration)
where
    F: std::future::Future<Output = Result<(), StoreError>>,
{
    let started = Instant::now();
    let result = call.await;
    (what, result, started.elapsed())
}

async fn works_again(store: &PgStore) {
    eventually(Duration::from_secs(5), || async {
        store.check().await.is_ok()
    })
    .await
    .expect("the same store is healthy again once the database is back");
    let acme = session_store_contract::partner_spec("acme")
        .build()
        .expect("fixture builds");
    let session = sample_session(&acme, "u-back", "back@example.com", 8);
    store
        .insert_session(&session)
        .await
        .expect("insert after recovery");
    assert!(
        store
            .session(session.merchant_transaction_id)
            .await
            .expect("read after recovery")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_fails_fast_and_the_store_recovers() {
    let Some(db) = database().await else { return };
    let Some((proxy, store, token)) = behind_proxy(db.url()).await else {
        return;
    };
    proxy.set(Mode::Cut);
    every_call_is_unavailable(&store, Duration::from_secs(2)).await;
    // Authentication of known tokens does not need the database.
    assert!(
        store
            .find_by_token(&token.digest)
            .await
            .expect("from the snapshot")
            .is_some(),
        "known tokens keep working while the database is down"
    );
    proxy.set(Mode::Open);
    works_again(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_network_times_out_and_the_store_recovers() {
    let Some(db) = database().await else { return };
    let Some((proxy, store, _)) = behind_proxy(db.url()).await else {
        return;
    };
    proxy.set(Mode::Paused);
    // statement_timeout 1 s + 1 s of client-side grace; connect timeout 1 s.
    every_call_is_unavailable(&store, Duration::from_secs(4)).await;
    proxy.set(Mode::Open);
    works_again(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_replaced_and_the_listener_resumes() {
    let Some(db) = database().await else { return };
    let a = connect(db.url()).await;
    let b = connect(db.url()).await;
    partner(&a, "acme").await;
    let token = token("acme", 0);
    a.add_token(&token).await.expect("add");
    assert!(
        b.find_by_token(&token.digest)
            .await
            .expect("lookup")
            .is_some()
    );

    let admin = raw(db.admin_url()).await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
            &[&db.name()],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(
        killed >= 2,
        "both listeners and some pooled connections were cut"
    );

    // A call may meet a dead pooled connection once; it fails as Unavailable
    // and the next one gets a fresh connection.
    for store in [&a, &b] {
        let first = store.check().await;
        assert!(
            matches!(first, Ok(()) | Err(StoreError::Unavailable(_))),
            "{first:?}"
        );
        eventually(Duration::from_secs(3), || async {
            store.check().await.is_ok()
        })
        .await
        .expect("healthy again without being recreated");
    }
    // B's listener reconnected: a revocation on A reaches it.
    let revoke = eventually(Duration::from_secs(3), || async {
        a.revoke_token(&token.partner_id, &token.digest, at(5))
            .await
            == Ok(true)
    })
    .await;
    assert!(revoke.is_some(), "revoke on A");
    eventually(Duration::from_secs(3), || async {
        matches!(b.find_by_token(&token.digest).await, Ok(None))
    })
    .await
    .expect("B refuses the revoked token once its listener is back");
}
