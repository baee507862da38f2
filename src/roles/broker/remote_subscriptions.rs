//! Cross-broker subscriptions (spec §6.3–§6.4, with FogFlow's bugs fixed). When a client subscribes here, the
//! broker also subscribes availability at discovery; for every *other* broker that holds (or later gets)
//! matching entities it creates one internal subscription there — one per (subscription, broker), never a new
//! one per re-registration (§12.7) — whose notifications come back to `/ngsi10/notifyContext` and are routed to
//! that one subscription only, so the subscriber hears each change exactly once. Cancelling the subscription
//! cancels the availability subscription and the internal ones. The links are durable in the broker's store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::clients::broker::BrokerClient;
use crate::clients::discovery::DiscoveryClient;
use crate::ngsi::v1::SubscribeContextRequest;
use crate::ngsi::v9::{DiscoverContextAvailabilityRequest, SubscribeContextAvailabilityRequest};
use crate::store::{Store, StoreError, Tree};

/// What a local subscription is linked to elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteLinks {
    /// Tenant of the subscription.
    pub tenant: String,
    /// The availability subscription at discovery.
    pub availability_id: String,
    /// One internal subscription per other broker: (broker URL, subscription id there).
    pub remotes: Vec<(String, String)>,
}

/// The links of every federated subscription.
#[derive(Clone)]
pub struct RemoteSubscriptions {
    links: Arc<RwLock<HashMap<String, RemoteLinks>>>,
    /// Serializes changes of the links (creating and removing internal subscriptions), so that two
    /// announcements of the same broker never create two internal subscriptions there.
    changing: Arc<tokio::sync::Mutex<()>>,
    tree: Tree<RemoteLinks>,
    store: Store,
    discovery: DiscoveryClient,
    brokers: BrokerClient,
    own_url: String,
}

impl std::fmt::Debug for RemoteSubscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSubscriptions").field("own_url", &self.own_url).finish_non_exhaustive()
    }
}

impl RemoteSubscriptions {
    /// Loads the stored links.
    pub fn open(
        store: &Store,
        discovery: DiscoveryClient,
        brokers: BrokerClient,
        own_url: String,
    ) -> Result<Self, StoreError> {
        let tree = store.tree::<RemoteLinks>("remote_subscriptions")?;
        let mut links = HashMap::new();
        for entry in tree.iter() {
            let (id, link) = entry?;
            links.insert(id, link);
        }
        Ok(RemoteSubscriptions {
            links: Arc::new(RwLock::new(links)),
            changing: Arc::default(),
            tree,
            store: store.clone(),
            discovery,
            brokers,
            own_url,
        })
    }

