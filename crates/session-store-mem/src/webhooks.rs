//! The webhook outbox in memory: one delivery per applied status change of a
//! partner with a webhook, claimed under one lock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use session_core::partner::PartnerId;
use session_core::ports::{
    AttemptNext, AttemptRecord, ClaimLimits, Delivery, DeliveryFilter, DeliveryKey, DeliveryState,
    DeliveryView, StoreError, WebhookOutbox,
};
use session_core::session::StatusChanged;
use session_core::time::Timestamp;
use tokio::sync::Notify;

use crate::MemStore;

#[derive(Debug)]
struct Row {
    event: StatusChanged,
    state: DeliveryState,
    attempts: u32,
    last_result: Option<String>,
    committed_at: Timestamp,
    /// When it is due (or its lease ends); `None` once final.
    next_attempt_at: Option<Timestamp>,
}

/// Delivered or failed deliveries kept for operators to list; older ones are
/// dropped, so the store stays bounded (SPEC.md §6) however many events pass.
const KEPT_FINAL: usize = 100_000;

/// Deliveries by id; ids grow with every event, so id order is commit order.
#[derive(Debug, Default)]
struct Deliveries {
    next_id: i64,
    rows: BTreeMap<i64, Row>,
    /// Ids of deliveries that reached a final state, oldest first.
    finished: VecDeque<i64>,
}

impl Deliveries {
    /// The row `key` names: its id, of its transaction.
    fn row_mut(&mut self, key: &DeliveryKey) -> Option<&mut Row> {
        self.rows
            .get_mut(&key.id)
            .filter(|row| row.event.merchant_transaction_id == key.merchant_transaction_id)
    }

    /// Notes that `id` reached a final state, dropping the oldest final
    /// deliveries past [`KEPT_FINAL`] (a requeued one is pending again and
    /// stays).
    fn finished(&mut self, id: i64) {
        self.finished.push_back(id);
        while self.finished.len() > KEPT_FINAL {
            let Some(oldest) = self.finished.pop_front() else {
                break;
            };
            if self
                .rows
                .get(&oldest)
                .is_some_and(|row| row.state != DeliveryState::Pending)
            {
                self.rows.remove(&oldest);
            }
        }
    }
}

/// The deliveries, behind their lock, and the dispatcher's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    deliveries: Mutex<Deliveries>,
    /// `notify_one` keeps a permit when nobody waits, so a wake-up between a
    /// dispatcher's poll and its wait is not lost.
    wake: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Deliveries> {
        // Every change below is a single insert or field update.
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues the delivery of `event`, committed at `at`.
    pub(crate) fn push(&self, event: StatusChanged, at: Timestamp) {
        let mut deliveries = self.lock();
        deliveries.next_id += 1;
        let id = deliveries.next_id;
        deliveries.rows.insert(
            id,
            Row {
                event,
                state: DeliveryState::Pending,
                attempts: 0,
                last_result: None,
                committed_at: at,
                next_attempt_at: Some(at),
            },
        );
        drop(deliveries);
        self.wake();
    }
}

fn view(id: i64, row: &Row) -> DeliveryView {
    DeliveryView {
        id,
        partner_id: row.event.partner_id.clone(),
        merchant_transaction_id: row.event.merchant_transaction_id,
        status: row.event.status,
        state: row.state,
        attempts: row.attempts,
        last_result: row.last_result.clone(),
        committed_at: row.committed_at,
        next_attempt_at: row.next_attempt_at,
    }
}

