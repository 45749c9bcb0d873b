//! The webhook outbox on PostgreSQL. Deliveries are outbox rows whose `state`
//! is not `none` (see migration 0002). Any number of instances claim them in
//! two steps: a read without a lock finds the oldest that can go, then a
//! statement that names their transactions locks them (`FOR UPDATE SKIP
//! LOCKED`), checks again that they can go and leases them in
//! `next_attempt_at`. A transaction's delivery is claimable only while no
//! earlier one of it is still pending (it is `blocked` until then: migration
//! 0004), so its events go out in order.
//! Every write that changes which of a transaction's deliveries are pending
//! holds the transaction's row lock and keeps `blocked` current.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use session_core::partner::PartnerId;
use session_core::ports::{
    AttemptNext, AttemptRecord, ClaimLimits, Delivery, DeliveryFilter, DeliveryKey, DeliveryState,
    DeliveryView, StoreError, WebhookOutbox,
};
use session_core::status::TxStatus;
use session_core::time::Timestamp;
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use crate::PgStore;
use crate::db::Client;
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

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The claim's first step: the oldest deliveries that can go now, of
/// partners with room and not passed over, found through the `outbox_due`
/// index without a lock. It names no transaction: a distributed engine runs
/// it on every node and merges the answers (ORDER BY and LIMIT pushed down),
/// one index probe per node (`FanOut` in the shard audit).
const FIND_DUE: &str = "SELECT merchant_transaction_id, id, partner_id FROM outbox \
     WHERE state = 'pending' AND NOT blocked AND next_attempt_at <= $1 \
       AND partner_id <> ALL($2) AND id <> ALL($3) \
     ORDER BY next_attempt_at, id LIMIT $4";

/// The claim's second step: locks the found deliveries, named by transaction
/// and id, re-checks under the lock that each can still go (another claim
/// may have leased it since it was found, or an attempt recorded it), ranks
/// the locked ones per partner (a window function cannot sit beside FOR
/// UPDATE) and leases the chosen. SKIP LOCKED and the re-check give each
/// delivery to exactly one claim; the rows not chosen are unlocked when the
/// statement commits. The deliveries are named as pairs (`unnest`), one
/// primary-key probe each: with a list per column (`= ANY($1) AND id =
/// ANY($2)`) the planner either scans the due range of `outbox_due` once per
/// listed id or probes every pair of the two lists.
const CLAIM_FOUND: &str = "WITH candidate AS ( \
         SELECT o.merchant_transaction_id, o.id, o.partner_id, o.next_attempt_at \
         FROM unnest($1::uuid[], $2::bigint[]) AS d (merchant_transaction_id, id) \
         JOIN outbox o ON o.merchant_transaction_id = d.merchant_transaction_id AND o.id = d.id \
         WHERE o.state = 'pending' AND NOT o.blocked AND o.next_attempt_at <= $3 \
         FOR UPDATE OF o SKIP LOCKED), \
     ranked AS ( \
         SELECT c.merchant_transaction_id, c.id, c.next_attempt_at, \
             row_number() OVER ( \
                 PARTITION BY c.partner_id ORDER BY c.next_attempt_at, c.id) AS place, \
             $6::int - COALESCE(f.busy, 0) AS room \
         FROM candidate c \
         LEFT JOIN unnest($4::text[], $5::int[]) AS f (partner_id, busy) \
             ON f.partner_id = c.partner_id), \
     chosen AS ( \
         SELECT merchant_transaction_id, id FROM ranked WHERE place <= room \
         ORDER BY next_attempt_at, id LIMIT $7) \
     UPDATE outbox SET next_attempt_at = $8 FROM chosen \
     WHERE outbox.merchant_transaction_id = chosen.merchant_transaction_id \
       AND outbox.id = chosen.id \
     RETURNING outbox.id, outbox.event, outbox.attempts, outbox.created_at";

/// How many rounds of the two steps one claim takes at most. A round after
/// the first runs only when a concurrent claim took deliveries this one found
/// (both read them before either leased them); it passes over those and
/// finds the next. Bounded so that a claim among many still ends: what it
/// leaves goes to the next claim.
const CLAIM_ROUNDS: usize = 4;

