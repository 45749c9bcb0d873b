//! Deletes expired idempotency answers in the background, in bounded batches,
//! so the table (or the in-memory map) holds about one TTL of keys.

use std::sync::Arc;
use std::time::Duration;

use session_core::ports::IdempotencyStore;
use session_core::time::Clock;

/// How often the reaper looks for expired answers.
const INTERVAL: Duration = Duration::from_secs(60);

/// Answers deleted per statement: each batch is a short transaction, so the
/// reaper never holds locks or a snapshot long enough to slow the hot path.
const BATCH: usize = 1_000;

/// Runs for the life of the process (a batch cut short at exit rolls back).
/// Every instance runs one; on a shared database they delete the same
/// expired rows, which is harmless.
pub async fn run(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>, ttl: Duration) {
    let ttl_seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let cutoff = clock.now().plus_seconds(-ttl_seconds);
        let mut reaped = 0;
        loop {
            match store.reap_idempotency_keys(cutoff, BATCH).await {
                Ok(n) => {
                    reaped += n;
                    if n < BATCH {
                        break;
                    }
                    // Let requests have the store between batches.
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "reaping expired idempotency keys failed; retrying later");
                    break;
                }
            }
        }
        if reaped > 0 {
            tracing::debug!(reaped, "expired idempotency keys deleted");
        }
    }
}
