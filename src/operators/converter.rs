//! `converter`: degrees Celsius to Fahrenheit. For each input with a numeric `temperature` attribute (a JSON
//! number or a numeric string) it publishes, on the first output stream (`SET_OUTPUTS`; without one, entity
//! `<inputId>.converted` of type `Converted`):
//!
//! - `temperature_f` (`float`) = temperature × 9/5 + 32,
//! - `source` (`string`) = the input entity's id,
//!
//! with the input's domain metadata (e.g. `location`) copied, so downstream tasks can group and place by it.
//! An input without `temperature` or with a non-numeric one is logged and skipped.
//!
//! Parameters: none.

use serde_json::json;

use super::{new_attribute, number_attribute, Context, InputError, Operator};
use crate::ngsi::v1::ContextElement;

/// The input attribute.
pub const INPUT_ATTRIBUTE: &str = "temperature";
/// The output attribute.
pub const OUTPUT_ATTRIBUTE: &str = "temperature_f";

/// °C → °F.
pub fn celsius_to_fahrenheit(celsius: f64) -> f64 {
    celsius * 9.0 / 5.0 + 32.0
}

/// The `converter` operator (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Converter;

impl Operator for Converter {
    fn on_entity(
        &mut self,
        element: &ContextElement,
        context: &Context<'_>,
    ) -> Result<Vec<ContextElement>, InputError> {
        let celsius = number_attribute(element, INPUT_ATTRIBUTE)?;
        let input_id = &element.entity_id.id;
        Ok(vec![ContextElement {
            entity_id: context.first_output_or(format!("{input_id}.converted"), "Converted"),
            attributes: vec![
                new_attribute(OUTPUT_ATTRIBUTE, "float", json!(celsius_to_fahrenheit(celsius))),
                new_attribute("source", "string", json!(input_id)),
            ],
            domain_metadata: element.domain_metadata.clone(),
            extra_types: Vec::new(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::admin::OutputStream;
    use crate::operators::attribute;
    use serde_json::Value;

    fn input(temperature: Value) -> ContextElement {
        serde_json::from_value(json!({
            "entityId": {"id": "Device.Temp001", "type": "Temperature"},
            "attributes": [{"name": "temperature", "type": "float", "value": temperature}],
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": -33.1, "longitude": -1.1}}]
        }))
        .unwrap()
    }

    fn value(element: &ContextElement, name: &str) -> Value {
        attribute(element, name).map(|a| a.value.clone()).unwrap_or(Value::Null)
    }

    #[test]
    fn converts_onto_the_first_output_with_metadata() {
        let outputs = [
            OutputStream { entity_type: "Fahrenheit".into(), id: "Fahrenheit.01".into() },
            OutputStream { entity_type: "Other".into(), id: "Other.01".into() },
        ];
        let context = Context { outputs: &outputs, now: chrono::Utc::now() };
        let out = Converter.on_entity(&input(json!(73)), &context).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entity_id.id, "Fahrenheit.01");
        assert_eq!(out[0].entity_id.entity_type, "Fahrenheit");
        let fahrenheit = value(&out[0], "temperature_f").as_f64().unwrap();
        assert!((fahrenheit - 163.4).abs() < 1e-9, "{fahrenheit}");
        assert_eq!(value(&out[0], "source"), json!("Device.Temp001"));
        assert_eq!(out[0].domain_metadata[0].name, "location");
    }

    #[test]
    fn without_outputs_publishes_input_id_converted() {
        let context = Context { outputs: &[], now: chrono::Utc::now() };
        let out = Converter.on_entity(&input(json!("-40")), &context).unwrap();
        assert_eq!(out[0].entity_id.id, "Device.Temp001.converted");
        assert_eq!(out[0].entity_id.entity_type, "Converted");
        assert_eq!(value(&out[0], "temperature_f").as_f64(), Some(-40.0));
    }

    #[test]
    fn non_numeric_or_missing_temperature_is_skipped() {
        let context = Context { outputs: &[], now: chrono::Utc::now() };
        for bad in [json!("hot"), json!(null), json!({"v": 1}), json!([1])] {
            let error = Converter.on_entity(&input(bad.clone()), &context).expect_err("not a number");
            assert!(matches!(error, InputError::NotANumber { .. }), "{bad}: {error}");
        }
        let mut missing = input(json!(1));
        missing.attributes.clear();
        assert!(matches!(Converter.on_entity(&missing, &context), Err(InputError::MissingAttribute { .. })));
    }
}
