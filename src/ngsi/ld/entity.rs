//! NGSI-LD entities ↔ stored NGSI10 [`ContextElement`]s.
//!
//! * A Property is an attribute of type `Property` with its `value`; a Relationship one of type `Relationship`
//!   with the `object` as value; a GeoProperty one of type `GeoProperty` with the GeoJSON value; a
//!   LanguageProperty one of type `LanguageProperty` with the `languageMap` as value.
//! * Sub-properties are attribute metadata: `observedAt` (type `DateTime`), `unitCode` (`Text`), `datasetId`
//!   (`URI`) with their bare values, other sub-attributes with their kind as type and their value (their own
//!   sub-attributes are dropped).
//! * A `location` GeoProperty holding a Point also sets the domain metadata `location` of type `point`
//!   (`{latitude, longitude}`), so NGSI10 geo scopes see LD positions; NGSI10 attributes of other types read as
//!   Properties, and a `point` domain metadata without a `location` attribute reads as a `location` GeoProperty.
//!
//! * A multi-attribute (an array of instances told apart by `datasetId`) is stored as one attribute per instance,
//!   of the same name (see [`super::multi`]).
//!
//! * The entity's `type` is a string or an array of strings: the first type is the element's type, the others its
//!   `extra_types`.
//!
//! Names and types are stored canonical (see [`super::context`]). Input may be normalized or concise. A body
//! read from a request is parsed owned (`parse_*_owned`): its values move into the element instead of being
//! copied.

use serde_json::{Map, Value};

use super::context::Context;
use super::{check_uri, DATASET_ID, LOCATION, OBSERVED_AT, UNIT_CODE};
use crate::ngsi::limits::{check_name, MAX_ATTRIBUTES_PER_ENTITY, MAX_TYPES_PER_ENTITY};
use crate::ngsi::v1::{ContextAttribute, ContextElement, ContextMetadata, EntityId};
use crate::ngsi::ParseError;

/// Keys of an entity that are not attributes.
const ENTITY_KEYS: &[&str] = &["id", "type", "@context", "createdAt", "modifiedAt", "scope"];
/// Keys of an attribute that are not sub-properties.
const ATTRIBUTE_KEYS: &[&str] = &["type", "value", "object", "languageMap", "createdAt", "modifiedAt", "@context"];

/// The kind of an NGSI-LD attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Property`.
    Property,
    /// `Relationship`.
    Relationship,
    /// `GeoProperty`.
    GeoProperty,
    /// `LanguageProperty`.
    LanguageProperty,
}

impl Kind {
    /// The kind of a stored attribute or metadata type (NGSI10 types read as Properties).
    pub fn of(stored_type: &str) -> Kind {
        match stored_type {
            "Relationship" | "relationship" => Kind::Relationship,
            "GeoProperty" | "geo:json" => Kind::GeoProperty,
            "LanguageProperty" => Kind::LanguageProperty,
            _ => Kind::Property,
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        match name {
            "Property" => Some(Kind::Property),
            "Relationship" => Some(Kind::Relationship),
            "GeoProperty" => Some(Kind::GeoProperty),
            "LanguageProperty" => Some(Kind::LanguageProperty),
            _ => None,
        }
    }

    /// Its name, also the stored type.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Property => "Property",
            Kind::Relationship => "Relationship",
            Kind::GeoProperty => "GeoProperty",
            Kind::LanguageProperty => "LanguageProperty",
        }
    }

    /// The member holding its value.
    pub fn value_key(self) -> &'static str {
        match self {
            Kind::Relationship => "object",
            Kind::LanguageProperty => "languageMap",
            Kind::Property | Kind::GeoProperty => "value",
        }
    }
}

/// Whether a JSON value is a valid GeoJSON geometry (Point, LineString, Polygon, MultiPoint, MultiPolygon).
pub fn is_geojson(value: &Value) -> bool {
    match (value.get("type").and_then(Value::as_str), value.get("coordinates")) {
        (Some(kind), Some(coordinates)) => super::geo::geometry(kind, coordinates).is_ok(),
        _ => false,
    }
}

/// Whether a value is a concise GeoProperty: a bare GeoJSON geometry with nothing else.
fn is_bare_geometry(value: &Value) -> bool {
    is_geojson(value) && value.as_object().is_some_and(|o| o.keys().all(|k| k == "type" || k == "coordinates"))
}

/// Where the value of an attribute body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueAt {
    /// The body is the value (concise).
    Whole,
    /// In this member of the body object (normalized).
    Member(&'static str),
}

