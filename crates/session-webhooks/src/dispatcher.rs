//! The dispatcher: one per instance. It claims due deliveries from the outbox
//! (woken by the commit of a new one, polling only as a safety net), sends
//! each to its partner's endpoint with bounded concurrency in total and per
//! partner, records every attempt, and schedules retries with the core's
//! policy. Several instances share one outbox: claims are leased, so without
//! crashes no delivery is sent twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use session_core::partner::PartnerId;
use session_core::ports::{
    AttemptNext, AttemptRecord, ClaimLimits, Delivery, DeliveryKey, PartnerDirectory, WebhookOutbox,
};
use session_core::random::Random;
use session_core::time::{Clock, Timestamp};
use session_core::webhook::retry::jitter_permille;
use session_core::webhook::{Attempt, NextStep, RetryPolicy};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::client::{SendError, WebhookClient};
use crate::metrics::{AttemptOutcome, WebhookMetrics};

/// Why an attempt was not sent, as far as its metric cares.
#[derive(Debug, Clone, Copy)]
enum SendErrorKind {
    Refused,
    Other,
}
use crate::payload;

/// How the dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub policy: RetryPolicy,
    /// Attempts in flight at once, in total.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one partner.
    pub max_per_partner: usize,
    /// How often the outbox is read without a wake-up (the safety net).
    pub poll_interval: Duration,
    /// The per-attempt deadline; claims are leased for a margin beyond it.
    pub timeout: Duration,
    /// How long shutdown waits for attempts in flight before releasing them.
    pub drain: Duration,
}

/// The outbox, the partners and the client a dispatcher works with.
pub struct Dispatcher {
    outbox: Arc<dyn WebhookOutbox>,
    partners: Arc<dyn PartnerDirectory>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    client: WebhookClient,
    config: DispatcherConfig,
    metrics: Arc<WebhookMetrics>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Attempts in flight per partner, to tell the store which partners are busy.
#[derive(Default)]
struct InFlight(Mutex<HashMap<PartnerId, usize>>);

impl InFlight {
    fn add(&self, partner: &PartnerId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(partner.clone()).or_default() += 1;
    }

    fn done(&self, partner: &PartnerId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(partner) {
            *n -= 1;
            if *n == 0 {
                map.remove(partner);
            }
        }
    }

    fn counts(&self) -> Vec<(PartnerId, usize)> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(p, n)| (p.clone(), *n)).collect()
    }
}

