//! Unit tests of `src/ngsi/ld/entity.rs`.

use serde_json::json;

use super::*;

fn parse(body: Value) -> Result<ContextElement, ParseError> {
    parse_entity(&Context::core(), &body)
}

#[test]
fn properties_relationships_and_geoproperties_map_to_attributes() {
    let element = parse(json!({
        "id": "urn:ngsi-ld:Room:1", "type": "Room", "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": "2024-01-01T00:00:00Z",
            "accuracy": {"type": "Property", "value": 0.5}},
        "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.68, 49.4]}},
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Room", "de": "Raum"}},
        "concise": 3,
    }))
    .unwrap();
    assert_eq!(element.entity_id.id, "urn:ngsi-ld:Room:1");
    assert_eq!(element.entity_id.entity_type, "Room");
    let temperature = &element.attributes.iter().find(|a| a.name == "temperature").unwrap();
    assert_eq!((temperature.attribute_type.as_str(), &temperature.value), ("Property", &json!(21.5)));
    let names: Vec<(&str, &str)> =
        temperature.metadata.iter().map(|m| (m.name.as_str(), m.metadata_type.as_str())).collect();
    assert!(names.contains(&("unitCode", "Text")) && names.contains(&("observedAt", "DateTime")));
    assert!(names.contains(&("accuracy", "Property")));
    let building = element.attributes.iter().find(|a| a.name == "inBuilding").unwrap();
    assert_eq!((building.attribute_type.as_str(), &building.value), ("Relationship", &json!("urn:ngsi-ld:Building:1")));
    assert_eq!(element.domain_metadata[0].value, json!({"latitude": 49.4, "longitude": 8.68}));
    assert_eq!(element.attributes.iter().find(|a| a.name == "concise").unwrap().value, json!(3));
}

#[test]
fn invalid_entities_are_refused() {
    for bad in [
        json!([]),
        json!({"type": "Room"}),
        json!({"id": "room1", "type": "Room"}),
        json!({"id": "urn:a", "type": 3}),
        json!({"id": "urn:a", "type": []}),
        json!({"id": "urn:a", "type": ["A", 3]}),
        json!({"id": "urn:a", "type": ["A", ""]}),
        json!({"id": "urn:a", "type": {"A": 1}}),
        json!({"id": "urn:a"}),
        json!({"id": "urn:a", "type": "T", "p": {"type": "Property"}}),
        json!({"id": "urn:a", "type": "T", "p": {"type": "Unknown", "value": 1}}),
        json!({"id": "urn:a", "type": "T", "r": {"type": "Relationship", "object": "not a uri"}}),
        json!({"id": "urn:a", "type": "T", "g": {"type": "GeoProperty", "value": {"lat": 1}}}),
        json!({"id": "urn:a", "type": "T", "p": {"type": "Property", "value": 1, "observedAt": "yesterday"}}),
        json!({"id": "urn:a", "type": "T", "p": [{"value": 1}, {"value": 2}]}),
        json!({"id": "urn:a", "type": "T", "p": [{"value": 1, "datasetId": "urn:d"}, {"value": 2, "datasetId": "urn:d"}]}),
        json!({"id": "urn:a", "type": "T", "p": [{"value": 1}, {"type": "Property"}]}),
    ] {
        assert!(parse(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn multi_attributes_are_instances_told_apart_by_dataset_id() {
    let element = parse(json!({"id": "urn:a", "type": "T",
        "speed": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:gps"}],
        "list": [1, 2]}))
    .unwrap();
    let speeds: Vec<_> = element.attributes.iter().filter(|a| a.name == "speed").collect();
    assert_eq!(speeds.len(), 2);
    assert_eq!(super::super::multi::dataset_id(speeds[1]), Some("urn:gps"));
    let list = element.attributes.iter().find(|a| a.name == "list").unwrap();
    assert_eq!(list.value, json!([1, 2]), "a concise array value is one Property");
}

#[test]
fn the_location_point_follows_the_location_geoproperty() {
    let mut element =
        parse(json!({"id": "urn:a", "type": "T", "location": {"type": "Point", "coordinates": [1.0, 2.0]}})).unwrap();
    assert_eq!(element.domain_metadata.len(), 1);
    let before = element.clone();
    element.attributes.clear();
    refresh_location(Some(&before), &mut element);
    assert!(element.domain_metadata.is_empty());
}

#[test]
fn an_entity_may_have_several_types() {
    let context = Context::from_body(&json!({"Shop": "https://example.org/Shop"})).unwrap();
    let element =
        parse_entity(&context, &json!({"id": "urn:a", "type": ["Building", "Shop", "Building", "Office"]})).unwrap();
    let types: Vec<&str> = element.types().collect();
    assert_eq!(types, ["Building", "https://example.org/Shop", "Office"], "expanded, duplicates dropped, in order");
    assert_eq!(element.entity_id.entity_type, "Building", "the first type stays where one type is");
    assert!(element.has_type("Office") && !element.has_type("Shop"));
    let one = parse(json!({"id": "urn:a", "type": ["Building"]})).unwrap();
    assert!(one.extra_types.is_empty() && one.entity_id.entity_type == "Building");
    let many: Vec<String> = (0..=MAX_TYPES_PER_ENTITY).map(|i| format!("T{i}")).collect();
    assert!(parse(json!({"id": "urn:a", "type": many})).is_err(), "too many types");
}

#[test]
fn fragments_may_name_types_to_add() {
    let fragment = |body: Value| fragment_types(&Context::core(), body.as_object().unwrap());
    assert_eq!(fragment(json!({"p": 1})).unwrap(), Vec::<String>::new());
    assert_eq!(fragment(json!({"type": "A"})).unwrap(), ["A"]);
    assert_eq!(fragment(json!({"type": ["A", "B", "A"]})).unwrap(), ["A", "B"]);
    assert!(fragment(json!({"type": []})).is_err());
    assert!(fragment(json!({"type": [1]})).is_err());
}

#[test]
fn types_are_set_and_added_without_duplicates() {
    let mut element = parse(json!({"id": "urn:a", "type": "A"})).unwrap();
    assert!(element.add_types(["B", "A", "C", "B"]));
    assert_eq!(element.types().collect::<Vec<_>>(), ["A", "B", "C"]);
    assert!(!element.add_types(["C"]), "nothing new");
    element.set_types(vec!["C".into(), "D".into(), "C".into()]);
    assert_eq!(element.types().collect::<Vec<_>>(), ["C", "D"]);
}
