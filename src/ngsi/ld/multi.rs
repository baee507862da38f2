//! Multi-attributes (ETSI GS CIM 009 clause 4.5.5): an attribute may have several instances, told apart by their
//! `datasetId` (at most one instance without one, the default instance). Instances are stored as attributes of
//! the same name, each with its `datasetId` sub-property, in the order they were first written; an edit of an
//! instance replaces the stored instance of the same name and `datasetId` and leaves the others. Pure: no I/O.

use super::DATASET_ID;
use crate::ngsi::v1::{ContextAttribute, ContextElement};
use crate::ngsi::ParseError;

/// Most instances of one attribute.
pub const MAX_INSTANCES: usize = 100;

/// The `datasetId` of an instance (`None`: the default instance).
pub fn dataset_id(attribute: &ContextAttribute) -> Option<&str> {
    attribute.metadata.iter().find(|m| m.name == DATASET_ID).and_then(|m| m.value.as_str())
}

/// Whether two attributes are the same instance: the same name and `datasetId`.
pub fn same_instance(a: &ContextAttribute, b: &ContextAttribute) -> bool {
    a.name == b.name && dataset_id(a) == dataset_id(b)
}

/// Checks the instances given for one attribute: at most [`MAX_INSTANCES`], `datasetId`s distinct.
pub fn check_instances(name: &str, instances: &[ContextAttribute]) -> Result<(), ParseError> {
    if instances.len() > MAX_INSTANCES {
        return Err(ParseError::new(format!("attribute `{name}` has more than {MAX_INSTANCES} instances")));
    }
    for (index, instance) in instances.iter().enumerate() {
        if instances[..index].iter().any(|earlier| same_instance(earlier, instance)) {
            return Err(ParseError::new(match dataset_id(instance) {
                Some(dataset) => format!("attribute `{name}` has two instances with the datasetId `{dataset}`"),
                None => format!("attribute `{name}` has two instances without a datasetId"),
            }));
        }
    }
    Ok(())
}

/// Writes one instance into an element: replaces the instance of the same name and `datasetId`, or adds it.
pub fn put(element: &mut ContextElement, attribute: ContextAttribute) {
    match element.attributes.iter_mut().find(|a| same_instance(a, &attribute)) {
        Some(existing) => *existing = attribute,
        None => element.attributes.push(attribute),
    }
}

/// Whether the element has this instance (same name and `datasetId`).
pub fn has_instance(element: &ContextElement, attribute: &ContextAttribute) -> bool {
    element.attributes.iter().any(|a| same_instance(a, attribute))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::v1::ContextMetadata;

    fn instance(value: i64, dataset: Option<&str>) -> ContextAttribute {
        let metadata = dataset
            .map(|d| vec![ContextMetadata { name: DATASET_ID.into(), metadata_type: "URI".into(), value: json!(d) }])
            .unwrap_or_default();
        ContextAttribute { name: "speed".into(), attribute_type: "Property".into(), value: json!(value), metadata }
    }

    #[test]
    fn instances_are_told_apart_by_dataset_id() {
        assert!(check_instances("speed", &[instance(1, None), instance(2, Some("urn:a"))]).is_ok());
        assert!(check_instances("speed", &[instance(1, None), instance(2, None)]).is_err());
        assert!(check_instances("speed", &[instance(1, Some("urn:a")), instance(2, Some("urn:a"))]).is_err());
        let mut element = ContextElement { attributes: vec![instance(1, None)], ..Default::default() };
        put(&mut element, instance(2, Some("urn:a")));
        put(&mut element, instance(3, None));
        put(&mut element, instance(4, Some("urn:a")));
        let values: Vec<_> = element.attributes.iter().map(|a| (a.value.clone(), dataset_id(a))).collect();
        assert_eq!(values, vec![(json!(3), None), (json!(4), Some("urn:a"))]);
        assert!(
            has_instance(&element, &instance(0, Some("urn:a"))) && !has_instance(&element, &instance(0, Some("urn:b")))
        );
    }
}
