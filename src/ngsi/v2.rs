//! NGSIv2 (Orion-compatible) entity codec: Orion's identifier rules, parsing of normalized and `keyValues`
//! entities and attributes into NGSI10 [`ContextElement`]s (Orion's type inference), the v2 view of a stored
//! element and its rendering (normalized, `keyValues`, `values`; Orion's builtin `dateCreated`/`dateModified`
//! attributes and metadata in [`builtins`]). The entity edits of the v2 API, as pure functions over the stored
//! element, are in [`edit`]; the `location` domain metadata derived from a geo attribute
//! in [`location`]; the `q` query language and geo queries in [`query`] and [`geo`].
//!
//! The v2 view of an element is its attributes plus its domain metadata whose name no attribute has (as FogFlow's
//! `toNGSIv2`); the derived `location` point is hidden while a geo attribute exists. Pure: no I/O, no HTTP.

use serde_json::{Map, Value};

use super::limits::MAX_ID_LEN;
use super::v1::{ContextAttribute, ContextElement, ContextMetadata, EntityId};
use super::ParseError;

pub mod builtins;
pub mod edit;
#[cfg(test)]
mod fuzz;
pub mod geo;
pub mod location;
pub mod query;
pub mod service_path;
pub mod subscription;

pub use builtins::{render_attributes_with, Builtins};
pub use edit::{Edit, IfExists, Rejection};
use location::geo_attribute;
pub use location::refresh_location;

/// The entity type Orion gives an entity created without one.
pub const DEFAULT_ENTITY_TYPE: &str = "Thing";
/// Name of the domain metadata that carries an entity's position for NGSI10 scopes.
pub const LOCATION: &str = "location";
/// Attribute type whose string values are not checked for Orion's forbidden characters.
const TEXT_UNRESTRICTED: &str = "TextUnrestricted";
/// Characters Orion forbids anywhere in a request's identifiers and string values.
const FORBIDDEN: &[char] = &['<', '>', '"', '\'', '=', ';', '(', ')'];
/// Characters Orion forbids in identifiers on top of [`FORBIDDEN`].
const FORBIDDEN_IN_IDS: &[char] = &['&', '?', '/', '#'];

/// How an entity or its attributes are rendered (`options=keyValues|values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `{"id","type","attr":{"type","value","metadata"}}`.
    #[default]
    Normalized,
    /// `{"id","type","attr":value}`.
    KeyValues,
    /// `[value, …]`.
    Values,
}

/// Checks an identifier (entity id or type, attribute or metadata name or type) against Orion's rules:
/// 1–256 characters, printable ASCII without whitespace, none of `<>"'=;()&?/#`.
pub fn check_identifier(what: &str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError::new(format!("{what} is empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ParseError::new(format!("{what} is longer than {MAX_ID_LEN} characters")));
    }
    if let Some(bad) =
        value.chars().find(|c| !c.is_ascii_graphic() || FORBIDDEN.contains(c) || FORBIDDEN_IN_IDS.contains(c))
    {
        return Err(ParseError::new(format!("invalid character {bad:?} in {what}")));
    }
    Ok(())
}

/// Orion's type for an attribute or metadata given without one.
pub fn infer_type(value: &Value) -> &'static str {
    match value {
        Value::Number(_) => "Number",
        Value::String(_) => "Text",
        Value::Bool(_) => "Boolean",
        Value::Null => "None",
        Value::Array(_) | Value::Object(_) => "StructuredValue",
    }
}

fn check_value(what: &str, value: &Value) -> Result<(), ParseError> {
    match value {
        Value::String(text) if text.contains(FORBIDDEN) => {
            Err(ParseError::new(format!("invalid characters in {what} value")))
        }
        Value::Array(items) => items.iter().try_for_each(|item| check_value(what, item)),
        Value::Object(members) => members.values().try_for_each(|item| check_value(what, item)),
        _ => Ok(()),
    }
}

fn optional_text(object: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>, ParseError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => {
            check_identifier(what, text)?;
            Ok(Some(text.clone()))
        }
        Some(_) => Err(ParseError::new(format!("{what} must be a string"))),
    }
}