impl ValueAt {
    /// The value, moved out of the body.
    fn take(self, body: Value) -> Value {
        match (self, body) {
            (ValueAt::Whole, body) => body,
            (ValueAt::Member(key), Value::Object(mut object)) => object.remove(key).unwrap_or(Value::Null),
            (ValueAt::Member(_), _) => Value::Null,
        }
    }
}

/// The kind and value of an attribute (or sub-attribute) given normalized or concise.
fn kind_and_value(name: &str, body: &Value) -> Result<(Kind, Value), ParseError> {
    let (kind, at) = kind_and_value_at(name, body)?;
    let value = match at {
        ValueAt::Whole => body.clone(),
        ValueAt::Member(key) => body.get(key).cloned().unwrap_or(Value::Null),
    };
    Ok((kind, value))
}

/// The kind of an attribute (or sub-attribute) given normalized or concise, and where its value is (checked).
fn kind_and_value_at(name: &str, body: &Value) -> Result<(Kind, ValueAt), ParseError> {
    let Value::Object(object) = body else {
        if body.is_null() {
            return Err(ParseError::new(format!("attribute `{name}` has a null value")));
        }
        return Ok((Kind::Property, ValueAt::Whole));
    };
    if is_bare_geometry(body) {
        return Ok((Kind::GeoProperty, ValueAt::Whole));
    }
    let kind = match object.get("type") {
        Some(Value::String(kind)) => Kind::parse(kind).ok_or_else(|| {
            ParseError::new(format!("attribute `{name}` has type `{kind}` (expected Property, Relationship, GeoProperty or LanguageProperty)"))
        })?,
        Some(_) => return Err(ParseError::new(format!("the type of attribute `{name}` must be a string"))),
        None if object.contains_key("object") => Kind::Relationship,
        None if object.contains_key("languageMap") => Kind::LanguageProperty,
        None if object.get("value").is_some_and(is_geojson) => Kind::GeoProperty,
        None if object.contains_key("value") => Kind::Property,
        None => return Ok((Kind::Property, ValueAt::Whole)),
    };
    let value = match object.get(kind.value_key()) {
        None | Some(Value::Null) => {
            return Err(ParseError::new(format!("attribute `{name}` has no {}", kind.value_key())));
        }
        Some(value) => value,
    };
    match kind {
        Kind::Relationship => match value {
            Value::String(object) => check_uri(&format!("object of `{name}`"), object)?,
            _ => return Err(ParseError::new(format!("the object of relationship `{name}` must be a URI string"))),
        },
        Kind::GeoProperty if !is_geojson(value) => {
            return Err(ParseError::new(format!("the value of GeoProperty `{name}` must be a valid GeoJSON geometry")));
        }
        Kind::LanguageProperty if !value.is_object() => {
            return Err(ParseError::new(format!("the languageMap of `{name}` must be an object")));
        }
        _ => {}
    }
    Ok((kind, ValueAt::Member(kind.value_key())))
}

fn check_date_time(what: &str, value: &Value) -> Result<(), ParseError> {
    match value.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(_)) => Ok(()),
        _ => Err(ParseError::new(format!("{what} must be an ISO 8601 date-time string"))),
    }
}

/// One sub-property as attribute metadata.
fn parse_sub_property(attribute: &str, name: &str, body: &Value) -> Result<ContextMetadata, ParseError> {
    let what = format!("{name} of `{attribute}`");
    let (metadata_type, value) = match name {
        OBSERVED_AT => {
            check_date_time(&what, body)?;
            ("DateTime".to_string(), body.clone())
        }
        UNIT_CODE if body.is_string() => ("Text".to_string(), body.clone()),
        DATASET_ID => match body {
            Value::String(uri) => {
                check_uri(&what, uri)?;
                ("URI".to_string(), body.clone())
            }
            _ => return Err(ParseError::new(format!("{what} must be a URI string"))),
        },
        UNIT_CODE => return Err(ParseError::new(format!("{what} must be a string"))),
        _ => {
            let (kind, value) = kind_and_value(name, body)?;
            (kind.name().to_string(), value)
        }
    };
    Ok(ContextMetadata { name: name.to_string(), metadata_type, value })
}

/// The instances of a multi-attribute body's array: attribute objects (each with a `type`, `value`, `object` or
/// `languageMap`); `None` for a concise array value.
fn instances_of_items(items: &[Value]) -> Option<&[Value]> {
    let is_instance = |item: &Value| ["type", "value", "object", "languageMap"].iter().any(|k| item.get(k).is_some());
    (!items.is_empty() && items.iter().all(is_instance)).then_some(items)
}

