//! The GeoJSON representation of entities (ETSI GS CIM 009 clause 4.5.16, `Accept: application/geo+json`): an
//! entity as a `Feature` (`id`, `type: "Feature"`, `geometry`, and `properties` holding the entity's `type` and
//! attributes in the representation asked for), several as a `FeatureCollection`. It wraps what
//! [`super::render`] produced (already projected and compacted); the geometry is read from the stored element:
//! the value of the default instance (no `datasetId`) of the GeoProperty named by `geometryProperty` (`location`
//! by default), `null` when the entity has no such GeoProperty or its value is not a GeoJSON geometry. Where the
//! `@context` goes is the API layer's business.

use serde_json::{Map, Value};

use super::entity::{is_geojson, Kind};
use super::render::view;
use super::DATASET_ID;
use crate::ngsi::v1::{ContextAttribute, ContextElement};

/// The geometry of a GeoJSON Feature: the value of the default instance of the GeoProperty `property` (a
/// canonical name), or `null`.
pub fn geometry(element: &ContextElement, property: &str) -> Value {
    let is_geometry = |attribute: &ContextAttribute| {
        attribute.name == property
            && Kind::of(&attribute.attribute_type) == Kind::GeoProperty
            && !attribute.metadata.iter().any(|m| m.name == DATASET_ID)
            && is_geojson(&attribute.value)
    };
    if let Some(attribute) = element.attributes.iter().find(|a| is_geometry(a)) {
        return attribute.value.clone();
    }
    if element.attributes.iter().any(|a| a.name == property) {
        return Value::Null;
    }
    // An NGSI10 element's position is a domain metadata, which the NGSI-LD view shows as a GeoProperty.
    if element.domain_metadata.iter().any(|m| m.name == property) {
        if let Some(attribute) = view(element).iter().find(|a| is_geometry(a)) {
            return attribute.value.clone();
        }
    }
    Value::Null
}

/// A rendered entity as a GeoJSON Feature: its `id` (when it has one: `pick` may have removed it), `type:
/// "Feature"`, the `geometry`, and its other members (`type` and attributes) as `properties`.
pub fn feature(entity: Value, geometry: Value) -> Value {
    let mut properties = match entity {
        Value::Object(members) => members,
        _ => Map::new(),
    };
    let mut feature = Map::new();
    if let Some(id) = properties.remove("id") {
        feature.insert("id".into(), id);
    }
    feature.insert("type".into(), Value::String("Feature".into()));
    feature.insert("geometry".into(), geometry);
    feature.insert("properties".into(), Value::Object(properties));
    Value::Object(feature)
}

/// Features as a GeoJSON FeatureCollection.
pub fn feature_collection(features: Vec<Value>) -> Value {
    let mut collection = Map::new();
    collection.insert("type".into(), Value::String("FeatureCollection".into()));
    collection.insert("features".into(), Value::Array(features));
    Value::Object(collection)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::ld::context::Context;
    use crate::ngsi::ld::entity::parse_entity;
    use crate::ngsi::ld::render::{render_entity, Format, Rendering};
    use crate::ngsi::times::EntityTimes;

    fn element(entity: Value) -> ContextElement {
        parse_entity(&Context::core(), &entity).unwrap()
    }

    fn as_feature(element: &ContextElement, rendering: &Rendering, property: &str) -> Value {
        feature(render_entity(element, &EntityTimes::default(), rendering), geometry(element, property))
    }

    const POLYGON: &str = r#"{"type": "Polygon", "coordinates": [[[8, 49], [9, 49], [9, 50], [8, 49]]]}"#;

    fn park() -> Value {
        json!({"id": "urn:ngsi-ld:Park:1", "type": "Park",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.68, 49.4]}},
            "area": {"type": "GeoProperty", "value": serde_json::from_str::<Value>(POLYGON).unwrap()},
            "name": {"type": "Property", "value": "Castle park"}})
    }

    #[test]
    fn an_entity_is_a_feature_with_its_location_as_geometry() {
        let park = element(park());
        assert_eq!(
            as_feature(&park, &Rendering::default(), "location"),
            json!({"id": "urn:ngsi-ld:Park:1", "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [8.68, 49.4]},
                "properties": {"type": "Park",
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.68, 49.4]}},
                    "area": {"type": "GeoProperty", "value": serde_json::from_str::<Value>(POLYGON).unwrap()},
                    "name": {"type": "Property", "value": "Castle park"}}})
        );
    }

    #[test]
    fn the_geometry_property_picks_another_geo_property() {
        let park = element(park());
        let key_values = Rendering { format: Format::KeyValues, attrs: vec!["name".into()], ..Rendering::default() };
        assert_eq!(
            as_feature(&park, &key_values, "area"),
            json!({"id": "urn:ngsi-ld:Park:1", "type": "Feature",
                "geometry": serde_json::from_str::<Value>(POLYGON).unwrap(),
                "properties": {"type": "Park", "name": "Castle park"}}),
            "keyValues properties; the geometry does not depend on the projection"
        );
    }

    #[test]
    fn without_such_a_geo_property_the_geometry_is_null() {
        let park = element(park());
        assert_eq!(geometry(&park, "name"), Value::Null, "a Property is not a GeoProperty");
        assert_eq!(geometry(&park, "nowhere"), Value::Null);
        let bare = element(json!({"id": "urn:a", "type": "T", "speed": {"type": "Property", "value": 5}}));
        assert_eq!(
            as_feature(&bare, &Rendering::default(), "location"),
            json!({"id": "urn:a", "type": "Feature", "geometry": null,
                "properties": {"type": "T", "speed": {"type": "Property", "value": 5}}})
        );
    }

    #[test]
    fn the_default_instance_of_a_multi_attribute_is_the_geometry() {
        let tracked = element(json!({"id": "urn:a", "type": "T", "location": [
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [9, 9]}, "datasetId": "urn:gps"},
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}}]}));
        assert_eq!(geometry(&tracked, "location"), json!({"type": "Point", "coordinates": [1, 2]}));
        let only_datasets = element(json!({"id": "urn:a", "type": "T", "location":
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [9, 9]}, "datasetId": "urn:gps"}}));
        assert_eq!(geometry(&only_datasets, "location"), Value::Null);
    }

    #[test]
    fn ngsi10_positions_and_picked_ids_are_handled() {
        let device: ContextElement = serde_json::from_value(json!({
            "entityId": {"id": "Device.1", "type": "Device"},
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 49.4, "longitude": 8.6}}]
        }))
        .unwrap();
        assert_eq!(geometry(&device, "location"), json!({"type": "Point", "coordinates": [8.6, 49.4]}));
        let without_id = feature(json!({"name": "Castle park"}), Value::Null);
        assert_eq!(without_id, json!({"type": "Feature", "geometry": null, "properties": {"name": "Castle park"}}));
        assert_eq!(
            feature_collection(vec![without_id.clone()]),
            json!({"type": "FeatureCollection", "features": [without_id]})
        );
    }
}
