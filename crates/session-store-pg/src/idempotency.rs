//! `IdempotencyStore` on PostgreSQL: the answer is written by group commit
//! in the statement that writes its session (see `batch.rs`); look-ups and
//! the reaper are single statements keyed by partner.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::PgStore;
use crate::error::corrupt;
use crate::rows::PgTime;

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
                    .prepare_cached(
                        "SELECT fingerprint, response_body FROM idempotency_keys \
                         WHERE partner_id = $1 AND idempotency_key = $2 AND created_at >= $3",
                    )
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
                let fingerprint: &[u8] = row.try_get("fingerprint")?;
                let fingerprint: [u8; 32] = fingerprint
                    .try_into()
                    .map_err(|_| corrupt("an idempotency fingerprint is not 32 bytes"))?;
                let body: &[u8] = row.try_get("response_body")?;
                Ok(Some(StoredAnswer {
                    fingerprint: Fingerprint::from_bytes(fingerprint),
                    body: Arc::from(body),
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
                // Oldest first through the index, so each batch is a short
                // range scan and a short transaction.
                let statement = client
                    .prepare_cached(
                        "DELETE FROM idempotency_keys WHERE (partner_id, idempotency_key) IN ( \
                             SELECT partner_id, idempotency_key FROM idempotency_keys \
                             WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
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