#[async_trait]
impl WebhookOutbox for MemStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut deliveries = self.webhooks.lock();
        // The oldest pending delivery of each transaction, if it is due.
        let mut heads = HashSet::new();
        let mut due = Vec::new();
        for (id, row) in deliveries.rows.iter() {
            if row.state != DeliveryState::Pending
                || !heads.insert(row.event.merchant_transaction_id)
            {
                continue;
            }
            if let Some(at) = row.next_attempt_at.filter(|at| *at <= now) {
                due.push((at, *id, &row.event.partner_id));
            }
        }
        due.sort_unstable_by_key(|(at, id, _)| (*at, *id));
        let mut taken: HashMap<&PartnerId, usize> = HashMap::new();
        let mut claimed = Vec::new();
        for (_, id, partner) in due {
            if claimed.len() == limits.total {
                break;
            }
            let count = taken.entry(partner).or_default();
            if *count < limits.room_for(partner) {
                *count += 1;
                claimed.push(id);
            }
        }
        let mut out = Vec::with_capacity(claimed.len());
        for id in claimed {
            if let Some(row) = deliveries.rows.get_mut(&id) {
                row.next_attempt_at = Some(lease_until);
                out.push(Delivery {
                    id,
                    event: row.event.clone(),
                    attempts: row.attempts,
                    committed_at: row.committed_at,
                });
            }
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        delivery: DeliveryKey,
        attempt: &AttemptRecord,
    ) -> Result<(), StoreError> {
        let mut deliveries = self.webhooks.lock();
        let Some(row) = deliveries.row_mut(&delivery) else {
            return Err(StoreError::Failed(format!(
                "no delivery {} of transaction {}",
                delivery.id, delivery.merchant_transaction_id
            )));
        };
        row.attempts = row.attempts.saturating_add(1);
        row.last_result = Some(attempt.result.clone());
        (row.state, row.next_attempt_at) = match attempt.next {
            AttemptNext::Delivered => (DeliveryState::Delivered, None),
            AttemptNext::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            AttemptNext::Failed => (DeliveryState::Failed, None),
        };
        // A final state may let the transaction's next event go.
        if row.state != DeliveryState::Pending {
            deliveries.finished(delivery.id);
            drop(deliveries);
            self.webhooks.wake();
        }
        Ok(())
    }

    async fn release(&self, released: &[DeliveryKey]) -> Result<(), StoreError> {
        let mut deliveries = self.webhooks.lock();
        for key in released {
            if let Some(row) = deliveries.row_mut(key)
                && row.state == DeliveryState::Pending
            {
                row.next_attempt_at = Some(row.committed_at);
            }
        }
        drop(deliveries);
        self.webhooks.wake();
        Ok(())
    }

    async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        let deliveries = self.webhooks.lock();
        let pending = deliveries
            .rows
            .values()
            .filter(|row| row.state == DeliveryState::Pending)
            .count();
        Ok(u64::try_from(pending).unwrap_or(u64::MAX))
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError> {
        let deliveries = self.webhooks.lock();
        Ok(deliveries
            .rows
            .iter()
            .rev()
            .filter(|(_, row)| {
                filter
                    .partner
                    .as_ref()
                    .is_none_or(|p| *p == row.event.partner_id)
                    && filter
                        .transaction
                        .is_none_or(|t| t == row.event.merchant_transaction_id)
                    && filter.state.is_none_or(|s| s == row.state)
            })
            .take(filter.limit)
            .map(|(id, row)| view(*id, row))
            .collect())
    }

    async fn requeue(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut deliveries = self.webhooks.lock();
        let Some(row) = deliveries.rows.get_mut(&id) else {
            return Ok(false);
        };
        row.state = DeliveryState::Pending;
        row.next_attempt_at = Some(now);
        drop(deliveries);
        self.webhooks.wake();
        Ok(true)
    }

    async fn replay(
        &self,
        partner: &PartnerId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut deliveries = self.webhooks.lock();
        let mut count = 0;
        for row in deliveries.rows.values_mut() {
            if row.event.partner_id == *partner && row.committed_at >= since {
                row.state = DeliveryState::Pending;
                row.next_attempt_at = Some(now);
                count += 1;
            }
        }
        drop(deliveries);
        self.webhooks.wake();
        Ok(count)
    }

    async fn woken(&self) {
        self.webhooks.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use session_core::status::TxStatus;
    use session_core::value::{Code, TxType};

    use super::*;

    fn change() -> StatusChanged {
        let code = |text| Code::parse(text).expect("code");
        StatusChanged {
            merchant_transaction_id: uuid::Uuid::nil(),
            partner_id: PartnerId::parse("acme").expect("id"),
            tx_type: TxType::Buy,
            status: TxStatus::Processing,
            currency: code("USDT"),
            network: code("TRC20"),
            crypto_amount: None,
            fiat_currency: code("EUR"),
            fiat_amount: None,
            payment_method: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            occurred_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn finished_deliveries_are_kept_up_to_a_bound() {
        let store = MemStore::new();
        let done = AttemptRecord {
            at: Timestamp::UNIX_EPOCH,
            result: "200".into(),
            next: AttemptNext::Delivered,
        };
        let total = KEPT_FINAL + 10;
        for id in 1..=i64::try_from(total).expect("fits") {
            store.webhooks.push(change(), Timestamp::UNIX_EPOCH);
            let delivery = DeliveryKey {
                merchant_transaction_id: uuid::Uuid::nil(),
                id,
            };
            store.record_attempt(delivery, &done).await.expect("record");
        }
        store.webhooks.push(change(), Timestamp::UNIX_EPOCH);
        let all = DeliveryFilter {
            limit: usize::MAX,
            ..DeliveryFilter::default()
        };
        let listed = store.deliveries(&all).await.expect("list");
        assert_eq!(
            listed.len(),
            KEPT_FINAL + 1,
            "the bound, and the pending one"
        );
        assert_eq!(
            listed.last().map(|d| d.id),
            Some(11),
            "the oldest went first"
        );
        assert_eq!(listed[0].state, DeliveryState::Pending);
    }
}
