//! Every port of `session-core` on PostgreSQL: one [`PgStore`] implements
//! `SessionStore`, `PartnerDirectory`, `PartnerRegistry` and `Health`, and
//! passes the same contract suite as the in-memory store.
//!
//! # Schema
//!
//! Created by the embedded migrations in `migrations/` (see [`PgStore::connect`]),
//! recorded in `schema_migrations (version, name, checksum, applied_at)`.
//!
//! - `partners`: the scalar part of a `PartnerSpec` (flags, signature scheme,
//!   webhook url and secret, the widget configuration), plain string lists as
//!   `text[]`, the per-currency decimals as two parallel arrays.
//! - `partner_origins`, `partner_ips`, `partner_wallets`,
//!   `partner_signing_keys`: one row per list element with an `ordinal`, so a
//!   spec comes back exactly as written, order included. Ordinal 0 of the
//!   signing keys is the current key.
//! - `client_tokens`: `digest bytea` (SHA-256, the primary key), partner,
//!   label, `created_at`, `expires_at` (rotation grace), `revoked_at`.
//! - `end_users`: `(partner_id, partner_user_id)` key, latest email, KYC
//!   status and when it was reported.
//! - `transactions`: keyed by `merchant_transaction_id`; every immutable field
//!   of the session (including the user's email and the widget view as they
//!   were at creation), `redeemed_at`, and the mutable state (status, amounts,
//!   fiat currency, payment method, `updated_at`).
//! - `provider_events`: the events seen, keyed by `(merchant_transaction_id,
//!   event_id)`, for exactly-once application per transaction.
//! - `outbox`: one JSON event per applied status change (written in the same
//!   transaction), keyed by `(merchant_transaction_id, id)`, which is also
//!   the webhook delivery: its `state`, attempts, `next_attempt_at` (due time
//!   or lease end), `blocked` behind an earlier pending delivery of its
//!   transaction, and a partial index on the deliveries that can go now (see
//!   `webhooks.rs`).
//! - `service_secrets`: secrets every instance on the database shares, such as
//!   the init-token signing key ([`PgStore::service_secret`]).
//!
//! Timestamps are `timestamptz` and convert to the core's microsecond
//! `Timestamp` by an exact integer shift.
//!
//! # The partner snapshot and NOTIFY
//!
//! `find_by_token` runs on every authenticated request, so it never touches
//! the database when it can help it: the store keeps an immutable snapshot of
//! all partners (each built once into an `Arc<Partner>`) and all token
//! digests, swapped atomically ([`arc_swap`]). It stays fresh four ways:
//!
//! 1. every registry write sends `pg_notify('session_partners', ...)` in its
//!    own transaction and, once committed, reloads the local snapshot, so the
//!    writer sees its write at once;
//! 2. a background task holds a dedicated connection that `LISTEN`s on that
//!    channel and reloads when another instance announces a change
//!    (reconnecting with capped backoff, and reloading once reconnected, when
//!    the connection is lost);
//! 3. the same task reloads every `reload_interval` as a safety net;
//! 4. a digest the snapshot has never seen is looked up in the database (at
//!    most a few at once), so a token issued by the CLI in another process
//!    works immediately on every instance; finding one triggers a reload.
//!
//! Revocations and rotations reach other instances through (2), within
//! milliseconds while the database is up.
//!
//! # Group commit
//!
//! `insert_session` is the one write per `POST /widget/session`, and a
//! one-row transaction per request is bounded by PostgreSQL's per-transaction
//! CPU cost, not the disk. So concurrent calls are queued (a bounded channel;
//! a full queue makes callers wait) and `batch_writers` writer tasks each take
//! everything queued at that moment, up to `batch_max_rows`, and write it with
//! ONE statement on their own pooled connection, which commits it as one
//! transaction:
//!
//! - a data-modifying CTE upserts the batch's end users, deduplicated in the
//!   batch (the last session's email wins) and sorted by key, so concurrent
//!   batches lock user rows in the same order and cannot deadlock; a row is
//!   rewritten only when its email changed;
//! - the transactions are inserted from `unnest` of parallel arrays, one per
//!   column; each row's list columns (the widget view's currencies, networks
//!   and fiat currencies) travel as one quoted array literal per row and are
//!   cast back with `::text[]`, since `unnest` would flatten a 2-D array and
//!   rows' lists differ in length.
//!
//! Each caller is answered through a oneshot channel only after the statement
//! that wrote its row returned, i.e. after commit. There is no batching timer:
//! a writer that finds one queued session writes one session at once, and
//! batches grow only while sessions arrive faster than a commit completes. If
//! a batch fails because the database is unreachable, every caller in it gets
//! `Unavailable` (as a single insert would); any other failure (a duplicate
//! id, a row the database refuses) is retried row by row so that one bad row
//! fails alone.
//!
//! # Errors
//!
//! Driver errors are translated here, never in the core: connection loss,
//! pool and statement timeouts and server shutdown are
//! `StoreError::Unavailable`, a unique violation is `Conflict`, anything else
//! is `Failed`. Error text names conditions and constraints, never row values
//! or the connection password.

