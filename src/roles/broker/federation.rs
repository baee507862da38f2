//! Federation: makes the brokers registered at discovery answer as one (spec §6.3–§6.5). For a client's query
//! the broker asks discovery which brokers hold matching entities and fetches from the others in parallel, with
//! the attribute projection forwarded (FogFlow dropped it, §12.9) and a bounded wait; a broker that does not
//! answer makes the result *partial* (a header and a log line), never a hang. A client's `GET` of an entity
//! the broker does not hold is fetched from its owner. A client's update of an entity owned by another broker is
//! forwarded to the owner with its action and correlator (FogFlow dropped both, §12.12); if the owner does not
//! answer, this broker applies the update itself and so takes ownership (it registers the entity).
//!
//! Client subscriptions are linked to the other brokers by `remote_subscriptions`.
//!
//! Broker-to-broker requests (`User-Agent: lightweight-iot-broker`) are never federated again, so federation
//! cannot loop.

use std::time::Duration;

use futures_util::future::join_all;

use crate::clients::broker::{BrokerClient, INTERNAL_USER_AGENT};
use crate::clients::discovery::DiscoveryClient;
use crate::clients::http_client::HttpClient;
use crate::ngsi::v1::{ContextElement, EntityId, QueryContextRequest, UpdateContextRequest};
use crate::ngsi::v9::DiscoverContextAvailabilityRequest;
use crate::roles::broker::remote_subscriptions::RemoteSubscriptions;
use crate::store::{Store, StoreError};

/// The response header that marks a result missing some brokers' entities; its value names what did not answer.
pub const PARTIAL_RESULT_HEADER: &str = "fogflow-partial-result";

/// Elements fetched from other brokers.
#[derive(Debug, Default)]
pub struct RemoteElements {
    /// What they answered.
    pub elements: Vec<ContextElement>,
    /// Who did not answer in time (broker URLs, or `discovery`).
    pub unanswered: Vec<String>,
}

/// Federation through discovery.
#[derive(Debug, Clone)]
pub struct Federation {
    discovery: DiscoveryClient,
    brokers: BrokerClient,
    own_url: String,
    /// Cross-broker subscriptions.
    pub subscriptions: RemoteSubscriptions,
}

impl Federation {
    /// Federation for the broker at `own_url`, asking `discovery`, waiting at most `timeout` per call.
    pub fn new(discovery_url: String, own_url: String, timeout: Duration, store: &Store) -> Result<Self, StoreError> {
        let http = HttpClient::new(timeout.min(Duration::from_secs(2)), timeout);
        let discovery = DiscoveryClient::new(discovery_url, http.clone());
        let brokers = BrokerClient::new(http);
        let subscriptions = RemoteSubscriptions::open(store, discovery.clone(), brokers.clone(), own_url.clone())?;
        Ok(Federation { discovery, brokers, own_url, subscriptions })
    }

    /// Discovery, as this broker's federation asks it (bounded waits).
    pub fn discovery(&self) -> &DiscoveryClient {
        &self.discovery
    }

    /// The elements matching a query held by other brokers.
    pub async fn query(&self, tenant: &str, request: &QueryContextRequest) -> RemoteElements {
        let discover = DiscoverContextAvailabilityRequest {
            entities: request.entities.clone(),
            attributes: request.attributes.clone(),
            restriction: request.restriction.clone(),
        };
        let providers = match self.discovery.discover(&discover).await {
            Ok(providers) => providers,
            Err(error) => {
                tracing::warn!(%error, "cannot ask discovery; answering with local entities only");
                return RemoteElements { elements: Vec::new(), unanswered: vec!["discovery".into()] };
            }
        };
        let calls =
            providers.into_iter().filter(|(provider, _)| *provider != self.own_url).map(|(provider, entities)| {
                // Discovery names the entities it knows each provider for: exact ids, or the id patterns of
                // named (NGSI-LD context source) registrations.
                let remote_request =
                    QueryContextRequest { entities, attributes: request.attributes.clone(), restriction: None };
                async move {
                    let answer = self.brokers.query(&provider, tenant, &remote_request).await;
                    (provider, answer)
                }
            });
        let mut remote = RemoteElements::default();
        for (provider, answer) in join_all(calls).await {
            match answer {
                Ok(elements) => remote.elements.extend(elements),
                Err(error) => {
                    tracing::warn!(%provider, %error, "a broker did not answer a federated query; the result is partial");
                    remote.unanswered.push(provider);
                }
            }
        }
        remote
    }

    /// The broker owning `id`, when discovery names one other than this broker.
    pub async fn owner_of(&self, id: &str) -> Option<String> {
        match self.discovery.provider_of(id).await {
            Ok(Some(owner)) if owner != self.own_url => Some(owner),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, entity = id, "cannot ask discovery for an entity's owner; treating it as local");
                None
            }
        }
    }

    /// One entity from its owner.
    pub async fn fetch(&self, owner: &str, tenant: &str, id: &str) -> Option<ContextElement> {
        let request = QueryContextRequest {
            entities: vec![EntityId { id: id.into(), entity_type: String::new(), is_pattern: false }],
            ..QueryContextRequest::default()
        };
        match self.brokers.query(owner, tenant, &request).await {
            Ok(elements) => elements.into_iter().find(|element| element.entity_id.id == id),
            Err(error) => {
                tracing::warn!(%owner, %error, entity = id, "the owner of an entity did not answer");
                None
            }
        }
    }

    /// Forwards one element's update to its owner; false when the owner did not take it.
    pub async fn forward_update(
        &self,
        owner: &str,
        tenant: &str,
        correlator: Option<&str>,
        element: &ContextElement,
        action: &str,
    ) -> bool {
        let request =
            UpdateContextRequest { context_elements: vec![element.clone()], update_action: Some(action.to_string()) };
        match self.brokers.update(owner, tenant, correlator, &request).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%owner, %error, entity = %element.entity_id.id, "the owner did not take a forwarded update; applying it here");
                false
            }
        }
    }
}

/// The federation a router's handlers use (none when `broker.use_discovery` is off); an axum extension.
#[derive(Debug, Clone, Default)]
pub struct FederationHandle(pub Option<std::sync::Arc<Federation>>);

impl FederationHandle {
    /// The federation that answers a request with these headers: none for broker-to-broker requests
    /// (`User-Agent: lightweight-iot-broker`), which are answered from this broker's entities only, or when
    /// federation is off.
    pub fn for_client(&self, headers: &http::HeaderMap) -> Option<&Federation> {
        let internal = headers
            .get_all(http::header::USER_AGENT)
            .iter()
            .any(|agent| agent.as_bytes() == INTERNAL_USER_AGENT.as_bytes());
        self.0.as_deref().filter(|_| !internal)
    }
}
