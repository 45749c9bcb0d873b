//! Metrics of the widget session service (SPEC.md §6, *Metrics*).
//!
//! Recording happens on the hot path, so every cell here is a plain atomic:
//! a counter is one `AtomicU64`, a histogram one `AtomicU64` per bucket plus
//! the sum. No recording takes a lock shared by all requests (a per-partner
//! counter takes the read lock of one map shard, and only on the partner's
//! first use its write lock). The cells are exposed at scrape time by
//! [`prometheus_client`] collectors, which encode OpenMetrics text;
//! [`exposition`] turns that into the Prometheus text format for scrapers
//! that do not ask for OpenMetrics.

mod cells;
pub mod exposition;
mod process;

pub use cells::{Counter, CounterMap, Histogram, encode_histogram};
pub use process::ProcessCollector;
pub use prometheus_client;

/// Bucket bounds for request durations, in seconds: 0.5 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds for webhook delivery lag, in seconds: 5 ms to 6 h (retries
/// back off for hours).
pub const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0,
];
