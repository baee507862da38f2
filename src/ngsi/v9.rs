//! NGSI9 (availability) wire types the broker sends to IoT Discovery: context registrations and broker
//! heartbeats (spec `broker-discovery.md` §3.2, §5.1–§5.2). Pure data, no I/O.

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
