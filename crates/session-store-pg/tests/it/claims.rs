//! The dispatcher's claim among many instances. A claim finds due deliveries
//! with a read that takes no lock, then claims them by transaction and id, so
//! claims running at once find the same deliveries: each must still go to
//! exactly one claim, within that claim's bounds, and none may be leased
//! without being handed out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use session_core::ports::{ClaimLimits, SessionStore, WebhookOutbox};
use session_core::status::TxStatus;
use session_store_contract::{at, event, partner, sample_session};

use crate::{connect, database};

const PARTNERS: [&str; 4] = ["acme", "beta", "gamma", "delta"];
/// Transactions per partner, each with one due delivery.
const PER_PARTNER: u32 = 60;
const INSTANCES: usize = 3;
const CLAIMERS_PER_INSTANCE: usize = 4;
const TOTAL: usize = 8;
const PARTNER_BOUND: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_take_each_due_delivery_exactly_once() {
    let Some(db) = database().await else { return };
    let first = Arc::new(connect(db.url()).await);
    let mut writes = Vec::new();
    for name in PARTNERS {
        let built = partner(&*first, name).await;
        for n in 0..PER_PARTNER {
            let store = Arc::clone(&first);
            let session = sample_session(&built, &format!("u{n}"), "u@example.com", n);
            // The partners' deliveries interleave in due time.
            writes.push(tokio::spawn(async move {
                let id = session.merchant_transaction_id;
                store.insert_session(&session).await.expect("insert");
                let plan = event(
                    &format!("{id}-processing"),
                    id,
                    TxStatus::Processing,
                    10 + i64::from(n),
                );
                store.apply_provider_event(&plan).await.expect("apply");
                id
            }));
        }
    }
    let mut due = HashSet::new();
    for write in writes {
        due.insert(write.await.expect("task"));
    }

    let mut instances = vec![Arc::clone(&first)];
    for _ in 1..INSTANCES {
        instances.push(Arc::new(connect(db.url()).await));
    }
    // Every claimer claims until a claim comes back empty.
    let claimers: Vec<_> = instances
        .iter()
        .flat_map(|store| (0..CLAIMERS_PER_INSTANCE).map(move |_| Arc::clone(store)))
        .map(|store| {
            tokio::spawn(async move {
                let limits = ClaimLimits {
                    total: TOTAL,
                    per_partner: PARTNER_BOUND,
                    in_flight: &[],
                };
                let mut claims = Vec::new();
                loop {
                    let claim = store
                        .claim_due(at(1_000), at(1_030), &limits)
                        .await
                        .expect("claim");
                    if claim.is_empty() {
                        return claims;
                    }
                    claims.push(claim);
                }
            })
        })
        .collect();
    let mut claims = Vec::new();
    for claimer in claimers {
        claims.extend(claimer.await.expect("task"));
    }
    let busy = claims.len();
    // A claim that lost every round to others may stop early: whatever is
    // left goes to the next claim.
    let rest = first
        .claim_due(at(1_000), at(1_030), &ClaimLimits::total(due.len()))
        .await
        .expect("claim");
    claims.push(rest);

    let mut seen = HashSet::new();
    let mut transactions = HashSet::new();
    for claim in &claims[..busy] {
        assert!(
            claim.len() <= TOTAL,
            "a claim of {} deliveries",
            claim.len()
        );
        let mut per_partner = HashMap::new();
        for delivery in claim {
            *per_partner.entry(&delivery.event.partner_id).or_insert(0) += 1;
        }
        assert!(
            per_partner.values().all(|n| *n <= PARTNER_BOUND),
            "a claim beyond a partner's bound: {per_partner:?}"
        );
    }
    for delivery in claims.iter().flatten() {
        assert!(
            seen.insert(delivery.id),
            "delivery {} claimed twice",
            delivery.id
        );
        transactions.insert(delivery.event.merchant_transaction_id);
    }
    assert_eq!(transactions, due, "every due delivery, once");
    println!(
        "{} claims by {} claimers, {} left to the last",
        busy,
        INSTANCES * CLAIMERS_PER_INSTANCE,
        claims[busy].len()
    );
}
