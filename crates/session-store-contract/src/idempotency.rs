//! Contract cases for the answers kept under `Idempotency-Key`s.

use std::sync::Arc;

use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
use session_core::partner::Partner;
use session_core::ports::KeyedInsert;
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::Store;
use crate::fixtures::{at, partner, sample_session};

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text.as_bytes()).unwrap_or_else(|why| panic!("{why}"))
}

/// What is kept for `session` under a key: `fingerprint` stands for the
/// request, and the session comes back unchanged.
fn answer_for(session: &Arc<Session>, fingerprint: u8) -> StoredAnswer {
    StoredAnswer {
        fingerprint: Fingerprint::from_bytes([fingerprint; 32]),
        session: Arc::clone(session),
    }
}

fn keyed(text: &str, replaces_before: Timestamp) -> KeyedAnswer {
    KeyedAnswer {
        key: key(text),
        fingerprint: Fingerprint::from_bytes([1; 32]),
        replaces_before,
    }
}

async fn answer(store: &impl Store, partner: &Partner, text: &str) -> Option<StoredAnswer> {
    store
        .idempotent_answer(&partner.id, &key(text), at(0))
        .await
        .expect("look-up")
}

async fn exists(store: &impl Store, session: &Session) -> bool {
    store
        .session(session.merchant_transaction_id)
        .await
        .expect("read")
        .is_some()
}

/// A key's answer is written with its session and read back byte for byte;
/// while it is live the key writes nothing more; keys are per partner; an
/// expired answer is not read and is replaced by the next request.
pub async fn keyed_sessions_write_their_answer_once(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let beta = partner(&store, "beta").await;

    let first = sample_session(&acme, "u1", "u1@example.com", 10);
    let written = store
        .insert_keyed_session(&first, &keyed("k", at(0)))
        .await
        .expect("insert");
    assert_eq!(written, KeyedInsert::Inserted);
    assert!(exists(&store, &first).await);
    assert_eq!(
        answer(&store, &acme, "k").await,
        Some(answer_for(&first, 1))
    );
    assert_eq!(answer(&store, &acme, "other").await, None);
    let later = store
        .idempotent_answer(&acme.id, &key("k"), at(11))
        .await
        .expect("look-up");
    assert_eq!(
        later, None,
        "an answer created before the cut-off is expired"
    );

    let second = sample_session(&acme, "u1", "changed@example.com", 20);
    let taken = store
        .insert_keyed_session(&second, &keyed("k", at(0)))
        .await
        .expect("insert");
    assert_eq!(taken, KeyedInsert::KeyTaken);
    assert!(
        !exists(&store, &second).await,
        "a taken key writes no session"
    );
    assert_eq!(
        answer(&store, &acme, "k").await,
        Some(answer_for(&first, 1))
    );

    let theirs = sample_session(&beta, "u1", "u1@example.com", 20);
    let written = store
        .insert_keyed_session(&theirs, &keyed("k", at(0)))
        .await
        .expect("insert");
    assert_eq!(written, KeyedInsert::Inserted, "keys are per partner");
    assert_eq!(
        answer(&store, &acme, "k").await,
        Some(answer_for(&first, 1))
    );

    // Past the TTL the key is free again, and the new answer replaces the old.
    let third = sample_session(&acme, "u1", "u1@example.com", 30);
    let written = store
        .insert_keyed_session(&third, &keyed("k", at(15)))
        .await
        .expect("insert");
    assert_eq!(written, KeyedInsert::Inserted);
    assert!(exists(&store, &third).await);
    assert_eq!(
        answer(&store, &acme, "k").await,
        Some(answer_for(&third, 1))
    );
    assert!(exists(&store, &first).await, "the first session stays");

    // Sessions without a key are never deduplicated.
    let plain = sample_session(&acme, "u1", "u1@example.com", 31);
    store.insert_session(&plain).await.expect("insert");
    assert!(exists(&store, &plain).await);
}

/// Of 16 concurrent requests with one key, half through `here` and half
/// through `there` (another instance, where there is one), exactly one
/// writes its session; the others are told the key is taken, and the
/// answer stored is the winner's. Requests without keys in between are
/// written as usual.
pub async fn concurrent_requests_with_one_key_write_one_session(
    here: &impl Store,
    there: &impl Store,
) {
    let acme = partner(here, "acme").await;
    for round in 0..3u32 {
        let text = format!("race-{round}");
        let sessions: Vec<Arc<Session>> = (0..16)
            .map(|i| sample_session(&acme, &format!("u{i}"), "u@example.com", round * 100 + i))
            .collect();
        let plain: Vec<Arc<Session>> = (0..4)
            .map(|i| sample_session(&acme, "p", "p@example.com", round * 100 + 50 + i))
            .collect();
        let keyed_writes = sessions.iter().enumerate().map(|(i, session)| {
            let answer = keyed(&text, at(0));
            async move {
                let store: &dyn Store = if i % 2 == 0 { here } else { there };
                store.insert_keyed_session(session, &answer).await
            }
        });
        let plain_writes = plain.iter().map(|session| here.insert_session(session));
        let (outcomes, plain_outcomes) = tokio::join!(
            futures_util::future::join_all(keyed_writes),
            futures_util::future::join_all(plain_writes)
        );
        let winners: Vec<&Arc<Session>> = outcomes
            .iter()
            .zip(&sessions)
            .filter_map(
                |(outcome, session)| match outcome.as_ref().expect("insert") {
                    KeyedInsert::Inserted => Some(session),
                    KeyedInsert::KeyTaken => None,
                },
            )
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one request wins the key");
        let winner = winners[0];
        for session in &sessions {
            assert_eq!(
                exists(here, session).await,
                Arc::ptr_eq(session, winner),
                "round {round}: only the winner's session is written"
            );
        }
        assert_eq!(
            answer(there, &acme, &text).await,
            Some(answer_for(winner, 1))
        );
        for (outcome, session) in plain_outcomes.iter().zip(&plain) {
            outcome
                .as_ref()
                .expect("a session without a key is written");
            assert!(exists(there, session).await);
        }
    }
}

/// The reaper deletes answers created before the cut-off, at most `limit`
/// per call; later answers stay.
pub async fn expired_answers_are_reaped_in_bounded_batches(store: impl Store) {
    let acme = partner(&store, "acme").await;
    for n in 1..=5u32 {
        let session = sample_session(&acme, "u1", "u1@example.com", n);
        let written = store
            .insert_keyed_session(&session, &keyed(&format!("k{n}"), at(0)))
            .await
            .expect("insert");
        assert_eq!(written, KeyedInsert::Inserted);
    }
    let reap = |limit| store.reap_idempotency_keys(at(4), limit);
    assert_eq!(reap(2).await.expect("reap"), 2);
    assert_eq!(reap(2).await.expect("reap"), 1);
    assert_eq!(reap(2).await.expect("reap"), 0);
    for n in 1..=5 {
        let kept = answer(&store, &acme, &format!("k{n}")).await.is_some();
        assert_eq!(kept, n >= 4, "k{n}");
    }
}