fn parse_metadata(name: &str, value: &Value) -> Result<Vec<ContextMetadata>, ParseError> {
    let Value::Object(items) = value else {
        return Err(ParseError::new(format!("metadata of attribute `{name}` must be a JSON object")));
    };
    let mut metadata = Vec::with_capacity(items.len());
    for (key, item) in items {
        check_identifier("metadata name", key)?;
        let Value::Object(body) = item else {
            return Err(ParseError::new(format!("metadata `{key}` must be a JSON object")));
        };
        if let Some(extra) = body.keys().find(|k| *k != "type" && *k != "value") {
            return Err(ParseError::new(format!("unrecognized property `{extra}` in metadata `{key}`")));
        }
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        check_value("metadata", &value)?;
        let metadata_type = optional_text(body, "type", "metadata type")?.unwrap_or_else(|| infer_type(&value).into());
        metadata.push(ContextMetadata { name: key.clone(), metadata_type, value });
    }
    Ok(metadata)
}

/// Parses one attribute: `{"type","value","metadata"}`, or (with `key_values`) its bare value.
pub fn parse_attribute(name: &str, body: &Value, key_values: bool) -> Result<ContextAttribute, ParseError> {
    check_identifier("attribute name", name)?;
    if key_values {
        check_value("attribute", body)?;
        let attribute_type = infer_type(body).to_string();
        return Ok(ContextAttribute { name: name.into(), attribute_type, value: body.clone(), metadata: Vec::new() });
    }
    let Value::Object(object) = body else {
        return Err(ParseError::new(format!("attribute `{name}` must be a JSON object")));
    };
    if let Some(extra) = object.keys().find(|k| !matches!(k.as_str(), "type" | "value" | "metadata")) {
        return Err(ParseError::new(format!("unrecognized property `{extra}` in attribute `{name}`")));
    }
    let value = object.get("value").cloned().unwrap_or(Value::Null);
    let attribute_type = optional_text(object, "type", "attribute type")?.unwrap_or_else(|| infer_type(&value).into());
    if attribute_type != TEXT_UNRESTRICTED {
        check_value("attribute", &value)?;
    }
    let metadata = match object.get("metadata") {
        Some(metadata) => parse_metadata(name, metadata)?,
        None => Vec::new(),
    };
    Ok(ContextAttribute { name: name.into(), attribute_type, value, metadata })
}

/// Parses an attributes object (the body of `/attrs`): every member is an attribute; `id` and `type` are refused.
pub fn parse_attributes(body: &Value, key_values: bool) -> Result<Vec<ContextAttribute>, ParseError> {
    let Value::Object(members) = body else {
        return Err(ParseError::new("the payload must be a JSON object"));
    };
    members
        .iter()
        .map(|(name, value)| {
            if name == "id" || name == "type" {
                return Err(ParseError::new(format!("`{name}` cannot be given as an attribute")));
            }
            parse_attribute(name, value, key_values)
        })
        .collect()
}

/// Parses a whole entity (the body of `POST /v2/entities`): `id` required, `type` defaults to `Thing`.
pub fn parse_entity(body: &Value, key_values: bool) -> Result<ContextElement, ParseError> {
    let Value::Object(members) = body else {
        return Err(ParseError::new("the payload must be a JSON object"));
    };
    let id = match members.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(ParseError::new("entity id must be a string")),
        None => return Err(ParseError::new("entity id is missing")),
    };
    check_identifier("entity id", &id)?;
    let entity_type = optional_text(members, "type", "entity type")?.unwrap_or_else(|| DEFAULT_ENTITY_TYPE.into());
    let mut attributes = Vec::with_capacity(members.len());
    for (name, value) in members.iter().filter(|(name, _)| *name != "id" && *name != "type") {
        attributes.push(parse_attribute(name, value, key_values)?);
    }
    let mut element = ContextElement {
        entity_id: EntityId { id, entity_type, is_pattern: false },
        attributes,
        domain_metadata: Vec::new(),
        extra_types: Vec::new(),
    };
    refresh_location(None, &mut element);
    Ok(element)
}

