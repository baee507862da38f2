//! NGSI-LD context source registrations (ETSI GS CIM 009 `CSourceRegistration`) and their NGSI9 form.
//!
//! A registration `{"id","type":"ContextSourceRegistration","information":[{"entities":[{id|idPattern, type}],
//! "propertyNames","relationshipNames"}],"endpoint","location"?,"expiresAt"?}` becomes one NGSI9 *named*
//! registration (`registrationId` = its id): one `contextRegistration` per `information` item, whose entities are
//! the item's entities (an `idPattern`, or a type alone, as an `isPattern` id), whose attributes are its property
//! (`Property`) and relationship (`Relationship`) names, whose `providingApplication` is the `endpoint`, and
//! whose metadata carry a `Point` `location` as FogFlow's `point` metadata and the whole registration document
//! (under [`DOCUMENT_METADATA`]), so that it can be given back as it was written. `expiresAt` becomes the NGSI9
//! `duration`.
//!
//! The registrations FogFlow's brokers make for the entities they hold (unnamed, one per provider and entity)
//! are shown as registrations too, with an id derived from the entity and the provider ([`held_id`]).
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::context::Context;
use super::{check_uri, LOCATION};
use crate::ngsi::limits::{check_name, MAX_ELEMENTS_PER_REQUEST};
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{ContextMetadata, EntityId};
use crate::ngsi::v9::{ContextRegistration, ContextRegistrationAttribute, RegisterContextRequest, RegistrationRecord};
use crate::ngsi::ParseError;

/// The `type` of a registration.
pub const CSOURCE_TYPE: &str = "ContextSourceRegistration";
/// The prefix of generated registration ids.
pub const ID_PREFIX: &str = "urn:ngsi-ld:ContextSourceRegistration:";
/// The prefix of the ids of a broker's registrations of the entities it holds.
const HELD_PREFIX: &str = "urn:ngsi-ld:ContextSourceRegistration:held:";
/// The NGSI9 metadata that keeps the registration document.
pub const DOCUMENT_METADATA: &str = "csourceRegistration";
/// Most `information` items in one registration.
pub const MAX_INFORMATION: usize = 100;

/// A validated registration.
#[derive(Debug, Clone, PartialEq)]
pub struct CSourceRegistration {
    /// Its id.
    pub id: String,
    /// The document as it is given back (no `@context`; types and names in their stored form).
    pub document: Value,
    /// When it expires (milliseconds since the epoch).
    pub expires_at: Option<i64>,
    registrations: Vec<ContextRegistration>,
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>, ParseError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_ELEMENTS_PER_REQUEST => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ParseError::new(format!("{what} must hold strings"))),
        Some(_) => Err(ParseError::new(format!("{what} must be an array of strings"))),
    }
}

fn text<'a>(object: &'a Map<String, Value>, key: &str, what: &str) -> Result<Option<&'a str>, ParseError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ParseError::new(format!("{what} must be a string"))),
    }
}

/// Reads one `information[].entities[]` item into its stored form and NGSI9 entity.
fn entity_info(context: &Context, value: &Value) -> Result<(Value, EntityId), ParseError> {
    let Value::Object(object) = value else { return Err(ParseError::new("an entities item must be an object")) };
    let entity_type = text(object, "type", "entities[].type")?
        .ok_or_else(|| ParseError::new("an entities item needs a type"))
        .map(|t| context.canonical(t))?;
    check_name("entity type", &entity_type)?;
    let mut stored = json!({ "type": entity_type });
    let entity = match (text(object, "id", "entities[].id")?, text(object, "idPattern", "entities[].idPattern")?) {
        (Some(_), Some(_)) => return Err(ParseError::new("an entities item cannot have both id and idPattern")),
        (Some(id), None) => {
            check_uri("entities[].id", id)?;
            stored["id"] = Value::from(id);
            EntityId { id: id.to_string(), entity_type, is_pattern: false }
        }
        (None, Some(pattern)) => {
            let entity = EntityId { id: pattern.to_string(), entity_type, is_pattern: true };
            EntitySelector::compile(std::slice::from_ref(&entity))?;
            stored["idPattern"] = Value::from(pattern);
            entity
        }
        (None, None) => EntityId { id: ".*".into(), entity_type, is_pattern: true },
    };
    Ok((stored, entity))
}