    async fn save(&self, id: &str, links: &RemoteLinks) {
        self.links.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), links.clone());
        if let Err(error) = self.tree.insert(id, links) {
            tracing::error!(%error, subscription = id, "cannot store a subscription's remote links");
            return;
        }
        if let Err(error) = self.store.commit().await {
            tracing::error!(%error, subscription = id, "cannot store a subscription's remote links");
        }
    }

    /// Federates a new client subscription: subscribes availability at discovery, then links every other
    /// broker already holding matching entities.
    pub async fn link(&self, id: &str, tenant: &str, request: &SubscribeContextRequest) {
        let availability = SubscribeContextAvailabilityRequest {
            entities: request.entities.clone(),
            attributes: request.attributes.clone(),
            reference: format!("{}/notifyContextAvailability", self.own_url),
            duration: request.duration.clone(),
            restriction: request.restriction.clone(),
            subscription_id: String::new(),
        };
        let availability_id = match self.discovery.subscribe_availability(&availability).await {
            Ok(availability_id) => availability_id,
            Err(error) => {
                tracing::warn!(%error, subscription = id, "cannot subscribe availability at discovery; the subscription covers local entities only");
                return;
            }
        };
        self.save(id, &RemoteLinks { tenant: tenant.to_string(), availability_id, remotes: Vec::new() }).await;
        // Discovery announces the current matches too, but possibly before the id above was stored: ask it
        // directly as well (linking the same broker twice is impossible).
        let discover = DiscoverContextAvailabilityRequest {
            entities: request.entities.clone(),
            attributes: request.attributes.clone(),
            restriction: request.restriction.clone(),
        };
        match self.discovery.discover(&discover).await {
            Ok(providers) => {
                for (provider, _) in providers {
                    self.link_provider(id, request, &provider).await;
                }
            }
            Err(error) => tracing::warn!(%error, subscription = id, "cannot ask discovery for current providers"),
        }
    }

    /// Handles an availability notification: links the subscription to each newly announced other broker.
    /// `request_of(tenant, id)` gives the local subscription's request.
    pub async fn on_availability(
        &self,
        availability_id: &str,
        providers: &[String],
        request_of: impl Fn(&str, &str) -> Option<SubscribeContextRequest>,
    ) {
        let subscription = {
            let links = self.links.read().unwrap_or_else(|p| p.into_inner());
            links
                .iter()
                .find(|(_, link)| link.availability_id == availability_id)
                .map(|(id, link)| (id.clone(), link.tenant.clone()))
        };
        let Some((id, tenant)) = subscription else {
            tracing::debug!(availability_id, "availability notification for no known subscription");
            return;
        };
        let Some(request) = request_of(&tenant, &id) else { return };
        for provider in providers {
            self.link_provider(&id, &request, provider).await;
        }
    }

    async fn link_provider(&self, id: &str, request: &SubscribeContextRequest, provider: &str) {
        if provider == self.own_url {
            return;
        }
        let _changing = self.changing.lock().await;
        let Some(mut links) = self.links.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned() else { return };
        if links.remotes.iter().any(|(linked, _)| linked == provider) {
            return;
        }
        let internal = SubscribeContextRequest {
            reference: self.own_url.clone(),
            notify_conditions: Vec::new(),
            throttling: String::new(),
            ..request.clone()
        };
        match self.brokers.subscribe(provider, &links.tenant, &internal).await {
            Ok(remote_id) => {
                tracing::info!(subscription = id, %provider, %remote_id, "linked a subscription to another broker");
                links.remotes.push((provider.to_string(), remote_id));
                self.save(id, &links).await;
            }
            Err(error) => tracing::warn!(subscription = id, %provider, %error, "cannot subscribe at another broker"),
        }
    }

    /// The local subscription an internal subscription at another broker belongs to.
    pub fn route(&self, remote_id: &str) -> Option<String> {
        let links = self.links.read().unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .find(|(_, link)| link.remotes.iter().any(|(_, remote)| remote == remote_id))
            .map(|(id, _)| id.clone())
    }

    /// Handles a 410: for each named broker that no longer holds anything the subscription selects, cancels the
    /// internal subscription there and forgets the link.
    pub async fn on_removed(
        &self,
        availability_id: &str,
        providers: &[String],
        request_of: impl Fn(&str, &str) -> Option<SubscribeContextRequest>,
    ) {
        let _changing = self.changing.lock().await;
        let subscription = {
            let links = self.links.read().unwrap_or_else(|p| p.into_inner());
            links
                .iter()
                .find(|(_, link)| link.availability_id == availability_id)
                .map(|(id, l)| (id.clone(), l.clone()))
        };
        let Some((id, mut links)) = subscription else { return };
        let Some(request) = request_of(&links.tenant, &id) else { return };
        let discover = DiscoverContextAvailabilityRequest {
            entities: request.entities.clone(),
            attributes: request.attributes.clone(),
            restriction: request.restriction.clone(),
        };
        let still_holding: Vec<String> = match self.discovery.discover(&discover).await {
            Ok(found) => found.into_iter().map(|(provider, _)| provider).collect(),
            Err(error) => {
                tracing::warn!(%error, subscription = %id, "cannot ask discovery after a 410; keeping the links");
                return;
            }
        };
        let gone: Vec<(String, String)> = links
            .remotes
            .iter()
            .filter(|(provider, _)| providers.contains(provider) && !still_holding.contains(provider))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        for (provider, remote_id) in &gone {
            if let Err(error) = self.brokers.unsubscribe(provider, &links.tenant, remote_id).await {
                tracing::debug!(%error, subscription = %id, %provider, "cannot cancel an internal subscription at a broker that left");
            }
        }
        links.remotes.retain(|remote| !gone.contains(remote));
        tracing::info!(subscription = %id, unlinked = gone.len(), "unlinked brokers that no longer hold matching entities");
        self.save(&id, &links).await;
    }

    /// Unlinks every subscription for which `exists(tenant, id)` is false (expired or cancelled without
    /// unlinking), so no availability or internal subscription outlives its client subscription.
    pub async fn unlink_orphans(&self, exists: impl Fn(&str, &str) -> bool) {
        let orphans: Vec<String> = {
            let links = self.links.read().unwrap_or_else(|p| p.into_inner());
            links.iter().filter(|(id, link)| !exists(&link.tenant, id)).map(|(id, _)| id.clone()).collect()
        };
        for id in orphans {
            self.unlink(&id).await;
        }
    }

    /// Cancels everything a subscription is linked to.
    pub async fn unlink(&self, id: &str) {
        let _changing = self.changing.lock().await;
        let Some(links) = self.links.write().unwrap_or_else(|p| p.into_inner()).remove(id) else { return };
        if let Err(error) = self.tree.remove(id) {
            tracing::error!(%error, subscription = id, "cannot remove a subscription's remote links");
        }
        if let Err(error) = self.discovery.unsubscribe_availability(&links.availability_id).await {
            tracing::warn!(%error, subscription = id, "cannot cancel the availability subscription");
        }
        for (provider, remote_id) in &links.remotes {
            if let Err(error) = self.brokers.unsubscribe(provider, &links.tenant, remote_id).await {
                tracing::warn!(%error, subscription = id, %provider, "cannot cancel an internal subscription");
            }
        }
        if let Err(error) = self.store.commit().await {
            tracing::error!(%error, subscription = id, "cannot store the removal of remote links");
        }
    }
}