/// The v2 view of an element: its attributes, then its domain metadata that no attribute shadows (the derived
/// `location` is hidden while a geo attribute exists).
pub fn view(element: &ContextElement) -> Vec<ContextAttribute> {
    let derived = geo_attribute(element).is_some();
    let mut attributes = element.attributes.clone();
    for metadata in &element.domain_metadata {
        if element.attributes.iter().any(|a| a.name == metadata.name) || (derived && metadata.name == LOCATION) {
            continue;
        }
        attributes.push(ContextAttribute {
            name: metadata.name.clone(),
            attribute_type: metadata.metadata_type.clone(),
            value: metadata.value.clone(),
            metadata: Vec::new(),
        });
    }
    attributes
}

/// The value of the attribute `name` in the v2 view of the element, without copying the view.
pub fn value_of<'a>(element: &'a ContextElement, name: &str) -> Option<&'a Value> {
    if let Some(attribute) = element.attributes.iter().find(|a| a.name == name) {
        return Some(&attribute.value);
    }
    if is_derived(element, name) {
        return None;
    }
    element.domain_metadata.iter().find(|m| m.name == name).map(|m| &m.value)
}

/// Whether the domain metadata `name` is the `location` derived from a geo attribute (hidden from the v2 view).
fn is_derived(element: &ContextElement, name: &str) -> bool {
    name == LOCATION && geo_attribute(element).is_some()
}

/// Whether the v2 view of the element has an attribute of this name.
pub fn has_attribute(element: &ContextElement, name: &str) -> bool {
    value_of(element, name).is_some()
}

/// One attribute rendered normalized: `{"type","value","metadata":{…}}`.
pub fn render_attribute(attribute: &ContextAttribute) -> Value {
    let metadata: Map<String, Value> = attribute
        .metadata
        .iter()
        .map(|m| (m.name.clone(), serde_json::json!({ "type": m.metadata_type, "value": m.value })))
        .collect();
    serde_json::json!({ "type": attribute.attribute_type, "value": attribute.value, "metadata": metadata })
}

/// The attributes of an element (those in `attrs`, in that order; all when empty) in a format.
pub fn render_attributes(element: &ContextElement, attrs: &[String], format: Format) -> Value {
    render_attributes_with(element, attrs, format, &Builtins::default())
}

/// A whole entity in a format (`values` gives the attribute values only, as Orion does).
pub fn render_entity(element: &ContextElement, attrs: &[String], format: Format) -> Value {
    render_entity_with(element, attrs, format, &Builtins::default())
}

