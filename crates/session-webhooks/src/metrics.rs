//! What the dispatcher records for `GET /metrics`: attempts by outcome, the
//! lag from an event's commit to its delivery, and the pending deliveries
//! (refreshed from the store, which is where they are counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use session_core::ports::WebhookOutbox;
use session_metrics::{Counter, Histogram, LAG_BUCKETS};

/// An attempt's outcome, the `outcome` label of
/// `session_webhook_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It answered otherwise or could not be reached; a retry is scheduled.
    Failed,
    /// It was not sent: no webhook configured, or its address is not allowed.
    Refused,
    /// It failed for the last time (retries exhausted); an operator may
    /// requeue it.
    Abandoned,
}

const OUTCOMES: [&str; 4] = ["delivered", "failed", "refused", "abandoned"];

#[derive(Debug)]
pub struct WebhookMetrics {
    attempts: [Counter; 4],
    lag: Histogram,
    /// -1 until the first refresh.
    pending: AtomicI64,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            attempts: Default::default(),
            lag: Histogram::new(LAG_BUCKETS),
            pending: AtomicI64::new(-1),
        }
    }
}

impl WebhookMetrics {
    pub(crate) fn attempt(&self, outcome: AttemptOutcome) {
        self.attempts[outcome as usize].inc();
    }

    /// A delivery that reached its endpoint `lag` after its event committed.
    pub(crate) fn delivered_after(&self, lag: Duration) {
        self.lag.observe(lag);
    }

    /// Re-reads the pending deliveries every `every` (forever; spawn it).
    pub async fn refresh_pending(self: Arc<Self>, outbox: Arc<dyn WebhookOutbox>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match outbox.pending_deliveries().await {
                Ok(n) => self
                    .pending
                    .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed),
                Err(error) => tracing::debug!(%error, "pending webhook count not read"),
            }
        }
    }
}

impl Collector for WebhookMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut attempts = encoder.encode_descriptor(
            "session_webhook_attempts",
            "Webhook delivery attempts, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, counter) in OUTCOMES.iter().zip(&self.attempts) {
            counter.encode(attempts.encode_family(&[("outcome", *outcome)])?)?;
        }
        self.lag.encode(encoder.encode_descriptor(
            "session_webhook_delivery_lag_seconds",
            "From an event's commit to its webhook's 2xx.",
            None,
            MetricType::Histogram,
        )?)?;
        let pending = self.pending.load(Ordering::Relaxed);
        if pending >= 0 {
            ConstGauge::new(pending).encode(encoder.encode_descriptor(
                "session_webhook_pending",
                "Webhook deliveries not yet delivered and not given up on (all instances).",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}
