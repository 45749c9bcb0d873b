//! `IdempotencyStore` on PostgreSQL. A keyed session's id is its key's
//! (`keyed_transaction_id` of the partner, the key and a generation), so the
//! transaction's primary key holds the key: the group commit's insert fails
//! for every request with one key but one (see `batch.rs`), and a look-up
//! reads the key's generations by transaction id. The key and the request's
//! fingerprint are kept on the row (migration 0006) until the reaper clears
//! them.
//!
//! Keys written before ids were derived from them (migration 0011) are found
//! in `idempotency_legacy_keys` until that table empties, one
//! `--idempotency-ttl` after the upgrade.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use session_core::idempotency::{
    Fingerprint, IdNamespace, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer,
    keyed_transaction_id,
};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::PgStore;
use crate::db::{Client, Db};
use crate::error::{Fault, corrupt};
use crate::rows::{self, PgTime, session_columns};

/// How many later generations the first probe past the first one reads;
/// each further probe reads twice as many. A key never used costs one
/// statement, nearly every other key two; a key reused daily for a year
/// takes eight.
const FIRST_GENERATIONS: u32 = 8;

/// Whether keys written before ids were derived from them may still hold
/// answers: true until `idempotency_legacy_keys` is found empty, then false
/// for good (nothing writes that table again).
#[derive(Debug)]
pub(crate) struct LegacyKeys(AtomicBool);

impl LegacyKeys {
    /// Reads whether the table holds any key.
    pub(crate) async fn load(db: &Db) -> Result<Self, StoreError> {
        let any = db
            .run(async |client| {
                let row = client
                    .query_one("SELECT EXISTS (SELECT 1 FROM idempotency_legacy_keys)", &[])
                    .await?;
                Ok(row.try_get::<_, bool>(0)?)
            })
            .await?;
        Ok(Self(AtomicBool::new(any)))
    }

    fn present(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    fn id_namespace(&self) -> IdNamespace {
        self.id_namespace
    }

    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<KeyLookup, StoreError> {
        let namespace = self.id_namespace;
        let newest = self
            .db
            .run(async |client| newest_generation(client, &namespace, partner, key).await)
            .await?;
        let Some(Newest {
            generation,
            created_at,
            answer,
        }) = newest
        else {
            if self.legacy_keys.present() {
                if let Some(held) = self.legacy_answer(partner, key, created_since).await? {
                    return Ok(KeyLookup::Held(held));
                }
            }
            return Ok(KeyLookup::Free { generation: 0 });
        };
        if created_at < created_since {
            return Ok(KeyLookup::Free {
                generation: generation.saturating_add(1),
            });
        }
        match answer {
            Some(answer) => Ok(KeyLookup::Held(answer)),
            // Live, yet its answer was cleared: a reaper whose clock runs
            // ahead. The generation is not free until the session expires,
            // so requests with the key are told it is in use meanwhile.
            None => Ok(KeyLookup::Free { generation }),
        }
    }

    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        if session.merchant_transaction_id
            != keyed.transaction_id(&self.id_namespace, &session.partner_id)
        {
            return Err(StoreError::Failed(
                "a keyed session's id is not its key's".into(),
            ));
        }
        // A key written before ids were derived holds the first generation
        // while it lives. Nothing adds to that table, so reading it before
        // the insert leaves no race.
        if keyed.generation == 0
            && self.legacy_keys.present()
            && self
                .legacy_answer(&session.partner_id, &keyed.key, keyed.expired_before)
                .await?
                .is_some()
        {
            return Ok(KeyedInsert::KeyTaken);
        }
        self.group_commit.insert_keyed(session, keyed).await
    }

    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let reaped: usize = self
            .db
            .run(async |client| {
                // Oldest first through the partial index on created_at, which
                // holds only rows that still have a key; the LIMIT keeps each
                // batch a short transaction, and SKIP LOCKED keeps instances
                // reaping at once (and provider events) from waiting on each
                // other.
                let statement = client
                    .prepare_cached(
                        "UPDATE transactions \
                         SET idempotency_key = NULL, idempotency_fingerprint = NULL \
                         WHERE idempotency_key IS NOT NULL AND merchant_transaction_id IN ( \
                             SELECT merchant_transaction_id FROM transactions \
                             WHERE idempotency_key IS NOT NULL AND created_at < $1 \
                             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    )
                    .await?;
                let deleted = client
                    .execute(&statement, &[&PgTime(created_before), &limit])
                    .await?;
                Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
            })
            .await?;
        let legacy = if self.legacy_keys.present() {
            self.reap_legacy_keys(created_before, limit).await?
        } else {
            0
        };
        Ok(reaped.saturating_add(legacy))
    }
}