/// Parses every instance of attribute `name` (already canonical): one, or several told apart by `datasetId`
/// (see [`super::multi`]).
pub fn parse_instances(context: &Context, name: &str, body: &Value) -> Result<Vec<ContextAttribute>, ParseError> {
    let mut instances = Vec::new();
    push_instances(context, name.to_string(), body.clone(), &mut instances)?;
    Ok(instances)
}

/// [`parse_instances`] of an owned body (values moved, not copied), pushed onto `attributes`.
fn push_instances(
    context: &Context,
    name: String,
    body: Value,
    attributes: &mut Vec<ContextAttribute>,
) -> Result<(), ParseError> {
    match body {
        Value::Array(items) if instances_of_items(&items).is_some() => {
            let first = attributes.len();
            for item in items {
                attributes.push(parse_attribute_owned(context, name.clone(), item)?);
            }
            super::multi::check_instances(&name, &attributes[first..])
        }
        body => {
            attributes.push(parse_attribute_owned(context, name, body)?);
            Ok(())
        }
    }
}

/// Parses one attribute instance `name` (already canonical) from its normalized or concise body (an array of one
/// instance is that instance; of several, refused: see [`parse_instances`]).
pub fn parse_attribute(context: &Context, name: &str, body: &Value) -> Result<ContextAttribute, ParseError> {
    parse_attribute_owned(context, name.to_string(), body.clone())
}

/// [`parse_attribute`] of an owned name and body (the value is moved, not copied).
pub fn parse_attribute_owned(context: &Context, name: String, body: Value) -> Result<ContextAttribute, ParseError> {
    check_name("attribute name", &name)?;
    let body = match body {
        Value::Array(mut items) if instances_of_items(&items).is_some() => {
            if items.len() != 1 {
                return Err(ParseError::new(format!("attribute `{name}`: give one instance here")));
            }
            items.pop().unwrap_or_default()
        }
        body => body,
    };
    let (kind, at) = kind_and_value_at(&name, &body)?;
    let mut metadata = Vec::new();
    if let Value::Object(object) = &body {
        let concise_value = kind == Kind::Property && !object.contains_key("value") && !object.contains_key("type");
        if !concise_value && !is_bare_geometry(&body) {
            for (key, sub) in object {
                if ATTRIBUTE_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let sub_name = context.canonical(key);
                check_name("sub-property name", &sub_name)?;
                metadata.push(parse_sub_property(&name, &sub_name, sub)?);
            }
        }
    }
    // The value's member is not a sub-property (it is one of ATTRIBUTE_KEYS), so it is still there to move.
    Ok(ContextAttribute { attribute_type: kind.name().to_string(), value: at.take(body), metadata, name })
}

/// Parses the attributes of an entity or attributes body (keys other than `id`, `type`, `@context` and system
/// attributes), names made canonical.
pub fn parse_attributes(context: &Context, body: &Map<String, Value>) -> Result<Vec<ContextAttribute>, ParseError> {
    parse_attributes_owned(context, body.clone())
}

/// [`parse_attributes`] of an owned body (values moved, not copied).
pub fn parse_attributes_owned(
    context: &Context,
    body: Map<String, Value>,
) -> Result<Vec<ContextAttribute>, ParseError> {
    let mut attributes = Vec::with_capacity(body.len());
    for (key, value) in body {
        if ENTITY_KEYS.contains(&key.as_str()) {
            continue;
        }
        push_instances(context, context.canonical(&key), value, &mut attributes)?;
        if attributes.len() > MAX_ATTRIBUTES_PER_ENTITY {
            return Err(ParseError::new(format!("more than {MAX_ATTRIBUTES_PER_ENTITY} attributes")));
        }
    }
    Ok(attributes)
}

/// The canonical entity types of a body `type`: a string, or a non-empty array of strings (clause 4.5.1: an
/// entity may have several types), each expanded with the context; duplicates dropped, order kept.
pub fn parse_types(context: &Context, value: Option<&Value>) -> Result<Vec<String>, ParseError> {
    let names: Vec<&str> = match value {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) if names.is_empty() => {
            return Err(ParseError::new("entity type must not be an empty array"));
        }
        Some(Value::Array(names)) if names.len() > MAX_TYPES_PER_ENTITY => {
            return Err(ParseError::new(format!("more than {MAX_TYPES_PER_ENTITY} entity types")));
        }
        Some(Value::Array(names)) => names
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| ParseError::new("entity types must be strings"))?,
        Some(_) => return Err(ParseError::new("entity type must be a string or an array of strings")),
        None => return Err(ParseError::new("entity type is missing")),
    };
    let mut types: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let canonical = context.canonical(name);
        check_name("entity type", &canonical)?;
        if !types.contains(&canonical) {
            types.push(canonical);
        }
    }
    Ok(types)
}

