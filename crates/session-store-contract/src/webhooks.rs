//! Contract cases for the webhook outbox: which changes become deliveries,
//! order per transaction, leases, several dispatchers, operators' requeues.

use std::collections::HashSet;
use std::sync::Arc;

use session_core::partner::PartnerId;
use session_core::ports::{AttemptNext, AttemptRecord, ClaimLimits, DeliveryFilter, DeliveryState};
use session_core::status::TxStatus;
use uuid::Uuid;

use crate::Store;
use crate::fixtures::{at, partner, partner_spec, sample_session};
use crate::sessions::event;

/// A session of `partner` moved to processing then completed (two deliveries
/// when the partner has a webhook). Events are applied at `at(base + 1)` and
/// `at(base + 2)`.
async fn two_changes(store: &impl Store, partner: &str, user: &str, base: i64) -> Uuid {
    let built = partner_spec(partner)
        .build()
        .expect("fixture partner builds");
    let session = sample_session(&built, user, "u@example.com", 1);
    let id = session.merchant_transaction_id;
    store.insert_session(&session).await.expect("insert");
    for (n, status) in [(0, TxStatus::Processing), (1, TxStatus::Completed)] {
        let plan = event(&format!("{id}-{n}"), id, status, base + n);
        store.apply_provider_event(&plan).await.expect("apply");
    }
    id
}

fn outcome(at_seconds: i64, result: &str, next: AttemptNext) -> AttemptRecord {
    AttemptRecord {
        at: at(at_seconds),
        result: result.into(),
        next,
    }
}

/// Claims at `at(now)`, checks the claim is one delivery of `status`, and
/// records it delivered a second later.
async fn deliver_next(store: &impl Store, now: i64, status: TxStatus, why: &str) {
    let next = store
        .claim_due(at(now), at(now + 30), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(
        next.iter().map(|d| d.event.status).collect::<Vec<_>>(),
        [status],
        "{why}"
    );
    store
        .record_attempt(
            next[0].key(),
            &outcome(now + 1, "200", AttemptNext::Delivered),
        )
        .await
        .expect("record");
}

fn all() -> DeliveryFilter {
    DeliveryFilter {
        limit: 1_000,
        ..DeliveryFilter::default()
    }
}

pub async fn webhook_deliveries_go_out_in_order_per_transaction(store: impl Store) {
    partner(&store, "acme").await;
    let mut quiet = partner_spec("quiet");
    quiet.webhook_url = None;
    quiet.webhook_secret = None;
    store.put_partner(&quiet).await.expect("put partner");
    let id = two_changes(&store, "acme", "u1", 10).await;
    two_changes(&store, "quiet", "u2", 10).await;

    let listed = store.deliveries(&all()).await.expect("list");
    assert_eq!(
        listed.len(),
        2,
        "only the partner with a webhook has deliveries"
    );
    assert!(listed.iter().all(|d| d.partner_id.as_str() == "acme"));
    assert_eq!(listed[0].status, TxStatus::Completed, "newest first");

    let first = store
        .claim_due(at(100), at(130), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "the later event waits for the earlier one");
    assert_eq!(first[0].event.status, TxStatus::Processing);
    assert_eq!(first[0].event.merchant_transaction_id, id);
    assert_eq!((first[0].attempts, first[0].committed_at), (0, at(11)));
    assert!(first[0].webhook_id().starts_with("evt_"));

    store
        .record_attempt(
            first[0].key(),
            &outcome(101, "500", AttemptNext::RetryAt(at(105))),
        )
        .await
        .expect("record");
    assert!(
        store
            .claim_due(at(104), at(134), &ClaimLimits::total(10))
            .await
            .expect("claim")
            .is_empty(),
        "not due before its retry, and the next event still waits"
    );
    let again = store
        .claim_due(at(105), at(135), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(
        (again.len(), again[0].id, again[0].attempts),
        (1, first[0].id, 1)
    );
    store
        .record_attempt(again[0].key(), &outcome(106, "200", AttemptNext::Delivered))
        .await
        .expect("record");
    let second = store
        .claim_due(at(106), at(136), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.status, TxStatus::Completed);
    assert!(second[0].id > first[0].id, "ids follow commit order");

    let delivered = DeliveryFilter {
        state: Some(DeliveryState::Delivered),
        ..all()
    };
    let listed = store.deliveries(&delivered).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].attempts, listed[0].last_result.as_deref()),
        (2, Some("200"))
    );
}

