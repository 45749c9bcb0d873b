//! Provider events, applied exactly once per transaction and `event_id`, in
//! one transaction: record the id, lock the transaction (and its end user, when the event
//! reports a KYC status: [`EventPlan::reads_kyc`]), let the core decide
//! ([`EventPlan::effects`]), write state, KYC and outbox row, commit. The
//! caller wakes the dispatchers after the commit (see `wake`).

use session_core::live::TxUpdate;
use session_core::ports::{EventApplied, StoreError};
use session_core::session::{EventPlan, KycState};
use tokio_postgres::types::Json;

use crate::db::Client;
use crate::error::Fault;
use crate::outbox::OutboxEvent;
use crate::rows::{self, PgTime, maybe_pg_time, session_columns};

/// What [`apply`] committed.
pub(crate) struct Written {
    pub applied: EventApplied,
    /// The outbox row is a webhook delivery waiting to be sent.
    pub delivery_pending: bool,
    /// The change, numbered, for live subscribers.
    pub update: Option<TxUpdate>,
}

impl From<EventApplied> for Written {
    fn from(applied: EventApplied) -> Self {
        Self {
            applied,
            delivery_pending: false,
            update: None,
        }
    }
}

pub(crate) async fn apply(client: &mut Client, plan: &EventPlan) -> Result<Written, Fault> {
    let event = &plan.event;
    let id = event.merchant_transaction_id;
    let tx = client.transaction().await?;

    // First the id: a concurrent delivery of the same event on the same
    // transaction waits here on the unique key (transaction, event id) until
    // this transaction ends, then sees the conflict (we committed) or inserts
    // it itself (we rolled back). The same event id on another transaction is
    // another event.
    let record = tx
        .prepare_cached(
            "INSERT INTO provider_events (event_id, merchant_transaction_id, received_at, applied) \
             VALUES ($1, $2, $3, false) \
             ON CONFLICT (merchant_transaction_id, event_id) DO NOTHING",
        )
        .await?;
    if tx
        .execute(&record, &[&event.event_id, &id, &PgTime(plan.now)])
        .await?
        == 0
    {
        tx.rollback().await?;
        return Ok(EventApplied::Replayed.into());
    }

    // FOR NO KEY UPDATE is the lock an UPDATE of non-key columns takes: it
    // serialises events on one transaction without blocking the foreign-key
    // checks of concurrent session inserts on the user row.
    let lock_session = tx
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM transactions WHERE merchant_transaction_id = $1 FOR NO KEY UPDATE"
        ))
        .await?;
    let Some(row) = tx.query_opt(&lock_session, &[&id]).await? else {
        // Nothing is kept, not even the id: the provider may deliver it again
        // once the transaction exists.
        tx.rollback().await?;
        return Ok(EventApplied::UnknownTransaction.into());
    };
    let stored = rows::stored_session(&row)?;
    let partner = stored.session.partner_id.as_str();
    let user = stored.session.user.partner_user_id.as_str();
    let kyc = if plan.reads_kyc() {
        let lock_user = tx
            .prepare_cached(
                "SELECT kyc_status, kyc_updated_at FROM end_users \
                 WHERE partner_id = $1 AND partner_user_id = $2 FOR NO KEY UPDATE",
            )
            .await?;
        let Some(user_row) = tx.query_opt(&lock_user, &[&partner, &user]).await? else {
            return Err(Fault(StoreError::Failed(format!(
                "transaction {id} has no end user row"
            ))));
        };
        rows::kyc_state(&user_row)?
    } else {
        KycState::NOT_STARTED
    };

    let effects = plan.effects(&stored, &kyc);
    let mut delivery_pending = false;
    let mut update = None;

    // The core sets `state` and `outbox` exactly when its decision is to
    // apply the move: then the new state, its outbox event and the event's
    // `applied` flag are written by one statement.
    if let (Some(state), Some(change)) = (&effects.state, &effects.outbox) {
        let write = tx
            .prepare_cached(
                // The outbox row is a pending delivery when the partner has a
                // webhook now, blocked behind any earlier pending one (the row
                // lock above keeps that decision current: migration 0004); the
                // statement answers its state, and how many changes the
                // transaction had before (the statement's snapshot does not
                // see its own insert), which numbers this one for live
                // subscribers (`session_core::live`).
                "WITH t AS ( \
                     UPDATE transactions SET status = $2, crypto_amount = $3, fiat_amount = $4, \
                         fiat_currency = $5, payment_method = $6, updated_at = $7 \
                     WHERE merchant_transaction_id = $1), \
                 o AS ( \
                     INSERT INTO outbox (partner_id, merchant_transaction_id, event, created_at, \
                         state, next_attempt_at, blocked) \
                     SELECT $8, $1, $9, $10::timestamptz, \
                         CASE WHEN p.webhook_url IS NULL THEN 'none' ELSE 'pending' END, \
                         CASE WHEN p.webhook_url IS NULL THEN NULL ELSE $10::timestamptz END, \
                         EXISTS (SELECT 1 FROM outbox e \
                                 WHERE e.merchant_transaction_id = $1 AND e.state = 'pending') \
                     FROM partners p WHERE p.id = $8 \
                     RETURNING state), \
                 e AS ( \
                     UPDATE provider_events SET applied = true \
                     WHERE merchant_transaction_id = $1 AND event_id = $11) \
                 SELECT state, (SELECT count(*) FROM outbox \
                                WHERE merchant_transaction_id = $1) AS earlier FROM o",
            )
            .await?;
        let outbox = tx
            .query_opt(
                &write,
                &[
                    &id,
                    &state.status.as_str(),
                    &state.crypto_amount,
                    &state.fiat_amount,
                    &state.fiat_currency.as_str(),
                    &state.payment_method,
                    &PgTime(state.updated_at),
                    &change.partner_id.as_str(),
                    &Json(OutboxEvent::from(change)),
                    &PgTime(plan.now),
                    &event.event_id,
                ],
            )
            .await?;
        if let Some(row) = outbox {
            delivery_pending = row.try_get::<_, &str>("state")? == "pending";
            let earlier = row.try_get::<_, i64>("earlier")?;
            let position = usize::try_from(earlier)
                .map_err(|_| Fault(StoreError::Failed(format!("a change count of {earlier}"))))?;
            update = Some(TxUpdate::of_change(position, change.clone()));
        }
    }
    if let Some(kyc) = &effects.kyc {
        let update = tx
            .prepare_cached(
                "UPDATE end_users SET kyc_status = $3, kyc_updated_at = $4 \
                 WHERE partner_id = $1 AND partner_user_id = $2",
            )
            .await?;
        tx.execute(
            &update,
            &[
                &partner,
                &user,
                &kyc.status.as_str(),
                &maybe_pg_time(kyc.updated_at),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Written {
        applied: EventApplied::Applied(Box::new(effects)),
        delivery_pending,
        update,
    })
}
