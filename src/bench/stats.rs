//! What one connection measures inside the timed window: [`LoadStats`], an HDR latency histogram
//! (microseconds) plus outcome counters, kept per connection task and merged at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use http::StatusCode;

/// Largest latency the histogram tracks exactly (one hour, in microseconds); longer ones saturate.
const HIGHEST_TRACKABLE_MICROS: u64 = 3_600_000_000;

/// Significant decimal digits of the histogram.
const SIGNIFICANT_DIGITS: u8 = 3;

/// What one connection (or, merged, the whole run) measured inside the timed window.
#[derive(Debug, Clone)]
pub struct LoadStats {
    latency_micros: Histogram<u64>,
    /// 2xx responses.
    pub ok: u64,
    /// Responses with any other status.
    pub http_errors: u64,
    /// Failed connects, broken connections and timeouts.
    pub transport_errors: u64,
    /// The timeouts among the transport errors.
    pub timeouts: u64,
    /// Count per non-2xx status.
    pub error_statuses: BTreeMap<u16, u64>,
    /// The first transport error seen, to show what went wrong.
    pub first_transport_error: Option<String>,
}

impl LoadStats {
    /// Empty stats.
    pub fn new() -> anyhow::Result<Self> {
        let latency_micros = Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_DIGITS)
            .context("cannot create the latency histogram")?;
        Ok(Self {
            latency_micros,
            ok: 0,
            http_errors: 0,
            transport_errors: 0,
            timeouts: 0,
            error_statuses: BTreeMap::new(),
            first_transport_error: None,
        })
    }

    /// Records a response (any status) and its latency.
    pub fn record_response(&mut self, status: StatusCode, latency: Duration) {
        self.record_judged_response(status, status.is_success(), latency);
    }

    /// Records a response whose success the caller judged (`accepted`), e.g. a 207 that is an error.
    pub fn record_judged_response(&mut self, status: StatusCode, accepted: bool, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_micros.saturating_record(micros);
        if accepted {
            self.ok += 1;
        } else {
            self.http_errors += 1;
            *self.error_statuses.entry(status.as_u16()).or_default() += 1;
        }
    }

    /// Records a request that got no response.
    pub fn record_transport_error(&mut self, error: &dyn fmt::Display, timed_out: bool) {
        self.transport_errors += 1;
        if timed_out {
            self.timeouts += 1;
        }
        if self.first_transport_error.is_none() {
            self.first_transport_error = Some(format!("{error:#}"));
        }
    }

    /// Adds another connection's stats to these.
    pub fn merge(&mut self, other: &LoadStats) -> anyhow::Result<()> {
        self.latency_micros.add(&other.latency_micros).context("cannot merge latency histograms")?;
        self.ok += other.ok;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        for (status, count) in &other.error_statuses {
            *self.error_statuses.entry(*status).or_default() += count;
        }
        if self.first_transport_error.is_none() {
            self.first_transport_error.clone_from(&other.first_transport_error);
        }
        Ok(())
    }

    /// The latency percentiles.
    pub fn latency(&self) -> LatencySummary {
        let histogram = &self.latency_micros;
        LatencySummary {
            p50_micros: histogram.value_at_quantile(0.50),
            p90_micros: histogram.value_at_quantile(0.90),
            p99_micros: histogram.value_at_quantile(0.99),
            max_micros: histogram.max(),
        }
    }
}

/// Latency percentiles in microseconds (0 when nothing was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Median.
    pub p50_micros: u64,
    /// 90th percentile.
    pub p90_micros: u64,
    /// 99th percentile.
    pub p99_micros: u64,
    /// Slowest.
    pub max_micros: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn stats_with(latencies_micros: &[u64], status: StatusCode) -> LoadStats {
        let mut stats = LoadStats::new().unwrap();
        for micros in latencies_micros {
            stats.record_response(status, Duration::from_micros(*micros));
        }
        stats
    }
    #[test]
    fn merging_adds_counts_and_latencies() {
        let mut total = stats_with(&[100, 200, 300], StatusCode::OK);
        let mut other = stats_with(&[10_000], StatusCode::NOT_FOUND);
        other.record_transport_error(&"connection reset", false);
        other.record_transport_error(&"timed out", true);
        total.merge(&other).unwrap();
        assert_eq!((total.ok, total.http_errors, total.transport_errors, total.timeouts), (3, 1, 2, 1));
        assert_eq!(total.error_statuses.get(&404), Some(&1));
        assert_eq!(total.first_transport_error.as_deref(), Some("connection reset"));
        let latency = total.latency();
        assert_eq!(latency.p50_micros, 200);
        assert!((9_990..=10_010).contains(&latency.max_micros));
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let latencies: Vec<u64> = (1..=1000).collect();
        let latency = stats_with(&latencies, StatusCode::OK).latency();
        assert_eq!(latency.p50_micros, 500);
        assert_eq!(latency.p90_micros, 900);
        assert_eq!(latency.p99_micros, 990);
        assert_eq!(latency.max_micros, 1000);
    }
}
