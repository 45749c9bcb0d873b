//! The ports: what the core needs from the world, as small traits with small
//! errors. Adapters (the stores, a wallet provider client) implement them and
//! translate their drivers' errors into these.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use crate::client_token::ClientTokenRecord;
use crate::client_token::TokenDigest;
use crate::idempotency::{IdNamespace, IdempotencyKey, KeyLookup, KeyedAnswer};
use crate::live::FeedNext;
use crate::partner::{Partner, PartnerId, PartnerSpec};
use crate::session::{EventEffects, EventPlan, KycState, Session, StatusChanged, StoredSession};
use crate::time::Timestamp;
use crate::value::{Address, Code, PartnerUserId};

/// A store fault. Details are for logs only; clients see the generic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached or is overloaded; the request may be retried.
    Unavailable(String),
    /// A uniqueness rule refused the write.
    Conflict(String),
    /// A statement failed for another reason.
    Failed(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(detail) => write!(f, "store unavailable: {detail}"),
            Self::Conflict(detail) => write!(f, "store conflict: {detail}"),
            Self::Failed(detail) => write!(f, "store failure: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A client token that matched, and the partner it belongs to.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub partner: Arc<Partner>,
    /// End of the rotation grace period, when the token has been rotated.
    pub expires_at: Option<Timestamp>,
}

impl TokenGrant {
    /// The grant a stored token gives: none when it is revoked or `partner`
    /// finds no partner for it. `partner` is asked only for a token that is
    /// not revoked.
    pub fn of_stored(
        revoked: bool,
        expires_at: Option<Timestamp>,
        partner: impl FnOnce() -> Option<Arc<Partner>>,
    ) -> Option<Self> {
        if revoked {
            return None;
        }
        partner().map(|partner| Self {
            partner,
            expires_at,
        })
    }
}

/// Finds the partner a client token belongs to. Revoked tokens are not found.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PartnerDirectory: Send + Sync {
    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<TokenGrant>, StoreError>;

    /// The partner `id` as currently configured, ready for use (the webhook
    /// dispatcher's look-up; as cheap as a token look-up).
    async fn find_partner(&self, id: &PartnerId) -> Result<Option<Arc<Partner>>, StoreError>;
}

/// A fault of an upstream provider (wallet custody, identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider answered with an error.
    Rejected(String),
    /// The provider could not be reached or timed out.
    Unreachable(String),
    /// The provider answered something that cannot be understood.
    InvalidResponse(String),
}

/// Resolves the destination address for a (currency, network) of a partner.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait WalletDirectory: Send + Sync {
    async fn resolve(
        &self,
        partner: &Partner,
        currency: &Code,
        network: &Code,
    ) -> Result<Option<Address>, UpstreamError>;
}

/// Wallets as configured on the partner itself: the directory for deployments
/// without an external custody service.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfiguredWallets;

#[async_trait]
impl WalletDirectory for ConfiguredWallets {
    async fn resolve(
        &self,
        partner: &Partner,
        currency: &Code,
        network: &Code,
    ) -> Result<Option<Address>, UpstreamError> {
        Ok(partner
            .active_wallet(currency, network)
            .map(|w| w.address.clone()))
    }
}

/// The outcome of an attempt to redeem an init token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// This call consumed the token.
    Redeemed,
    /// The token had been consumed before.
    AlreadyUsed,
    /// No session with that id and jti.
    Unknown,
}

/// The outcome of offering a provider event to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventApplied {
    /// The event's effects were written (they may be empty).
    Applied(Box<EventEffects>),
    /// The `event_id` was seen before on this transaction; nothing was written.
    Replayed,
    /// No such transaction; nothing was written, the event id is not recorded.
    UnknownTransaction,
}

/// Sessions, their users and their transactions.
///
/// Every method that writes returns only after the write is durable.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Finds or creates the end user (by partner and `partner_user_id`, keeping the
    /// latest email) and inserts the session in status `pending`, atomically.
    async fn insert_session(&self, session: &Arc<Session>) -> Result<(), StoreError>;

    /// The session with this id, whoever owns it.
    async fn session(&self, id: Uuid) -> Result<Option<StoredSession>, StoreError>;

    /// Consumes the init token `jti` of session `id` at `at`. Of any number of
    /// concurrent calls for one session, exactly one returns `Redeemed`.
    async fn redeem(&self, id: Uuid, jti: &str, at: Timestamp) -> Result<Redemption, StoreError>;

    /// The KYC state of a partner's end user, `None` for an unknown user.
    async fn kyc(
        &self,
        partner: &PartnerId,
        user: &PartnerUserId,
    ) -> Result<Option<KycState>, StoreError>;

    /// Applies a provider event exactly once per transaction and `event_id`
    /// (the same `event_id` on another transaction is another event): records
    /// the id, locks the transaction and its user, asks [`EventPlan::effects`]
    /// what changes and writes that (state, KYC, outbox event) in one
    /// transaction.
    async fn apply_provider_event(&self, plan: &EventPlan) -> Result<EventApplied, StoreError>;

    /// The outbox events written for transaction `id`, oldest first.
    async fn status_events(&self, id: Uuid) -> Result<Vec<StatusChanged>, StoreError>;
}

