//! Contract cases for the answers kept under `Idempotency-Key`s.

use std::sync::Arc;

use session_core::idempotency::{
    Fingerprint, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer, keyed_transaction_id,
};
use session_core::partner::Partner;
use session_core::ports::KeyedInsert;
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::Store;
use crate::fixtures::{at, partner, sample_session};

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text.as_bytes()).unwrap_or_else(|why| panic!("{why}"))
}

/// A sample session opened under `partner`'s key `text`, its `generation`-th:
/// its id is the key's in `store`'s namespace, as the core derives it.
pub fn keyed_session(
    store: &(impl Store + ?Sized),
    partner: &Partner,
    text: &str,
    generation: u32,
    user: &str,
    n: u32,
) -> Arc<Session> {
    let mut session = Arc::unwrap_or_clone(sample_session(partner, user, "u@example.com", n));
    session.merchant_transaction_id =
        keyed_transaction_id(&store.id_namespace(), &partner.id, &key(text), generation);
    Arc::new(session)
}

/// What is kept for `session` under a key: `fingerprint` stands for the
/// request, and the session comes back unchanged.
fn answer_for(session: &Arc<Session>, fingerprint: u8) -> KeyLookup {
    KeyLookup::Held(StoredAnswer {
        fingerprint: Fingerprint::from_bytes([fingerprint; 32]),
        session: Arc::clone(session),
    })
}

fn keyed(text: &str, generation: u32) -> KeyedAnswer {
    KeyedAnswer {
        key: key(text),
        fingerprint: Fingerprint::from_bytes([1; 32]),
        generation,
        expired_before: at(0),
    }
}

async fn lookup(store: &impl Store, partner: &Partner, text: &str, since: Timestamp) -> KeyLookup {
    store
        .idempotent_answer(&partner.id, &key(text), since)
        .await
        .expect("look-up")
}

async fn answer(store: &impl Store, partner: &Partner, text: &str) -> KeyLookup {
    lookup(store, partner, text, at(0)).await
}

async fn insert(
    store: &impl Store,
    session: &Arc<Session>,
    text: &str,
    generation: u32,
) -> KeyedInsert {
    store
        .insert_keyed_session(session, &keyed(text, generation))
        .await
        .expect("insert")
}

/// The session stored under `session`'s id, if any.
async fn stored(store: &impl Store, session: &Session) -> Option<Arc<Session>> {
    store
        .session(session.merchant_transaction_id)
        .await
        .expect("read")
        .map(|stored| stored.session)
}

async fn exists(store: &impl Store, session: &Session) -> bool {
    stored(store, session).await.is_some()
}

const fn free(generation: u32) -> KeyLookup {
    KeyLookup::Free { generation }
}

/// A key's answer is written with its session and read back byte for byte;
/// while it is live the key writes nothing more; keys are per partner; an
/// expired answer is not read, and its key's next session is the next
/// generation, which writes once too.
pub async fn keyed_sessions_write_their_answer_once(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let beta = partner(&store, "beta").await;

    assert_eq!(answer(&store, &acme, "k").await, free(0), "a new key");
    let first = keyed_session(&store, &acme, "k", 0, "u1", 10);
    assert_eq!(insert(&store, &first, "k", 0).await, KeyedInsert::Inserted);
    assert!(exists(&store, &first).await);
    assert_eq!(answer(&store, &acme, "k").await, answer_for(&first, 1));
    assert_eq!(answer(&store, &acme, "other").await, free(0));
    assert_eq!(
        lookup(&store, &acme, "k", at(11)).await,
        free(1),
        "an answer created before the cut-off is expired: the next generation is free"
    );

    let second = keyed_session(&store, &acme, "k", 0, "u2", 20);
    assert_eq!(insert(&store, &second, "k", 0).await, KeyedInsert::KeyTaken);
    assert_eq!(
        stored(&store, &second).await.as_deref(),
        Some(first.as_ref()),
        "a taken key writes no session"
    );
    assert_eq!(answer(&store, &acme, "k").await, answer_for(&first, 1));

    let theirs = keyed_session(&store, &beta, "k", 0, "u1", 20);
    assert_ne!(
        theirs.merchant_transaction_id,
        first.merchant_transaction_id
    );
    assert_eq!(
        insert(&store, &theirs, "k", 0).await,
        KeyedInsert::Inserted,
        "keys are per partner"
    );
    assert_eq!(answer(&store, &acme, "k").await, answer_for(&first, 1));

    // Past the TTL the key's next generation is written, and its answer is
    // the key's; the first session stays, and its generation stays taken.
    let third = keyed_session(&store, &acme, "k", 1, "u1", 30);
    assert_eq!(insert(&store, &third, "k", 1).await, KeyedInsert::Inserted);
    assert!(exists(&store, &third).await);
    assert_eq!(answer(&store, &acme, "k").await, answer_for(&third, 1));
    assert_eq!(
        lookup(&store, &acme, "k", at(15)).await,
        answer_for(&third, 1)
    );
    assert_eq!(lookup(&store, &acme, "k", at(31)).await, free(2));
    assert!(exists(&store, &first).await, "the first session stays");
    let late = keyed_session(&store, &acme, "k", 0, "u3", 40);
    assert_eq!(insert(&store, &late, "k", 0).await, KeyedInsert::KeyTaken);
    let again = keyed_session(&store, &acme, "k", 1, "u3", 40);
    assert_eq!(insert(&store, &again, "k", 1).await, KeyedInsert::KeyTaken);

    // Sessions without a key are never deduplicated.
    let plain = sample_session(&acme, "u1", "u1@example.com", 31);
    store.insert_session(&plain).await.expect("insert");
    assert!(exists(&store, &plain).await);
}

