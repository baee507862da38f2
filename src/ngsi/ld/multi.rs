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
/// Answers where it is in the element's attributes.
pub fn put(element: &mut ContextElement, attribute: ContextAttribute) -> usize {
    match element.attributes.iter().position(|a| same_instance(a, &attribute)) {
        Some(index) => {
            element.attributes[index] = attribute;
            index
        }
        None => {
            element.attributes.push(attribute);
            element.attributes.len() - 1
        }
    }
}

/// `before` with every instance of `updates` written in order by [`put`], without cloning the stored instances
/// that an update replaces (the last update of an instance wins; new instances are added in the order they
/// first appear), and the indices of the instances written.
pub fn with_all(before: &ContextElement, updates: Vec<ContextAttribute>) -> (ContextElement, Vec<usize>) {
    let mut updates: Vec<Option<ContextAttribute>> = updates.into_iter().map(Some).collect();
    let mut written = Vec::with_capacity(updates.len());
    let mut attributes = Vec::with_capacity(before.attributes.len() + updates.len());
    for (index, stored) in before.attributes.iter().enumerate() {
        let matches = |update: &Option<ContextAttribute>| update.as_ref().is_some_and(|u| same_instance(u, stored));
        // `put` replaces the first stored instance of a name and datasetId only.
        let replaced = match updates.iter().rposition(matches) {
            Some(last) if !before.attributes[..index].iter().any(|earlier| same_instance(earlier, stored)) => {
                let replacement = updates[last].take();
                updates.iter_mut().filter(|update| matches(update)).for_each(|update| *update = None);
                replacement
            }
            _ => None,
        };
        match replaced {
            Some(replacement) => {
                written.push(index);
                attributes.push(replacement);
            }
            None => attributes.push(stored.clone()),
        }
    }
    let mut element = ContextElement {
        entity_id: before.entity_id.clone(),
        attributes,
        domain_metadata: before.domain_metadata.clone(),
        extra_types: before.extra_types.clone(),
    };
    for attribute in updates.into_iter().flatten() {
        let index = put(&mut element, attribute);
        if !written.contains(&index) {
            written.push(index);
        }
    }
    (element, written)
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

    #[test]
    fn writing_all_updates_at_once_is_putting_them_one_by_one() {
        let named = |name: &str, value: i64, dataset: Option<&str>| ContextAttribute {
            name: name.into(),
            ..instance(value, dataset)
        };
        let before = ContextElement {
            attributes: vec![
                named("a", 1, None),
                named("b", 2, Some("urn:x")),
                named("a", 3, None),
                named("c", 4, None),
            ],
            ..Default::default()
        };
        let updates = [
            named("a", 10, None),
            named("d", 11, None),
            named("b", 12, Some("urn:x")),
            named("a", 13, None),
            named("b", 14, Some("urn:y")),
            named("d", 15, None),
        ];
        for n in 0..=updates.len() {
            let mut expected = before.clone();
            let mut expected_written: Vec<usize> = Vec::new();
            for update in &updates[..n] {
                let index = put(&mut expected, update.clone());
                if !expected_written.contains(&index) {
                    expected_written.push(index);
                }
            }
            let (element, mut written) = with_all(&before, updates[..n].to_vec());
            assert_eq!(element, expected, "{n} updates");
            written.sort_unstable();
            expected_written.sort_unstable();
            assert_eq!(written, expected_written, "{n} updates write the same instances");
        }
    }
}
