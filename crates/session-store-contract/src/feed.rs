//! Contract cases for the status feed: what a live subscriber is yielded,
//! with the change applied through the same instance or another one.

use std::time::Duration;

use session_core::live::FeedNext;
use session_core::ports::FeedSubscription;
use session_core::status::TxStatus;
use uuid::Uuid;

use crate::Store;
use crate::fixtures::{partner, sample_session};
use crate::sessions::event;

/// How long a change may take to reach a subscriber on another instance.
/// PostgreSQL's NOTIFY takes milliseconds; the periodic resync, seconds.
const DELIVERY: Duration = Duration::from_secs(2);

/// How long to wait before concluding nothing more is coming.
const QUIET: Duration = Duration::from_millis(300);

async fn next_update(subscription: &mut Box<dyn FeedSubscription>) -> (u64, TxStatus) {
    match tokio::time::timeout(DELIVERY, subscription.next()).await {
        Ok(FeedNext::Update(update)) => (update.sequence, update.state.status),
        Ok(other) => panic!("expected an update, got {other:?}"),
        Err(_) => panic!("no update within {DELIVERY:?}"),
    }
}

async fn nothing_more(subscription: &mut Box<dyn FeedSubscription>, why: &str) {
    if let Ok(next) = tokio::time::timeout(QUIET, subscription.next()).await {
        panic!("{why}: yielded {next:?}");
    }
}

async fn new_transaction(store: &impl Store, n: u32) -> Uuid {
    let acme = partner(store, "acme").await;
    let session = sample_session(&acme, "u1", "u@example.com", n);
    store.insert_session(&session).await.expect("insert");
    session.merchant_transaction_id
}

/// Subscribed on `here`, changed through `there` (the same store, or a second
/// instance on the same database): each applied change is yielded once, in
/// order, numbered 2, 3...; replayed and ignored events and other
/// transactions' changes yield nothing.
pub async fn subscribers_see_each_applied_change_in_order(here: &impl Store, there: &impl Store) {
    let id = new_transaction(here, 1).await;
    let other = new_transaction(here, 2).await;
    let mut subscription = here.subscribe(id).await.expect("subscribe");
    let mut second = here.subscribe(id).await.expect("a second subscriber");

    let apply = |plan| async move { there.apply_provider_event(&plan).await.expect("apply") };
    apply(event("p", id, TxStatus::Processing, 10)).await;
    assert_eq!(
        next_update(&mut subscription).await,
        (2, TxStatus::Processing)
    );

    apply(event("p", id, TxStatus::Processing, 10)).await;
    apply(event("p-again", id, TxStatus::Processing, 11)).await;
    apply(event("back", id, TxStatus::Pending, 12)).await;
    apply(event("elsewhere", other, TxStatus::Processing, 12)).await;
    nothing_more(
        &mut subscription,
        "replayed and ignored events, other transactions",
    )
    .await;

    apply(event("c", id, TxStatus::Completed, 13)).await;
    assert_eq!(
        next_update(&mut subscription).await,
        (3, TxStatus::Completed)
    );
    assert_eq!(next_update(&mut second).await, (2, TxStatus::Processing));
    assert_eq!(next_update(&mut second).await, (3, TxStatus::Completed));
    nothing_more(&mut second, "after the terminal status").await;
}

/// Changes that follow each other closely still arrive complete and in
/// order, and a subscriber that joins late starts after what it could read.
pub async fn quick_successive_changes_all_arrive_in_order(here: &impl Store, there: &impl Store) {
    let id = new_transaction(here, 3).await;
    let mut subscription = here.subscribe(id).await.expect("subscribe");
    there
        .apply_provider_event(&event("p", id, TxStatus::Processing, 10))
        .await
        .expect("apply");
    there
        .apply_provider_event(&event("c", id, TxStatus::Completed, 11))
        .await
        .expect("apply");
    assert_eq!(
        next_update(&mut subscription).await,
        (2, TxStatus::Processing)
    );
    assert_eq!(
        next_update(&mut subscription).await,
        (3, TxStatus::Completed)
    );

    let changes = here.status_events(id).await.expect("changes");
    assert_eq!(changes.len(), 2, "the changes the sequence numbers count");
}
