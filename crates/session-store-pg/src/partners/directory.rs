//! The directory: the current snapshot, how it is reloaded, and the token
//! lookup that serves every authenticated request from memory.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use session_core::client_token::TokenDigest;
use session_core::partner::{PartnerId, PartnerSpec};
use session_core::ports::{ClientTokenRecord, StoreError, TokenGrant};
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio_postgres::IsolationLevel;

use super::snapshot::Snapshot;
use super::sql::{self, TokenRow};
use crate::db::{Client, Db};
use crate::error::Fault;

/// Direct lookups of digests the snapshot does not know, at most this many at
/// once: unknown tokens are what an attacker sends, and each costs a query.
const MISS_LOOKUPS: usize = 4;

#[derive(Debug)]
pub(crate) struct Directory {
    db: Db,
    snapshot: ArcSwap<Snapshot>,
    /// Reloads run one at a time, so a slow reload can never swap in a view
    /// older than the one a faster, later reload installed.
    reload_lock: Mutex<()>,
    miss_lookups: Semaphore,
    /// How long a miss waits for a lookup slot before answering `Unavailable`.
    miss_wait: Duration,
    /// Asks the listener task for a reload (a token was found in the
    /// database that the snapshot lacks).
    pub(crate) wake: Notify,
    /// Prefix of this instance's notifications.
    pub(crate) instance: String,
}

impl Directory {
    pub(crate) fn new(db: Db, instance: String, miss_wait: Duration) -> Self {
        Self {
            db,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            reload_lock: Mutex::new(()),
            miss_lookups: Semaphore::new(MISS_LOOKUPS),
            miss_wait,
            wake: Notify::new(),
            instance,
        }
    }

    /// The payload of a notification about `partner` sent by this instance.
    pub(crate) fn payload(&self, partner: &str) -> String {
        format!("{} {partner}", self.instance)
    }

    /// Whether a notification payload came from this instance.
    pub(crate) fn is_own(&self, payload: &str) -> bool {
        payload
            .split_once(' ')
            .is_some_and(|(instance, _)| instance == self.instance)
    }

    /// Partner `id` in the current snapshot.
    pub(crate) fn partner(&self, id: &PartnerId) -> Option<Arc<session_core::partner::Partner>> {
        self.snapshot.load().partner(id)
    }

    /// Reads the partner tables and swaps in a new snapshot.
    pub(crate) async fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let (specs, tokens) = self.db.run(async |client| load_all(client).await).await?;
        let snapshot = Snapshot::build(&specs, &tokens);
        self.snapshot.store(Arc::new(snapshot));
        tracing::debug!(
            partners = specs.len(),
            tokens = tokens.len(),
            "partner snapshot reloaded"
        );
        Ok(())
    }

    /// Reloads after this instance committed a registry write, so that its
    /// next request sees the change. The write stands even if the reload
    /// fails; the listener's next reload picks it up.
    pub(crate) async fn reload_after_write(&self) {
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "partner snapshot reload after a write failed");
            self.wake.notify_one();
        }
    }

    /// The grant a token gives. Known digests are answered from memory; an
    /// unknown one is looked up in the database, so a token issued a moment ago
    /// by another process works before its notification arrives.
    pub(crate) async fn find(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenGrant>, StoreError> {
        if let Some(known) = self.snapshot.load().token(digest) {
            return Ok(known);
        }
        let _slot = tokio::time::timeout(self.miss_wait, self.miss_lookups.acquire())
            .await
            .map_err(|_| StoreError::Unavailable("too many unknown-token lookups at once".into()))?
            .map_err(|_| StoreError::Unavailable("the store has been shut down".into()))?;
        // A reload may have brought it while this call waited for its slot.
        if let Some(known) = self.snapshot.load().token(digest) {
            return Ok(known);
        }
        let Some(row) = self
            .db
            .run(async |client| sql::find_token(client, digest).await)
            .await?
        else {
            return Ok(None);
        };
        let (grant, reloaded) = self.grant(&row).await;
        if !reloaded {
            // The snapshot is behind the database: catch up in the background.
            self.wake.notify_one();
        }
        grant
    }

    /// The grant of a token found in the database, and whether the snapshot
    /// was reloaded for it: it is when the token's partner is missing too (a
    /// partner and its token both created since the last reload).
    async fn grant(&self, row: &TokenRow) -> (Result<Option<TokenGrant>, StoreError>, bool) {
        let Ok(partner_id) = PartnerId::parse(&row.partner_id) else {
            return (Ok(None), false);
        };
        let lookup = || self.snapshot.load().partner(&partner_id);
        let mut missing = false;
        let grant = TokenGrant::of_stored(row.revoked, row.expires_at, || {
            let partner = lookup();
            missing = partner.is_none();
            partner
        });
        if !missing {
            return (Ok(grant), false);
        }
        match self.reload().await {
            Ok(()) => (
                Ok(TokenGrant::of_stored(row.revoked, row.expires_at, lookup)),
                true,
            ),
            Err(error) => (Err(error), false),
        }
    }
}

/// Every partner spec and token, read in one read-only snapshot transaction.
async fn load_all(
    client: &mut Client,
) -> Result<(Vec<PartnerSpec>, Vec<ClientTokenRecord>), Fault> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let specs = sql::load_specs(&tx, None).await?;
    let tokens = sql::load_tokens(&tx, None).await?;
    tx.commit().await?;
    Ok((specs, tokens))
}

/// Specs of every partner, or of one, from the database (the registry's reads).
pub(crate) async fn load_specs(
    client: &mut Client,
    only: Option<&str>,
) -> Result<Vec<PartnerSpec>, Fault> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let specs = sql::load_specs(&tx, only).await?;
    tx.commit().await?;
    Ok(specs)
}
