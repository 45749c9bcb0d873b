//! The status feed on PostgreSQL: live updates for `GET /ws` subscribers on
//! every instance.
//!
//! - A change committed here is published to this instance's [`Hub`] at once
//!   (the store has the whole update in hand), and announced to the others
//!   with `NOTIFY session_status, '<transaction id> <sequence>'` after the
//!   commit: a reference, never the payload, which may carry amounts.
//! - The instance's one listening connection (see `partners::listener`)
//!   hands such notifications to [`Feed::notified`]. Only a transaction that
//!   somebody here follows and whose sequence is news costs anything: one
//!   re-read of its changes, published in order.
//! - A notification can be lost (the listening connection drops, the
//!   notifying instance dies between commit and NOTIFY), so every
//!   [`RESYNC_INTERVAL`], and whenever the listener (re)connects, the
//!   followed transactions' change counts are read in bulk and any that moved
//!   are re-read.
//!
//! Announcements are batched: a task gathers them for [`ANNOUNCE_WINDOW`] and
//! sends them in one statement on a connection of its own whose commits do not
//! wait for the WAL flush, so the cost does not grow with the event rate and
//! never lands on a request's connection: a commit that notifies takes the
//! database-wide notification lock through its WAL flush (see `wake.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use session_core::live::TxUpdate;
use session_core::ports::StoreError;
use session_feed::Hub;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::db::Db;

/// The channel of status announcements.
pub(crate) const CHANNEL: &str = "session_status";

/// How often the followed transactions are checked for changes whose
/// notification was lost.
pub(crate) const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Announcements sent in one statement at most.
const NOTIFY_BATCH: usize = 1_000;

/// How long the announcer gathers announcements before it sends them: at most
/// this much latency across instances, and at most one NOTIFY commit per
/// window however fast events apply (each such commit takes PostgreSQL's
/// notification queue lock).
const ANNOUNCE_WINDOW: Duration = Duration::from_millis(2);

/// Followed transactions checked per resync statement.
const RESYNC_BATCH: usize = 1_000;

/// This instance's side of the feed.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) hub: Arc<Hub>,
    db: Db,
    announce: mpsc::UnboundedSender<String>,
    /// Asks the resync task for a pass now (the listener reconnected).
    resync_now: Arc<Notify>,
}

impl Feed {
    /// The feed and its two tasks (announcing, resyncing), which run until
    /// `shutdown` changes. `db` serves re-reads; `announce_db` (its own
    /// connection, commits not waiting for the WAL flush: a lost announcement
    /// costs one resync interval, never data) the announcements.
    pub(crate) fn start(
        db: Db,
        announce_db: Db,
        shutdown: watch::Receiver<()>,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let (announce, queued) = mpsc::unbounded_channel();
        let feed = Arc::new(Self {
            hub: Arc::new(Hub::default()),
            db: db.clone(),
            announce,
            resync_now: Arc::new(Notify::new()),
        });
        let tasks = vec![
            tokio::spawn(announce_all(announce_db, queued, shutdown.clone())),
            tokio::spawn(resync_periodically(Arc::clone(&feed), shutdown)),
        ];
        (feed, tasks)
    }

    /// Call after committing `update`, this instance's change.
    pub(crate) fn committed(self: &Arc<Self>, update: TxUpdate) {
        let id = update.state.merchant_transaction_id;
        let sequence = update.sequence;
        // The receiver lives as long as the store's tasks; once they stopped
        // there is nobody left to tell.
        let _ = self.announce.send(format!("{id} {sequence}"));
        match self.hub.newest(id) {
            None => {}
            // The next one: nothing can be missing in between.
            Some(newest) if newest + 1 == sequence => self.hub.publish(update),
            // A gap (this topic has published nothing yet, or a concurrent
            // change's publication is still on its way): re-read, so the
            // changes go out complete and in order.
            Some(_) => self.reread(id),
        }
    }

    /// A payload received on [`CHANNEL`].
    pub(crate) fn notified(self: &Arc<Self>, payload: &str) {
        let Some((id, sequence)) = parse_announcement(payload) else {
            tracing::debug!("ignoring a malformed status announcement");
            return;
        };
        if self.hub.is_behind(id, sequence) {
            self.reread(id);
        }
    }

