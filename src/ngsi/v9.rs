//! NGSI9 (availability) wire types the broker sends to IoT Discovery: context registrations and broker
//! heartbeats (spec `broker-discovery.md` §3.2, §5.1–§5.2). Pure data, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::v1::{ContextMetadata, EntityId};

/// One attribute of a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRegistrationAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute type.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub attribute_type: String,
    /// Whether it is a domain attribute (FogFlow always sends false).
    #[serde(rename = "isDomain", default)]
    pub is_domain: bool,
}

/// Which entities (and attributes, metadata) a provider holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRegistration {
    /// The entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityId>,
    /// Their attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<ContextRegistrationAttribute>,
    /// Their domain metadata (e.g. location).
    #[serde(rename = "contextMetadata", default, skip_serializing_if = "Vec::is_empty")]
    pub context_metadata: Vec<ContextMetadata>,
    /// The provider's NGSI10 URL, ending in `/ngsi10`.
    #[serde(rename = "providingApplication")]
    pub providing_application: String,
}

/// `POST /ngsi9/registerContext` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterContextRequest {
    /// The registrations.
    #[serde(rename = "contextRegistrations")]
    pub context_registrations: Vec<ContextRegistration>,
    /// ISO 8601 lease, e.g. `PT10M`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Registration id (given by discovery when empty).
    #[serde(rename = "registrationId", default, skip_serializing_if = "String::is_empty")]
    pub registration_id: String,
}

/// A broker's heartbeat body for `POST /ngsi9/broker/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerProfile {
    /// Broker id, e.g. `Broker.001`.
    pub id: String,
    /// The broker's NGSI10 URL.
    #[serde(rename = "myURL")]
    pub my_url: String,
    /// Time of the heartbeat (RFC 3339).
    #[serde(rename = "Last_Heartbeat_Update", default)]
    pub last_heartbeat_update: String,
}

/// Status object FogFlow's NGSI9 embeds in answers (`code` is a number).
pub use super::v1::StatusCode;

/// `POST /ngsi9/registerContext` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterContextResponse {
    /// Echo of the requested lease.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Registration id.
    #[serde(rename = "registrationId")]
    pub registration_id: String,
    /// Status.
    #[serde(rename = "errorCode")]
    pub error_code: StatusCode,
}

/// `POST /ngsi9/discoverContextAvailability` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DiscoverContextAvailabilityRequest {
    /// Entities (ids, patterns, types) to look for.
    #[serde(default)]
    pub entities: Vec<EntityId>,
    /// Attributes every match must have registered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Scopes on the registered metadata (circle, polygon, stringQuery, nearby …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<super::v1::Restriction>,
}

/// One provider's part of a discovery answer or availability notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRegistrationResponse {
    /// The entities this provider holds (and their registration).
    #[serde(rename = "contextRegistration")]
    pub context_registration: ContextRegistration,
    /// Status (always 200).
    #[serde(rename = "errorCode")]
    pub error_code: StatusCode,
}

/// `discoverContextAvailability` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DiscoverContextAvailabilityResponse {
    /// One entry per provider, nearest first for `nearby`.
    #[serde(rename = "contextRegistrationResponses", default, skip_serializing_if = "Vec::is_empty")]
    pub context_registration_responses: Vec<ContextRegistrationResponse>,
    /// Status.
    #[serde(rename = "errorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<StatusCode>,
}

/// `POST /ngsi9/subscribeContextAvailability` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SubscribeContextAvailabilityRequest {
    /// Entities to watch.
    #[serde(default)]
    pub entities: Vec<EntityId>,
    /// Attributes a registration must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// The exact URL availability notifications are POSTed to.
    #[serde(default)]
    pub reference: String,
    /// ISO 8601 duration (kept, not enforced).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<super::v1::Restriction>,
    /// Id (set by discovery).
    #[serde(rename = "subscriptionId", default, skip_serializing_if = "String::is_empty")]
    pub subscription_id: String,
}

/// `subscribeContextAvailability` answer (note `subscribeId`, FogFlow's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeContextAvailabilityResponse {
    /// The subscription id.
    #[serde(rename = "subscribeId")]
    pub subscribe_id: String,
    /// Echo of the duration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Status.
    #[serde(rename = "errorCode")]
    pub error_code: StatusCode,
}

/// `POST /ngsi9/unsubscribeContextAvailability` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeContextAvailabilityRequest {
    /// The subscription to cancel.
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
}

/// `unsubscribeContextAvailability` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeContextAvailabilityResponse {
    /// Echo of the id.
    #[serde(rename = "subscriptionId")]
    pub subscription_id: String,
    /// Status.
    #[serde(rename = "statusCode")]
    pub status_code: StatusCode,
}

/// What an availability notification announces (`errorCode.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AvailabilityAction {
    /// 201: matches found when the subscription was created.
    Create,
    /// 301: a registration was created or changed.
    Update,
    /// 410: a registration was removed (deleted, or its provider's lease expired).
    Delete,
}

impl AvailabilityAction {
    /// FogFlow's code for the action.
    pub fn code(self) -> u16 {
        match self {
            AvailabilityAction::Create => 201,
            AvailabilityAction::Update => 301,
            AvailabilityAction::Delete => 410,
        }
    }
}

/// `POST <reference>` body of an availability notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyContextAvailabilityRequest {
    /// The availability subscription.
    #[serde(rename = "subscribeId")]
    pub subscribe_id: String,
    /// The registrations concerned, one per provider.
    #[serde(rename = "contextRegistrationResponses", default, skip_serializing_if = "Vec::is_empty")]
    pub context_registration_responses: Vec<ContextRegistrationResponse>,
    /// The action: 201, 301 or 410.
    #[serde(rename = "errorCode")]
    pub error_code: StatusCode,
}

/// FogFlow's record of one registration (`GET /ngsi9/registration/{eid}`, Go field names), plus what our
/// discovery adds for named registrations (NGSI-LD context source registrations): `IsPattern`, `RegistrationId`
/// and `ExpiresAt`, each only when set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegistrationRecord {
    /// Entity id (an id pattern when `is_pattern`).
    #[serde(rename = "ID")]
    pub id: String,
    /// Entity type.
    #[serde(rename = "Type", default)]
    pub entity_type: String,
    /// Whether `id` is a pattern.
    #[serde(rename = "IsPattern", default, skip_serializing_if = "is_false")]
    pub is_pattern: bool,
    /// Registered attributes by name.
    #[serde(rename = "AttributesList", default)]
    pub attributes: BTreeMap<String, ContextRegistrationAttribute>,
    /// Registered metadata by name.
    #[serde(rename = "MetadataList", default)]
    pub metadata: BTreeMap<String, ContextMetadata>,
    /// The provider's URL.
    #[serde(rename = "ProvidingApplication")]
    pub provider: String,
    /// The named registration this entry belongs to; empty for FogFlow's per-entity registrations.
    #[serde(rename = "RegistrationId", default, skip_serializing_if = "String::is_empty")]
    pub registration_id: String,
    /// When a named registration expires (milliseconds since the epoch).
    #[serde(rename = "ExpiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `POST /ngsi9/registrations/query` body (our addition): the registrations whose entities `entities` selects
/// (any when empty), of one named registration when `registration_id` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegistrationQuery {
    /// Entities (ids, patterns, types) to look for; any entity when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityId>,
    /// Only the entries of this named registration.
    #[serde(rename = "registrationId", default, skip_serializing_if = "String::is_empty")]
    pub registration_id: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}
