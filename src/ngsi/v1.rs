//! NGSI10 (NGSIv1, FogFlow flavour) wire types: entity ids, attributes, metadata, context elements and the
//! request/response bodies of `/ngsi10/*`.
//!
//! JSON field names are interface facts (spec `broker-discovery.md` §3.1): FogFlow's operators, workers and
//! clients depend on them. This module only describes and (de)serializes; it does no I/O and knows nothing of
//! the store or of HTTP.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;

/// Identifies one entity, or a set of entities when `is_pattern` is true (`id` is then a regular expression).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EntityId {
    /// Entity id, or a regular expression over ids when `is_pattern` is true (empty = any id).
    #[serde(default)]
    pub id: String,
    /// Entity type; empty or absent means any type.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub entity_type: String,
    /// Whether `id` is a pattern. FogFlow omits it when false; Orion-style clients send it as a string.
    #[serde(rename = "isPattern", default, skip_serializing_if = "is_false", deserialize_with = "bool_or_string")]
    pub is_pattern: bool,
}

/// A metadata item, on an attribute or as an entity's domain metadata (e.g. `location`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextMetadata {
    /// Metadata name, e.g. `location`.
    pub name: String,
    /// Metadata type, e.g. `point`, `circle`, `polygon`, `string`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub metadata_type: String,
    /// Metadata value, kept as arbitrary JSON.
    #[serde(default)]
    pub value: Value,
}

/// One attribute of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute type, e.g. `integer`, `float`, `string`, `object`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub attribute_type: String,
    /// Attribute value, kept as arbitrary JSON (FogFlow's silent coercion to zero values is not copied).
    #[serde(default)]
    pub value: Value,
    /// Attribute metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<ContextMetadata>,
}

/// An entity with (some of) its attributes and domain metadata, in FogFlow's shape.
///
/// Input may also use Orion's flat NGSIv1 shape (`id`, `type`, `isPattern` at the top level); both are
/// normalized into this one form (FogFlow stored the flat form under an empty id, spec §12.2).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ContextElement {
    /// Which entity this is.
    #[serde(rename = "entityId")]
    pub entity_id: EntityId,
    /// Attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<ContextAttribute>,
    /// Domain metadata, e.g. the entity's `location` point.
    #[serde(rename = "domainMetadata", default, skip_serializing_if = "Vec::is_empty")]
    pub domain_metadata: Vec<ContextMetadata>,
    /// The entity's other types, after `entity_id.entity_type` (an NGSI-LD entity may have several, ETSI GS CIM
    /// 009 clause 4.5.1): canonical, distinct, none equal to the first. Not on the NGSI10 wire (NGSI10 and NGSIv2
    /// show the first type only); the broker's store keeps them (see `StoredEntity`).
    #[serde(skip)]
    pub extra_types: Vec<String>,
}

impl ContextElement {
    /// Every type of the entity: `entity_id.entity_type`, then the extra ones.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.entity_id.entity_type.as_str()).chain(self.extra_types.iter().map(String::as_str))
    }

    /// Whether the entity is of type `entity_type` (any of its types).
    pub fn has_type(&self, entity_type: &str) -> bool {
        self.types().any(|own| own == entity_type)
    }

    /// Sets the types: the first is `entity_id.entity_type`, the others (duplicates dropped) the extra ones.
    pub fn set_types(&mut self, types: Vec<String>) {
        let mut types = types.into_iter();
        self.entity_id.entity_type = types.next().unwrap_or_default();
        self.extra_types.clear();
        for entity_type in types {
            if !self.has_type(&entity_type) {
                self.extra_types.push(entity_type);
            }
        }
    }

    /// Adds the types the entity does not have yet (an entity without a type takes the first as its type);
    /// true when some was added.
    pub fn add_types<'t>(&mut self, types: impl IntoIterator<Item = &'t str>) -> bool {
        let mut added = false;
        for entity_type in types {
            if entity_type.is_empty() || self.has_type(entity_type) {
                continue;
            }
            if self.entity_id.entity_type.is_empty() {
                self.entity_id.entity_type = entity_type.to_string();
            } else {
                self.extra_types.push(entity_type.to_string());
            }
            added = true;
        }
        added
    }
}