    /// The listener (re)connected: announcements may have been missed.
    pub(crate) fn listening(&self) {
        self.resync_now.notify_one();
    }

    fn reread(self: &Arc<Self>, id: Uuid) {
        let feed = Arc::clone(self);
        tokio::spawn(async move {
            match feed.changes(id).await {
                Ok(updates) => feed.hub.catch_up(id, updates),
                Err(error) => {
                    // The periodic resync tries again.
                    tracing::debug!(%error, "re-reading a followed transaction failed");
                }
            }
        });
    }

    async fn changes(&self, id: Uuid) -> Result<Vec<TxUpdate>, StoreError> {
        let changes = crate::sessions::status_events(&self.db, id).await?;
        Ok(TxUpdate::of_changes(changes).collect())
    }

    /// One pass over every followed transaction: those whose change count
    /// moved past what went out are re-read.
    async fn resync(self: &Arc<Self>) -> Result<(), StoreError> {
        let followed = self.hub.followed();
        for chunk in followed.chunks(RESYNC_BATCH) {
            let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
            let counts = self
                .db
                .run(async |client| {
                    let statement = client
                        .prepare_cached(
                            "SELECT merchant_transaction_id, count(*) AS changes FROM outbox \
                             WHERE merchant_transaction_id = ANY($1) \
                             GROUP BY merchant_transaction_id",
                        )
                        .await?;
                    let rows = client.query(&statement, &[&ids]).await?;
                    rows.iter()
                        .map(|row| {
                            Ok((
                                row.try_get::<_, Uuid>("merchant_transaction_id")?,
                                row.try_get::<_, i64>("changes")?,
                            ))
                        })
                        .collect::<Result<HashMap<_, _>, crate::error::Fault>>()
                })
                .await?;
            for (id, _) in chunk {
                let changes = counts
                    .get(id)
                    .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX));
                let newest = match changes {
                    0 => 1,
                    n => session_core::live::sequence_of_change(n - 1),
                };
                if !self.hub.is_behind(*id, newest) {
                    continue;
                }
                if changes == 0 {
                    // Still as created: nothing to send, nothing to re-read
                    // on the next pass.
                    self.hub.seen(*id, newest);
                } else {
                    self.reread(*id);
                }
            }
        }
        Ok(())
    }
}

/// `<uuid> <sequence>`, as [`Feed::committed`] writes it.
fn parse_announcement(payload: &str) -> Option<(Uuid, u64)> {
    let (id, sequence) = payload.split_once(' ')?;
    Some((Uuid::try_parse(id).ok()?, sequence.parse().ok()?))
}

async fn announce_all(
    db: Db,
    mut queued: mpsc::UnboundedReceiver<String>,
    mut shutdown: watch::Receiver<()>,
) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            count = queued.recv_many(&mut batch, NOTIFY_BATCH) => if count == 0 { return },
            _ = shutdown.changed() => return,
        }
        tokio::time::sleep(ANNOUNCE_WINDOW).await;
        while batch.len() < NOTIFY_BATCH {
            match queued.try_recv() {
                Ok(payload) => batch.push(payload),
                Err(_) => break,
            }
        }
        let payloads = std::mem::take(&mut batch);
        let sent = db
            .run(async |client| {
                let statement = client
                    .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .await?;
                client.execute(&statement, &[&CHANNEL, &payloads]).await?;
                Ok(())
            })
            .await;
        if let Err(error) = sent {
            // Other instances' resync is the safety net.
            tracing::debug!(%error, "NOTIFY session_status not sent; other instances will resync");
        }
    }
}

async fn resync_periodically(feed: Arc<Feed>, mut shutdown: watch::Receiver<()>) {
    let mut tick = tokio::time::interval(RESYNC_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = feed.resync_now.notified() => {}
            _ = shutdown.changed() => return,
        }
        if feed.hub.is_empty() {
            continue;
        }
        if let Err(error) = feed.resync().await {
            tracing::warn!(%error, "live status resync failed; trying again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_junk_is_refused() {
        let id = Uuid::new_v4();
        assert_eq!(parse_announcement(&format!("{id} 3")), Some((id, 3)));
        for junk in [
            "",
            "x 1",
            &format!("{id}"),
            &format!("{id} -1"),
            &format!("{id} 1 2"),
        ] {
            assert_eq!(parse_announcement(junk), None, "{junk:?}");
        }
    }
}
