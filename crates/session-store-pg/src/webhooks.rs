//! The webhook outbox on PostgreSQL. Deliveries are outbox rows whose `state`
//! is not `none` (see migration 0002). Any number of instances claim them with
//! `FOR UPDATE SKIP LOCKED` and a lease in `next_attempt_at`; a transaction's
//! delivery is claimable only while no earlier one of it is still pending, so
//! its events go out in order.

use async_trait::async_trait;
use session_core::partner::PartnerId;
use session_core::ports::{
    AttemptNext, AttemptRecord, Delivery, DeliveryFilter, DeliveryState, DeliveryView, StoreError,
    WebhookOutbox,
};
use session_core::status::TxStatus;
use session_core::time::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::PgStore;
use crate::error::{Fault, corrupt};
use crate::outbox::OutboxEvent;
use crate::rows::{PgTime, maybe_time, parsed, time};

/// The channel a committed pending delivery notifies (payload empty).
pub(crate) const CHANNEL: &str = "session_outbox";

fn attempts(row: &Row) -> Result<u32, Fault> {
    let n: i32 = row.try_get("attempts")?;
    u32::try_from(n).map_err(|_| corrupt(format_args!("outbox attempts {n}")))
}

fn delivery(row: &Row) -> Result<Delivery, Fault> {
    let Json(event): Json<OutboxEvent> = row.try_get("event")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        event: event.into_domain()?,
        attempts: attempts(row)?,
        committed_at: time(row, "created_at")?,
    })
}

fn view(row: &Row) -> Result<DeliveryView, Fault> {
    let state: String = row.try_get("state")?;
    let Json(event): Json<OutboxEvent> = row.try_get("event")?;
    let status = TxStatus::parse(&event.status)
        .ok_or_else(|| corrupt(format_args!("outbox status {:?}", event.status)))?;
    Ok(DeliveryView {
        id: row.try_get("id")?,
        partner_id: parsed(
            "outbox partner_id",
            PartnerId::parse(row.try_get("partner_id")?),
        )?,
        merchant_transaction_id: row.try_get("merchant_transaction_id")?,
        status,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| corrupt(format_args!("outbox state {state:?}")))?,
        attempts: attempts(row)?,
        last_result: row.try_get("last_result")?,
        committed_at: time(row, "created_at")?,
        next_attempt_at: maybe_time(row, "next_attempt_at")?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl WebhookOutbox for PgStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        max: usize,
        busy: &[PartnerId],
    ) -> Result<Vec<Delivery>, StoreError> {
        let busy: Vec<&str> = busy.iter().map(PartnerId::as_str).collect();
        self.db
            .run(async |client| {
                let claim = client
                    .prepare_cached(
                        "WITH due AS ( \
                             SELECT o.id FROM outbox o \
                             WHERE o.state = 'pending' AND o.next_attempt_at <= $1 \
                               AND o.partner_id <> ALL($4) \
                               AND NOT EXISTS ( \
                                   SELECT 1 FROM outbox e \
                                   WHERE e.merchant_transaction_id = o.merchant_transaction_id \
                                     AND e.state = 'pending' AND e.id < o.id) \
                             ORDER BY o.next_attempt_at, o.id \
                             LIMIT $3 \
                             FOR UPDATE SKIP LOCKED) \
                         UPDATE outbox SET next_attempt_at = $2 FROM due \
                         WHERE outbox.id = due.id \
                         RETURNING outbox.id, outbox.event, outbox.attempts, outbox.created_at",
                    )
                    .await?;
                let rows = client
                    .query(
                        &claim,
                        &[&PgTime(now), &PgTime(lease_until), &limit(max), &busy],
                    )
                    .await?;
                let mut claimed = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            })
            .await
    }

    async fn record_attempt(&self, id: i64, attempt: &AttemptRecord) -> Result<(), StoreError> {
        let (state, next, delivered) = match attempt.next {
            AttemptNext::Delivered => (DeliveryState::Delivered, None, Some(attempt.at)),
            AttemptNext::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
            AttemptNext::Failed => (DeliveryState::Failed, None, None),
        };
        self.db
            .run(async |client| {
                // A final state may free the transaction's next delivery:
                // wake the dispatchers (at commit) so it goes at once.
                let record = client
                    .prepare_cached(
                        "WITH r AS ( \
                             UPDATE outbox SET attempts = attempts + 1, last_attempt_at = $2, \
                                 last_result = $3, state = $4, next_attempt_at = $5, \
                                 delivered_at = $6 \
                             WHERE id = $1 RETURNING state) \
                         SELECT pg_notify('session_outbox', '') FROM r WHERE r.state <> 'pending'",
                    )
                    .await?;
                client
                    .execute(
                        &record,
                        &[
                            &id,
                            &PgTime(attempt.at),
                            &attempt.result,
                            &state.as_str(),
                            &next.map(PgTime),
                            &delivered.map(PgTime),
                        ],
                    )
                    .await?;
                Ok(())
            })
            .await
    }

    async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.db
            .run(async |client| {
                let release = client
                    .prepare_cached(
                        "UPDATE outbox SET next_attempt_at = created_at \
                         WHERE id = ANY($1) AND state = 'pending'",
                    )
                    .await?;
                client.execute(&release, &[&ids]).await?;
                Ok(())
            })
            .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError> {
        let partner = filter.partner.as_ref().map(PartnerId::as_str);
        let state = filter.state.map(DeliveryState::as_str);
        self.db
            .run(async |client| {
                let list = client
                    .prepare_cached(
                        "SELECT id, partner_id, merchant_transaction_id, event, state, attempts, \
                             last_result, created_at, next_attempt_at \
                         FROM outbox \
                         WHERE state <> 'none' \
                           AND ($1::text IS NULL OR partner_id = $1) \
                           AND ($2::uuid IS NULL OR merchant_transaction_id = $2) \
                           AND ($3::text IS NULL OR state = $3) \
                         ORDER BY id DESC LIMIT $4",
                    )
                    .await?;
                let rows = client
                    .query(
                        &list,
                        &[&partner, &filter.transaction, &state, &limit(filter.limit)],
                    )
                    .await?;
                rows.iter().map(view).collect()
            })
            .await
    }

    async fn requeue(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.db
            .run(async |client| {
                let requeue = client
                    .prepare_cached(
                        "WITH r AS ( \
                             UPDATE outbox SET state = 'pending', next_attempt_at = $2 \
                             WHERE id = $1 AND state <> 'none' RETURNING id) \
                         SELECT pg_notify('session_outbox', ''), id FROM r",
                    )
                    .await?;
                Ok(!client
                    .query(&requeue, &[&id, &PgTime(now)])
                    .await?
                    .is_empty())
            })
            .await
    }

    async fn replay(
        &self,
        partner: &PartnerId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.db
            .run(async |client| {
                let replay = client
                    .prepare_cached(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $3 \
                         WHERE partner_id = $1 AND created_at >= $2 AND state <> 'none'",
                    )
                    .await?;
                let count = client
                    .execute(&replay, &[&partner.as_str(), &PgTime(since), &PgTime(now)])
                    .await?;
                client
                    .execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                    .await?;
                Ok(count)
            })
            .await
    }

    async fn woken(&self) {
        self.outbox_wake.notified().await;
    }
}
