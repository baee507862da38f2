//! Client of another broker's NGSI10 API as a broker uses it for federation: queries and forwarded updates,
//! sent as broker-to-broker traffic (`User-Agent: lightweight-iot-broker`, so the owner answers from its own
//! entities and never federates again).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::http_client::{HttpClient, OutboundError};
use crate::ngsi::v1::{
    ContextElement, QueryContextRequest, QueryContextResponse, SubscribeContextRequest, SubscribeContextResponse,
    UnsubscribeContextRequest, UpdateContextRequest,
};

/// The `User-Agent` of broker-to-broker requests.
pub const INTERNAL_USER_AGENT: &str = "lightweight-iot-broker";

/// Why a call to another broker failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerCallError {
    /// It could not be reached in time.
    #[error(transparent)]
    Unreachable(#[from] OutboundError),
    /// It answered with an error status or an unreadable body.
    #[error("broker at {url} answered {status}")]
    Refused {
        /// Its URL.
        url: String,
        /// The status.
        status: u16,
    },
}

/// Calls other brokers' NGSI10 APIs.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    http: HttpClient,
}

impl BrokerClient {
    /// A client over `http`.
    pub fn new(http: HttpClient) -> Self {
        BrokerClient { http }
    }

    fn headers(tenant: &str, correlator: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::USER_AGENT, HeaderValue::from_static(INTERNAL_USER_AGENT));
        if let Ok(value) = HeaderValue::from_str(tenant) {
            if !tenant.is_empty() {
                headers.insert(HeaderName::from_static("fiware-service"), value);
            }
        }
        if let Some(value) = correlator.and_then(|c| HeaderValue::from_str(c).ok()) {
            headers.insert(HeaderName::from_static("fiware-correlator"), value);
        }
        headers
    }

    /// `POST <broker>/queryContext` (`broker` ends in `/ngsi10`): the elements it holds.
    pub async fn query(
        &self,
        broker: &str,
        tenant: &str,
        request: &QueryContextRequest,
    ) -> Result<Vec<ContextElement>, BrokerCallError> {
        let url = format!("{}/queryContext", broker.trim_end_matches('/'));
        let body = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
        let response = self.http.post_json(&url, Self::headers(tenant, None), body).await?;
        if !response.is_success() {
            return Err(BrokerCallError::Refused { url, status: response.status });
        }
        let answer: QueryContextResponse = serde_json::from_slice(&response.body)
            .map_err(|_| BrokerCallError::Refused { url, status: response.status })?;
        Ok(answer.context_responses.into_iter().map(|r| r.context_element).collect())
    }

    /// `POST <broker>/subscribeContext` as broker-to-broker traffic with `Require-Reliability: true`: the
    /// subscription's id at that broker.
    pub async fn subscribe(
        &self,
        broker: &str,
        tenant: &str,
        request: &SubscribeContextRequest,
    ) -> Result<String, BrokerCallError> {
        let url = format!("{}/subscribeContext", broker.trim_end_matches('/'));
        let mut headers = Self::headers(tenant, None);
        headers.insert(HeaderName::from_static("require-reliability"), HeaderValue::from_static("true"));
        let body = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
        let response = self.http.post_json(&url, headers, body).await?;
        let answer: Option<SubscribeContextResponse> =
            response.is_success().then(|| serde_json::from_slice(&response.body).ok()).flatten();
        match answer {
            Some(answer) => Ok(answer.subscribe_response.subscription_id),
            None => Err(BrokerCallError::Refused { url, status: response.status }),
        }
    }

    /// `POST <broker>/unsubscribeContext`; an unknown id counts as done.
    pub async fn unsubscribe(&self, broker: &str, tenant: &str, id: &str) -> Result<(), BrokerCallError> {
        let url = format!("{}/unsubscribeContext", broker.trim_end_matches('/'));
        let body = Bytes::from(
            serde_json::to_vec(&UnsubscribeContextRequest { subscription_id: id.to_string() }).unwrap_or_default(),
        );
        let response = self.http.post_json(&url, Self::headers(tenant, None), body).await?;
        if response.is_success() || response.status == 404 {
            Ok(())
        } else {
            Err(BrokerCallError::Refused { url, status: response.status })
        }
    }

    /// `POST <broker>/updateContext` of one request, forwarded to the entity's owner with its correlator.
    pub async fn update(
        &self,
        broker: &str,
        tenant: &str,
        correlator: Option<&str>,
        request: &UpdateContextRequest,
    ) -> Result<(), BrokerCallError> {
        let url = format!("{}/updateContext", broker.trim_end_matches('/'));
        let body = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
        let response = self.http.post_json(&url, Self::headers(tenant, correlator), body).await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(BrokerCallError::Refused { url, status: response.status })
        }
    }
}
