//! Lock-free metric cells.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use prometheus_client::encoding::{EncodeLabelSet, MetricEncoder, NoLabelSet};

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Encodes the count as one counter sample.
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, u64, u64>(&self.get(), None)
    }
}

/// Counters keyed by a label value from a bounded set the service does not
/// know in advance (partner ids: as many as the operator configured).
#[derive(Debug, Default)]
pub struct CounterMap(DashMap<String, Counter>);

impl CounterMap {
    pub fn inc(&self, key: &str) {
        if let Some(counter) = self.0.get(key) {
            counter.inc();
            return;
        }
        self.0.entry(key.to_owned()).or_default().inc();
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).map_or(0, |counter| counter.get())
    }

    /// Encodes one sample per key, labelled `label="<key>"`, in key order.
    pub fn encode(
        &self,
        label: &str,
        mut encoder: MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut entries: Vec<(String, u64)> = self
            .0
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().get()))
            .collect();
        entries.sort();
        for (key, value) in entries {
            let labels = [(label, key.as_str())];
            encoder
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
        }
        Ok(())
    }
}

/// A histogram with fixed bucket bounds. The sum is kept in nanoseconds, an
/// integer, so it is one `fetch_add` too.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then the `+Inf` bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(cell) = self.buckets.get(bucket) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far (the sum of the buckets, so a scrape is always
    /// consistent with its own buckets).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Sum, count and the non-cumulative buckets (`f64::MAX` for `+Inf`, as
    /// the encoder expects).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

impl Histogram {
    /// Encodes the histogram as its family's only, unlabelled series.
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Encodes `histogram` as one series labelled with `labels`.
pub fn encode_histogram(
    encoder: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    histogram: &Histogram,
) -> Result<(), std::fmt::Error> {
    let (sum, count, buckets) = histogram.snapshot();
    encoder
        .encode_family(labels)?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(3));
        let (sum, count, buckets) = histogram.snapshot();
        assert_eq!(count, 4);
        assert_eq!(buckets, vec![(0.001, 2), (0.01, 1), (f64::MAX, 1)]);
        assert!((sum - 3.0065).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn counter_maps_count_per_key() {
        let map = CounterMap::default();
        map.inc("acme");
        map.inc("acme");
        map.inc("beta");
        assert_eq!(
            (map.get("acme"), map.get("beta"), map.get("none")),
            (2, 1, 0)
        );
    }
}
