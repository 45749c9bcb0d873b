//! Group commit: concurrent inserts all land, each is committed by the time
//! its call returns, and a bad row fails alone.

use session_core::session::Session;
use std::sync::Arc;

use session_core::ports::{SessionStore, StoreError};
use session_store_contract::{partner, sample_session};

use crate::{connect, database, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_all_land_and_are_committed_when_acknowledged() {
    let Some(db) = database().await else { return };
    let store = Arc::new(connect(db.url()).await);
    let acme = partner(&*store, "acme").await;
    let observer = Arc::new(raw(db.url()).await);
    let tasks: Vec<_> = (0..200u32)
        .map(|n| {
            let store = Arc::clone(&store);
            let observer = Arc::clone(&observer);
            // 23 users, so batches hold several sessions of one user.
            let session = sample_session(
                &acme,
                &format!("user-{}", n % 23),
                &format!("u{n}@example.com"),
                n,
            );
            tokio::spawn(async move {
                store.insert_session(&session).await.expect("insert");
                // Acknowledged means committed: another connection sees it now.
                let seen = observer
                    .query_opt(
                        "SELECT 1 FROM transactions WHERE merchant_transaction_id = $1",
                        &[&session.merchant_transaction_id],
                    )
                    .await
                    .expect("observer query");
                assert!(
                    seen.is_some(),
                    "session {n} not visible after its insert returned"
                );
                session
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.push(task.await.expect("insert task"));
    }
    let count: i64 = observer
        .query_one("SELECT count(*) FROM transactions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 200);
    let users: i64 = observer
        .query_one("SELECT count(*) FROM end_users", &[])
        .await
        .expect("count users")
        .get(0);
    assert_eq!(users, 23);
    for session in sessions.iter().step_by(17) {
        let stored = store
            .session(session.merchant_transaction_id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(&stored.session, session, "stored exactly as inserted");
    }
    let stats = store.group_commit_stats();
    println!("group commit: {stats:?}");
    assert_eq!(stats.rows, 200);
    assert!(
        stats.batches < 200,
        "200 concurrent inserts were written as {} statements",
        stats.batches
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_alone() {
    let Some(db) = database().await else { return };
    let store = Arc::new(connect(db.url()).await);
    let acme = partner(&*store, "acme").await;
    let first = sample_session(&acme, "u1", "u1@example.com", 1);
    store.insert_session(&first).await.expect("first insert");

    let mut foreign = Session::clone(&sample_session(&acme, "u2", "u2@example.com", 2));
    foreign.partner_id = session_core::partner::PartnerId::parse("nobody").expect("id");
    let foreign = Arc::new(foreign);
    let mut batch = vec![(first.clone(), "duplicate"), (foreign, "unknown partner")];
    batch.extend((10..40).map(|n| (sample_session(&acme, "u3", "u3@example.com", n), "good")));
    for round in 0..3 {
        let tasks: Vec<_> = batch
            .iter()
            .cloned()
            .map(|(session, kind)| {
                let store = Arc::clone(&store);
                let session = if kind == "good" {
                    let mut fresh = Session::clone(&session);
                    fresh.merchant_transaction_id = uuid::Uuid::new_v4();
                    Arc::new(fresh)
                } else {
                    session
                };
                tokio::spawn(async move { (kind, store.insert_session(&session).await) })
            })
            .collect();
        for task in tasks {
            match task.await.expect("task") {
                ("good", result) => assert_eq!(result, Ok(()), "round {round}"),
                ("duplicate", result) => {
                    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}")
                }
                (_, result) => assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}"),
            }
        }
    }
    let count: i64 = raw(db.url())
        .await
        .query_one("SELECT count(*) FROM transactions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1 + 3 * 30);
    println!("group commit: {:?}", store.group_commit_stats());
}

/// Retries of an answered request (its key held) arriving with fresh
/// sessions: the retries are told the key is taken, every fresh session is
/// written, and a keyed session whose id is not its key's is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_keys_fail_alone_and_fresh_rows_still_land() {
    use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer};
    use session_core::ports::{IdempotencyStore, KeyedInsert};
    use session_store_contract::{at, keyed_session};

    let Some(db) = database().await else { return };
    let store = Arc::new(connect(db.url()).await);
    let acme = partner(&*store, "acme").await;
    let keyed = |key: &str| KeyedAnswer {
        key: IdempotencyKey::parse(key.as_bytes()).expect("key"),
        fingerprint: Fingerprint::from_bytes([3; 32]),
        generation: 0,
        expired_before: at(0),
    };
    let first = keyed_session(&*store, &acme, "held", 0, "u1", 1);
    let written = store
        .insert_keyed_session(&first, &keyed("held"))
        .await
        .expect("first");
    assert_eq!(written, KeyedInsert::Inserted);

    for round in 0..3 {
        let retries = (0..10).map(|n| {
            let store = Arc::clone(&store);
            let session = keyed_session(&*store, &acme, "held", 0, "u2", 100 + n);
            let answer = keyed("held");
            tokio::spawn(async move { store.insert_keyed_session(&session, &answer).await })
        });
        let fresh: Vec<_> = (0..30)
            .map(|n| {
                let store = Arc::clone(&store);
                let key = format!("fresh-{round}-{n}");
                let plain = sample_session(&acme, "u3", "u3@example.com", 200 + n);
                let session = keyed_session(&*store, &acme, &key, 0, "u3", 200 + n);
                let answer = keyed(&key);
                tokio::spawn(async move {
                    if n % 2 == 0 {
                        store
                            .insert_session(&plain)
                            .await
                            .map(|()| KeyedInsert::Inserted)
                    } else {
                        store.insert_keyed_session(&session, &answer).await
                    }
                })
            })
            .collect();
        let mismatched = {
            let store = Arc::clone(&store);
            let first = Arc::clone(&first);
            let answer = keyed(&format!("other-{round}"));
            tokio::spawn(async move { store.insert_keyed_session(&first, &answer).await })
        };
        for retry in retries.collect::<Vec<_>>() {
            assert_eq!(
                retry.await.expect("task"),
                Ok(KeyedInsert::KeyTaken),
                "round {round}"
            );
        }
        for task in fresh {
            assert_eq!(
                task.await.expect("task"),
                Ok(KeyedInsert::Inserted),
                "round {round}"
            );
        }
        let mismatched = mismatched.await.expect("task");
        assert!(
            matches!(mismatched, Err(StoreError::Failed(_))),
            "a keyed session must have its key's id: {mismatched:?}"
        );
    }
    let count: i64 = raw(db.url())
        .await
        .query_one("SELECT count(*) FROM transactions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1 + 3 * 30);
}

/// No foreign key ties a transaction to its end user (migration 0012: the
/// two tables would be distributed by different columns); the statement that
/// writes a transaction writes its user, batched or row by row after a failed
/// batch, with an idempotency key or without, so the user is always there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_written_session_has_its_end_user() {
    use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer};
    use session_core::ports::IdempotencyStore;
    use session_store_contract::{at, keyed_session};

    let Some(db) = database().await else { return };
    let store = Arc::new(connect(db.url()).await);
    let acme = partner(&*store, "acme").await;
    let observer = raw(db.url()).await;
    let foreign_keys: i64 = observer
        .query_one(
            "SELECT count(*) FROM pg_constraint \
             WHERE conrelid = 'transactions'::regclass AND contype = 'f'",
            &[],
        )
        .await
        .expect("count foreign keys")
        .get(0);
    assert_eq!(foreign_keys, 0, "the invariant is the application's");

    let first = sample_session(&acme, "first", "first@example.com", 0);
    store.insert_session(&first).await.expect("first insert");
    let tasks: Vec<_> = (1..=90u32)
        .map(|n| {
            let store = Arc::clone(&store);
            // A duplicate now and then fails its batch, whose other rows are
            // then written one by one.
            let session = if n % 30 == 0 {
                Arc::clone(&first)
            } else if n % 2 == 1 {
                let user = format!("user-{}", n % 11);
                keyed_session(&*store, &acme, &format!("key-{n}"), 0, &user, n)
            } else {
                sample_session(
                    &acme,
                    &format!("user-{}", n % 11),
                    &format!("u{n}@example.com"),
                    n,
                )
            };
            tokio::spawn(async move {
                let written = if n % 2 == 0 {
                    store.insert_session(&session).await
                } else {
                    let answer = KeyedAnswer {
                        key: IdempotencyKey::parse(format!("key-{n}").as_bytes()).expect("key"),
                        fingerprint: Fingerprint::from_bytes([7; 32]),
                        generation: 0,
                        expired_before: at(0),
                    };
                    store
                        .insert_keyed_session(&session, &answer)
                        .await
                        .map(|_| ())
                };
                (session, written)
            })
        })
        .collect();
    let mut written = vec![Arc::clone(&first)];
    for task in tasks {
        match task.await.expect("task") {
            (session, Ok(())) => written.push(session),
            (session, Err(StoreError::Conflict(_))) if Arc::ptr_eq(&session, &first) => {}
            (_, Err(error)) => panic!("insert failed: {error}"),
        }
    }
    assert_eq!(written.len(), 1 + 90 - 3);

    let orphans: i64 = observer
        .query_one(
            "SELECT count(*) FROM transactions t WHERE NOT EXISTS ( \
                 SELECT 1 FROM end_users u \
                 WHERE u.partner_id = t.partner_id AND u.partner_user_id = t.partner_user_id)",
            &[],
        )
        .await
        .expect("count orphans")
        .get(0);
    assert_eq!(orphans, 0, "a transaction without its end user");
    for session in &written {
        let user = observer
            .query_opt(
                "SELECT 1 FROM end_users WHERE partner_id = $1 AND partner_user_id = $2",
                &[
                    &session.partner_id.as_str(),
                    &session.user.partner_user_id.as_str(),
                ],
            )
            .await
            .expect("read user");
        assert!(
            user.is_some(),
            "no end user for session {}",
            session.merchant_transaction_id
        );
    }
}