#[derive(Deserialize)]
struct RawContextElement {
    #[serde(rename = "entityId", default)]
    entity_id: Option<EntityId>,
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    entity_type: Option<String>,
    #[serde(rename = "isPattern", default, deserialize_with = "opt_bool_or_string")]
    is_pattern: Option<bool>,
    #[serde(default)]
    attributes: Option<Vec<ContextAttribute>>,
    #[serde(rename = "domainMetadata", default)]
    domain_metadata: Option<Vec<ContextMetadata>>,
}

impl<'de> Deserialize<'de> for ContextElement {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawContextElement::deserialize(deserializer)?;
        let entity_id = match (raw.entity_id, raw.id) {
            (Some(entity_id), _) => entity_id,
            (None, Some(id)) => EntityId {
                id,
                entity_type: raw.entity_type.unwrap_or_default(),
                is_pattern: raw.is_pattern.unwrap_or(false),
            },
            (None, None) => return Err(serde::de::Error::custom("context element has neither `entityId` nor `id`")),
        };
        Ok(ContextElement {
            entity_id,
            attributes: raw.attributes.unwrap_or_default(),
            domain_metadata: raw.domain_metadata.unwrap_or_default(),
            extra_types: Vec::new(),
        })
    }
}

/// A status code as FogFlow embeds it in responses (`code` is a number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusCode {
    /// Numeric status, mirroring HTTP codes (200, 404, …).
    pub code: u16,
    /// Short text.
    #[serde(rename = "reasonPhrase", default, skip_serializing_if = "String::is_empty")]
    pub reason_phrase: String,
    /// Longer explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl StatusCode {
    /// `{"code":200,"reasonPhrase":"OK"}`.
    pub fn ok() -> Self {
        StatusCode { code: 200, reason_phrase: "OK".into(), details: String::new() }
    }

    /// A status with a code, phrase and details.
    pub fn new(code: u16, reason_phrase: &str, details: impl Into<String>) -> Self {
        StatusCode { code, reason_phrase: reason_phrase.into(), details: details.into() }
    }
}

/// One element of a response list: the element plus its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextElementResponse {
    /// The element.
    #[serde(rename = "contextElement")]
    pub context_element: ContextElement,
    /// Its status.
    #[serde(rename = "statusCode")]
    pub status_code: StatusCode,
}

/// `POST /ngsi10/updateContext` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateContextRequest {
    /// Elements to create, update or delete.
    #[serde(rename = "contextElements", default)]
    pub context_elements: Vec<ContextElement>,
    /// `UPDATE`, `APPEND` or `DELETE` (case-insensitive; FogFlow upper-cases it).
    #[serde(rename = "updateAction", default)]
    pub update_action: Option<String>,
}

/// The update action of an `updateContext` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    /// Create the entity if needed and merge the attributes (FogFlow semantics for both UPDATE and APPEND).
    Update,
    /// Same as `Update` (FogFlow treats both alike).
    Append,
    /// Delete the listed attributes, or the whole entity when no attribute is listed.
    Delete,
}

impl UpdateContextRequest {
    /// Parses the `updateAction` string.
    pub fn action(&self) -> Result<UpdateAction, ParseError> {
        let Some(action) = self.update_action.as_deref() else {
            return Err(ParseError::new("updateAction is missing (expected UPDATE, APPEND or DELETE)"));
        };
        match action.to_ascii_uppercase().as_str() {
            "UPDATE" => Ok(UpdateAction::Update),
            "APPEND" | "APPEND_STRICT" => Ok(UpdateAction::Append),
            "DELETE" => Ok(UpdateAction::Delete),
            other => {
                Err(ParseError::new(format!("unknown updateAction `{other}` (expected UPDATE, APPEND or DELETE)")))
            }
        }
    }
}

/// `updateContext` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateContextResponse {
    /// One response per element of the request.
    #[serde(rename = "contextResponses")]
    pub context_responses: Vec<ContextElementResponse>,
}

