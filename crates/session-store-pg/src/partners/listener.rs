//! The background task that keeps the snapshot fresh: `LISTEN session_partners`
//! on a dedicated connection (which also listens on `session_outbox`, for the
//! webhook dispatcher, and `session_status`, for live subscribers, so an
//! instance holds one listening connection), a reload per burst of notifications from other
//! instances, a periodic reload as a safety net, and reconnection with capped
//! exponential backoff when the connection is lost.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::directory::Directory;
use super::sql::CHANNEL;
use crate::feed::{CHANNEL as STATUS_CHANNEL, Feed};
use crate::webhooks::CHANNEL as OUTBOX_CHANNEL;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Starts the task. It ends when `shutdown` changes or its sender is dropped.
pub(crate) fn spawn(
    directory: Arc<Directory>,
    outbox_wake: Arc<Notify>,
    feed: Arc<Feed>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    reload_interval: Duration,
    shutdown: watch::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(run(
        directory,
        outbox_wake,
        feed,
        config,
        tls,
        reload_interval,
        shutdown,
    ))
}

/// Why a listening session ended.
enum Ended {
    Shutdown,
    Lost { listened: bool, why: String },
}

async fn run(
    directory: Arc<Directory>,
    outbox_wake: Arc<Notify>,
    feed: Arc<Feed>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    reload_interval: Duration,
    mut shutdown: watch::Receiver<()>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        match listen(
            &directory,
            &outbox_wake,
            &feed,
            &config,
            &tls,
            reload_interval,
            &mut shutdown,
        )
        .await
        {
            Ended::Shutdown => return,
            Ended::Lost { listened, why } => {
                if listened {
                    retry = FIRST_RETRY;
                }
                tracing::warn!(
                    why,
                    retry_in_ms = retry.as_millis(),
                    "partner change listener lost its connection"
                );
            }
        }
        // Back off so a database that is down costs one attempt per interval,
        // never a busy loop.
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = shutdown.changed() => return,
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One connection's life: connect, LISTEN, reload (changes may have been
/// missed while not listening), then serve notifications until it breaks.
async fn listen(
    directory: &Directory,
    outbox_wake: &Notify,
    feed: &Arc<Feed>,
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    reload_interval: Duration,
    shutdown: &mut watch::Receiver<()>,
) -> Ended {
    let connect = tokio::select! {
        connected = config.connect(tls.clone()) => connected,
        _ = shutdown.changed() => return Ended::Shutdown,
    };
    let (client, mut connection) = match connect {
        Ok(pair) => pair,
        Err(error) => {
            return Ended::Lost {
                listened: false,
                why: crate::error::translate(&error).to_string(),
            };
        }
    };
    // The connection object delivers notifications; it must be polled for the
    // client's own queries to progress too, so it runs beside the work below.
    let (notified, mut notifications) = mpsc::unbounded_channel::<String>();
    let driver = async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) if note.channel() == OUTBOX_CHANNEL => {
                    outbox_wake.notify_one();
                }
                Some(Ok(AsyncMessage::Notification(note))) if note.channel() == STATUS_CHANNEL => {
                    feed.notified(note.payload());
                }
                Some(Ok(AsyncMessage::Notification(note))) => {
                    // The receiver lives as long as this future's sibling.
                    let _ = notified.send(note.payload().to_owned());
                }
                Some(Ok(_notice)) => {}
                Some(Err(error)) => return crate::error::translate(&error).to_string(),
                None => return "connection closed".to_owned(),
            }
        }
    };
    // Set once LISTEN succeeded: a connection lost after that resets the backoff.
    let listened = AtomicBool::new(false);
    let work = async {
        let listen = format!("LISTEN {CHANNEL}; LISTEN {OUTBOX_CHANNEL}; LISTEN {STATUS_CHANNEL}");
        if let Err(error) = client.batch_execute(&listen).await {
            return Ended::Lost {
                listened: false,
                why: crate::error::translate(&error).to_string(),
            };
        }
        listened.store(true, Ordering::Relaxed);
        // Deliveries committed while nobody listened are due now, and live
        // subscribers may have missed changes.
        outbox_wake.notify_one();
        feed.listening();
        reload(directory, "listening").await;
        let mut tick = tokio::time::interval_at(Instant::now() + reload_interval, reload_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(payload) = notifications.recv() => {
                    // One reload covers every notification queued so far.
                    let mut foreign = !directory.is_own(&payload);
                    while let Ok(payload) = notifications.try_recv() {
                        foreign |= !directory.is_own(&payload);
                    }
                    if foreign {
                        reload(directory, "notified").await;
                    }
                }
                () = directory.wake.notified() => reload(directory, "token found in database").await,
                _ = tick.tick() => reload(directory, "periodic").await,
                _ = shutdown.changed() => return Ended::Shutdown,
            }
        }
    };
    tokio::select! {
        why = driver => Ended::Lost { listened: listened.load(Ordering::Relaxed), why },
        ended = work => ended,
    }
}

async fn reload(directory: &Directory, reason: &str) {
    if let Err(error) = directory.reload().await {
        tracing::warn!(reason, %error, "partner snapshot reload failed");
    }
}
