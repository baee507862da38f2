//! `anomaly`, FogFlow's anomaly detector for the shop demo. Inputs:
//!
//! - `Rule` entities: attribute `threshold` (a number) replaces the current threshold;
//! - `PowerPanel` entities (or any other entity with a `usage` attribute): attribute `usage` (a number),
//!   domain metadata `shop` and `location`.
//!
//! When a panel's `usage` is above the threshold it publishes, on the first output stream (without one,
//! entity `Anomaly.<panelId>` of type `Anomaly`), the attributes `when` (`string`, RFC 3339 UTC), `whichpanel`
//! (`string`, the panel id), `shop` (`string`, the panel's `shop` metadata, else its `shop` attribute),
//! `where` (`object`, the panel's `location` metadata as `{type, value}`, as FogFlow's operator did) and
//! `usage` (the panel's value), with domain metadata `shop` and the panel's `location` (so the master can
//! group and place downstream tasks by them). Inputs without a numeric `usage`/`threshold` are logged and
//! skipped; other entities are ignored.
//!
//! Parameters: `threshold` (the threshold before the first Rule arrives; default 30).

use chrono::SecondsFormat;
use serde_json::json;

use super::{
    attribute, metadata, new_attribute, number_attribute, Context, InputError, Operator, OperatorError, Params,
};
use crate::ngsi::v1::{ContextElement, ContextMetadata};

/// The threshold parameter and Rule attribute.
pub const THRESHOLD: &str = "threshold";
/// FogFlow's default threshold.
pub const DEFAULT_THRESHOLD: f64 = 30.0;

/// The `anomaly` operator.
#[derive(Debug, Clone)]
pub struct Anomaly {
    threshold: f64,
}

impl Anomaly {
    /// A detector with the given threshold.
    pub fn new(threshold: f64) -> Self {
        Anomaly { threshold }
    }

    /// A detector configured by the `threshold` parameter.
    pub fn from_params(params: &Params) -> Result<Self, OperatorError> {
        Ok(Anomaly::new(params.number(THRESHOLD, DEFAULT_THRESHOLD, f64::MIN, f64::MAX)?))
    }

    /// The current threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    fn on_panel(&self, panel: &ContextElement, context: &Context<'_>) -> Result<Vec<ContextElement>, InputError> {
        let usage = number_attribute(panel, "usage")?;
        if usage <= self.threshold {
            return Ok(Vec::new());
        }
        let panel_id = panel.entity_id.id.as_str();
        let usage_value = attribute(panel, "usage").map(|a| a.value.clone()).unwrap_or(json!(usage));
        let usage_type = if usage_value.is_i64() || usage_value.is_u64() { "integer" } else { "float" };
        let shop = metadata(panel, "shop")
            .map(|item| item.value.clone())
            .or_else(|| attribute(panel, "shop").map(|a| a.value.clone()))
            .filter(|value| !value.is_null());
        let location = metadata(panel, "location");

        let mut attributes = vec![
            new_attribute("when", "string", json!(context.now.to_rfc3339_opts(SecondsFormat::Millis, true))),
            new_attribute("whichpanel", "string", json!(panel_id)),
        ];
        let mut domain_metadata = Vec::new();
        if let Some(shop) = &shop {
            attributes.push(new_attribute("shop", "string", shop.clone()));
            domain_metadata.push(ContextMetadata {
                name: "shop".into(),
                metadata_type: "string".into(),
                value: shop.clone(),
            });
        }
        if let Some(location) = location {
            let value = json!({"type": location.metadata_type, "value": location.value});
            attributes.push(new_attribute("where", "object", value));
            domain_metadata.push(location.clone());
        }
        attributes.push(new_attribute("usage", usage_type, usage_value));
        Ok(vec![ContextElement {
            entity_id: context.first_output_or(format!("Anomaly.{panel_id}"), "Anomaly"),
            attributes,
            domain_metadata,
            extra_types: Vec::new(),
        }])
    }
}

impl Default for Anomaly {
    fn default() -> Self {
        Anomaly::new(DEFAULT_THRESHOLD)
    }
}

