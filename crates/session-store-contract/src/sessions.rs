//! Contract cases for sessions, redemption and provider events.

use std::sync::Arc;

use session_core::partner::PartnerId;
use session_core::ports::{EventApplied, Redemption};
use session_core::session::{EventPlan, KycState, ProviderEvent, StoredSession};
use session_core::status::{KycStatus, TxStatus};
use session_core::value::{Amount, Code, PartnerUserId};
use uuid::Uuid;

use crate::Store;
use crate::fixtures::{at, partner, sample_session};

fn user(text: &str) -> PartnerUserId {
    PartnerUserId::parse(text).unwrap_or_else(|why| panic!("{why}"))
}

/// A provider event `id` moving `tx` to `status` at `occurred_at`, applied a
/// second later, with no amounts and no KYC status.
pub fn event(id: &str, tx: Uuid, status: TxStatus, occurred_at: i64) -> EventPlan {
    EventPlan {
        event: ProviderEvent {
            event_id: id.into(),
            merchant_transaction_id: tx,
            status,
            crypto_amount: None,
            fiat_amount: None,
            fiat_currency: None,
            payment_method: None,
            occurred_at: at(occurred_at),
            kyc_status: None,
        },
        now: at(occurred_at + 1),
    }
}

async fn status_of(store: &impl Store, id: Uuid) -> TxStatus {
    store
        .session(id)
        .await
        .expect("read")
        .expect("exists")
        .state
        .status
}

/// A session comes back exactly as inserted, in status `pending`, unredeemed.
pub async fn sessions_round_trip_unchanged(store: impl Store) {
    let acme = partner(&store, "acme").await;
    assert_eq!(store.session(Uuid::new_v4()).await, Ok(None));
    for n in 0..6 {
        let session = sample_session(&acme, "user-1", "user@example.com", n);
        store.insert_session(&session).await.expect("insert");
        let expected = StoredSession {
            state: session.initial_state(),
            session: session.clone(),
            redeemed_at: None,
        };
        assert_eq!(
            store.session(session.merchant_transaction_id).await,
            Ok(Some(expected)),
            "session {n}"
        );
    }
}

/// Users are found or created per (partner, partner_user_id); a new email
/// replaces the old one; the same id at another partner is another user.
pub async fn users_are_per_partner_and_keep_the_latest_email(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let other = partner(&store, "other").await;
    store
        .insert_session(&sample_session(&acme, "u1", "old@example.com", 1))
        .await
        .expect("first");
    store
        .insert_session(&sample_session(&acme, "u1", "new@example.com", 2))
        .await
        .expect("second");
    assert_eq!(
        store.kyc(&acme.id, &user("u1")).await,
        Ok(Some(KycState::NOT_STARTED))
    );
    assert_eq!(
        store.kyc(&other.id, &user("u1")).await,
        Ok(None),
        "tenant isolation"
    );
    assert_eq!(store.kyc(&acme.id, &user("u2")).await, Ok(None));
    let unknown = PartnerId::parse("nobody").unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(store.kyc(&unknown, &user("u1")).await, Ok(None));
}

/// The first redemption wins, every later one sees `AlreadyUsed`, a wrong jti
/// or unknown session is `Unknown`.
pub async fn redemption_happens_once(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let session = sample_session(&acme, "u1", "u1@example.com", 1);
    let id = session.merchant_transaction_id;
    store.insert_session(&session).await.expect("insert");
    assert_eq!(
        store.redeem(id, "wrong-jti", at(10)).await,
        Ok(Redemption::Unknown)
    );
    assert_eq!(
        store
            .redeem(Uuid::new_v4(), &session.init_token_jti, at(10))
            .await,
        Ok(Redemption::Unknown)
    );
    assert_eq!(
        store
            .session(id)
            .await
            .expect("read")
            .expect("exists")
            .redeemed_at,
        None,
        "refusals consume nothing"
    );
    assert_eq!(
        store.redeem(id, &session.init_token_jti, at(11)).await,
        Ok(Redemption::Redeemed)
    );
    assert_eq!(
        store.redeem(id, &session.init_token_jti, at(12)).await,
        Ok(Redemption::AlreadyUsed)
    );
    assert_eq!(
        store
            .session(id)
            .await
            .expect("read")
            .expect("exists")
            .redeemed_at,
        Some(at(11))
    );
}

/// 64 concurrent redemptions of one token: exactly one `Redeemed`.
pub async fn concurrent_redemptions_have_exactly_one_winner(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let store = Arc::new(store);
    for round in 0..5 {
        let session = sample_session(&acme, "u1", "u1@example.com", round);
        store.insert_session(&session).await.expect("insert");
        let attempts = (0..64).map(|i| {
            let store = Arc::clone(&store);
            let jti = session.init_token_jti.clone();
            let id = session.merchant_transaction_id;
            tokio::spawn(async move { store.redeem(id, &jti, at(100 + i)).await })
        });
        let mut redeemed = 0;
        let mut already_used = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            match attempt.await.expect("task") {
                Ok(Redemption::Redeemed) => redeemed += 1,
                Ok(Redemption::AlreadyUsed) => already_used += 1,
                other => panic!("unexpected redemption outcome {other:?}"),
            }
        }
        assert_eq!((redeemed, already_used), (1, 63), "round {round}");
    }
}

