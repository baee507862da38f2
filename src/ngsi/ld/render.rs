//! Rendering stored elements as NGSI-LD entities: normalized, `keyValues` (simplified) or `concise`, with the
//! `sysAttrs` (`createdAt`/`modifiedAt` of the entity and of each attribute instance, see [`crate::ngsi::times`];
//! not of sub-properties, and none in `keyValues`), an `attrs` projection and the language filter `lang`
//! (LanguageProperties shown as Properties in one language, see [`super::lang`]). A multi-attribute shows as an
//! array of its instances (in `keyValues`, of their values). The inverse of [`super::entity`]; NGSI10-written
//! elements read as Properties (see there).

use serde_json::{Map, Value};

use super::entity::{is_geojson, Kind};
use super::lang::LanguageFilter;
use super::{DATASET_ID, LOCATION, OBSERVED_AT, UNIT_CODE};
use crate::ngsi::times::{EntityTimes, InstanceTimes};
use crate::ngsi::v1::{ContextAttribute, ContextElement, ContextMetadata};

/// How an entity is rendered (`options=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Every attribute with its `type` and sub-properties.
    #[default]
    Normalized,
    /// `name: value` only (`keyValues`, `simplified`).
    KeyValues,
    /// Without redundant `type`s (`concise`).
    Concise,
}

/// Rendering options of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendering {
    /// The format.
    pub format: Format,
    /// Whether to add `createdAt`/`modifiedAt` (to the entity and to each attribute instance).
    pub sys_attrs: bool,
    /// The attributes to keep (canonical names); all when empty.
    pub attrs: Vec<String>,
    /// The language filter (`lang`): LanguageProperties as Properties in the language it picks.
    pub lang: Option<LanguageFilter>,
}

/// Milliseconds since the epoch as an ISO 8601 UTC date-time.
pub fn date_time(millis: i64) -> Value {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(time) => Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => Value::Null,
    }
}

fn sub_property(metadata: &ContextMetadata, format: Format) -> Value {
    if [OBSERVED_AT, UNIT_CODE, DATASET_ID].contains(&metadata.name.as_str()) {
        return metadata.value.clone();
    }
    let kind = Kind::of(&metadata.metadata_type);
    fragment(kind, &metadata.value, &[], format)
}

fn fragment(kind: Kind, value: &Value, metadata: &[ContextMetadata], format: Format) -> Value {
    fragment_with_times(kind, value, metadata, format, None)
}

/// `createdAt`/`modifiedAt` added to a rendered attribute object.
fn insert_times(object: &mut Map<String, Value>, times: Option<InstanceTimes>) {
    if let Some(times) = times {
        object.insert("createdAt".into(), date_time(times.created_at));
        object.insert("modifiedAt".into(), date_time(times.modified_at));
    }
}

fn fragment_with_times(
    kind: Kind,
    value: &Value,
    metadata: &[ContextMetadata],
    format: Format,
    times: Option<InstanceTimes>,
) -> Value {
    if format == Format::KeyValues {
        return value.clone();
    }
    let concise_bare = format == Format::Concise
        && metadata.is_empty()
        && times.is_none()
        && match kind {
            Kind::Property => !value.is_object() && !value.is_array(),
            Kind::GeoProperty => true,
            Kind::Relationship | Kind::LanguageProperty => false,
        };
    if concise_bare {
        return value.clone();
    }
    let mut object = Map::new();
    // A concise Property whose value is a GeoJSON geometry keeps its type, else it would read as a GeoProperty.
    if format == Format::Normalized || (kind == Kind::Property && is_geojson(value)) {
        object.insert("type".into(), Value::String(kind.name().into()));
    }
    object.insert(kind.value_key().into(), value.clone());
    for sub in metadata {
        object.insert(sub.name.clone(), sub_property(sub, format));
    }
    insert_times(&mut object, times);
    Value::Object(object)
}

/// One attribute rendered.
pub fn render_attribute(attribute: &ContextAttribute, format: Format) -> Value {
    fragment(Kind::of(&attribute.attribute_type), &attribute.value, &attribute.metadata, format)
}

/// One attribute instance rendered with its system times, when given.
fn render_attribute_with_times(attribute: &ContextAttribute, format: Format, times: Option<InstanceTimes>) -> Value {
    fragment_with_times(Kind::of(&attribute.attribute_type), &attribute.value, &attribute.metadata, format, times)
}