/// The types of an entity fragment (append, merge): those of its `type` member, none without one.
pub fn fragment_types(context: &Context, fragment: &Map<String, Value>) -> Result<Vec<String>, ParseError> {
    match fragment.get("type").or_else(|| fragment.get("@type")) {
        None => Ok(Vec::new()),
        some => parse_types(context, some),
    }
}

/// Parses an NGSI-LD entity (normalized or concise) into an element; the `id` must be a URI, the type given.
pub fn parse_entity(context: &Context, body: &Value) -> Result<ContextElement, ParseError> {
    parse_entity_owned(context, body.clone())
}

/// [`parse_entity`] of an owned body (values moved, not copied).
pub fn parse_entity_owned(context: &Context, body: Value) -> Result<ContextElement, ParseError> {
    let Value::Object(object) = body else { return Err(ParseError::new("an entity must be a JSON object")) };
    let id = match object.get("id").or_else(|| object.get("@id")) {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(ParseError::new("entity id must be a string")),
        None => return Err(ParseError::new("entity id is missing")),
    };
    check_uri("entity id", &id)?;
    let types = parse_types(context, object.get("type").or_else(|| object.get("@type")))?;
    let mut element = ContextElement {
        entity_id: EntityId { id, entity_type: String::new(), is_pattern: false },
        attributes: parse_attributes_owned(context, object)?,
        domain_metadata: Vec::new(),
        extra_types: Vec::new(),
    };
    element.set_types(types);
    refresh_location(None, &mut element);
    Ok(element)
}

/// Keeps the `location` domain metadata (type `point`) in step with a `location` GeoProperty: set from a Point,
/// removed when the `location` GeoProperty is no Point any more or was removed by this edit.
pub fn refresh_location(before: Option<&ContextElement>, element: &mut ContextElement) {
    fn geo(element: &ContextElement) -> Option<&ContextAttribute> {
        element.attributes.iter().find(|a| a.name == LOCATION && Kind::of(&a.attribute_type) == Kind::GeoProperty)
    }
    let point = match geo(element) {
        Some(attribute) => point_of(&attribute.value),
        None if before.and_then(geo).is_some() => None,
        None => return,
    };
    let Some((latitude, longitude)) = point else {
        element.domain_metadata.retain(|m| m.name != LOCATION);
        return;
    };
    // Rewritten in place when it is the only `location` domain metadata (the usual case: no allocation).
    let mut existing = element.domain_metadata.iter_mut().filter(|m| m.name == LOCATION);
    if let (Some(only), None) = (existing.next(), existing.next()) {
        if only.metadata_type != "point" {
            only.metadata_type = "point".into();
        }
        if !set_point(&mut only.value, latitude, longitude) {
            only.value = point_value(latitude, longitude);
        }
        // Last, as it would be if removed and pushed again.
        if let Some(at) = element.domain_metadata.iter().position(|m| m.name == LOCATION) {
            let moved = element.domain_metadata.remove(at);
            element.domain_metadata.push(moved);
        }
        return;
    }
    element.domain_metadata.retain(|m| m.name != LOCATION);
    element.domain_metadata.push(ContextMetadata {
        name: LOCATION.into(),
        metadata_type: "point".into(),
        value: point_value(latitude, longitude),
    });
}

/// The value of the `location` domain metadata.
fn point_value(latitude: f64, longitude: f64) -> Value {
    serde_json::json!({ "latitude": latitude, "longitude": longitude })
}

/// Overwrites a `{latitude, longitude}` value with these numbers; false (nothing changed) when it has another shape.
fn set_point(value: &mut Value, latitude: f64, longitude: f64) -> bool {
    let Value::Object(object) = value else { return false };
    let (Some(lat), Some(lon)) = (serde_json::Number::from_f64(latitude), serde_json::Number::from_f64(longitude))
    else {
        return false;
    };
    if object.len() != 2 || !object.contains_key("latitude") || !object.contains_key("longitude") {
        return false;
    }
    if let Some(slot) = object.get_mut("latitude") {
        *slot = Value::Number(lat);
    }
    if let Some(slot) = object.get_mut("longitude") {
        *slot = Value::Number(lon);
    }
    true
}

/// The `(latitude, longitude)` of a GeoJSON Point.
fn point_of(value: &Value) -> Option<(f64, f64)> {
    if value.get("type").and_then(Value::as_str) != Some("Point") {
        return None;
    }
    match value.get("coordinates")?.as_array()?.as_slice() {
        [longitude, latitude] => {
            let (latitude, longitude) = (latitude.as_f64()?, longitude.as_f64()?);
            ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude))
                .then_some((latitude, longitude))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
