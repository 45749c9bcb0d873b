//! `GET /metrics`: the registry of every collector this process has.

use std::sync::Arc;
use std::time::Duration;

use session_core::ports::WebhookOutbox;
use session_http::{HttpCollector, HttpMetrics};
use session_metrics::ProcessCollector;
use session_metrics::prometheus_client::collector::Collector;
use session_metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use session_metrics::prometheus_client::metrics::MetricType;
use session_metrics::prometheus_client::metrics::gauge::ConstGauge;
use session_metrics::prometheus_client::registry::Registry;
use session_store_pg::PgStore;
use session_webhooks::WebhookMetrics;

/// How often the pending webhook deliveries are counted in the store.
const PENDING_REFRESH: Duration = Duration::from_secs(15);

/// The registry `GET /metrics` encodes. Starts the task that keeps the
/// pending-deliveries gauge fresh.
pub fn registry(
    http: Arc<HttpMetrics>,
    webhooks: Arc<WebhookMetrics>,
    outbox: Arc<dyn WebhookOutbox>,
    pool: Option<Arc<PgStore>>,
) -> Registry {
    tokio::spawn(Arc::clone(&webhooks).refresh_pending(outbox, PENDING_REFRESH));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HttpCollector(http)));
    registry.register_collector(Box::new(webhooks));
    if let Some(store) = pool {
        registry.register_collector(Box::new(PoolCollector(store)));
    }
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// The PostgreSQL pools' connections, read at scrape time.
#[derive(Debug)]
struct PoolCollector(Arc<PgStore>);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (idle, busy) = self.0.pool_connections();
        let mut family = encoder.encode_descriptor(
            "session_store_pool_connections",
            "PostgreSQL connections of this instance's pools, by state.",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("idle", idle), ("busy", busy)] {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            ConstGauge::new(n).encode(family.encode_family(&[("state", state)])?)?;
        }
        Ok(())
    }
}
