//! `dummy`, FogFlow's test operator: republishes each input entity's attributes and domain metadata as the
//! entity `Result<inputId>` of type `Result` (it ignores `SET_OUTPUTS`, as FogFlow's does; the worker therefore
//! does not delete these entities when the task ends).
//!
//! Parameters: none.

use super::{Context, InputError, Operator};
use crate::ngsi::v1::{ContextElement, EntityId};

/// The `dummy` operator (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Dummy;

impl Operator for Dummy {
    fn on_entity(
        &mut self,
        element: &ContextElement,
        _context: &Context<'_>,
    ) -> Result<Vec<ContextElement>, InputError> {
        Ok(vec![ContextElement {
            entity_id: EntityId {
                id: format!("Result{}", element.entity_id.id),
                entity_type: "Result".into(),
                is_pattern: false,
            },
            attributes: element.attributes.clone(),
            domain_metadata: element.domain_metadata.clone(),
            extra_types: Vec::new(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::admin::OutputStream;

    #[test]
    fn republishes_attributes_and_metadata_as_result_entity() {
        let input: ContextElement = serde_json::from_value(serde_json::json!({
            "entityId": {"id": "Device.temp001", "type": "Temperature"},
            "attributes": [{"name": "temp", "type": "integer", "value": 10}],
            "domainMetadata": [{"name": "city", "type": "string", "value": "Heidelberg"}]
        }))
        .unwrap();
        let outputs = [OutputStream { entity_type: "Ignored".into(), id: "Ignored.1".into() }];
        let context = Context { outputs: &outputs, now: chrono::Utc::now() };
        let out = Dummy.on_entity(&input, &context).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entity_id.id, "ResultDevice.temp001");
        assert_eq!(out[0].entity_id.entity_type, "Result");
        assert_eq!(out[0].attributes, input.attributes);
        assert_eq!(out[0].domain_metadata, input.domain_metadata);
    }
}