/// The outcome of writing a session under an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedInsert {
    /// The session and the key's answer were written together.
    Inserted,
    /// A live answer exists under the key (another request wrote it, possibly
    /// on another instance, possibly an instant ago); nothing was written.
    KeyTaken,
}

/// What is kept under partners' `Idempotency-Key`s: each key's request
/// fingerprint and the session it created.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The space keyed sessions' ids are derived in: fixed for the store's
    /// life, the same on every instance sharing it.
    fn id_namespace(&self) -> IdNamespace;

    /// What `partner`'s `key` holds: the session that took it, unless that
    /// was created before `created_since` (expired), and otherwise the
    /// generation the next session under the key takes.
    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<KeyLookup, StoreError>;

    /// Like [`SessionStore::insert_session`], and writes `keyed` under the
    /// session's partner in the same atomic step: either both are written or
    /// neither. The session's id is
    /// [`keyed_transaction_id`](crate::idempotency::keyed_transaction_id) of
    /// the store's namespace, its partner, `keyed.key` and
    /// `keyed.generation`, so of any number of
    /// concurrent calls for one generation of a key, across every instance
    /// sharing the store, at most one returns `Inserted`; the others (and any
    /// call for a generation already written) return `KeyTaken` once the
    /// winner's answer can be read (or the winner failed and wrote nothing).
    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError>;

    /// Forgets at most `limit` keys whose sessions were created before
    /// `created_before` (the sessions stay); returns how many went.
    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError>;
}

/// Partner administration: what the bootstrap loader and the operator CLI use.
/// Changes take effect on every instance sharing the store.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PartnerRegistry: Send + Sync {
    async fn partner(&self, id: &PartnerId) -> Result<Option<PartnerSpec>, StoreError>;

    async fn partners(&self) -> Result<Vec<PartnerSpec>, StoreError>;

    /// Creates the partner or replaces its whole configuration. `spec` must build.
    async fn put_partner(&self, spec: &PartnerSpec) -> Result<(), StoreError>;

    async fn tokens(&self, partner: &PartnerId) -> Result<Vec<ClientTokenRecord>, StoreError>;

    /// Adds a token; adding a digest that exists already changes nothing and
    /// returns `false`.
    async fn add_token(&self, token: &ClientTokenRecord) -> Result<bool, StoreError>;

    /// Sets the end of a token's grace period (rotation). `false` if unknown.
    async fn expire_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Revokes a token at once. `false` if unknown.
    async fn revoke_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Whether the store is reachable, for readiness probes.
#[async_trait]
pub trait Health: Send + Sync {
    async fn check(&self) -> Result<(), StoreError>;
}

/// A live subscription to one transaction's changes (see [`StatusFeed`]).
#[async_trait]
pub trait FeedSubscription: Send {
    /// Waits for the next state of the transaction. States come in sequence
    /// order and never go back; one that falls behind may be skipped for a
    /// newer one only when the subscriber lags (then [`FeedNext::Lagged`]).
    async fn next(&mut self) -> FeedNext;
}

/// The changes of transactions as they are applied, on every instance that
/// shares the store, for live subscribers (`GET /ws`).
#[async_trait]
pub trait StatusFeed: Send + Sync {
    /// Subscribes to transaction `id`: every change committed after this
    /// returns is yielded, in order, however many instances apply them. Read
    /// the current state after subscribing, so that nothing falls between.
    async fn subscribe(&self, id: Uuid) -> Result<Box<dyn FeedSubscription>, StoreError>;
}

/// Every port a store adapter provides. The composition root, the contract
/// suite and the HTTP tests hold a store as this one trait.
pub trait Store:
    SessionStore
    + IdempotencyStore
    + PartnerDirectory
    + PartnerRegistry
    + WebhookOutbox
    + StatusFeed
    + Health
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: SessionStore
        + IdempotencyStore
        + PartnerDirectory
        + PartnerRegistry
        + WebhookOutbox
        + StatusFeed
        + Health
        + Send
        + Sync
        + 'static
{
}

/// One event's webhook delivery, as the dispatcher holds it while sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The outbox event's id; `webhook-id` is `evt_<id>`.
    pub id: i64,
    pub event: StatusChanged,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the event was committed: the retry horizon counts from here.
    pub committed_at: Timestamp,
}