/// An applied event changes the state and writes its outbox event; a replay of
/// its id changes nothing; an ignored move is recorded but writes no event.
pub async fn provider_events_apply_once_with_their_outbox_event(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let session = sample_session(&acme, "u1", "u1@example.com", 1);
    let id = session.merchant_transaction_id;
    store.insert_session(&session).await.expect("insert");

    let mut processing = event("e1", id, TxStatus::Processing, 10);
    processing.event.fiat_amount =
        Some(Amount::parse("92.15", 18).unwrap_or_else(|why| panic!("{why}")));
    processing.event.fiat_currency = Some(Code::parse("USD").unwrap_or_else(|why| panic!("{why}")));
    processing.event.payment_method = Some("card".into());
    processing.event.kyc_status = Some(KycStatus::Pending);
    let EventApplied::Applied(effects) = store
        .apply_provider_event(&processing)
        .await
        .expect("apply")
    else {
        panic!("first delivery must apply");
    };
    let stored = store.session(id).await.expect("read").expect("exists");
    assert_eq!(
        Some(&stored.state),
        effects.state.as_ref(),
        "the planned state is what was written"
    );
    assert_eq!(stored.state.status, TxStatus::Processing);
    assert_eq!(stored.state.fiat_amount.as_deref(), Some("92.15"));
    assert_eq!(stored.state.payment_method.as_deref(), Some("card"));
    assert_eq!(stored.state.updated_at, at(11));
    assert_eq!(
        store
            .kyc(&acme.id, &session.user.partner_user_id)
            .await
            .expect("kyc")
            .map(|k| k.status),
        Some(KycStatus::Pending)
    );
    let outbox = store.status_events(id).await.expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(Some(&outbox[0]), effects.outbox.as_ref());

    assert_eq!(
        store.apply_provider_event(&processing).await,
        Ok(EventApplied::Replayed)
    );
    let mut replay_other_status = event("e1", id, TxStatus::Failed, 20);
    replay_other_status.event.kyc_status = Some(KycStatus::Failed);
    assert_eq!(
        store.apply_provider_event(&replay_other_status).await,
        Ok(EventApplied::Replayed)
    );
    assert_eq!(
        store.session(id).await.expect("read").expect("exists"),
        stored,
        "replays change nothing"
    );

    let backwards = event("e2", id, TxStatus::Pending, 30);
    let EventApplied::Applied(ignored) =
        store.apply_provider_event(&backwards).await.expect("apply")
    else {
        panic!("a new event id is applied, even if its move is ignored");
    };
    assert_eq!(ignored.state, None);
    assert_eq!(
        store.apply_provider_event(&backwards).await,
        Ok(EventApplied::Replayed),
        "ignored events are recorded too"
    );
    assert_eq!(
        store.status_events(id).await.expect("outbox").len(),
        1,
        "no outbox event without a change"
    );

    store
        .apply_provider_event(&event("e3", id, TxStatus::Completed, 40))
        .await
        .expect("complete");
    let statuses: Vec<TxStatus> = store
        .status_events(id)
        .await
        .expect("outbox")
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, vec![TxStatus::Processing, TxStatus::Completed]);
    assert_eq!(store.status_events(Uuid::new_v4()).await, Ok(vec![]));
}

/// An event is its `event_id` on its transaction: the same id on another
/// transaction is another event, applied there, while a replay on either
/// changes nothing.
pub async fn one_event_id_on_two_transactions_is_two_events(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let first = sample_session(&acme, "u1", "u1@example.com", 1);
    let second = sample_session(&acme, "u2", "u2@example.com", 2);
    for session in [&first, &second] {
        store.insert_session(session).await.expect("insert");
    }
    let (a, b) = (
        first.merchant_transaction_id,
        second.merchant_transaction_id,
    );
    assert!(matches!(
        store
            .apply_provider_event(&event("shared", a, TxStatus::Processing, 10))
            .await,
        Ok(EventApplied::Applied(_))
    ));
    assert!(
        matches!(
            store
                .apply_provider_event(&event("shared", b, TxStatus::Completed, 20))
                .await,
            Ok(EventApplied::Applied(_))
        ),
        "the same id on another transaction is applied there"
    );
    for (id, status) in [(a, TxStatus::Failed), (b, TxStatus::Failed)] {
        assert_eq!(
            store
                .apply_provider_event(&event("shared", id, status, 30))
                .await,
            Ok(EventApplied::Replayed),
            "a replay on either transaction"
        );
    }
    assert_eq!(status_of(&store, a).await, TxStatus::Processing);
    assert_eq!(status_of(&store, b).await, TxStatus::Completed);
    for (id, status) in [(a, TxStatus::Processing), (b, TxStatus::Completed)] {
        let statuses: Vec<TxStatus> = store
            .status_events(id)
            .await
            .expect("outbox")
            .iter()
            .map(|e| e.status)
            .collect();
        assert_eq!(statuses, [status], "one outbox event each");
    }
}

