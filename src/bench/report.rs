//! Measurements and the final report: [`LoadStats`] (an HDR latency histogram plus outcome counters,
//! kept per connection and merged), and [`Report`], printed as text and optionally as one JSON line.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use http::StatusCode;
use serde_json::{json, Value};

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
        let latency_micros =
            Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_DIGITS)
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
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_micros.saturating_record(micros);
        if status.is_success() {
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
        self.latency_micros
            .add(&other.latency_micros)
            .context("cannot merge latency histograms")?;
        self.ok += other.ok;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        for (status, count) in &other.error_statuses {
            *self.error_statuses.entry(*status).or_default() += count;
        }
        if self.first_transport_error.is_none() {
            self.first_transport_error
                .clone_from(&other.first_transport_error);
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

/// The notification side of the `notify` scenario.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotificationFigures {
    /// `notifyContext` POSTs received after the subscription settled.
    pub posts: u64,
    /// Context elements in those POSTs.
    pub elements: u64,
    /// Elements received right after subscribing (current state of entities left by earlier runs).
    pub initial_elements: u64,
    /// Updates the broker acknowledged with 2xx since subscribing (preload, warmup, timed and late).
    pub updates_acknowledged: u64,
    /// Elements per second received during the timed window.
    pub elements_per_second: f64,
    /// Seconds waited after the load for notifications to drain.
    pub drain_seconds: f64,
    /// Notification bodies the sink could not read.
    pub malformed: u64,
}

impl NotificationFigures {
    /// Elements received per update acknowledged, in percent.
    pub fn delivery_percent(&self) -> f64 {
        if self.updates_acknowledged == 0 {
            return 0.0;
        }
        self.elements as f64 * 100.0 / self.updates_acknowledged as f64
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Connections used.
    pub connections: usize,
    /// Timed seconds.
    pub duration_seconds: u64,
    /// Untimed seconds before.
    pub warmup_seconds: u64,
    /// Entities preloaded (0 for `create`).
    pub entities: u64,
    /// What was measured in the timed window.
    pub stats: LoadStats,
    /// Set for the `notify` scenario.
    pub notifications: Option<NotificationFigures>,
}

impl Report {
    /// Successful requests per second over the timed window.
    pub fn requests_per_second(&self) -> f64 {
        self.stats.ok as f64 / self.duration_seconds.max(1) as f64
    }

    /// All errors, HTTP and transport.
    pub fn errors(&self) -> u64 {
        self.stats.http_errors + self.stats.transport_errors
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let stats = &self.stats;
        let latency = stats.latency();
        let mut text = format!(
            "scenario {}: {} connections, {} s timed after {} s warmup, {} entities\n",
            self.scenario,
            self.connections,
            self.duration_seconds,
            self.warmup_seconds,
            self.entities
        );
        let _ = writeln!(
            text,
            "  throughput   {:.1} requests/s (2xx)",
            self.requests_per_second()
        );
        let _ = writeln!(
            text,
            "  latency      p50 {}   p90 {}   p99 {}   max {}",
            format_micros(latency.p50_micros),
            format_micros(latency.p90_micros),
            format_micros(latency.p99_micros),
            format_micros(latency.max_micros)
        );
        let _ = writeln!(
            text,
            "  requests     {} ok, {} errors ({} http, {} transport of which {} timeouts)",
            stats.ok,
            self.errors(),
            stats.http_errors,
            stats.transport_errors,
            stats.timeouts
        );
        if !stats.error_statuses.is_empty() {
            let statuses: Vec<String> = stats
                .error_statuses
                .iter()
                .map(|(status, count)| format!("{status} × {count}"))
                .collect();
            let _ = writeln!(text, "  http errors  {}", statuses.join(", "));
        }
        if let Some(error) = &stats.first_transport_error {
            let _ = writeln!(text, "  first transport error: {error}");
        }
        if let Some(notified) = &self.notifications {
            let _ = writeln!(
                text,
                "  notified     {} elements in {} POSTs for {} updates acknowledged ({:.1}%)",
                notified.elements,
                notified.posts,
                notified.updates_acknowledged,
                notified.delivery_percent()
            );
            let _ = writeln!(
                text,
                "               {:.1} elements/s during the timed window, drained {:.1} s after the load",
                notified.elements_per_second, notified.drain_seconds
            );
            if notified.initial_elements > 0 || notified.malformed > 0 {
                let _ = writeln!(
                    text,
                    "               not counted above: {} initial elements on subscribing, {} malformed bodies",
                    notified.initial_elements, notified.malformed
                );
            }
        }
        text
    }

    /// The machine-readable figures (one JSON object).
    pub fn to_json(&self) -> Value {
        let latency = self.stats.latency();
        let mut figures = json!({
            "scenario": self.scenario,
            "connections": self.connections,
            "duration": self.duration_seconds,
            "warmup": self.warmup_seconds,
            "entities": self.entities,
            "rps": round_to_tenths(self.requests_per_second()),
            "p50_us": latency.p50_micros,
            "p90_us": latency.p90_micros,
            "p99_us": latency.p99_micros,
            "max_us": latency.max_micros,
            "ok": self.stats.ok,
            "errors": self.errors(),
            "http_errors": self.stats.http_errors,
            "transport_errors": self.stats.transport_errors,
            "timeouts": self.stats.timeouts,
        });
        if let (Some(notified), Some(object)) = (&self.notifications, figures.as_object_mut()) {
            object.insert("notification_posts".into(), json!(notified.posts));
            object.insert("notification_elements".into(), json!(notified.elements));
            object.insert(
                "notification_initial_elements".into(),
                json!(notified.initial_elements),
            );
            object.insert(
                "updates_acknowledged".into(),
                json!(notified.updates_acknowledged),
            );
            object.insert(
                "notifications_per_s".into(),
                json!(round_to_tenths(notified.elements_per_second)),
            );
            object.insert(
                "notification_drain_s".into(),
                json!(round_to_tenths(notified.drain_seconds)),
            );
            object.insert("notification_malformed".into(), json!(notified.malformed));
        }
        figures
    }
}

/// A latency for people: microseconds below 1 ms, else milliseconds.
fn format_micros(micros: u64) -> String {
    if micros < 1000 {
        format!("{micros} µs")
    } else {
        format!("{:.2} ms", micros as f64 / 1000.0)
    }
}

fn round_to_tenths(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with(latencies_micros: &[u64], status: StatusCode) -> LoadStats {
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
        assert_eq!(
            (
                total.ok,
                total.http_errors,
                total.transport_errors,
                total.timeouts
            ),
            (3, 1, 2, 1)
        );
        assert_eq!(total.error_statuses.get(&404), Some(&1));
        assert_eq!(
            total.first_transport_error.as_deref(),
            Some("connection reset")
        );
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

    fn report(notifications: Option<NotificationFigures>) -> Report {
        let mut stats = stats_with(&[800, 1500], StatusCode::OK);
        stats.record_response(StatusCode::INTERNAL_SERVER_ERROR, Duration::from_millis(2));
        Report {
            scenario: "update".into(),
            connections: 64,
            duration_seconds: 2,
            warmup_seconds: 1,
            entities: 1000,
            stats,
            notifications,
        }
    }

    #[test]
    fn text_report_shows_the_figures() {
        let text = report(None).to_text();
        assert!(text.starts_with(
            "scenario update: 64 connections, 2 s timed after 1 s warmup, 1000 entities\n"
        ));
        assert!(text.contains("throughput   1.0 requests/s (2xx)"), "{text}");
        assert!(text.contains("p50 800 µs"), "{text}");
        assert!(text.contains("max 2.00 ms"), "{text}");
        assert!(
            text.contains("2 ok, 1 errors (1 http, 0 transport"),
            "{text}"
        );
        assert!(text.contains("500 × 1"), "{text}");
        assert!(!text.contains("notified"));
    }

    #[test]
    fn json_report_has_the_machine_fields() {
        let notified = NotificationFigures {
            posts: 10,
            elements: 40,
            updates_acknowledged: 50,
            elements_per_second: 12.345,
            ..NotificationFigures::default()
        };
        let value = report(Some(notified.clone())).to_json();
        assert_eq!(value["scenario"], "update");
        assert_eq!(value["rps"], 1.0);
        assert_eq!(value["p50_us"], 800);
        assert_eq!(value["ok"], 2);
        assert_eq!(value["errors"], 1);
        assert_eq!(value["notification_elements"], 40);
        assert_eq!(value["notifications_per_s"], 12.3);
        assert!((notified.delivery_percent() - 80.0).abs() < 1e-9);
        let line = value.to_string();
        assert!(!line.contains('\n'));
        assert!(report(None).to_json().get("notification_posts").is_none());
        assert!(report(Some(notified))
            .to_text()
            .contains("40 elements in 10 POSTs for 50 updates acknowledged (80.0%)"));
    }
}