/// Reads one `information` item into its stored form and NGSI9 registration (without provider and metadata).
fn information(context: &Context, value: &Value) -> Result<(Value, ContextRegistration), ParseError> {
    let Value::Object(object) = value else { return Err(ParseError::new("an information item must be an object")) };
    let entities = match object.get("entities") {
        Some(Value::Array(entities)) if !entities.is_empty() && entities.len() <= MAX_ELEMENTS_PER_REQUEST => entities,
        _ => return Err(ParseError::new("information[].entities must be a non-empty array (with a type each)")),
    };
    let (stored_entities, entities): (Vec<Value>, Vec<EntityId>) =
        entities.iter().map(|entity| entity_info(context, entity)).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    let mut stored = json!({ "entities": stored_entities });
    let mut attributes = Vec::new();
    for (key, attribute_type) in [("propertyNames", "Property"), ("relationshipNames", "Relationship")] {
        let names: Vec<String> = strings(object.get(key), key)?.iter().map(|name| context.canonical(name)).collect();
        for name in &names {
            check_name("attribute name", name)?;
            attributes.push(ContextRegistrationAttribute {
                name: name.clone(),
                attribute_type: attribute_type.into(),
                is_domain: false,
            });
        }
        if !names.is_empty() {
            stored[key] = Value::from(names);
        }
    }
    let registration = ContextRegistration {
        entities,
        attributes,
        context_metadata: Vec::new(),
        providing_application: String::new(),
    };
    Ok((stored, registration))
}

/// The FogFlow `point` metadata of a GeoJSON `Point`, if `location` is one.
fn point_metadata(location: &Value) -> Option<ContextMetadata> {
    if location.get("type")? != "Point" {
        return None;
    }
    let coordinates = location.get("coordinates")?.as_array()?;
    let (longitude, latitude) = (coordinates.first()?.as_f64()?, coordinates.get(1)?.as_f64()?);
    Some(ContextMetadata {
        name: LOCATION.into(),
        metadata_type: "point".into(),
        value: json!({ "latitude": latitude, "longitude": longitude }),
    })
}

fn check_endpoint(endpoint: &str) -> Result<(), ParseError> {
    let uri: http::Uri =
        endpoint.parse().map_err(|_| ParseError::new(format!("endpoint `{endpoint}` is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || endpoint.len() > 2048 {
        return Err(ParseError::new(format!("endpoint `{endpoint}` must be an http(s) URL")));
    }
    Ok(())
}

/// Validates a registration document (`id` is the registration's id; a different `id` in the body is refused).
/// `now` (milliseconds since the epoch) refuses an `expiresAt` in the past.
pub fn parse(context: &Context, body: &Value, id: &str, now: i64) -> Result<CSourceRegistration, ParseError> {
    let Value::Object(object) = body else { return Err(ParseError::new("a registration must be a JSON object")) };
    check_uri("registration id", id)?;
    if object.get("id").is_some_and(|given| given.as_str() != Some(id)) {
        return Err(ParseError::new("the id in the payload differs from the registration's id"));
    }
    if object.get("type").and_then(Value::as_str) != Some(CSOURCE_TYPE) {
        return Err(ParseError::new(format!("the type of a registration must be {CSOURCE_TYPE}")));
    }
    let endpoint = text(object, "endpoint", "endpoint")?.ok_or_else(|| ParseError::new("endpoint is missing"))?;
    check_endpoint(endpoint)?;
    let items = match object.get("information") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_INFORMATION => items,
        _ => return Err(ParseError::new(format!("information must be an array of 1 to {MAX_INFORMATION} items"))),
    };
    let (stored_items, mut registrations): (Vec<Value>, Vec<ContextRegistration>) =
        items.iter().map(|item| information(context, item)).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    if registrations.iter().map(|r| r.entities.len()).sum::<usize>() > MAX_ELEMENTS_PER_REQUEST {
        return Err(ParseError::new(format!("more than {MAX_ELEMENTS_PER_REQUEST} entities in one registration")));
    }
    let expires_at = match text(object, "expiresAt", "expiresAt")? {
        None => None,
        Some(at) => {
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| ParseError::new(format!("expiresAt `{at}` is not an ISO 8601 date-time")))?
                .timestamp_millis();
            if at <= now {
                return Err(ParseError::new("expiresAt is in the past"));
            }
            Some(at)
        }
    };
    let location = match object.get("location") {
        None => None,
        Some(location @ Value::Object(geometry)) if geometry.contains_key("type") => Some(location),
        Some(_) => return Err(ParseError::new("location must be a GeoJSON geometry")),
    };
    let mut document = object.clone();
    document.remove("@context");
    document.insert("id".into(), Value::from(id));
    document.insert("information".into(), Value::Array(stored_items));
    let document = Value::Object(document);
    let mut metadata: Vec<ContextMetadata> = location.and_then(point_metadata).into_iter().collect();
    metadata.push(ContextMetadata {
        name: DOCUMENT_METADATA.into(),
        metadata_type: CSOURCE_TYPE.into(),
        value: document.clone(),
    });
    for registration in &mut registrations {
        registration.context_metadata.clone_from(&metadata);
        registration.providing_application = endpoint.to_string();
    }
    Ok(CSourceRegistration { id: id.to_string(), document, expires_at, registrations })
}