/// An event for an unknown transaction writes nothing, not even its id: the same
/// id may be delivered again once the transaction exists.
pub async fn events_for_unknown_transactions_leave_no_trace(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let unknown = event("e-early", Uuid::new_v4(), TxStatus::Processing, 1);
    assert_eq!(
        store.apply_provider_event(&unknown).await,
        Ok(EventApplied::UnknownTransaction)
    );
    let session = sample_session(&acme, "u1", "u1@example.com", 1);
    store.insert_session(&session).await.expect("insert");
    let retried = event(
        "e-early",
        session.merchant_transaction_id,
        TxStatus::Processing,
        2,
    );
    assert!(matches!(
        store.apply_provider_event(&retried).await,
        Ok(EventApplied::Applied(_))
    ));
    assert_eq!(
        status_of(&store, session.merchant_transaction_id).await,
        TxStatus::Processing
    );
}

/// Several transactions, each fed a provider script with duplicates, reordering
/// and events after a terminal state.
pub async fn scripted_provider_sequences_end_where_the_state_machine_says(store: impl Store) {
    use TxStatus::*;
    let acme = partner(&store, "acme").await;
    /// Events as (event id, status), the expected final status, the expected outbox.
    type Script<'a> = (&'a [(&'a str, TxStatus)], TxStatus, &'a [TxStatus]);
    let scripts: [Script<'_>; 6] = [
        (
            &[
                ("a1", Processing),
                ("a2", Completed),
                ("a2", Completed),
                ("a3", Failed),
            ],
            Completed,
            &[Processing, Completed],
        ),
        (
            &[("b2", Completed), ("b1", Processing)],
            Completed,
            &[Completed],
        ),
        (
            &[
                ("c1", Processing),
                ("c0", Pending),
                ("c2", Cancelled),
                ("c3", Failed),
            ],
            Failed,
            &[Processing, Failed],
        ),
        (
            &[("d1", Cancelled), ("d2", Processing), ("d3", Completed)],
            Cancelled,
            &[Cancelled],
        ),
        (
            &[
                ("e1", Pending),
                ("e1", Pending),
                ("e2", Processing),
                ("e2", Processing),
            ],
            Processing,
            &[Processing],
        ),
        (
            &[("f1", Failed), ("f1", Failed), ("f2", Completed)],
            Failed,
            &[Failed],
        ),
    ];
    for (n, (script, expected, outbox)) in scripts.iter().enumerate() {
        let session = sample_session(&acme, "u1", "u1@example.com", n as u32);
        let id = session.merchant_transaction_id;
        store.insert_session(&session).await.expect("insert");
        for (step, (event_id, status)) in script.iter().enumerate() {
            let plan = event(&format!("{id}-{event_id}"), id, *status, step as i64);
            store.apply_provider_event(&plan).await.expect("apply");
        }
        assert_eq!(status_of(&store, id).await, *expected, "script {n}");
        let written: Vec<TxStatus> = store
            .status_events(id)
            .await
            .expect("outbox")
            .iter()
            .map(|e| e.status)
            .collect();
        assert_eq!(written, *outbox, "script {n}");
    }
}

/// Concurrent events on one transaction are applied one at a time: the final
/// state is reachable and every applied move wrote exactly one outbox event.
pub async fn concurrent_events_on_one_transaction_serialise(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let store = Arc::new(store);
    let session = sample_session(&acme, "u1", "u1@example.com", 1);
    let id = session.merchant_transaction_id;
    store.insert_session(&session).await.expect("insert");
    let statuses = [
        TxStatus::Processing,
        TxStatus::Completed,
        TxStatus::Failed,
        TxStatus::Pending,
    ];
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            let plan = event(&format!("c{i}"), id, statuses[i % statuses.len()], i as i64);
            tokio::spawn(async move { store.apply_provider_event(&plan).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        if let EventApplied::Applied(effects) = task.await.expect("task").expect("apply") {
            applied += usize::from(effects.state.is_some());
        }
    }
    let final_status = status_of(store.as_ref(), id).await;
    assert!(
        final_status.is_terminal(),
        "some terminal event was applied, got {final_status:?}"
    );
    let outbox = store.status_events(id).await.expect("outbox");
    assert_eq!(outbox.len(), applied, "one outbox event per applied move");
    assert!(
        (1..=2).contains(&applied),
        "at most processing then one terminal state"
    );
    assert_eq!(outbox.last().map(|e| e.status), Some(final_status));
}