/// What begins every `webhook-id`; the outbox event's id follows.
pub const WEBHOOK_ID_PREFIX: &str = "evt_";

/// The `webhook-id` of outbox event `id`: unique per event, the same on every
/// attempt.
pub fn webhook_id(id: i64) -> String {
    format!("{WEBHOOK_ID_PREFIX}{id}")
}

impl Delivery {
    /// This delivery's [`webhook_id`].
    pub fn webhook_id(&self) -> String {
        webhook_id(self.id)
    }

    /// What names this delivery to [`WebhookOutbox::record_attempt`] and
    /// [`WebhookOutbox::release`].
    pub const fn key(&self) -> DeliveryKey {
        DeliveryKey {
            merchant_transaction_id: self.event.merchant_transaction_id,
            id: self.id,
        }
    }
}

/// A claimed delivery as the outbox finds it again: its id, and the
/// transaction whose event it carries (so a store partitioned by transaction
/// finds the row in its transaction's partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub merchant_transaction_id: Uuid,
    pub id: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet delivered; tried again when due.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// Abandoned after the retry horizon; an operator may queue it again.
    Failed,
}

impl DeliveryState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What one attempt did, and what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: Timestamp,
    /// The HTTP status, or why no status was had ("timeout", "refused: ...").
    pub result: String,
    pub next: AttemptNext,
}

/// The delivery's state after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    RetryAt(Timestamp),
    Failed,
}

/// A delivery as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    pub id: i64,
    pub partner_id: PartnerId,
    pub merchant_transaction_id: Uuid,
    /// The transaction status the event carries.
    pub status: crate::status::TxStatus,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_result: Option<String>,
    pub committed_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
}

/// Which deliveries to list; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub partner: Option<PartnerId>,
    pub transaction: Option<Uuid>,
    pub state: Option<DeliveryState>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// How many deliveries one claim may take: at most `total`, and of each
/// partner at most `per_partner` less what the claiming dispatcher already has
/// in flight to it (`in_flight`), so a slow endpoint holds up nobody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits<'a> {
    pub total: usize,
    pub per_partner: usize,
    pub in_flight: &'a [(PartnerId, usize)],
}

impl ClaimLimits<'static> {
    /// Up to `total`, with no bound per partner.
    pub const fn total(total: usize) -> Self {
        Self {
            total,
            per_partner: total,
            in_flight: &[],
        }
    }
}

impl ClaimLimits<'_> {
    /// How many more of `partner`'s deliveries the claim may take.
    pub fn room_for(&self, partner: &PartnerId) -> usize {
        let busy = self
            .in_flight
            .iter()
            .find(|(p, _)| p == partner)
            .map_or(0, |(_, n)| *n);
        self.per_partner.saturating_sub(busy)
    }

    /// The partners with no room left.
    pub fn full(&self) -> Vec<&PartnerId> {
        self.in_flight
            .iter()
            .filter(|(p, _)| self.room_for(p) == 0)
            .map(|(p, _)| p)
            .collect()
    }
}

/// The webhook outbox: every applied status change of a partner with a
/// webhook is a delivery, committed with the change. Any number of
/// dispatchers (one per instance) share it.
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Claims pending deliveries due at `now`, within `limits`, each the
    /// oldest pending delivery of its transaction (so a transaction's events
    /// go out in order), oldest due first, and leases them until
    /// `lease_until`: no other claim returns them before then, and one that is
    /// never recorded (a crash) is due again when the lease ends.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records an attempt on `delivery`: its result and the next state.
    async fn record_attempt(
        &self,
        delivery: DeliveryKey,
        attempt: &AttemptRecord,
    ) -> Result<(), StoreError>;

    /// Ends the lease of claimed `deliveries` without an attempt (shutdown):
    /// they are due again at once, on any instance.
    async fn release(&self, deliveries: &[DeliveryKey]) -> Result<(), StoreError>;

    /// Deliveries matching `filter`, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError>;

    /// How many deliveries are pending (not delivered, not given up on), for
    /// the `session_webhook_pending` gauge.
    async fn pending_deliveries(&self) -> Result<u64, StoreError>;

    /// Queues delivery `id` again, due at `now`, whatever its state.
    /// `false` if there is no such delivery.
    async fn requeue(&self, id: i64, now: Timestamp) -> Result<bool, StoreError>;

    /// Queues again every delivery of `partner` committed at or after
    /// `since`, due at `now`; answers how many.
    async fn replay(
        &self,
        partner: &PartnerId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Returns when a delivery may have become due: a new event was committed
    /// or one was queued again. May return spuriously; the dispatcher also
    /// polls.
    async fn woken(&self);
}
