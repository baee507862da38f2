//! Conversions of an NGSI10 element into the NGSIv2 and NGSI-LD entity shapes, for subscriptions that asked
//! for those notification formats with the `Destination` header (spec §4.9). Pure.

use serde_json::{json, Map, Value};

use super::ld::render::{render_entity, Rendering};
use super::times::EntityTimes;
use super::v1::ContextElement;

/// The NGSIv2 normalized entity: `{"id","type", attr: {"type","value","metadata"}, …}`; domain metadata become
/// attributes too (FogFlow's `toNGSIv2`) unless an attribute has their name.
pub fn to_ngsiv2(element: &ContextElement) -> Value {
    let mut entity = Map::new();
    entity.insert("id".into(), Value::String(element.entity_id.id.clone()));
    entity.insert("type".into(), Value::String(element.entity_id.entity_type.clone()));
    for attribute in &element.attributes {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(attribute.attribute_type.clone()));
        body.insert("value".into(), attribute.value.clone());
        if !attribute.metadata.is_empty() {
            let metadata: Map<String, Value> = attribute
                .metadata
                .iter()
                .map(|m| (m.name.clone(), json!({ "type": m.metadata_type, "value": m.value })))
                .collect();
            body.insert("metadata".into(), Value::Object(metadata));
        }
        entity.insert(attribute.name.clone(), Value::Object(body));
    }
    for metadata in &element.domain_metadata {
        // An attribute of the same name wins (e.g. a v2 `geo:json` location over the point derived from it).
        entity
            .entry(metadata.name.clone())
            .or_insert_with(|| json!({ "type": metadata.metadata_type, "value": metadata.value }));
    }
    Value::Object(entity)
}

/// The NGSI-LD normalized entity, exactly as `GET /ngsi-ld/v1/entities/{id}` renders it (sub-properties,
/// GeoProperties, LanguageProperties and Relationships kept; an attribute wins over domain metadata of the same
/// name), except that ids which are not URIs get FogFlow's `urn:` prefix, as an NGSI-LD broker receiving the
/// upsert requires URIs.
pub fn to_ngsi_ld(element: &ContextElement) -> Value {
    let mut entity = render_entity(element, &EntityTimes::default(), &Rendering::default());
    let id = &element.entity_id.id;
    if !id.contains(':') {
        entity["id"] = Value::String(format!("urn:{id}"));
    }
    entity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContextElement {
        serde_json::from_value(json!({"entityId":{"id":"Device.temp001","type":"Temperature"},
            "attributes":[{"name":"temp","type":"integer","value":10},{"name":"owner","type":"relationship","value":"urn:x"}],
            "domainMetadata":[{"name":"location","type":"point","value":{"latitude":49.4,"longitude":8.6}}]}))
        .unwrap()
    }

    #[test]
    fn v2_shape_matches_fogflow() {
        let entity = to_ngsiv2(&sample());
        assert_eq!(entity["temp"], json!({"type":"integer","value":10}));
        assert_eq!(entity["location"]["type"], "point");
        assert_eq!(entity["id"], "Device.temp001");
    }

    #[test]
    fn v2_attributes_win_over_domain_metadata_of_the_same_name() {
        let mut element = sample();
        element.attributes.push(crate::ngsi::v1::ContextAttribute {
            name: "location".into(),
            attribute_type: "geo:json".into(),
            value: json!({"type":"Point","coordinates":[8.6, 49.4]}),
            metadata: Vec::new(),
        });
        assert_eq!(to_ngsiv2(&element)["location"]["type"], "geo:json");
    }

    #[test]
    fn ld_shape_uses_urn_ids_relationships_and_geoproperties() {
        let entity = to_ngsi_ld(&sample());
        assert_eq!(entity["id"], "urn:Device.temp001");
        assert_eq!(entity["owner"], json!({"type":"Relationship","object":"urn:x"}));
        assert_eq!(entity["location"]["value"]["coordinates"], json!([8.6, 49.4]));
    }
}