/// Restriction of a query or subscription: scopes (geo, stringQuery, nearby …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Restriction {
    /// Kept for compatibility, unused by FogFlow.
    #[serde(rename = "attributeExpression", default, skip_serializing_if = "String::is_empty")]
    pub attribute_expression: String,
    /// Operation scopes; all must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<OperationScope>,
    /// `"ld"` for FogFlow's NGSI-LD geo restriction (`geometry`, `geoRel`, `cordinates`), which discovery
    /// receives from NGSI-LD subscriptions.
    #[serde(rename = "restrictionType", default, skip_serializing_if = "String::is_empty")]
    pub restriction_type: String,
    /// NGSI-LD geometry (`Point`, `Polygon`, …; FogFlow sends them lower-cased).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub geometry: String,
    /// NGSI-LD georel (`near;maxDistance==1000`, `within`, …).
    #[serde(rename = "geoRel", default, skip_serializing_if = "String::is_empty")]
    pub geo_rel: String,
    /// NGSI-LD coordinates, GeoJSON order (`[longitude, latitude]`); FogFlow's spelling, `coordinates` accepted.
    #[serde(rename = "cordinates", alias = "coordinates", default, skip_serializing_if = "Value::is_null")]
    pub coordinates: Value,
}

/// One scope of a restriction: `{"scopeType": "...", "scopeValue": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationScope {
    /// `circle`, `polygon`, `simplegeolocation`, `nearby`, `stringQuery`, `point`, `global` or `local`.
    #[serde(rename = "scopeType")]
    pub scope_type: String,
    /// The scope's value; its shape depends on `scope_type`.
    #[serde(rename = "scopeValue", default)]
    pub scope_value: Value,
}

/// `POST /ngsi10/queryContext` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QueryContextRequest {
    /// Entities (ids, patterns, types) to match; at least one.
    #[serde(default)]
    pub entities: Vec<EntityId>,
    /// Attributes to return (and that a matching entity must have); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Optional scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<Restriction>,
}

/// `queryContext` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QueryContextResponse {
    /// Matching elements (omitted when none).
    #[serde(rename = "contextResponses", default, skip_serializing_if = "Vec::is_empty")]
    pub context_responses: Vec<ContextElementResponse>,
    /// Overall status.
    #[serde(rename = "errorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<StatusCode>,
}

/// A notify condition (`ONCHANGE` with the attributes whose change triggers a notification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyCondition {
    /// Condition type, e.g. `ONCHANGE`.
    #[serde(rename = "type", default)]
    pub condition_type: String,
    /// Attributes whose change triggers a notification; empty = any.
    #[serde(rename = "condValueList", default, skip_serializing_if = "Vec::is_empty")]
    pub cond_value_list: Vec<String>,
    /// Kept for compatibility, unused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restriction: String,
}

/// `POST /ngsi10/subscribeContext` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SubscribeContextRequest {
    /// Entities to watch.
    #[serde(default)]
    pub entities: Vec<EntityId>,
    /// Attributes to notify (and that a matching entity must have); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Where notifications go: NGSIv1 notifications are POSTed to `<reference>/notifyContext`.
    #[serde(default)]
    pub reference: String,
    /// ISO 8601 duration after which the subscription expires (e.g. `PT1H`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Optional scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<Restriction>,
    /// Conditions (ONCHANGE with trigger attributes).
    #[serde(rename = "notifyConditions", default, skip_serializing_if = "Vec::is_empty")]
    pub notify_conditions: Vec<NotifyCondition>,
    /// ISO 8601 minimum interval between two notifications (e.g. `PT5S`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub throttling: String,
}

/// The `subscribeResponse` part of a subscribe answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResponse {
    /// The new subscription's id.
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
    /// Echo of the requested duration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Echo of the requested throttling.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub throttling: String,
}

/// `subscribeContext` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeContextResponse {
    /// The created subscription.
    #[serde(rename = "subscribeResponse")]
    pub subscribe_response: SubscribeResponse,
}

