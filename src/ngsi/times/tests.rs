//! Unit tests of the system times of attribute instances.

use serde_json::json;

use super::*;
use crate::ngsi::ld::DATASET_ID;
use crate::ngsi::v1::ContextMetadata;

fn instance(name: &str, value: i64, dataset: Option<&str>) -> ContextAttribute {
    let metadata = dataset
        .map(|d| vec![ContextMetadata { name: DATASET_ID.into(), metadata_type: "URI".into(), value: json!(d) }])
        .unwrap_or_default();
    ContextAttribute { name: name.into(), attribute_type: "Property".into(), value: json!(value), metadata }
}

fn element(attributes: Vec<ContextAttribute>) -> ContextElement {
    ContextElement { attributes, ..ContextElement::default() }
}

fn times(created_at: i64, modified_at: i64) -> InstanceTimes {
    InstanceTimes { created_at, modified_at }
}

#[test]
fn instance_times_are_stored_as_pairs() {
    let stored = serde_json::to_value([times(1, 2), times(3, 4)]).unwrap();
    assert_eq!(stored, json!([[1, 2], [3, 4]]));
    assert_eq!(serde_json::from_value::<Vec<InstanceTimes>>(stored).unwrap(), [times(1, 2), times(3, 4)]);
}

#[test]
fn a_creation_stamps_every_instance_now() {
    let created = element(vec![instance("a", 1, None), instance("b", 2, None)]);
    assert_eq!(stamp(None, &created, &[], &Written::All, 10), [times(10, 10), times(10, 10)]);
}

#[test]
fn a_write_of_one_attribute_keeps_the_times_of_the_others() {
    let before = element(vec![instance("a", 1, None), instance("b", 2, None)]);
    let before_times = [times(10, 10), times(10, 15)];
    let entity = EntityTimes::stored(10, 15, &before, &before_times);
    let after = element(vec![instance("a", 5, None), instance("b", 2, None), instance("c", 3, None)]);
    let stamped = stamp(Some(&entity), &after, &[], &Written::Instances(vec![0, 2]), 20);
    assert_eq!(stamped, [times(10, 20), times(10, 15), times(20, 20)], "a written, b kept, c new");
    let by_name = stamp(Some(&entity), &after, &["b".to_string()], &Written::Touched, 20);
    assert_eq!(by_name, [times(10, 10), times(10, 20), times(20, 20)], "by touched name");
    let replaced = stamp(Some(&entity), &after, &[], &Written::All, 20);
    assert_eq!(replaced, [times(10, 20), times(10, 20), times(20, 20)], "a replacement keeps createdAt");
}

#[test]
fn dataset_id_instances_have_their_own_times() {
    let before = element(vec![instance("speed", 1, None), instance("speed", 2, Some("urn:gps"))]);
    let before_times = [times(10, 10), times(12, 12)];
    let entity = EntityTimes::stored(10, 12, &before, &before_times);
    let after = element(vec![instance("speed", 1, None), instance("speed", 3, Some("urn:gps"))]);
    let stamped = stamp(Some(&entity), &after, &[], &Written::Instances(vec![1]), 20);
    assert_eq!(stamped, [times(10, 10), times(12, 20)]);
    let shown = EntityTimes::stored(10, 20, &after, &stamped);
    assert_eq!(shown.of(0, &instance("speed", 0, Some("urn:gps"))), times(12, 20), "found by datasetId");
    assert_eq!(shown.of(0, &instance("other", 0, None)), times(10, 20), "not stored: the entity's");
}

#[test]
fn an_instance_deleted_and_written_again_is_new() {
    let before = element(vec![instance("a", 1, None), instance("b", 2, None)]);
    let before_times = [times(10, 10), times(11, 11)];
    let entity = EntityTimes::stored(10, 11, &before, &before_times);
    let deleted = element(vec![instance("b", 2, None)]);
    let after_delete = stamp(Some(&entity), &deleted, &[], &Written::Instances(Vec::new()), 20);
    assert_eq!(after_delete, [times(11, 11)], "the instance left keeps its times (found at another index)");
    let entity = EntityTimes::stored(10, 20, &deleted, &after_delete);
    let added_again = element(vec![instance("b", 2, None), instance("a", 1, None)]);
    let stamped = stamp(Some(&entity), &added_again, &[], &Written::Instances(vec![1]), 30);
    assert_eq!(stamped, [times(11, 11), times(30, 30)]);
}

#[test]
fn an_element_without_instance_times_shows_and_keeps_the_entity_times() {
    let before = element(vec![instance("a", 1, None), instance("b", 2, None)]);
    let entity = EntityTimes::stored(10, 15, &before, &[]);
    assert_eq!(entity.of(1, &before.attributes[1]), times(10, 15));
    let after = element(vec![instance("a", 5, None), instance("b", 2, None)]);
    let stamped = stamp(Some(&entity), &after, &[], &Written::Instances(vec![0]), 20);
    assert_eq!(stamped, [times(10, 20), times(10, 15)]);
    assert_eq!(EntityTimes::entity(1, 2).of(0, &before.attributes[0]), times(1, 2));
}
