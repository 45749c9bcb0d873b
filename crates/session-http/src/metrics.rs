//! What the public listener records for `GET /metrics` (SPEC.md §6): request
//! durations per route template, method and status, and the domain
//! counters it sees answered. Every cell is an atomic from
//! `session-metrics`; labels come from fixed lists (route templates,
//! methods, statuses, outcomes) or from partner ids, never from a request's
//! own values.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use session_core::{ErrorKind, EventReport};
use session_metrics::{Counter, CounterMap, DURATION_BUCKETS, Histogram, encode_histogram};

use crate::live::LiveSockets;
use crate::router;

const METHODS: [&str; 5] = ["GET", "POST", "OPTIONS", "HEAD", "other"];

/// Statuses the public listener answers with; anything else is `other`.
const STATUSES: [u16; 19] = [
    101, 200, 204, 400, 401, 403, 404, 405, 408, 409, 410, 413, 415, 429, 431, 500, 502, 503, 504,
];

/// `session_redemptions_total` outcomes, in this order.
const REDEMPTION_OUTCOMES: [&str; 5] = [
    "ok",
    "already_used",
    "expired",
    "invalid_signature",
    "invalid_token",
];

/// `session_provider_events_total` outcomes, in this order.
const EVENT_OUTCOMES: [&str; 4] = ["applied", "ignored", "duplicate", "rejected"];

/// The public listener's metrics. Shared by the handler (recording) and the
/// admin listener's collector (reading).
#[derive(Debug)]
pub struct HttpMetrics {
    /// `[template][method][status]`, flattened.
    requests: Box<[Histogram]>,
    created: CounterMap,
    rate_limited: CounterMap,
    redemptions: [Counter; 5],
    provider_events: [Counter; 4],
    live: Arc<LiveSockets>,
    /// Off: nothing is recorded (to measure what recording costs).
    recording: bool,
}

impl HttpMetrics {
    pub(crate) fn new(live: Arc<LiveSockets>, recording: bool) -> Self {
        let series = router::TEMPLATES.len() * METHODS.len() * (STATUSES.len() + 1);
        Self {
            requests: (0..series)
                .map(|_| Histogram::new(DURATION_BUCKETS))
                .collect(),
            created: CounterMap::default(),
            rate_limited: CounterMap::default(),
            redemptions: Default::default(),
            provider_events: Default::default(),
            live,
            recording,
        }
    }

    fn index(template: usize, method: usize, status: usize) -> usize {
        (template * METHODS.len() + method) * (STATUSES.len() + 1) + status
    }

    /// One answered request.
    pub(crate) fn request(
        &self,
        template: usize,
        method: &http::Method,
        status: u16,
        took: Duration,
    ) {
        if !self.recording {
            return;
        }
        let method = METHODS
            .iter()
            .position(|m| *m == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        let status = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        if let Some(cell) = self.requests.get(Self::index(template, method, status)) {
            cell.observe(took);
        }
    }

    pub(crate) fn session_created(&self, partner: &str) {
        if self.recording {
            self.created.inc(partner);
        }
    }

    pub(crate) fn rate_limited(&self, partner: &str) {
        if self.recording {
            self.rate_limited.inc(partner);
        }
    }

    /// A `POST /widget/init` answer: counted when it is one of the outcomes
    /// the spec names (a malformed body is none of them).
    pub(crate) fn redemption(&self, refusal: Option<ErrorKind>) {
        let outcome = match refusal {
            None => 0,
            Some(ErrorKind::SessionAlreadyUsed) => 1,
            Some(ErrorKind::SessionExpired) => 2,
            Some(ErrorKind::InvalidSignature) => 3,
            Some(ErrorKind::InvalidInitToken) => 4,
            Some(_) => return,
        };
        if self.recording {
            self.redemptions[outcome].inc();
        }
    }

    /// A `POST /provider/events` answer: the report, or `None` when the event
    /// was refused.
    pub(crate) fn provider_event(&self, report: Option<&EventReport>) {
        let outcome = match report {
            Some(report) if report.duplicate => 2,
            Some(report) if report.applied => 0,
            Some(_) => 1,
            None => 3,
        };
        if self.recording {
            self.provider_events[outcome].inc();
        }
    }
}

/// Reads [`HttpMetrics`] at scrape time.
#[derive(Debug)]
pub struct HttpCollector(pub Arc<HttpMetrics>);

impl Collector for HttpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let mut requests = encoder.encode_descriptor(
            "http_server_request_duration_seconds",
            "Time to answer a public API request, by route template, method and status.",
            None,
            MetricType::Histogram,
        )?;
        for (t, template) in router::TEMPLATES.iter().enumerate() {
            for (k, method) in METHODS.iter().enumerate() {
                for s in 0..=STATUSES.len() {
                    let Some(cell) = m.requests.get(HttpMetrics::index(t, k, s)) else {
                        continue;
                    };
                    if cell.count() == 0 {
                        continue;
                    }
                    let status = STATUSES
                        .get(s)
                        .map_or_else(|| "other".to_owned(), u16::to_string);
                    let labels = [
                        ("route", *template),
                        ("method", *method),
                        ("status", status.as_str()),
                    ];
                    encode_histogram(&mut requests, &labels, cell)?;
                }
            }
        }
        m.created.encode(
            "partner",
            encoder.encode_descriptor(
                "session_created",
                "Sessions created, by partner.",
                None,
                MetricType::Counter,
            )?,
        )?;
        let mut redemptions = encoder.encode_descriptor(
            "session_redemptions",
            "init_token redemptions, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, counter) in REDEMPTION_OUTCOMES.iter().zip(&m.redemptions) {
            counter.encode(redemptions.encode_family(&[("outcome", *outcome)])?)?;
        }
        let mut events = encoder.encode_descriptor(
            "session_provider_events",
            "Provider events received, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, counter) in EVENT_OUTCOMES.iter().zip(&m.provider_events) {
            counter.encode(events.encode_family(&[("outcome", *outcome)])?)?;
        }
        m.rate_limited.encode(
            "partner",
            encoder.encode_descriptor(
                "session_rate_limited",
                "Partner API requests refused with 429, by partner.",
                None,
                MetricType::Counter,
            )?,
        )?;
        let open = i64::try_from(m.live.open()).unwrap_or(i64::MAX);
        prometheus_client::encoding::EncodeMetric::encode(
            &prometheus_client::metrics::gauge::ConstGauge::new(open),
            encoder.encode_descriptor(
                "session_ws_connections",
                "Open GET /ws WebSockets on this instance.",
                None,
                MetricType::Gauge,
            )?,
        )?;
        Ok(())
    }
}