mod batch;
mod config;
mod db;
mod error;
mod events;
mod feed;
mod idempotency;
mod migrate;
mod outbox;
mod partners;
mod rows;
mod sessions;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod wake;
mod webhooks;

#[cfg(feature = "testing")]
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::idempotency::IdNamespace;
use session_core::ports::{FeedSubscription, Health, StatusFeed, StoreError};
use session_core::secret::Secret;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use batch::GroupCommitStats;
pub use config::PgConfig;

use batch::GroupCommit;
use db::Db;
use feed::Feed;
use partners::directory::Directory;
use wake::OutboxSignal;

/// How long a migration run may take, waiting for another instance included.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a readiness check may wait for its `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL store; one value implements every port.
///
/// Dropping it stops its background tasks: the snapshot listener at once, the
/// group-commit writers once they have written what was queued.
pub struct PgStore {
    db: Db,
    /// The webhook outbox's own pool (see `PgConfig::outbox_pool_size`).
    outbox_db: Db,
    directory: Arc<Directory>,
    group_commit: GroupCommit,
    /// Whether keys written before ids were derived from them may still hold
    /// answers (migration 0011).
    legacy_keys: idempotency::LegacyKeys,
    /// The space keyed sessions' ids are derived in (`service_secrets`).
    id_namespace: IdNamespace,
    shutdown: watch::Sender<()>,
    listener: JoinHandle<()>,
    /// Woken by the listener on `NOTIFY session_outbox` (a delivery may be due)
    /// and by this instance's own commits of pending deliveries.
    outbox_wake: Arc<Notify>,
    outbox_signal: OutboxSignal,
    outbox_notifier: JoinHandle<()>,
    /// Live updates for `GET /ws` subscribers on this instance.
    feed: Arc<Feed>,
    feed_tasks: Vec<JoinHandle<()>>,
    announce_db: Db,
    target: String,
    /// What `sibling` connects with.
    #[cfg(feature = "testing")]
    config: PgConfig,
    /// Values that live exactly as long as the store; dropped last.
    #[cfg(feature = "testing")]
    keep_alive: Vec<Box<dyn Any + Send + Sync>>,
}

impl PgStore {
    /// Builds the pool, applies pending migrations (safe when several instances
    /// start at once), loads the partner snapshot and starts the background
    /// listener and the group-commit writers.
    pub async fn connect(config: PgConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let target = config.target();
        let db = Db::new(&config, config.pool_size)?;
        let outbox_db = Db::with_driver(
            &config,
            config.outbox_driver_config()?,
            config.outbox_pool_size,
        )?;
        let applied = db
            .run_for(MIGRATION_TIMEOUT, async |client| {
                migrate::apply(client, migrate::MIGRATIONS).await
            })
            .await?;
        if applied > 0 {
            tracing::info!(applied, target, "database migrated");
        }
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let directory = Arc::new(Directory::new(
            db.clone(),
            instance,
            config.pool_wait_timeout,
        ));
        directory.reload().await?;
        let legacy_keys = idempotency::LegacyKeys::load(&db).await?;
        let id_namespace = load_id_namespace(&db).await?;
        let (shutdown, stopped) = watch::channel(());
        let outbox_wake = Arc::new(Notify::new());
        // Status announcements get a connection of their own, with the
        // outbox's settings (commits not waiting for the WAL flush), so they
        // take nothing from requests or the dispatcher.
        let announce_db = Db::with_driver(&config, config.outbox_driver_config()?, 1)?;
        let (feed, feed_tasks) = Feed::start(db.clone(), announce_db.clone(), stopped.clone());
        let listener = partners::listener::spawn(
            Arc::clone(&directory),
            Arc::clone(&outbox_wake),
            Arc::clone(&feed),
            config.driver_config()?,
            config.tls_connector()?,
            config.reload_interval,
            stopped.clone(),
        );
        let (outbox_signal, outbox_notifier) =
            OutboxSignal::start(outbox_db.clone(), Arc::clone(&outbox_wake), stopped);
        let group_commit = GroupCommit::start(
            db.clone(),
            config.batch_writers,
            config.batch_max_rows,
            config.batch_queue(),
        );
        Ok(Self {
            db,
            outbox_db,
            directory,
            group_commit,
            legacy_keys,
            id_namespace,
            shutdown,
            listener,
            outbox_wake,
            outbox_signal,
            outbox_notifier,
            feed,
            feed_tasks,
            announce_db,
            target,
            #[cfg(feature = "testing")]
            config,
            #[cfg(feature = "testing")]
            keep_alive: Vec::new(),
        })
    }