/// `POST /ngsi10/unsubscribeContext` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeContextRequest {
    /// The subscription to cancel.
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
}

/// `unsubscribeContext` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeContextResponse {
    /// Echo of the cancelled subscription's id.
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
    /// 200, or 404 for an unknown id.
    #[serde(rename = "statusCode")]
    pub status_code: StatusCode,
}

/// `notifyContext` body, sent by the broker to subscribers and received from other brokers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyContextRequest {
    /// The subscription this notification belongs to.
    #[serde(rename = "subscriptionId", default)]
    pub subscription_id: String,
    /// Originator (FogFlow sends an empty string).
    #[serde(default)]
    pub originator: String,
    /// The notified elements.
    #[serde(rename = "contextResponses", default, skip_serializing_if = "Vec::is_empty")]
    pub context_responses: Vec<ContextElementResponse>,
}

/// `notifyContext` / `notifyContextAvailability` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyContextResponse {
    /// Status of the notification.
    #[serde(rename = "responseCode")]
    pub response_code: StatusCode,
}

/// The NGSIv1 error body FogFlow's and Orion's clients read:
/// `{"errorCode":{"code":"400","reasonPhrase":"Bad Request","details":"…"}}` (the code is a string, as Orion's).
pub fn error_body(status: u16, reason_phrase: &str, details: &str) -> Value {
    serde_json::json!({
        "errorCode": { "code": status.to_string(), "reasonPhrase": reason_phrase, "details": details }
    })
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Accepts `true`, `false`, `"true"` and `"false"` (Orion's NGSIv1 sends `isPattern` as a string).
fn bool_or_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(opt_bool_or_string(deserializer)?.unwrap_or(false))
}

fn opt_bool_or_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Text(String),
    }
    match Option::<BoolOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(BoolOrString::Bool(flag)) => Ok(Some(flag)),
        Some(BoolOrString::Text(text)) => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" | "" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!("isPattern must be true or false, not `{text}`"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fogflow_element_round_trips() {
        let text = r#"{"entityId":{"id":"Device.temp001","type":"Temperature","isPattern":false},
          "attributes":[{"name":"temp","type":"integer","value":10}],
          "domainMetadata":[{"name":"location","type":"point","value":{"latitude":49.4,"longitude":8.6}}]}"#;
        let element: ContextElement = serde_json::from_str(text).unwrap();
        assert_eq!(element.entity_id.id, "Device.temp001");
        let out = serde_json::to_value(&element).unwrap();
        assert_eq!(out["entityId"], serde_json::json!({"id":"Device.temp001","type":"Temperature"}));
        assert_eq!(out["attributes"][0]["value"], 10);
    }

    #[test]
    fn orion_flat_element_is_normalized() {
        let text = r#"{"id":"Room1","type":"Room","isPattern":"false","attributes":[{"name":"t","value":1}]}"#;
        let element: ContextElement = serde_json::from_str(text).unwrap();
        assert_eq!(element.entity_id.id, "Room1");
        assert_eq!(element.entity_id.entity_type, "Room");
        assert!(!element.entity_id.is_pattern);
    }

    #[test]
    fn element_without_any_id_is_rejected() {
        assert!(serde_json::from_str::<ContextElement>(r#"{"attributes":[]}"#).is_err());
    }

    #[test]
    fn is_pattern_rejects_garbage_strings() {
        assert!(serde_json::from_str::<EntityId>(r#"{"id":"a","isPattern":"maybe"}"#).is_err());
        let id: EntityId = serde_json::from_str(r#"{"id":"a.*","isPattern":"true"}"#).unwrap();
        assert!(id.is_pattern);
    }

    #[test]
    fn update_action_is_case_insensitive_and_required() {
        let mut request = UpdateContextRequest { context_elements: vec![], update_action: None };
        assert!(request.action().is_err());
        request.update_action = Some("append".into());
        assert_eq!(request.action().unwrap(), UpdateAction::Append);
        request.update_action = Some("CRETAE".into());
        assert!(request.action().is_err());
    }
}
