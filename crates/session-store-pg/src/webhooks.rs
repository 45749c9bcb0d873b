//! The webhook outbox on PostgreSQL. Deliveries are outbox rows whose `state`
//! is not `none` (see migration 0002). Any number of instances claim them with
//! `FOR UPDATE SKIP LOCKED` and a lease in `next_attempt_at`; a transaction's
//! delivery is claimable only while no earlier one of it is still pending (it
//! is `blocked` until then: migration 0004), so its events go out in order.
//! Every write that changes which of a transaction's deliveries are pending
//! holds the transaction's row lock and keeps `blocked` current.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use session_core::partner::PartnerId;
use session_core::ports::{
    AttemptNext, AttemptRecord, ClaimLimits, Delivery, DeliveryFilter, DeliveryKey, DeliveryState,
    DeliveryView, StoreError, WebhookOutbox,
};
use session_core::status::TxStatus;
use session_core::time::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

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

/// The statement of [`lock_transaction_of`].
const LOCK_TRANSACTION_OF: &str = "SELECT 1 FROM transactions WHERE merchant_transaction_id = \
         (SELECT merchant_transaction_id FROM outbox WHERE id = $1) \
     FOR NO KEY UPDATE";

/// Takes the row lock of delivery `id`'s transaction (nothing if either is
/// gone), which every change to the order of its deliveries holds.
async fn lock_transaction_of(tx: &Transaction<'_>, id: i64) -> Result<(), Fault> {
    let lock = tx.prepare_cached(LOCK_TRANSACTION_OF).await?;
    tx.query_opt(&lock, &[&id]).await?;
    Ok(())
}