impl Operator for Anomaly {
    fn on_entity(
        &mut self,
        element: &ContextElement,
        context: &Context<'_>,
    ) -> Result<Vec<ContextElement>, InputError> {
        let entity_type = element.entity_id.entity_type.as_str();
        if entity_type == "Rule" {
            let threshold = number_attribute(element, THRESHOLD)?;
            if threshold != self.threshold {
                tracing::info!(from = self.threshold, to = threshold, rule = %element.entity_id.id, "threshold changed");
            }
            self.threshold = threshold;
            return Ok(Vec::new());
        }
        if entity_type == "PowerPanel" || attribute(element, "usage").is_some() {
            return self.on_panel(element, context);
        }
        tracing::debug!(entity = %element.entity_id.id, r#type = entity_type, "neither a Rule nor a panel; ignored");
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::admin::OutputStream;
    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    fn published(element: &ContextElement, name: &str) -> Value {
        attribute(element, name).map(|a| a.value.clone()).unwrap_or(Value::Null)
    }

    fn panel(usage: Value) -> ContextElement {
        serde_json::from_value(json!({
            "entityId": {"id": "Device.PowerPanel.01", "type": "PowerPanel"},
            "attributes": [{"name": "usage", "type": "integer", "value": usage},
                           {"name": "shop", "type": "string", "value": "01"}],
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 35.7, "longitude": 139.7}},
                               {"name": "shop", "type": "string", "value": "01"}]
        }))
        .unwrap()
    }

    fn rule(threshold: Value) -> ContextElement {
        serde_json::from_value(json!({
            "entityId": {"id": "Stream.Rule.01", "type": "Rule"},
            "attributes": [{"name": "threshold", "type": "integer", "value": threshold}]
        }))
        .unwrap()
    }

    #[test]
    fn usage_above_the_threshold_is_an_anomaly() {
        let outputs = [OutputStream { entity_type: "Anomaly".into(), id: "Anomaly.0987654321.1".into() }];
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 17, 0, 0).unwrap();
        let context = Context { outputs: &outputs, now };
        let mut detector = Anomaly::default();
        assert!(detector.on_entity(&panel(json!(30)), &context).unwrap().is_empty(), "30 is not above 30");
        let out = detector.on_entity(&panel(json!(87)), &context).unwrap();
        assert_eq!(out.len(), 1);
        let anomaly = &out[0];
        assert_eq!(anomaly.entity_id.id, "Anomaly.0987654321.1");
        assert_eq!(anomaly.entity_id.entity_type, "Anomaly");
        assert_eq!(published(anomaly, "when"), json!("2026-11-27T17:00:00.000Z"));
        assert_eq!(published(anomaly, "whichpanel"), json!("Device.PowerPanel.01"));
        assert_eq!(published(anomaly, "shop"), json!("01"));
        assert_eq!(published(anomaly, "usage"), json!(87));
        assert_eq!(published(anomaly, "where")["value"]["latitude"], json!(35.7));
        let names: Vec<&str> = anomaly.domain_metadata.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["shop", "location"]);
    }

    #[test]
    fn a_rule_changes_the_threshold() {
        let context = Context { outputs: &[], now: Utc::now() };
        let mut detector = Anomaly::default();
        assert!(detector.on_entity(&rule(json!(100)), &context).unwrap().is_empty());
        assert_eq!(detector.threshold(), 100.0);
        assert!(detector.on_entity(&panel(json!(87)), &context).unwrap().is_empty());
        detector.on_entity(&rule(json!("50")), &context).unwrap();
        let out = detector.on_entity(&panel(json!(87.5)), &context).unwrap();
        assert_eq!(out[0].entity_id.id, "Anomaly.Device.PowerPanel.01");
        assert_eq!(out[0].attributes.iter().find(|a| a.name == "usage").unwrap().attribute_type, "float");
    }

    #[test]
    fn bad_inputs_are_skipped_and_others_ignored() {
        let context = Context { outputs: &[], now: Utc::now() };
        let mut detector = Anomaly::default();
        assert!(matches!(detector.on_entity(&rule(json!("high")), &context), Err(InputError::NotANumber { .. })));
        assert_eq!(detector.threshold(), DEFAULT_THRESHOLD);
        assert!(detector.on_entity(&panel(json!(null)), &context).is_err());
        let mut other = rule(json!(1));
        other.entity_id.entity_type = "Temperature".into();
        assert!(detector.on_entity(&other, &context).unwrap().is_empty());
        let params = Params::new([(THRESHOLD.to_string(), "12.5".to_string())].into());
        assert_eq!(Anomaly::from_params(&params).unwrap().threshold(), 12.5);
    }
}