impl Dispatcher {
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        partners: Arc<dyn PartnerDirectory>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        client: WebhookClient,
        config: DispatcherConfig,
    ) -> Self {
        Self {
            outbox,
            partners,
            clock,
            random,
            client,
            config,
            metrics: Arc::default(),
        }
    }

    /// What this dispatcher records, for `GET /metrics`.
    pub fn metrics(&self) -> Arc<WebhookMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until `shutdown` completes, then lets attempts in flight finish
    /// (for at most `drain`) and releases the claims of those that did not.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.config.max_in_flight.max(1)));
        let in_flight = Arc::new(InFlight::default());
        let finished = Arc::new(Notify::new());
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut claims: HashMap<tokio::task::Id, DeliveryKey> = HashMap::new();
        tokio::pin!(shutdown);
        loop {
            while let Some(done) = tasks.try_join_next_with_id() {
                if let Ok((id, ())) = done {
                    claims.remove(&id);
                }
            }
            let room = slots.available_permits();
            let mut claimed = 0;
            if room > 0 {
                let now = this.clock.now();
                let lease = this.lease_until(now);
                let counts = in_flight.counts();
                let limits = ClaimLimits {
                    total: room,
                    per_partner: this.config.max_per_partner.max(1),
                    in_flight: &counts,
                };
                match this.outbox.claim_due(now, lease, &limits).await {
                    Ok(deliveries) => {
                        claimed = deliveries.len();
                        for delivery in deliveries {
                            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                                // Cannot happen (room was counted); the claim's
                                // lease returns it to the queue if it does.
                                break;
                            };
                            in_flight.add(&delivery.event.partner_id);
                            let (this, in_flight, finished) = (
                                Arc::clone(&this),
                                Arc::clone(&in_flight),
                                Arc::clone(&finished),
                            );
                            let key = delivery.key();
                            let handle = tasks.spawn(async move {
                                let partner = delivery.event.partner_id.clone();
                                this.attempt(delivery).await;
                                in_flight.done(&partner);
                                drop(permit);
                                finished.notify_one();
                            });
                            claims.insert(handle.id(), key);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "webhook outbox claim failed; retrying after the poll interval");
                    }
                }
            }
            // A claim takes at most one partner's bound: while claims find
            // work and there is room, go again at once.
            if claimed > 0 && claimed < room {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = this.outbox.woken() => {}
                () = finished.notified() => {}
                () = tokio::time::sleep(this.config.poll_interval) => {}
            }
        }
        let drained = tokio::time::timeout(this.config.drain, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let unfinished: Vec<DeliveryKey> = claims.values().copied().collect();
            tasks.abort_all();
            if let Err(error) = this.outbox.release(&unfinished).await {
                tracing::warn!(%error, "webhook claims not released; their leases will end");
            }
        }
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        // The attempt's deadline plus a margin for recording it: after a
        // crash, a claim is due again this soon.
        let lease = self.config.timeout + Duration::from_secs(5);
        Timestamp::from_unix_micros(
            now.unix_micros()
                .saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// One attempt at `delivery`, recorded.
    async fn attempt(&self, delivery: Delivery) {
        let started = Instant::now();
        let webhook_id = delivery.webhook_id();
        let partner = delivery.event.partner_id.clone();
        let attempt_number = delivery.attempts.saturating_add(1);
        let outcome = self.send(&delivery, &webhook_id).await;
        let now = self.clock.now();
        let mut outcome_kind = None;
        let (result, next) = match outcome {
            Ok(answer) if answer.status.is_success() => {
                (answer.status.as_u16().to_string(), AttemptNext::Delivered)
            }
            Ok(answer) => {
                let retry_after = matches!(answer.status.as_u16(), 429 | 503)
                    .then_some(answer.retry_after_seconds)
                    .flatten();
                (
                    answer.status.as_u16().to_string(),
                    self.after_failure(&delivery, attempt_number, retry_after, now),
                )
            }
            Err(error) => (
                {
                    outcome_kind = Some(match &error {
                        SendError::NoWebhook | SendError::Refused(_) => SendErrorKind::Refused,
                        _ => SendErrorKind::Other,
                    });
                    error.to_string()
                },
                match error {
                    // No partner webhook to send to: nothing to retry until an
                    // operator fixes the configuration and requeues it.
                    SendError::NoWebhook => AttemptNext::Failed,
                    _ => self.after_failure(&delivery, attempt_number, None, now),
                },
            ),
        };
        let refused = matches!(outcome_kind, Some(SendErrorKind::Refused));
        let recorded = match next {
            AttemptNext::Delivered => AttemptOutcome::Delivered,
            _ if refused => AttemptOutcome::Refused,
            AttemptNext::RetryAt(_) => AttemptOutcome::Failed,
            AttemptNext::Failed => AttemptOutcome::Abandoned,
        };
        self.metrics.attempt(recorded);
        if recorded == AttemptOutcome::Delivered {
            let lag = now
                .unix_micros()
                .saturating_sub(delivery.committed_at.unix_micros());
            self.metrics
                .delivered_after(Duration::from_micros(u64::try_from(lag).unwrap_or(0)));
        }
        let outcome = match recorded {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Abandoned => "abandoned",
        };
        tracing::info!(
            partner = %partner,
            webhook_id,
            attempt = attempt_number,
            outcome,
            result,
            duration_ms = started.elapsed().as_millis(),
            "webhook attempt"
        );
        let record = AttemptRecord {
            at: now,
            result,
            next,
        };
        if let Err(error) = self.outbox.record_attempt(delivery.key(), &record).await {
            // The claim's lease ends and the delivery is tried again: at least
            // once, never lost.
            tracing::warn!(webhook_id, %error, "webhook attempt not recorded");
        }
    }

    fn after_failure(
        &self,
        delivery: &Delivery,
        number: u32,
        retry_after_seconds: Option<u64>,
        now: Timestamp,
    ) -> AttemptNext {
        let attempt = Attempt {
            number,
            retry_after_seconds,
        };
        let jitter = jitter_permille(self.random.as_ref());
        match self
            .config
            .policy
            .after_failure(attempt, delivery.committed_at, now, jitter)
        {
            NextStep::RetryAt(at) => AttemptNext::RetryAt(at),
            NextStep::Abandon => AttemptNext::Failed,
        }
    }

    async fn send(
        &self,
        delivery: &Delivery,
        webhook_id: &str,
    ) -> Result<crate::client::Answer, SendError> {
        let partner = self
            .partners
            .find_partner(&delivery.event.partner_id)
            .await
            .map_err(|e| SendError::Unreachable(format!("partner look-up: {e}")))?;
        let Some(target) = partner.as_ref().and_then(|p| p.webhook.as_ref()) else {
            return Err(SendError::Refused(
                "no webhook is configured for the partner".into(),
            ));
        };
        let body = payload::body(&delivery.event);
        let now = self.clock.now();
        let timestamp = now.unix_seconds();
        let signature = target
            .keys
            .signature_header(webhook_id, timestamp, &body, now);
        let headers = [
            ("webhook-id", webhook_id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        self.client.post(&target.url, &headers, body).await
    }
}