/// Marks, in each of `transactions`, the oldest pending delivery as the one
/// that can go and the others as blocked. Call with their row locks held.
async fn reorder(tx: &Transaction<'_>, transactions: &[Uuid]) -> Result<(), Fault> {
    let reorder = tx
        .prepare_cached(
            "UPDATE outbox o SET blocked = (o.id <> h.head) \
             FROM (SELECT merchant_transaction_id, min(id) AS head FROM outbox \
                   WHERE state = 'pending' AND merchant_transaction_id = ANY($1) \
                   GROUP BY merchant_transaction_id) h \
             WHERE o.merchant_transaction_id = h.merchant_transaction_id \
               AND o.state = 'pending' AND o.blocked <> (o.id <> h.head)",
        )
        .await?;
    tx.execute(&reorder, &[&transactions]).await?;
    Ok(())
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
        limits: &ClaimLimits<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let full: Vec<&str> = limits.full().into_iter().map(PartnerId::as_str).collect();
        let (partners, busy): (Vec<&str>, Vec<i32>) = limits
            .in_flight
            .iter()
            .map(|(p, n)| (p.as_str(), i32::try_from(*n).unwrap_or(i32::MAX)))
            .unzip();
        let per_partner = i32::try_from(limits.per_partner).unwrap_or(i32::MAX);
        // Candidates are locked first (a window function cannot sit beside
        // FOR UPDATE); those not chosen are unlocked when the claim commits.
        // Never more than one partner's bound of them: each is a row lock
        // written, and a partner with little room but a long queue would
        // otherwise have the claim lock many of its rows to take one. Others'
        // deliveries behind such a queue wait one claim: the partner is full
        // after this one and excluded from the next.
        let candidates = limit(limits.total.min(limits.per_partner));
        self.outbox_db
            .run(async |client| {
                let claim = client
                    .prepare_cached(
                        "WITH candidate AS ( \
                             SELECT o.id, o.partner_id, o.next_attempt_at FROM outbox o \
                             WHERE o.state = 'pending' AND NOT o.blocked \
                               AND o.next_attempt_at <= $1 \
                               AND o.partner_id <> ALL($4) \
                             ORDER BY o.next_attempt_at, o.id \
                             LIMIT $3 \
                             FOR UPDATE SKIP LOCKED), \
                         ranked AS ( \
                             SELECT c.id, c.next_attempt_at, \
                                 row_number() OVER ( \
                                     PARTITION BY c.partner_id ORDER BY c.next_attempt_at, c.id) \
                                     AS place, \
                                 $7::int - COALESCE(f.busy, 0) AS room \
                             FROM candidate c \
                             LEFT JOIN unnest($5::text[], $6::int[]) AS f(partner_id, busy) \
                                 ON f.partner_id = c.partner_id), \
                         chosen AS ( \
                             SELECT id FROM ranked WHERE place <= room \
                             ORDER BY next_attempt_at, id LIMIT $8) \
                         UPDATE outbox SET next_attempt_at = $2 FROM chosen \
                         WHERE outbox.id = chosen.id \
                         RETURNING outbox.id, outbox.event, outbox.attempts, outbox.created_at",
                    )
                    .await?;
                let rows = client
                    .query(
                        &claim,
                        &[
                            &PgTime(now),
                            &PgTime(lease_until),
                            &candidates,
                            &full,
                            &partners,
                            &busy,
                            &per_partner,
                            &limit(limits.total),
                        ],
                    )
                    .await?;
                let mut claimed = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            })
            .await
    }

    async fn record_attempt(
        &self,
        delivery: DeliveryKey,
        attempt: &AttemptRecord,
    ) -> Result<(), StoreError> {
        let (state, next, delivered) = match attempt.next {
            AttemptNext::Delivered => (DeliveryState::Delivered, None, Some(attempt.at)),
            AttemptNext::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
            AttemptNext::Failed => (DeliveryState::Failed, None, None),
        };
        let (at, next, delivered) = (PgTime(attempt.at), next.map(PgTime), delivered.map(PgTime));
        let state_text = state.as_str();
        let (transaction, id) = (delivery.merchant_transaction_id, delivery.id);
        self.outbox_db
            .run(async |client| {
                if state == DeliveryState::Pending {
                    // A retry: the transaction's order does not change.
                    let retry = client
                        .prepare_cached(
                            "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = $3, \
                                 last_result = $4, state = $5, next_attempt_at = $6, \
                                 delivered_at = $7 \
                             WHERE merchant_transaction_id = $1 AND id = $2",
                        )
                        .await?;
                    let values: [&(dyn ToSql + Sync); 7] = [
                        &transaction,
                        &id,
                        &at,
                        &attempt.result,
                        &state_text,
                        &next,
                        &delivered,
                    ];
                    client.execute(&retry, &values).await?;
                    return Ok(());
                }
                // A final state lets the transaction's next delivery go: one
                // call (migration 0009) takes the transaction's row lock, then
                // records the attempt and unblocks the next delivery, in one
                // round trip. No NOTIFY: the dispatcher that records this
                // claims again as soon as the attempt ends, and a notifying
                // commit would serialise with every other (see `wake`).
                let finish = client
                    .prepare_cached("SELECT outbox_record_final($1, $2, $3, $4, $5, $6)")
                    .await?;
                client
                    .execute(
                        &finish,
                        &[
                            &transaction,
                            &id,
                            &at,
                            &attempt.result,
                            &state_text,
                            &delivered,
                        ],
                    )
                    .await?;
                Ok(())
            })
            .await
    }

    async fn release(&self, deliveries: &[DeliveryKey]) -> Result<(), StoreError> {
        let (transactions, ids): (Vec<Uuid>, Vec<i64>) = deliveries
            .iter()
            .map(|d| (d.merchant_transaction_id, d.id))
            .unzip();
        self.outbox_db
            .run(async |client| {
                // Ids are unique, so two lists serve for the pairs: a delivery
                // is released when both its id and its transaction are listed.
                let release = client
                    .prepare_cached(
                        "UPDATE outbox SET next_attempt_at = created_at \
                         WHERE merchant_transaction_id = ANY($1) AND id = ANY($2) \
                           AND state = 'pending'",
                    )
                    .await?;
                client.execute(&release, &[&transactions, &ids]).await?;
                Ok(())
            })
            .await
    }

    async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        // Through the partial index of undelivered rows (pending and failed).
        self.outbox_db
            .run(async |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT count(*) FROM outbox \
                         WHERE delivered_at IS NULL AND state = 'pending'",
                    )
                    .await?;
                let count: i64 = client.query_one(&statement, &[]).await?.try_get(0)?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError> {
        let partner = filter.partner.as_ref().map(PartnerId::as_str);
        let state = filter.state.map(DeliveryState::as_str);
        self.outbox_db
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
        self.outbox_db
            .run(async |client| {
                let tx = client.transaction().await?;
                // The operator is answered: durable (see `outbox_driver_config`).
                tx.batch_execute("SET LOCAL synchronous_commit = on")
                    .await?;
                lock_transaction_of(&tx, id).await?;
                let requeue = tx
                    .prepare_cached(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $2 \
                         WHERE id = $1 AND state <> 'none' RETURNING merchant_transaction_id",
                    )
                    .await?;
                let Some(row) = tx.query_opt(&requeue, &[&id, &PgTime(now)]).await? else {
                    return Ok(false);
                };
                let transaction: Uuid = row.try_get("merchant_transaction_id")?;
                reorder(&tx, &[transaction]).await?;
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn replay(
        &self,
        partner: &PartnerId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.outbox_db
            .run(async |client| {
                let tx = client.transaction().await?;
                // The operator is answered: durable (see `outbox_driver_config`).
                tx.batch_execute("SET LOCAL synchronous_commit = on")
                    .await?;
                // The transactions' row locks, in one order, before their
                // deliveries change (see the module header).
                let lock = tx
                    .prepare_cached(
                        "SELECT merchant_transaction_id FROM transactions \
                         WHERE merchant_transaction_id IN ( \
                             SELECT merchant_transaction_id FROM outbox \
                             WHERE partner_id = $1 AND created_at >= $2 AND state <> 'none') \
                         ORDER BY merchant_transaction_id FOR NO KEY UPDATE",
                    )
                    .await?;
                tx.query(&lock, &[&partner.as_str(), &PgTime(since)])
                    .await?;
                let replay = tx
                    .prepare_cached(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $3 \
                         WHERE partner_id = $1 AND created_at >= $2 AND state <> 'none' \
                         RETURNING merchant_transaction_id",
                    )
                    .await?;
                let rows = tx
                    .query(&replay, &[&partner.as_str(), &PgTime(since), &PgTime(now)])
                    .await?;
                let mut transactions = rows
                    .iter()
                    .map(|row| row.try_get::<_, Uuid>("merchant_transaction_id"))
                    .collect::<Result<Vec<_>, _>>()?;
                transactions.sort_unstable();
                transactions.dedup();
                reorder(&tx, &transactions).await?;
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
                tx.commit().await?;
                Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
            })
            .await
    }

    async fn woken(&self) {
        self.outbox_wake.notified().await;
    }
}