    /// Keeps `value` alive until the store is dropped, then drops it after the
    /// store's own parts. Tests use it to drop their database with the store.
    #[cfg(feature = "testing")]
    pub fn keep_alive<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.keep_alive.push(Box::new(value));
        self
    }

    /// Another instance on the same database, as a second server process
    /// would open it: its own pool, listener and feed.
    #[cfg(feature = "testing")]
    pub async fn sibling(&self) -> Result<Self, StoreError> {
        Self::connect(self.config.clone()).await
    }

    /// Returns the secret called `name`, creating it from `candidate` if the
    /// database has none yet. Every instance sharing the database gets the
    /// same value, whichever asked first.
    pub async fn service_secret(
        &self,
        name: &str,
        candidate: &Secret,
    ) -> Result<Secret, StoreError> {
        service_secret(&self.db, name, candidate).await
    }

    /// Counters of the group commit, for the tests that prove batching.
    #[cfg(feature = "testing")]
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group_commit.stats()
    }

    /// Pooled connections (the request pool and the outbox pool together)
    /// that are idle and that are in use, for the
    /// `session_store_pool_connections` gauge.
    pub fn pool_connections(&self) -> (usize, usize) {
        let (idle, busy) = self.db.connections();
        let (outbox_idle, outbox_busy) = self.outbox_db.connections();
        (idle + outbox_idle, busy + outbox_busy)
    }

    /// Stops the snapshot listener and the outbox notifier and closes the pool: later calls fail with
    /// `StoreError::Unavailable`. For a graceful exit once requests drained;
    /// dropping the store does the same.
    pub fn shutdown(&self) {
        // No receiver means the listener has already stopped.
        let _ = self.shutdown.send(());
        self.db.close();
        self.outbox_db.close();
        self.announce_db.close();
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.outbox_notifier.abort();
        for task in &self.feed_tasks {
            task.abort();
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("instance", &self.directory.instance)
            .finish_non_exhaustive()
    }
}

/// See `feed.rs`.
#[async_trait]
impl StatusFeed for PgStore {
    async fn subscribe(&self, id: uuid::Uuid) -> Result<Box<dyn FeedSubscription>, StoreError> {
        Ok(Box::new(self.feed.hub.subscribe(id)))
    }
}

#[async_trait]
impl Health for PgStore {
    async fn check(&self) -> Result<(), StoreError> {
        self.db
            .run_for(HEALTH_TIMEOUT, async |client| {
                client.simple_query("SELECT 1").await?;
                Ok(())
            })
            .await
    }
}

/// The secret called `name` on `db`, created from `candidate` if the database
/// has none yet. Every instance sharing the database gets the same value,
/// whichever asked first.
async fn service_secret(db: &Db, name: &str, candidate: &Secret) -> Result<Secret, StoreError> {
    db.run(async |client| {
        // Two statements, not one: a single statement's snapshot would
        // not see a row that a concurrent instance committed while this
        // insert waited on it.
        let insert = client
            .prepare_cached(
                "INSERT INTO service_secrets (name, value) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
            )
            .await?;
        client
            .execute(&insert, &[&name, &candidate.expose()])
            .await?;
        let select = client
            .prepare_cached("SELECT value FROM service_secrets WHERE name = $1")
            .await?;
        let row = client.query_one(&select, &[&name]).await?;
        Ok(Secret::new(row.try_get::<_, String>("value")?))
    })
    .await
}

/// The id namespace of this database: drawn by the first instance that asks,
/// then the same for every instance and every start.
async fn load_id_namespace(db: &Db) -> Result<IdNamespace, StoreError> {
    let candidate = IdNamespace::from_bytes(uuid::Uuid::new_v4().into_bytes());
    let kept = service_secret(db, ID_NAMESPACE, &Secret::new(candidate.to_hex())).await?;
    IdNamespace::from_hex(kept.expose()).ok_or_else(|| {
        StoreError::Failed(format!(
            "service secret {ID_NAMESPACE} is not 32 hex digits"
        ))
    })
}

/// The `service_secrets` row of the id namespace.
const ID_NAMESPACE: &str = "idempotency_id_namespace";