/// One claim in progress: its limits, what it took and the deliveries it
/// passes over.
struct Progress {
    total: usize,
    per_partner: usize,
    /// Each partner's deliveries in flight: before the claim, plus taken.
    busy: HashMap<String, usize>,
    claimed: Vec<Delivery>,
    /// Found in an earlier round and taken by a concurrent claim.
    passed_over: Vec<i64>,
}

impl Progress {
    fn new(limits: &ClaimLimits<'_>) -> Self {
        let mut busy = HashMap::new();
        for (partner, n) in limits.in_flight {
            *busy.entry(partner.as_str().to_owned()).or_default() += n;
        }
        Self {
            total: limits.total,
            per_partner: limits.per_partner,
            busy,
            claimed: Vec::new(),
            passed_over: Vec::new(),
        }
    }

    fn has_room(&self, partner: &str) -> bool {
        self.busy.get(partner).copied().unwrap_or(0) < self.per_partner
    }

    /// Finds and claims once; answers whether another round may find more.
    async fn round(
        &mut self,
        client: &Client,
        find: &Statement,
        claim: &Statement,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, Fault> {
        let total = self.total.saturating_sub(self.claimed.len());
        if total == 0 {
            return Ok(false);
        }
        let full: Vec<&str> = self
            .busy
            .iter()
            .filter(|(_, n)| **n >= self.per_partner)
            .map(|(partner, _)| partner.as_str())
            .collect();
        // Never more found than one partner's bound: each is a row lock
        // written by the claim, and a partner with little room but a long
        // queue would otherwise have the claim lock many of its rows to take
        // one. Others' deliveries behind such a queue wait one claim: the
        // partner is full after this one and excluded from the next.
        let candidates = limit(total.min(self.per_partner));
        let found = client
            .query(find, &[&PgTime(now), &full, &self.passed_over, &candidates])
            .await?;
        if found.is_empty() {
            return Ok(false);
        }
        let mut transactions = Vec::with_capacity(found.len());
        let mut ids = Vec::with_capacity(found.len());
        let mut partners_found = Vec::with_capacity(found.len());
        for row in &found {
            transactions.push(row.try_get::<_, Uuid>("merchant_transaction_id")?);
            ids.push(row.try_get::<_, i64>("id")?);
            partners_found.push(row.try_get::<_, String>("partner_id")?);
        }
        let (partners, busy): (Vec<&str>, Vec<i32>) = self
            .busy
            .iter()
            .map(|(partner, n)| (partner.as_str(), int(*n)))
            .unzip();
        let rows = client
            .query(
                claim,
                &[
                    &transactions,
                    &ids,
                    &PgTime(now),
                    &partners,
                    &busy,
                    &int(self.per_partner),
                    &limit(total),
                    &PgTime(lease_until),
                ],
            )
            .await?;
        let taken = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        for delivery in &taken {
            *self
                .busy
                .entry(delivery.event.partner_id.as_str().to_owned())
                .or_default() += 1;
        }
        let taken_ids: HashSet<i64> = taken.iter().map(|d| d.id).collect();
        self.claimed.extend(taken);
        // A found delivery not taken was either not chosen (its partner's
        // room or the total ran out: both are spent now) or lost to another
        // claim (locked, or no longer due under the lock): only the latter
        // is worth another round.
        let lost: Vec<i64> = ids
            .iter()
            .zip(&partners_found)
            .filter(|(id, partner)| !taken_ids.contains(id) && self.has_room(partner))
            .map(|(id, _)| *id)
            .collect();
        if lost.is_empty() {
            return Ok(false);
        }
        self.passed_over.extend(lost);
        Ok(true)
    }
}

#[async_trait]
impl WebhookOutbox for PgStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.outbox_db
            .run(async |client| {
                let find = client.prepare_cached(FIND_DUE).await?;
                let claim = client.prepare_cached(CLAIM_FOUND).await?;
                let mut progress = Progress::new(limits);
                for round in 0..CLAIM_ROUNDS {
                    match progress
                        .round(client, &find, &claim, now, lease_until)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(error) if round == 0 => return Err(error),
                        // What earlier rounds took is leased: hand it out
                        // rather than leave it waiting for its lease to end.
                        Err(error) => {
                            tracing::warn!(error = %error.0, "webhook claim cut short");
                            break;
                        }
                    }
                }
                let mut claimed = progress.claimed;
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
