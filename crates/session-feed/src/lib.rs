//! The per-instance fan-out of transaction updates to live subscribers.
//!
//! A [`Hub`] holds one topic per transaction that somebody on this instance
//! follows, and nothing for the others: a change to a transaction nobody
//! follows costs a map look-up. Each topic is a bounded broadcast queue, so
//! one update is stored once however many sockets follow it, and a subscriber
//! that falls more than [`Hub`]'s queue length behind learns it lagged
//! instead of making the queue grow.
//!
//! A topic publishes only updates newer than the newest it has published, so
//! its subscribers see sequences grow, never go back, whichever path (a local
//! commit, a notification from another instance, a periodic re-read) brings
//! an update first. How updates reach the hub is the store's business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use session_core::live::{FeedNext, TxUpdate};
use session_core::ports::FeedSubscription;
use tokio::sync::broadcast;
use uuid::Uuid;

/// How many updates a subscriber may fall behind before it has lagged. A
/// transaction has at most a few changes in its life, so only a subscriber
/// that stopped reading ever reaches this.
pub const SUBSCRIBER_QUEUE: usize = 16;

/// The topics of one instance.
#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<Uuid, Topic>>,
    queue: usize,
}

#[derive(Debug)]
struct Topic {
    sender: broadcast::Sender<Arc<TxUpdate>>,
    /// The newest sequence published (0 before the first).
    newest: u64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_queue(SUBSCRIBER_QUEUE)
    }
}

impl Hub {
    /// A hub whose subscribers may fall `queue` updates behind.
    pub fn with_queue(queue: usize) -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            queue: queue.max(1),
        }
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<Uuid, Topic>> {
        // Nothing is left half-written under this lock; a panic elsewhere
        // must not stop live updates.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows transaction `id` from now on.
    pub fn subscribe(self: &Arc<Self>, id: Uuid) -> HubSubscription {
        let receiver = {
            let mut topics = self.topics();
            let topic = topics.entry(id).or_insert_with(|| Topic {
                sender: broadcast::channel(self.queue).0,
                newest: 0,
            });
            topic.sender.subscribe()
        };
        HubSubscription {
            hub: Arc::clone(self),
            id,
            receiver: Some(receiver),
            newest: 0,
        }
    }

    /// Publishes `update` to its transaction's subscribers, unless nobody
    /// here follows it or a newer one went out already.
    pub fn publish(&self, update: TxUpdate) {
        self.catch_up(update.state.merchant_transaction_id, vec![update]);
    }

    /// Publishes, in order, those of `updates` (all of transaction `id`,
    /// oldest first) that are newer than what went out.
    pub fn catch_up(&self, id: Uuid, updates: Vec<TxUpdate>) {
        let mut topics = self.topics();
        let Some(topic) = topics.get_mut(&id) else {
            return;
        };
        for update in updates {
            if update.sequence > topic.newest {
                topic.newest = update.sequence;
                // No receiver left is not an error: the topic goes with the
                // last subscription.
                let _ = topic.sender.send(Arc::new(update));
            }
        }
    }

    /// The newest sequence published to `id`'s subscribers (0 before the
    /// first), or `None` when nobody here follows it.
    pub fn newest(&self, id: Uuid) -> Option<u64> {
        self.topics().get(&id).map(|topic| topic.newest)
    }

    /// Whether somebody here follows `id` and has not been sent `sequence`
    /// yet: a notification worth a re-read.
    pub fn is_behind(&self, id: Uuid, sequence: u64) -> bool {
        self.topics()
            .get(&id)
            .is_some_and(|topic| sequence > topic.newest)
    }

    /// Records that transaction `id`'s states up to `sequence` need no
    /// publishing (a re-read found nothing newer), so they do not count as
    /// behind again.
    pub fn seen(&self, id: Uuid, sequence: u64) {
        if let Some(topic) = self.topics().get_mut(&id) {
            topic.newest = topic.newest.max(sequence);
        }
    }

    /// Every followed transaction and its newest published sequence.
    pub fn followed(&self) -> Vec<(Uuid, u64)> {
        self.topics()
            .iter()
            .map(|(id, topic)| (*id, topic.newest))
            .collect()
    }

    /// How many transactions are followed here.
    pub fn len(&self) -> usize {
        self.topics().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unsubscribe(&self, id: Uuid, receiver: broadcast::Receiver<Arc<TxUpdate>>) {
        let mut topics = self.topics();
        drop(receiver);
        if topics
            .get(&id)
            .is_some_and(|topic| topic.sender.receiver_count() == 0)
        {
            topics.remove(&id);
        }
    }
}

/// One subscriber of a [`Hub`] topic; dropping it unsubscribes (and removes
/// the topic with its last subscriber).
#[derive(Debug)]
pub struct HubSubscription {
    hub: Arc<Hub>,
    id: Uuid,
    /// Taken only by `drop`.
    receiver: Option<broadcast::Receiver<Arc<TxUpdate>>>,
    /// The newest sequence yielded, so nothing older is yielded after it.
    newest: u64,
}

#[async_trait]
impl FeedSubscription for HubSubscription {
    async fn next(&mut self) -> FeedNext {
        let Some(receiver) = self.receiver.as_mut() else {
            return FeedNext::Closed;
        };
        loop {
            match receiver.recv().await {
                Ok(update) if update.sequence > self.newest => {
                    self.newest = update.sequence;
                    return FeedNext::Update(update);
                }
                Ok(_older) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return FeedNext::Lagged,
                Err(broadcast::error::RecvError::Closed) => return FeedNext::Closed,
            }
        }
    }
}

impl Drop for HubSubscription {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            self.hub.unsubscribe(self.id, receiver);
        }
    }
}