impl CSourceRegistration {
    /// The NGSI9 named registration, its `duration` running from `now` to `expiresAt` (whole seconds, rounded up).
    pub fn to_ngsi9(&self, now: i64) -> RegisterContextRequest {
        let duration = match self.expires_at {
            Some(at) => format!("PT{}S", (at.saturating_sub(now).max(1) + 999) / 1000),
            None => String::new(),
        };
        RegisterContextRequest {
            context_registrations: self.registrations.clone(),
            duration,
            registration_id: self.id.clone(),
        }
    }
}

/// Merges a `PATCH` fragment into a registration document: the fragment's members replace the document's
/// (`id` and `type` cannot change).
pub fn merged(document: &Value, fragment: &Value) -> Result<Value, ParseError> {
    let (Value::Object(document), Value::Object(fragment)) = (document, fragment) else {
        return Err(ParseError::new("a registration fragment must be a JSON object"));
    };
    let mut merged = document.clone();
    for (key, value) in fragment {
        match key.as_str() {
            "@context" => {}
            "id" | "type" if merged.get(key) != Some(value) => {
                return Err(ParseError::new(format!("the {key} of a registration cannot change")))
            }
            _ => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(Value::Object(merged))
}

/// The id shown for the registration a broker made of an entity it holds: derived from the entity id and the
/// provider, so that it can be looked up again ([`parse_held_id`]).
pub fn held_id(entity_id: &str, provider: &str) -> String {
    format!("{HELD_PREFIX}{entity_id}@{provider}")
}

/// The entity id and provider of an id made by [`held_id`].
pub fn parse_held_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix(HELD_PREFIX)?;
    let at = rest.rfind("@http")?;
    Some((&rest[..at], &rest[at + 1..]))
}

/// The registrations the records of discovery describe, by id: a named registration from its document, a
/// broker's registration of an entity it holds as a registration of that entity (its attributes as
/// `propertyNames`, its `point` location as a GeoJSON `Point`).
pub fn from_records(records: &[RegistrationRecord]) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for record in records {
        if record.registration_id.is_empty() {
            all.insert(held_id(&record.id, &record.provider), held(record));
        } else if let Some(document) = record.metadata.get(DOCUMENT_METADATA) {
            all.entry(record.registration_id.clone()).or_insert_with(|| document.value.clone());
        }
    }
    all
}

