//! Every port of `session-core`, in memory: the store behind `--dev` and the
//! reference implementation that the store contract suite is written against.
//!
//! Sessions live in a sharded concurrent map, so creations on different
//! sessions never contend; a redemption or status change locks only its own
//! entry. Nothing survives a restart.

mod partners;
mod sessions;
mod webhooks;

use std::collections::HashSet;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use dashmap::DashMap;
use session_core::partner::PartnerId;
use session_core::ports::{Health, StoreError};
use session_core::session::{StatusChanged, StoredSession};
use session_core::value::PartnerUserId;
use uuid::Uuid;

use partners::PartnerState;
use sessions::UserRecord;

/// Shards of the session map. A shard is locked while it grows, so many small
/// shards keep each resize (and the wait it causes) short as the store fills.
const SESSION_SHARDS: usize = 256;

/// The in-memory store; one value implements every port.
#[derive(Debug)]
pub struct MemStore {
    partners: RwLock<PartnerState>,
    /// Boxed: a resize then moves pointers, not whole sessions.
    sessions: DashMap<Uuid, Box<StoredSession>>,
    users: DashMap<(PartnerId, PartnerUserId), UserRecord>,
    outbox: DashMap<Uuid, Vec<StatusChanged>>,
    /// Provider event ids seen. Events are applied one at a time under this
    /// lock, which makes the id check, the state change, the KYC change and
    /// the outbox append one atomic step.
    events: Mutex<HashSet<String>>,
    /// Webhook deliveries of partners with a webhook.
    webhooks: webhooks::Outbox,
}

impl Default for MemStore {
    fn default() -> Self {
        Self {
            partners: RwLock::default(),
            sessions: DashMap::with_shard_amount(SESSION_SHARDS),
            users: DashMap::default(),
            outbox: DashMap::default(),
            events: Mutex::default(),
            webhooks: webhooks::Outbox::default(),
        }
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are held (for tests and diagnostics).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

#[async_trait]
impl Health for MemStore {
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