/// A key used again and again, each time after its answer expired, finds its
/// newest session however many came before (20 here: past any first batch a
/// store reads them in).
pub async fn a_key_passes_through_its_generations(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let mut newest = None;
    for generation in 0..20u32 {
        let expired_before = at(i64::from(10 + generation));
        assert_eq!(
            lookup(&store, &acme, "daily", expired_before).await,
            free(generation)
        );
        let session = keyed_session(&store, &acme, "daily", generation, "u1", 10 + generation);
        assert_eq!(
            insert(&store, &session, "daily", generation).await,
            KeyedInsert::Inserted
        );
        newest = Some(session);
    }
    let newest = newest.expect("written");
    assert_eq!(
        lookup(&store, &acme, "daily", at(29)).await,
        answer_for(&newest, 1)
    );
    assert_eq!(lookup(&store, &acme, "daily", at(30)).await, free(20));
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
            .map(|i| keyed_session(here, &acme, &text, 0, &format!("u{i}"), round * 100 + i))
            .collect();
        let plain: Vec<Arc<Session>> = (0..4)
            .map(|i| sample_session(&acme, "p", "p@example.com", round * 100 + 50 + i))
            .collect();
        let keyed_writes = sessions.iter().enumerate().map(|(i, session)| {
            let answer = keyed(&text, 0);
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
        assert_eq!(
            stored(here, winner).await.as_deref(),
            Some(winner.as_ref()),
            "round {round}: the winner's session is the one written"
        );
        assert_eq!(answer(there, &acme, &text).await, answer_for(winner, 1));
        for (outcome, session) in plain_outcomes.iter().zip(&plain) {
            outcome
                .as_ref()
                .expect("a session without a key is written");
            assert!(exists(there, session).await);
        }
    }
}

/// The reaper forgets answers created before the cut-off, at most `limit`
/// per call; later answers stay. A forgotten answer's session stays, and so
/// does its generation: the key's next session is the next one. To a caller
/// whose clock puts the cut-off later than the reaper's did, a forgotten
/// answer's generation is not free yet.
pub async fn expired_answers_are_reaped_in_bounded_batches(store: impl Store) {
    let acme = partner(&store, "acme").await;
    for n in 1..=5u32 {
        let text = format!("k{n}");
        let session = keyed_session(&store, &acme, &text, 0, "u1", n);
        assert_eq!(
            insert(&store, &session, &text, 0).await,
            KeyedInsert::Inserted
        );
    }
    let reap = |limit| store.reap_idempotency_keys(at(4), limit);
    assert_eq!(reap(2).await.expect("reap"), 2);
    assert_eq!(reap(2).await.expect("reap"), 1);
    assert_eq!(reap(2).await.expect("reap"), 0);
    for n in 1..=5 {
        let found = lookup(&store, &acme, &format!("k{n}"), at(4)).await;
        if n >= 4 {
            assert!(matches!(found, KeyLookup::Held(_)), "k{n}: {found:?}");
        } else {
            assert_eq!(found, free(1), "k{n}");
        }
    }
    assert_eq!(
        lookup(&store, &acme, "k1", at(0)).await,
        free(0),
        "reaped early: the generation stays taken, so requests are told the key is in use"
    );
}
