//! The final report: [`Report`] (the merged [`LoadStats`] plus run parameters and, for `notify`, the
//! [`NotificationFigures`]), printed as text and optionally as one JSON line.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::stats::LoadStats;

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
            self.scenario, self.connections, self.duration_seconds, self.warmup_seconds, self.entities
        );
        let _ = writeln!(text, "  throughput   {:.1} requests/s (2xx)", self.requests_per_second());
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
            let statuses: Vec<String> =
                stats.error_statuses.iter().map(|(status, count)| format!("{status} × {count}")).collect();
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
            object.insert("notification_initial_elements".into(), json!(notified.initial_elements));
            object.insert("updates_acknowledged".into(), json!(notified.updates_acknowledged));
            object.insert("notifications_per_s".into(), json!(round_to_tenths(notified.elements_per_second)));
            object.insert("notification_drain_s".into(), json!(round_to_tenths(notified.drain_seconds)));
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
    use std::time::Duration;

    use http::StatusCode;

    use super::super::stats::tests::stats_with;
    use super::*;

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
        assert!(text.starts_with("scenario update: 64 connections, 2 s timed after 1 s warmup, 1000 entities\n"));
        assert!(text.contains("throughput   1.0 requests/s (2xx)"), "{text}");
        assert!(text.contains("p50 1.50 ms"), "{text}");
        assert_eq!(format_micros(800), "800 µs");
        assert!(text.contains("max 2.00 ms"), "{text}");
        assert!(text.contains("2 ok, 1 errors (1 http, 0 transport"), "{text}");
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
        assert_eq!(value["p50_us"], 1500);
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