/// A LanguageProperty shown through a language filter: a Property with the value of the language picked and a
/// `lang` member naming it (keyValues: the value alone); as stored when its languageMap is empty.
fn render_in_language(
    attribute: &ContextAttribute,
    filter: &LanguageFilter,
    format: Format,
    times: Option<InstanceTimes>,
) -> Value {
    let Some((tag, value)) = attribute.value.as_object().and_then(|map| filter.pick(map)) else {
        return render_attribute_with_times(attribute, format, times);
    };
    if format == Format::KeyValues {
        return value.clone();
    }
    let mut object = Map::new();
    if format == Format::Normalized {
        object.insert("type".into(), Value::String(Kind::Property.name().into()));
    }
    object.insert("value".into(), value.clone());
    object.insert("lang".into(), Value::String(tag.to_string()));
    for sub in &attribute.metadata {
        object.insert(sub.name.clone(), sub_property(sub, format));
    }
    insert_times(&mut object, times);
    Value::Object(object)
}

/// The NGSI-LD view of an element's attributes: its attributes, then a `location` GeoProperty from a `point`
/// domain metadata when no attribute is named `location`, then its other domain metadata as Properties.
pub fn view(element: &ContextElement) -> Vec<ContextAttribute> {
    let mut attributes = element.attributes.clone();
    for metadata in &element.domain_metadata {
        if element.attributes.iter().any(|a| a.name == metadata.name) {
            continue;
        }
        let is_point = metadata.name == LOCATION && metadata.metadata_type.eq_ignore_ascii_case("point");
        let attribute = match (is_point, metadata.value.get("latitude"), metadata.value.get("longitude")) {
            (true, Some(latitude), Some(longitude)) => ContextAttribute {
                name: LOCATION.into(),
                attribute_type: Kind::GeoProperty.name().into(),
                value: serde_json::json!({"type": "Point", "coordinates": [longitude, latitude]}),
                metadata: Vec::new(),
            },
            _ => ContextAttribute {
                name: metadata.name.clone(),
                attribute_type: Kind::Property.name().into(),
                value: metadata.value.clone(),
                metadata: Vec::new(),
            },
        };
        attributes.push(attribute);
    }
    attributes
}

/// The `type` member of an entity: its type, or the array of its types when it has several.
pub fn entity_type(element: &ContextElement) -> Value {
    if element.extra_types.is_empty() {
        return Value::String(element.entity_id.entity_type.clone());
    }
    Value::Array(element.types().map(|t| Value::String(t.to_string())).collect())
}