fn held(record: &RegistrationRecord) -> Value {
    let mut information = json!({ "entities": [{ "id": record.id, "type": record.entity_type }] });
    let names: Vec<&String> = record.attributes.keys().collect();
    if !names.is_empty() {
        information["propertyNames"] = json!(names);
    }
    let mut document = json!({
        "id": held_id(&record.id, &record.provider),
        "type": CSOURCE_TYPE,
        "information": [information],
        "endpoint": record.provider,
    });
    let point = record.metadata.get(LOCATION).filter(|m| m.metadata_type == "point").and_then(|m| {
        Some(json!({"type": "Point", "coordinates": [m.value.get("longitude")?, m.value.get("latitude")?]}))
    });
    if let Some(point) = point {
        document["location"] = point;
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn sample() -> Value {
        json!({"id": "urn:ngsi-ld:ContextSourceRegistration:1", "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Room"}, {"id": "urn:room:1", "type": "Room"},
                {"idPattern": "^urn:hall", "type": "Hall"}], "propertyNames": ["temperature"],
                "relationshipNames": ["inBuilding"]}],
            "endpoint": "http://csource:8070/ngsi10", "location": {"type": "Point", "coordinates": [8.6, 49.4]},
            "expiresAt": "2030-01-01T00:00:00Z", "name": "kept"})
    }

    #[test]
    fn a_registration_becomes_one_named_ngsi9_registration() {
        let parsed = parse(&Context::core(), &sample(), "urn:ngsi-ld:ContextSourceRegistration:1", NOW).unwrap();
        assert_eq!(parsed.document["name"], "kept");
        let request = parsed.to_ngsi9(NOW);
        assert_eq!(request.registration_id, "urn:ngsi-ld:ContextSourceRegistration:1");
        assert!(request.duration.starts_with("PT") && request.duration.ends_with('S'));
        let registration = &request.context_registrations[0];
        assert_eq!(registration.providing_application, "http://csource:8070/ngsi10");
        let ids: Vec<(&str, bool)> = registration.entities.iter().map(|e| (e.id.as_str(), e.is_pattern)).collect();
        assert_eq!(ids, [(".*", true), ("urn:room:1", false), ("^urn:hall", true)]);
        assert_eq!(registration.attributes[1].attribute_type, "Relationship");
        let names: Vec<&str> = registration.context_metadata.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [LOCATION, DOCUMENT_METADATA]);
        assert_eq!(registration.context_metadata[0].value["latitude"], 49.4);
    }

    #[test]
    fn bad_registrations_are_refused() {
        let bad = |change: &dyn Fn(&mut Value)| {
            let mut body = sample();
            change(&mut body);
            parse(&Context::core(), &body, "urn:ngsi-ld:ContextSourceRegistration:1", NOW).is_err()
        };
        assert!(bad(&|b| b["type"] = json!("Registration")));
        assert!(bad(&|b| b["id"] = json!("urn:other")));
        assert!(bad(&|b| b["endpoint"] = json!("not a url")));
        assert!(bad(&|b| b["information"] = json!([])));
        assert!(bad(&|b| b["information"][0]["entities"] = json!([{"id": "urn:x"}])));
        assert!(bad(&|b| b["information"][0]["entities"][1]["idPattern"] = json!("(")));
        assert!(bad(&|b| b["information"][0]["entities"][1]["id"] = json!("no uri")));
        assert!(bad(&|b| b["expiresAt"] = json!("2000-01-01T00:00:00Z")));
        assert!(bad(&|b| b["location"] = json!([1, 2])));
        assert!(parse(&Context::core(), &sample(), "no uri", NOW).is_err());
    }

    #[test]
    fn fragments_merge_and_held_ids_round_trip() {
        let patched = merged(&sample(), &json!({"endpoint": "http://other/ngsi10"})).unwrap();
        assert_eq!(
            (patched["endpoint"].as_str(), patched["name"].as_str()),
            (Some("http://other/ngsi10"), Some("kept"))
        );
        assert!(merged(&sample(), &json!({"type": "Other"})).is_err());
        let id = held_id("urn:a@httpish", "http://10.0.0.1:8070/ngsi10");
        assert_eq!(parse_held_id(&id), Some(("urn:a@httpish", "http://10.0.0.1:8070/ngsi10")));
        assert_eq!(parse_held_id("urn:ngsi-ld:ContextSourceRegistration:1"), None);
    }
}