#[cfg(test)]
mod tests {
    use session_core::status::TxStatus;

    use super::*;

    fn update(id: Uuid, sequence: u64) -> TxUpdate {
        let mut state = session_core::testing::status_changed();
        state.merchant_transaction_id = id;
        state.status = if sequence > 2 {
            TxStatus::Completed
        } else {
            TxStatus::Processing
        };
        TxUpdate { sequence, state }
    }

    fn sequence(next: FeedNext) -> u64 {
        match next {
            FeedNext::Update(update) => update.sequence,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_each_update_once_in_order() {
        let hub = Arc::new(Hub::default());
        let id = Uuid::new_v4();
        let mut first = hub.subscribe(id);
        let mut second = hub.subscribe(id);
        hub.publish(update(id, 2));
        // Stale and repeated updates never go out again.
        hub.catch_up(id, vec![update(id, 1), update(id, 2), update(id, 3)]);
        hub.publish(update(id, 2));
        for subscriber in [&mut first, &mut second] {
            assert_eq!(sequence(subscriber.next().await), 2);
            assert_eq!(sequence(subscriber.next().await), 3);
        }
        assert!(!hub.is_behind(id, 3));
        assert!(hub.is_behind(id, 4));
    }

    #[tokio::test]
    async fn unfollowed_transactions_cost_nothing_and_topics_go_with_their_last_subscriber() {
        let hub = Arc::new(Hub::default());
        let id = Uuid::new_v4();
        hub.publish(update(id, 2));
        assert!(hub.is_empty());
        assert!(!hub.is_behind(id, 2));

        let first = hub.subscribe(id);
        let mut second = hub.subscribe(id);
        drop(first);
        assert_eq!(hub.len(), 1, "one subscriber is left");
        hub.publish(update(id, 2));
        assert_eq!(sequence(second.next().await), 2);
        drop(second);
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_reading_lags_instead_of_growing_the_queue() {
        let hub = Arc::new(Hub::with_queue(2));
        let id = Uuid::new_v4();
        let mut slow = hub.subscribe(id);
        for sequence in 2..=5 {
            hub.publish(update(id, sequence));
        }
        assert_eq!(slow.next().await, FeedNext::Lagged);
    }

    #[tokio::test]
    async fn seen_sequences_are_not_behind() {
        let hub = Arc::new(Hub::default());
        let id = Uuid::new_v4();
        let _subscriber = hub.subscribe(id);
        assert_eq!(hub.followed(), [(id, 0)]);
        hub.seen(id, 1);
        assert!(!hub.is_behind(id, 1));
        assert_eq!(hub.followed(), [(id, 1)]);
    }
}
