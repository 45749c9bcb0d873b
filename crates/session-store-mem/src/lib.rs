//! Every port of `session-core`, in memory: the store behind `--dev` and the
//! reference implementation that the store contract suite is written against.
//!
//! Sessions live in a sharded concurrent map, so creations on different
//! sessions never contend; a redemption or status change locks only its own
//! entry. Nothing survives a restart.
//!
//! The store is bounded (SPEC.md §6): past `max_sessions`, creating a session
//! evicts the oldest one that is terminal or whose init token expired
//! unredeemed, with its outbox, event ids and (when it was their last session)
//! its end user; when none can go, the insert fails with `Unavailable`.

mod eviction;
mod idempotency;
mod partners;
mod sessions;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use dashmap::DashMap;
use session_core::partner::PartnerId;
use session_core::ports::{FeedSubscription, Health, StatusFeed, StoreError};
use session_core::session::{StatusChanged, StoredSession};
use session_core::value::PartnerUserId;
use session_feed::Hub;
use uuid::Uuid;

use partners::PartnerState;
use sessions::UserRecord;

/// Shards of the session map. A shard is locked while it grows, so many small
/// shards keep each resize (and the wait it causes) short as the store fills.
const SESSION_SHARDS: usize = 256;

/// SPEC.md §6: `--mem-max-sessions` when not given.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;

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
    events: Mutex<EventIds>,
    /// Sessions held, counted when a slot is reserved (before the insert).
    held: AtomicUsize,
    max_sessions: usize,
    /// Which sessions can go when the store is full, oldest first.
    eviction: Mutex<eviction::Queues>,
    /// Webhook deliveries of partners with a webhook.
    webhooks: webhooks::Outbox,
    /// Live subscribers of transactions (`GET /ws`).
    feed: Arc<Hub>,
    /// Answers kept under `Idempotency-Key`s.
    answers: idempotency::Answers,
}

/// Provider event ids seen, per transaction: an event is one `event_id` on
/// one transaction (the same id on another transaction is another event), and
/// an evicted session takes its ids along.
type EventIds = HashMap<Uuid, HashSet<String>>;

impl Default for MemStore {
    fn default() -> Self {
        Self::with_max_sessions(DEFAULT_MAX_SESSIONS)
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that holds at most `max_sessions` sessions (at least one).
    pub fn with_max_sessions(max_sessions: usize) -> Self {
        Self {
            partners: RwLock::default(),
            sessions: DashMap::with_shard_amount(SESSION_SHARDS),
            users: DashMap::default(),
            outbox: DashMap::default(),
            events: Mutex::default(),
            held: AtomicUsize::new(0),
            max_sessions: max_sessions.max(1),
            eviction: Mutex::default(),
            webhooks: webhooks::Outbox::default(),
            feed: Arc::new(Hub::default()),
            answers: idempotency::Answers::new(max_sessions.max(1)),
        }
    }

    /// How many sessions are held (for tests and diagnostics).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// Changes are published as they apply (see `apply_provider_event`): in
/// memory there is one instance, so there is nothing to notify or re-read.
#[async_trait]
impl StatusFeed for MemStore {
    async fn subscribe(&self, id: Uuid) -> Result<Box<dyn FeedSubscription>, StoreError> {
        Ok(Box::new(self.feed.subscribe(id)))
    }
}

#[async_trait]
impl Health for MemStore {
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