impl PgStore {
    /// The answer a key written before ids were derived holds, unless it was
    /// created before `created_since`.
    async fn legacy_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        self.db
            .run(async |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT merchant_transaction_id FROM idempotency_legacy_keys \
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
                let id: Uuid = row.try_get(0)?;
                let statement = client.prepare_cached(SESSION_BY_ID).await?;
                match client.query_opt(&statement, &[&id]).await? {
                    Some(row) => stored_answer(&row),
                    None => Ok(None),
                }
            })
            .await
    }

    /// Deletes at most `limit` legacy keys created before `created_before`;
    /// once none is left, stops consulting the table. Returns how many went.
    async fn reap_legacy_keys(
        &self,
        created_before: Timestamp,
        limit: i64,
    ) -> Result<usize, StoreError> {
        let (deleted, left) = self
            .db
            .run(async |client| {
                let statement = client
                    .prepare_cached(
                        "DELETE FROM idempotency_legacy_keys \
                         WHERE (partner_id, idempotency_key) IN ( \
                             SELECT partner_id, idempotency_key FROM idempotency_legacy_keys \
                             WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                    )
                    .await?;
                let deleted = client
                    .execute(&statement, &[&PgTime(created_before), &limit])
                    .await?;
                let row = client
                    .query_one("SELECT EXISTS (SELECT 1 FROM idempotency_legacy_keys)", &[])
                    .await?;
                Ok((deleted, row.try_get::<_, bool>(0)?))
            })
            .await?;
        if !left {
            self.legacy_keys.0.store(false, Ordering::Relaxed);
        }
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

/// A keyed session by id, with its fingerprint.
const SESSION_BY_ID: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", idempotency_fingerprint FROM transactions WHERE merchant_transaction_id = $1"
);

/// Which of the given ids a stored session has.
pub(crate) const STORED_IDS: &str =
    "SELECT merchant_transaction_id FROM transactions WHERE merchant_transaction_id = ANY($1)";

/// A key's newest generation, as a look-up finds it.
struct Newest {
    generation: u32,
    created_at: Timestamp,
    /// `None` once the reaper cleared the key.
    answer: Option<StoredAnswer>,
}

/// The newest generation of `partner`'s `key` that a session holds; `None`
/// for a key never used.
///
/// A generation is written only after a look-up found the one before it
/// expired, and transactions are never deleted, so the key's sessions are
/// its first generations, none missing. The first generation is read whole,
/// by its id alone (a key never used ends there). Past it, the ids of later
/// generations are probed in batches, each twice the last, until one is not
/// full, and the newest is read whole. The probe runs even when the first
/// generation looks live: to an instance whose clock runs behind the one
/// that wrote the second, it still would.
async fn newest_generation(
    client: &mut Client,
    namespace: &IdNamespace,
    partner: &PartnerId,
    key: &IdempotencyKey,
) -> Result<Option<Newest>, Fault> {
    let id_of = |generation| keyed_transaction_id(namespace, partner, key, generation);
    let by_id = client.prepare_cached(SESSION_BY_ID).await?;
    let Some(first) = client.query_opt(&by_id, &[&id_of(0)]).await? else {
        return Ok(None);
    };
    let first = newest_of(0, &first)?;
    let mut newest = 0u32;
    let mut from = 1u32;
    let mut count = FIRST_GENERATIONS;
    let probe = client.prepare_cached(STORED_IDS).await?;
    loop {
        let generations: HashMap<Uuid, u32> = (from..from.saturating_add(count))
            .map(|generation| (id_of(generation), generation))
            .collect();
        if generations.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = generations.keys().copied().collect();
        let found = client.query(&probe, &[&ids]).await?;
        for row in &found {
            let id: Uuid = row.try_get(0)?;
            let generation = *generations
                .get(&id)
                .ok_or_else(|| corrupt("a look-up by id returned another id"))?;
            newest = newest.max(generation);
        }
        if found.len() < generations.len() {
            break;
        }
        from = from.saturating_add(count);
        count = count.saturating_mul(2);
    }
    if newest == 0 {
        return Ok(Some(first));
    }
    let row = client
        .query_opt(&by_id, &[&id_of(newest)])
        .await?
        .ok_or_else(|| corrupt("a key's newest generation vanished"))?;
    newest_of(newest, &row).map(Some)
}

fn newest_of(generation: u32, row: &Row) -> Result<Newest, Fault> {
    let created_at: PgTime = row.try_get("created_at")?;
    Ok(Newest {
        generation,
        created_at: created_at.0,
        answer: stored_answer(row)?,
    })
}

/// A session row's answer, `None` when its key was reaped (or it has none).
fn stored_answer(row: &Row) -> Result<Option<StoredAnswer>, Fault> {
    let Some(fingerprint) = row.try_get::<_, Option<&[u8]>>("idempotency_fingerprint")? else {
        return Ok(None);
    };
    let fingerprint: [u8; 32] = fingerprint
        .try_into()
        .map_err(|_| corrupt("an idempotency fingerprint is not 32 bytes"))?;
    let stored = rows::stored_session(row)?;
    Ok(Some(StoredAnswer {
        fingerprint: Fingerprint::from_bytes(fingerprint),
        session: stored.session,
    }))
}