pub async fn claimed_deliveries_are_leased_and_released(store: impl Store) {
    let acme = partner(&store, "acme").await;
    two_changes(&store, "acme", "u1", 10).await;
    let claimed = store
        .claim_due(at(100), at(130), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .claim_due(at(129), at(159), &ClaimLimits::total(10))
            .await
            .expect("claim")
            .is_empty(),
        "leased: no other dispatcher gets it"
    );
    assert!(
        store
            .claim_due(
                at(130),
                at(160),
                &ClaimLimits {
                    total: 10,
                    per_partner: 2,
                    in_flight: &[(acme.id.clone(), 2)],
                },
            )
            .await
            .expect("claim")
            .is_empty(),
        "a busy partner's deliveries are left for later"
    );
    let after_crash = store
        .claim_due(at(130), at(160), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(
        after_crash.iter().map(|d| d.id).collect::<Vec<_>>(),
        [claimed[0].id],
        "an unrecorded claim is due again when its lease ends"
    );
    let mut elsewhere = claimed[0].key();
    elsewhere.merchant_transaction_id = Uuid::new_v4();
    store.release(&[elsewhere]).await.expect("release");
    assert!(
        store
            .claim_due(at(131), at(161), &ClaimLimits::total(10))
            .await
            .expect("claim")
            .is_empty(),
        "a delivery is named by its transaction and its id: another transaction's \
         release leaves its lease alone"
    );
    store.release(&[claimed[0].key()]).await.expect("release");
    let released = store
        .claim_due(at(131), at(161), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(released.len(), 1, "a released claim is due at once");
}

pub async fn failed_deliveries_wait_for_an_operator(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let id = two_changes(&store, "acme", "u1", 10).await;
    let first = store
        .claim_due(at(100), at(130), &ClaimLimits::total(10))
        .await
        .expect("claim");
    store
        .record_attempt(
            first[0].key(),
            &outcome(101, "timeout", AttemptNext::Failed),
        )
        .await
        .expect("record");
    deliver_next(
        &store,
        102,
        TxStatus::Completed,
        "an abandoned delivery no longer holds back the next one",
    )
    .await;
    let failed = DeliveryFilter {
        state: Some(DeliveryState::Failed),
        transaction: Some(id),
        partner: Some(acme.id.clone()),
        ..all()
    };
    let listed = store.deliveries(&failed).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_result.as_deref(), Some("timeout"));
    assert!(
        store
            .claim_due(at(200), at(230), &ClaimLimits::total(10))
            .await
            .expect("claim")
            .is_empty()
    );

    assert!(store.requeue(first[0].id, at(300)).await.expect("requeue"));
    assert!(
        !store
            .requeue(i64::MAX, at(300))
            .await
            .expect("requeue unknown")
    );
    let retried = store
        .claim_due(at(300), at(330), &ClaimLimits::total(10))
        .await
        .expect("claim");
    assert_eq!(
        retried.iter().map(|d| d.id).collect::<Vec<_>>(),
        [first[0].id]
    );

    let other = PartnerId::parse("other").expect("id");
    assert_eq!(
        store.replay(&other, at(0), at(400)).await.expect("replay"),
        0
    );
    assert_eq!(
        store
            .replay(&acme.id, at(12), at(400))
            .await
            .expect("replay"),
        1,
        "only deliveries committed since then"
    );
}

pub async fn concurrent_dispatchers_never_claim_one_delivery_twice(store: impl Store) {
    partner(&store, "acme").await;
    for n in 0..20 {
        two_changes(&store, "acme", &format!("u{n}"), 10).await;
    }
    let store = Arc::new(store);
    let claims = (0..4).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .claim_due(at(100), at(130), &ClaimLimits::total(8))
                .await
                .expect("claim")
        })
    });
    let mut seen = HashSet::new();
    let mut transactions = HashSet::new();
    for claim in claims {
        for delivery in claim.await.expect("task") {
            assert!(
                seen.insert(delivery.id),
                "delivery {} claimed twice",
                delivery.id
            );
            assert!(
                transactions.insert(delivery.event.merchant_transaction_id),
                "two events of one transaction in flight"
            );
            assert_eq!(delivery.event.status, TxStatus::Processing);
        }
    }
    assert_eq!(seen.len(), 20, "every transaction's first event, once");
}

