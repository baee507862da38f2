//! `counter`: counts the input entities it is notified of in consecutive time windows (FogFlow's counter
//! operator counts Anomaly events in 5 s windows). At the end of each window that saw at least one input it
//! publishes, on the first output stream (without one, entity `Stat.counter` of type `Stat`):
//!
//! - `time` (`string`) = the window's start, RFC 3339 in UTC,
//! - `counter` (`integer`) = the number of input elements received in the window.
//!
//! Empty windows publish nothing. Every element of a notification counts once, whatever its type.
//!
//! Parameters: `window_seconds` (window length in seconds, a number from 0.05 to 86400; default 5).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{new_attribute, Context, InputError, Operator, OperatorError, Params};
use crate::ngsi::v1::ContextElement;

/// The window parameter.
pub const WINDOW_PARAMETER: &str = "window_seconds";
/// Default window length in seconds.
pub const DEFAULT_WINDOW_SECONDS: f64 = 5.0;

/// The `counter` operator.
#[derive(Debug, Clone)]
pub struct Counter {
    window: Duration,
    window_start: DateTime<Utc>,
    count: u64,
}

impl Counter {
    /// A counter whose first window starts at `start`.
    pub fn new(window: Duration, start: DateTime<Utc>) -> Self {
        Counter { window, window_start: start, count: 0 }
    }

    /// A counter configured by `window_seconds`.
    pub fn from_params(params: &Params, start: DateTime<Utc>) -> Result<Self, OperatorError> {
        let seconds = params.number(WINDOW_PARAMETER, DEFAULT_WINDOW_SECONDS, 0.05, 86_400.0)?;
        Ok(Counter::new(Duration::from_secs_f64(seconds), start))
    }

    /// Inputs counted in the current window so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Operator for Counter {
    fn on_entity(
        &mut self,
        _element: &ContextElement,
        _context: &Context<'_>,
    ) -> Result<Vec<ContextElement>, InputError> {
        self.count = self.count.saturating_add(1);
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.window)
    }

    /// Closes the current window at `context.now` and starts the next one.
    fn on_tick(&mut self, context: &Context<'_>) -> Vec<ContextElement> {
        let start = std::mem::replace(&mut self.window_start, context.now);
        let count = std::mem::take(&mut self.count);
        if count == 0 {
            return Vec::new();
        }
        vec![ContextElement {
            entity_id: context.first_output_or("Stat.counter", "Stat"),
            attributes: vec![
                new_attribute("time", "string", json!(start.to_rfc3339_opts(SecondsFormat::Millis, true))),
                new_attribute("counter", "integer", json!(count)),
            ],
            domain_metadata: Vec::new(),
            extra_types: Vec::new(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::admin::OutputStream;
    use crate::operators::attribute;
    use chrono::TimeZone;

    #[test]
    fn publishes_the_count_of_each_non_empty_window() {
        let start = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut counter = Counter::new(Duration::from_secs(5), start);
        assert_eq!(counter.tick_interval(), Some(Duration::from_secs(5)));
        let outputs = [OutputStream { entity_type: "Stat".into(), id: "Stat.01.1".into() }];
        let input = ContextElement::default();
        let during = Context { outputs: &outputs, now: start };
        for _ in 0..3 {
            assert!(counter.on_entity(&input, &during).unwrap().is_empty());
        }
        let end = Context { outputs: &outputs, now: start + chrono::Duration::seconds(5) };
        let out = counter.on_tick(&end);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entity_id.id, "Stat.01.1");
        assert_eq!(attribute(&out[0], "counter").unwrap().value, json!(3));
        assert_eq!(attribute(&out[0], "time").unwrap().value, json!("2026-01-02T03:04:05.000Z"));
        assert_eq!(counter.count(), 0);
        let later = Context { outputs: &[], now: start + chrono::Duration::seconds(10) };
        assert!(counter.on_tick(&later).is_empty(), "an empty window publishes nothing");
        counter.on_entity(&input, &later).unwrap();
        let out = counter.on_tick(&Context { outputs: &[], now: start + chrono::Duration::seconds(15) });
        assert_eq!(out[0].entity_id.id, "Stat.counter");
        assert_eq!(attribute(&out[0], "time").unwrap().value, json!("2026-01-02T03:04:15.000Z"));
    }

    #[test]
    fn window_parameter_is_validated() {
        let params = |value: &str| Params::new([(WINDOW_PARAMETER.to_string(), value.to_string())].into());
        assert_eq!(Counter::from_params(&params("0.5"), Utc::now()).unwrap().window, Duration::from_millis(500));
        assert_eq!(Counter::from_params(&Params::default(), Utc::now()).unwrap().window, Duration::from_secs(5));
        for bad in ["0", "-1", "x", "1e9"] {
            assert!(Counter::from_params(&params(bad), Utc::now()).is_err(), "{bad}");
        }
    }
}
