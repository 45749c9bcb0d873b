//! `IdempotencyStore` on PostgreSQL. A key is kept on the transaction it
//! created (migration 0006) and written by group commit in the statement
//! that writes the session (see `batch.rs`); look-ups and the reaper are
//! single statements keyed by partner.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::PgStore;
use crate::error::corrupt;
use crate::rows::{self, PgTime, session_columns};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        self.db
            .run(async |client| {
                let statement = client
                    .prepare_cached(concat!(
                        "SELECT ",
                        session_columns!(),
                        ", idempotency_fingerprint FROM transactions \
                         WHERE partner_id = $1 AND idempotency_key = $2 AND created_at >= $3"
                    ))
                    .await?;
                let Some(row) = client
                    .query_opt(
                        &statement,
                        &[&partner.as_str(), &key.as_str(), &PgTime(created_since)],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let fingerprint: &[u8] = row.try_get("idempotency_fingerprint")?;
                let fingerprint: [u8; 32] = fingerprint
                    .try_into()
                    .map_err(|_| corrupt("an idempotency fingerprint is not 32 bytes"))?;
                let stored = rows::stored_session(&row)?;
                Ok(Some(StoredAnswer {
                    fingerprint: Fingerprint::from_bytes(fingerprint),
                    session: stored.session,
                }))
            })
            .await
    }

    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        self.group_commit.insert_keyed(session, keyed).await
    }

    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run(async |client| {
                // Oldest first through the partial index on created_at, which
                // holds only rows that still have a key; the LIMIT keeps each
                // batch a short transaction.
                let statement = client
                    .prepare_cached(
                        "UPDATE transactions \
                         SET idempotency_key = NULL, idempotency_fingerprint = NULL \
                         WHERE merchant_transaction_id IN ( \
                             SELECT merchant_transaction_id FROM transactions \
                             WHERE idempotency_key IS NOT NULL AND created_at < $1 \
                             ORDER BY created_at LIMIT $2)",
                    )
                    .await?;
                let deleted = client
                    .execute(&statement, &[&PgTime(created_before), &limit])
                    .await?;
                Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
            })
            .await
    }
}
