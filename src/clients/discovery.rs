//! Client of IoT Discovery's NGSI9 API as a broker uses it: register entities and the broker itself, delete
//! registrations, heartbeat (spec `broker-discovery.md` §5.1–§5.2, §7.1).

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::http_client::{HttpClient, OutboundError};
use crate::ngsi::v1::EntityId;
use crate::ngsi::v9::{
    BrokerProfile, DiscoverContextAvailabilityRequest, DiscoverContextAvailabilityResponse, RegisterContextRequest,
    RegistrationQuery, RegistrationRecord, SubscribeContextAvailabilityRequest, SubscribeContextAvailabilityResponse,
    UnsubscribeContextAvailabilityRequest,
};

/// Why a discovery call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    /// Discovery could not be reached.
    #[error(transparent)]
    Unreachable(#[from] OutboundError),
    /// Discovery answered with an error status.
    #[error("discovery answered {status} to {what}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// The status.
        status: u16,
    },
}

/// Discovery's NGSI9 API at one base URL (ending in `/ngsi9`).
#[derive(Debug, Clone)]
pub struct DiscoveryClient {
    base_url: String,
    http: HttpClient,
}

impl DiscoveryClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8090/ngsi9`).
    pub fn new(base_url: impl Into<String>, http: HttpClient) -> Self {
        DiscoveryClient { base_url: base_url.into().trim_end_matches('/').to_string(), http }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /registerContext`; a refusal carries discovery's status (400 for invalid input).
    pub async fn register_context(&self, request: &RegisterContextRequest) -> Result<(), DiscoveryError> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let url = format!("{}/registerContext", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(DiscoveryError::Refused { what: "registerContext", status: response.status })
        }
    }

    /// `POST /registrations/query` (our discovery's addition): the records of the registrations selected.
    pub async fn query_registrations(
        &self,
        query: &RegistrationQuery,
    ) -> Result<Vec<RegistrationRecord>, DiscoveryError> {
        let body = serde_json::to_vec(query).unwrap_or_default();
        let url = format!("{}/registrations/query", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        let refused = DiscoveryError::Refused { what: "registrations query", status: response.status };
        if !response.is_success() {
            return Err(refused);
        }
        serde_json::from_slice(&response.body).map_err(|_| refused)
    }

    /// `DELETE /registrations/{rid}` (our discovery's addition): false when discovery knows no such registration.
    pub async fn delete_named(&self, registration_id: &str) -> Result<bool, DiscoveryError> {
        let url = format!("{}/registrations/{}", self.base_url, encode_segment(registration_id));
        let response = self.http.send_empty(Method::DELETE, &url).await?;
        match response.status {
            404 => Ok(false),
            status if (200..300).contains(&status) => Ok(true),
            status => Err(DiscoveryError::Refused { what: "delete named registration", status }),
        }
    }

    /// `DELETE /registration/{id}`; an unknown id counts as done.
    pub async fn delete_registration(&self, entity_id: &str) -> Result<(), DiscoveryError> {
        let url = format!("{}/registration/{}", self.base_url, encode_segment(entity_id));
        let response = self.http.send_empty(Method::DELETE, &url).await?;
        if response.is_success() || response.status == 404 {
            Ok(())
        } else {
            Err(DiscoveryError::Refused { what: "delete registration", status: response.status })
        }
    }

    /// `POST /discoverContextAvailability`: the providers holding matching entities, with those entities.
    pub async fn discover(
        &self,
        request: &DiscoverContextAvailabilityRequest,
    ) -> Result<Vec<(String, Vec<EntityId>)>, DiscoveryError> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let url = format!("{}/discoverContextAvailability", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        if !response.is_success() {
            return Err(DiscoveryError::Refused { what: "discoverContextAvailability", status: response.status });
        }
        let answer: DiscoverContextAvailabilityResponse = serde_json::from_slice(&response.body)
            .map_err(|_| DiscoveryError::Refused { what: "discoverContextAvailability", status: response.status })?;
        Ok(answer
            .context_registration_responses
            .into_iter()
            .map(|r| (r.context_registration.providing_application, r.context_registration.entities))
            .collect())
    }

    /// `POST /subscribeContextAvailability`: the new availability subscription's id.
    pub async fn subscribe_availability(
        &self,
        request: &SubscribeContextAvailabilityRequest,
    ) -> Result<String, DiscoveryError> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let url = format!("{}/subscribeContextAvailability", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        let answer: Option<SubscribeContextAvailabilityResponse> =
            response.is_success().then(|| serde_json::from_slice(&response.body).ok()).flatten();
        match answer {
            Some(answer) => Ok(answer.subscribe_id),
            None => Err(DiscoveryError::Refused { what: "subscribeContextAvailability", status: response.status }),
        }
    }

    /// `POST /unsubscribeContextAvailability`; an unknown id counts as done.
    pub async fn unsubscribe_availability(&self, id: &str) -> Result<(), DiscoveryError> {
        let body = serde_json::to_vec(&UnsubscribeContextAvailabilityRequest { subscription_id: id.to_string() })
            .unwrap_or_default();
        let url = format!("{}/unsubscribeContextAvailability", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        if response.is_success() || response.status == 404 {
            Ok(())
        } else {
            Err(DiscoveryError::Refused { what: "unsubscribeContextAvailability", status: response.status })
        }
    }

    /// The provider of an entity id, if discovery knows one (`GET /registration/{id}`).
    pub async fn provider_of(&self, entity_id: &str) -> Result<Option<String>, DiscoveryError> {
        let url = format!("{}/registration/{}", self.base_url, encode_segment(entity_id));
        let response = self.http.send_empty(Method::GET, &url).await?;
        match response.status {
            404 => Ok(None),
            status if (200..300).contains(&status) => {
                let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
                Ok(body.get("ProvidingApplication").and_then(serde_json::Value::as_str).map(str::to_string))
            }
            status => Err(DiscoveryError::Refused { what: "registration lookup", status }),
        }
    }

    /// Whether discovery holds a registration for `entity_id` (`GET /registration/{id}`: FogFlow answers
    /// `null` for an unknown id, ours 404).
    pub async fn is_registered(&self, entity_id: &str) -> Result<bool, DiscoveryError> {
        let url = format!("{}/registration/{}", self.base_url, encode_segment(entity_id));
        let response = self.http.send_empty(Method::GET, &url).await?;
        match response.status {
            404 => Ok(false),
            status if (200..300).contains(&status) => {
                let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
                Ok(body.is_object())
            }
            status => Err(DiscoveryError::Refused { what: "registration lookup", status }),
        }
    }

    /// `POST /broker/heartbeat`; returns discovery's epoch when it reports one (FogFlow's discovery does not).
    pub async fn heartbeat(&self, profile: &BrokerProfile) -> Result<Option<String>, DiscoveryError> {
        let body = serde_json::to_vec(profile).unwrap_or_default();
        let url = format!("{}/broker/heartbeat", self.base_url);
        let response = self.http.post_json(&url, HeaderMap::new(), Bytes::from(body)).await?;
        if response.is_success() {
            let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
            Ok(answer.get("epoch").and_then(serde_json::Value::as_str).map(str::to_string))
        } else {
            Err(DiscoveryError::Refused { what: "heartbeat", status: response.status })
        }
    }
}

/// Percent-encodes one path segment (ids may hold characters that are not valid in a URL path).
pub fn encode_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