pub async fn a_claim_keeps_within_each_partners_room(store: impl Store) {
    let acme = partner(&store, "acme").await;
    let beta = partner(&store, "beta").await;
    for n in 0..5 {
        two_changes(&store, "acme", &format!("a{n}"), 10).await;
    }
    for n in 0..3 {
        two_changes(&store, "beta", &format!("b{n}"), 20).await;
    }
    let claim = |in_flight: Vec<(PartnerId, usize)>| {
        let store = &store;
        async move {
            let limits = ClaimLimits {
                total: 10,
                per_partner: 2,
                in_flight: &in_flight,
            };
            store
                .claim_due(at(100), at(130), &limits)
                .await
                .expect("claim")
        }
    };
    let of = |claimed: &[session_core::ports::Delivery], id: &PartnerId| {
        claimed.iter().filter(|d| &d.event.partner_id == id).count()
    };
    // acme has one of its two in flight: one more of its five, however old.
    let first = claim(vec![(acme.id.clone(), 1)]).await;
    assert_eq!(of(&first, &acme.id), 1, "acme's room was one");
    assert!(of(&first, &beta.id) <= 2);
    // acme is full now: the next claim passes over its queue to beta's.
    let second = claim(vec![
        (acme.id.clone(), 2),
        (beta.id.clone(), of(&first, &beta.id)),
    ])
    .await;
    assert_eq!(of(&second, &acme.id), 0, "a full partner gets nothing");
    assert_eq!(
        of(&first, &beta.id) + of(&second, &beta.id),
        2,
        "beta gets its room although acme's deliveries are older"
    );
    let rest = store
        .claim_due(at(100), at(130), &ClaimLimits::total(3))
        .await
        .expect("claim");
    assert_eq!(rest.len(), 3, "the total bounds a claim too");
    assert!(
        rest.iter().all(|d| d.event.partner_id == acme.id),
        "the oldest due first: acme's four left before beta's last"
    );
}

pub async fn a_delivery_committed_while_the_previous_one_is_recorded_still_goes(store: impl Store) {
    partner(&store, "acme").await;
    let built = partner_spec("acme")
        .build()
        .expect("fixture partner builds");
    let store = Arc::new(store);
    for round in 0..20 {
        let session = sample_session(&built, &format!("u{round}"), "u@example.com", 1);
        let id = session.merchant_transaction_id;
        store.insert_session(&session).await.expect("insert");
        let first = event(&format!("{id}-0"), id, TxStatus::Processing, 10);
        store.apply_provider_event(&first).await.expect("apply");
        let claimed = store
            .claim_due(at(100), at(130), &ClaimLimits::total(10))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "round {round}");
        // The second event commits while the first delivery is recorded.
        let recording = {
            let store = Arc::clone(&store);
            let delivered = claimed[0].key();
            tokio::spawn(async move {
                store
                    .record_attempt(delivered, &outcome(101, "200", AttemptNext::Delivered))
                    .await
            })
        };
        let second = event(&format!("{id}-1"), id, TxStatus::Completed, 11);
        store.apply_provider_event(&second).await.expect("apply");
        recording.await.expect("task").expect("record");
        deliver_next(
            store.as_ref(),
            102,
            TxStatus::Completed,
            &format!("round {round}: the later event is not left behind"),
        )
        .await;
    }
}