/// [`render_entity`] with the builtin attributes and metadata `builtins` asks for.
pub fn render_entity_with(
    element: &ContextElement,
    attrs: &[String],
    format: Format,
    builtins: &Builtins<'_>,
) -> Value {
    let attributes = render_attributes_with(element, attrs, format, builtins);
    let Value::Object(members) = attributes else { return attributes };
    let mut entity = Map::with_capacity(members.len() + 2);
    entity.insert("id".into(), Value::String(element.entity_id.id.clone()));
    entity.insert("type".into(), Value::String(element.entity_id.entity_type.clone()));
    // An NGSI10 attribute or domain metadata named `id` or `type` cannot replace the entity's own.
    entity.extend(members.into_iter().filter(|(name, _)| name != "id" && name != "type"));
    Value::Object(entity)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identifiers_follow_orion_rules() {
        assert!(check_identifier("entity id", "urn:ngsi:Room.1-a_b").is_ok());
        for bad in ["", "a b", "a\tb", "a/b", "a#b", "a?b", "a&b", "a<b", "a(b", "a=b", "a;b", "a'b", "a\"b", "é"] {
            assert!(check_identifier("entity id", bad).is_err(), "{bad:?}");
        }
        assert!(check_identifier("entity id", &"x".repeat(256)).is_ok());
        assert!(check_identifier("entity id", &"x".repeat(257)).is_err());
    }

    #[test]
    fn types_are_inferred_as_orion_does() {
        assert_eq!(infer_type(&json!(1.5)), "Number");
        assert_eq!(infer_type(&json!("x")), "Text");
        assert_eq!(infer_type(&json!(false)), "Boolean");
        assert_eq!(infer_type(&json!(null)), "None");
        assert_eq!(infer_type(&json!([1])), "StructuredValue");
        assert_eq!(infer_type(&json!({"a":1})), "StructuredValue");
    }

    #[test]
    fn normalized_entity_round_trips_through_the_element() {
        let body = json!({"id":"Room1","type":"Room",
            "temp":{"type":"Float","value":21.5,"metadata":{"unit":{"type":"Text","value":"C"}}},
            "open":{"value":true}});
        let element = parse_entity(&body, false).unwrap();
        assert_eq!(element.entity_id.entity_type, "Room");
        let temp = element.attributes.iter().find(|a| a.name == "temp").unwrap();
        assert_eq!(temp.metadata[0].name, "unit");
        let open = element.attributes.iter().find(|a| a.name == "open").unwrap();
        assert_eq!(open.attribute_type, "Boolean");
        let rendered = render_entity(&element, &[], Format::Normalized);
        assert_eq!(rendered["temp"], body["temp"]);
        assert_eq!(rendered["open"], json!({"type":"Boolean","value":true,"metadata":{}}));
        assert_eq!(parse_entity(&rendered, false).unwrap(), element);
    }

    #[test]
    fn key_values_infer_types_and_render_back() {
        let element = parse_entity(&json!({"id":"e","temp":21,"name":"x","tags":["a"]}), true).unwrap();
        assert_eq!(element.entity_id.entity_type, DEFAULT_ENTITY_TYPE);
        let rendered = render_entity(&element, &[], Format::KeyValues);
        assert_eq!(rendered, json!({"id":"e","type":"Thing","temp":21,"name":"x","tags":["a"]}));
        let values = render_entity(&element, &["temp".to_string(), "name".to_string()], Format::Values);
        assert_eq!(values, json!([21, "x"]));
    }

    #[test]
    fn bad_entities_are_refused() {
        for bad in [
            json!([]),
            json!({"type":"T"}),
            json!({"id":5}),
            json!({"id":"a b"}),
            json!({"id":"e","temp":21}),
            json!({"id":"e","temp":{"value":1,"unit":"C"}}),
            json!({"id":"e","temp":{"type":7,"value":1}}),
            json!({"id":"e","temp":{"value":1,"metadata":[]}}),
            json!({"id":"e","temp":{"value":1,"metadata":{"m":1}}}),
            json!({"id":"e","name":{"value":"<script>"}}),
            json!({"id":"e","bad name":{"value":1}}),
        ] {
            assert!(parse_entity(&bad, false).is_err(), "{bad}");
        }
        assert!(parse_entity(&json!({"id":"e","t":{"type":"TextUnrestricted","value":"a=b"}}), false).is_ok());
        assert!(parse_attributes(&json!({"id":{"value":1}}), false).is_err());
    }

    #[test]
    fn domain_metadata_show_as_attributes_unless_shadowed() {
        let element: ContextElement = serde_json::from_value(json!({"entityId":{"id":"e","type":"T"},
            "attributes":[{"name":"city","type":"Text","value":"Tokyo"}],
            "domainMetadata":[{"name":"city","type":"string","value":"Heidelberg"},
                              {"name":"location","type":"point","value":{"latitude":1.0,"longitude":2.0}}]}))
        .unwrap();
        let rendered = render_entity(&element, &[], Format::KeyValues);
        assert_eq!(rendered["city"], "Tokyo");
        assert_eq!(rendered["location"], json!({"latitude":1.0,"longitude":2.0}));
        let mut clash = element.clone();
        clash.domain_metadata.push(ContextMetadata {
            name: "id".into(),
            metadata_type: String::new(),
            value: json!(1),
        });
        assert_eq!(render_entity(&clash, &[], Format::KeyValues)["id"], "e", "the entity id cannot be replaced");
    }
}