/// An entity rendered, with the system times of `times` under `sysAttrs` (`element` is the stored element of
/// `times`, or a projection of it, as a notification's).
pub fn render_entity(element: &ContextElement, times: &EntityTimes<'_>, rendering: &Rendering) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), Value::String(element.entity_id.id.clone()));
    object.insert("type".into(), entity_type(element));
    let mut multi: Vec<String> = Vec::new();
    let sys_attrs = rendering.sys_attrs && rendering.format != Format::KeyValues;
    for (index, attribute) in view(element).into_iter().enumerate() {
        if !rendering.attrs.is_empty() && !rendering.attrs.contains(&attribute.name) {
            continue;
        }
        let attribute_times = sys_attrs.then(|| times.of(index, &attribute));
        let rendered = match &rendering.lang {
            Some(filter) if Kind::of(&attribute.attribute_type) == Kind::LanguageProperty => {
                render_in_language(&attribute, filter, rendering.format, attribute_times)
            }
            _ => render_attribute_with_times(&attribute, rendering.format, attribute_times),
        };
        // The instances of a multi-attribute (one attribute per `datasetId`) show as an array.
        match object.get_mut(&attribute.name) {
            Some(Value::Array(instances)) if multi.contains(&attribute.name) => instances.push(rendered),
            Some(first) => {
                *first = Value::Array(vec![first.take(), rendered]);
                multi.push(attribute.name.clone());
            }
            None => {
                object.insert(attribute.name.clone(), rendered);
            }
        }
    }
    if sys_attrs {
        object.insert("createdAt".into(), date_time(times.created_at));
        object.insert("modifiedAt".into(), date_time(times.modified_at));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::ld::context::Context;
    use crate::ngsi::ld::entity::parse_entity;

    fn sample() -> Value {
        json!({
            "id": "urn:ngsi-ld:Room:1", "type": "Room",
            "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL",
                "accuracy": {"type": "Property", "value": 0.5}},
            "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.68, 49.4]}},
            "name": {"type": "LanguageProperty", "languageMap": {"en": "Room"}},
            "count": {"type": "Property", "value": 3}
        })
    }

    #[test]
    fn normalized_rendering_is_lossless() {
        let element = parse_entity(&Context::core(), &sample()).unwrap();
        let rendered = render_entity(&element, &EntityTimes::default(), &Rendering::default());
        assert_eq!(rendered, sample());
        let again = parse_entity(&Context::core(), &rendered).unwrap();
        assert_eq!(again, element);
    }

    #[test]
    fn several_types_render_as_an_array_in_every_format() {
        let context = Context::from_body(&json!({"Store": "https://example.org/Store"})).unwrap();
        let element = parse_entity(&context, &json!({"id": "urn:a", "type": ["Room", "Store"], "n": 1})).unwrap();
        for format in [Format::Normalized, Format::Concise, Format::KeyValues] {
            let rendered =
                render_entity(&element, &EntityTimes::default(), &Rendering { format, ..Default::default() });
            assert_eq!(rendered["type"], json!(["Room", "https://example.org/Store"]), "{format:?}");
        }
        let rendered = render_entity(&element, &EntityTimes::default(), &Rendering::default());
        let compacted = crate::ngsi::ld::subscription::render::compact_entity(&context.compactor(), rendered);
        assert_eq!(compacted["type"], json!(["Room", "Store"]));
    }

    #[test]
    fn key_values_concise_sys_attrs_and_projection() {
        let element = parse_entity(&Context::core(), &sample()).unwrap();
        let key_values = Rendering { format: Format::KeyValues, ..Rendering::default() };
        let simple = render_entity(&element, &EntityTimes::default(), &key_values);
        assert_eq!(simple["temperature"], json!(21.5));
        assert_eq!(simple["inBuilding"], json!("urn:ngsi-ld:Building:1"));
        let concise = Rendering { format: Format::Concise, ..Rendering::default() };
        let concise = render_entity(&element, &EntityTimes::default(), &concise);
        assert_eq!(concise["count"], json!(3));
        assert_eq!(concise["inBuilding"], json!({"object": "urn:ngsi-ld:Building:1"}));
        assert_eq!(concise["temperature"], json!({"value": 21.5, "unitCode": "CEL", "accuracy": 0.5}));
        assert_eq!(concise["location"], json!({"type": "Point", "coordinates": [8.68, 49.4]}));
        assert_eq!(parse_entity(&Context::core(), &concise).unwrap(), element, "concise input reads back");
        let sys = Rendering { sys_attrs: true, attrs: vec!["count".into()], ..Rendering::default() };
        let projected = render_entity(&element, &EntityTimes::entity(1_700_000_000_000, 1_700_000_000_500), &sys);
        assert_eq!(
            projected,
            json!({"id": "urn:ngsi-ld:Room:1", "type": "Room",
                "count": {"type": "Property", "value": 3,
                    "createdAt": "2023-11-14T22:13:20.000Z", "modifiedAt": "2023-11-14T22:13:20.500Z"},
                "createdAt": "2023-11-14T22:13:20.000Z", "modifiedAt": "2023-11-14T22:13:20.500Z"}),
            "without instance times, attributes show the entity's"
        );
    }

    #[test]
    fn a_language_filter_shows_language_properties_as_properties() {
        let mut entity = sample();
        entity["name"] = json!({"type": "LanguageProperty", "languageMap": {"en": "Room", "fr": "Salle", "@none": "R"},
            "accuracy": {"type": "Property", "value": 1}});
        let element = parse_entity(&Context::core(), &entity).unwrap();
        let lang = |text: &str, format: Format| {
            let rendering =
                Rendering { format, lang: Some(LanguageFilter::parse(text).unwrap()), ..Rendering::default() };
            render_entity(&element, &EntityTimes::default(), &rendering)
        };
        assert_eq!(
            lang("fr", Format::Normalized)["name"],
            json!({"type": "Property", "value": "Salle", "lang": "fr", "accuracy": {"type": "Property", "value": 1}})
        );
        assert_eq!(lang("it", Format::Concise)["name"], json!({"value": "R", "lang": "@none", "accuracy": 1}));
        assert_eq!(lang("en", Format::KeyValues)["name"], json!("Room"));
        assert_eq!(lang("en", Format::Normalized)["temperature"], sample()["temperature"], "other kinds unchanged");
        let without = render_entity(&element, &EntityTimes::default(), &Rendering::default());
        assert_eq!(without["name"]["languageMap"]["fr"], "Salle", "without lang the languageMap is shown");
    }

    #[test]
    fn multi_attributes_render_as_arrays_of_instances() {
        let entity = json!({"id": "urn:a", "type": "T", "speed": [{"type": "Property", "value": 1},
            {"type": "Property", "value": 2, "datasetId": "urn:gps"}, {"type": "Property", "value": 3, "datasetId": "urn:b"}]});
        let element = parse_entity(&Context::core(), &entity).unwrap();
        assert_eq!(render_entity(&element, &EntityTimes::default(), &Rendering::default()), entity, "lossless");
        let key_values = Rendering { format: Format::KeyValues, ..Rendering::default() };
        assert_eq!(render_entity(&element, &EntityTimes::default(), &key_values)["speed"], json!([1, 2, 3]));
        assert_eq!(
            parse_entity(&Context::core(), &render_entity(&element, &EntityTimes::default(), &Rendering::default()))
                .unwrap(),
            element
        );
    }

    #[test]
    fn sys_attrs_show_the_times_of_each_instance_but_not_of_sub_properties() {
        let entity = json!({"id": "urn:a", "type": "T", "count": {"type": "Property", "value": 3, "unitCode": "C62"},
            "speed": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:gps"}]});
        let element = parse_entity(&Context::core(), &entity).unwrap();
        let names: Vec<&str> = element.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["count", "speed", "speed"]);
        let at = |created_at, modified_at| InstanceTimes { created_at, modified_at };
        let base = 1_700_000_000_000;
        let instance_times = [at(base, base + 1), at(base, base + 2), at(base + 3, base + 3)];
        let times = EntityTimes::stored(base, base + 3, &element, &instance_times);
        let render =
            |format| render_entity(&element, &times, &Rendering { format, sys_attrs: true, ..Default::default() });
        let normalized = render(Format::Normalized);
        assert_eq!(
            normalized["count"],
            json!({"type": "Property", "value": 3, "unitCode": "C62",
                "createdAt": "2023-11-14T22:13:20.000Z", "modifiedAt": "2023-11-14T22:13:20.001Z"})
        );
        assert_eq!(
            normalized["speed"][1],
            json!({"type": "Property", "value": 2, "datasetId": "urn:gps",
                "createdAt": "2023-11-14T22:13:20.003Z", "modifiedAt": "2023-11-14T22:13:20.003Z"})
        );
        assert_eq!(normalized["speed"][0]["modifiedAt"], "2023-11-14T22:13:20.002Z");
        assert_eq!(normalized["modifiedAt"], "2023-11-14T22:13:20.003Z");
        let concise = render(Format::Concise);
        assert_eq!(
            concise["speed"][0],
            json!({"value": 1, "createdAt": "2023-11-14T22:13:20.000Z", "modifiedAt": "2023-11-14T22:13:20.002Z"}),
            "a bare concise value becomes an object to hold the times"
        );
        assert_eq!(parse_entity(&Context::core(), &concise).unwrap(), element, "times are ignored on input");
        assert_eq!(parse_entity(&Context::core(), &normalized).unwrap(), element);
        let key_values = render(Format::KeyValues);
        assert_eq!(key_values, json!({"id": "urn:a", "type": "T", "count": 3, "speed": [1, 2]}), "none in keyValues");
        let lang =
            Rendering { sys_attrs: true, lang: Some(LanguageFilter::parse("en").unwrap()), ..Default::default() };
        assert_eq!(render_entity(&element, &times, &lang)["count"]["createdAt"], "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn ngsi10_elements_read_as_properties_with_a_location() {
        let element: ContextElement = serde_json::from_value(json!({
            "entityId": {"id": "Device.1", "type": "Device"},
            "attributes": [{"name": "on", "type": "boolean", "value": true}],
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 49.4, "longitude": 8.6}}]
        }))
        .unwrap();
        let rendered = render_entity(&element, &EntityTimes::default(), &Rendering::default());
        assert_eq!(rendered["on"], json!({"type": "Property", "value": true}));
        assert_eq!(
            rendered["location"],
            json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.6, 49.4]}})
        );
    }
}
