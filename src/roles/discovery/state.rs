//! Discovery's shared state and operations, independent of HTTP: register and discover availability, manage
//! availability subscriptions, broker heartbeats and lease expiry, and announce every change (201 / 301 / 410)
//! to the subscriptions it concerns.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::availability::{AvailabilityNotifier, AvailabilitySubscription};
use super::brokers::{BrokerView, Brokers, DuplicateBrokerId};
use super::matching::{group_by_provider, AvailabilityQuery};
use super::registry::{Registration, Registry, RegistryChange};
use crate::http::Readiness;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::{EntityId, StatusCode};
use crate::ngsi::v9::{
    AvailabilityAction, BrokerProfile, DiscoverContextAvailabilityRequest, DiscoverContextAvailabilityResponse,
    RegisterContextRequest, RegisterContextResponse, RegistrationQuery, RegistrationRecord,
    SubscribeContextAvailabilityRequest,
};
use crate::ngsi::{limits, ParseError};
use crate::store::{Store, StoreError, Tree};

/// Why a discovery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The client's input is invalid.
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the registry's state.
    #[error(transparent)]
    Conflict(#[from] DuplicateBrokerId),
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything discovery's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct DiscoveryState(Arc<DiscoveryInner>);

impl std::ops::Deref for DiscoveryState {
    type Target = DiscoveryInner;

    fn deref(&self) -> &DiscoveryInner {
        &self.0
    }
}

/// The state behind a [`DiscoveryState`].
pub struct DiscoveryInner {
    /// Registrations.
    pub registry: Registry,
    subscriptions: RwLock<HashMap<String, Arc<AvailabilitySubscription>>>,
    subscription_tree: Tree<SubscribeContextAvailabilityRequest>,
    store: Store,
    notifier: AvailabilityNotifier,
    brokers: Brokers,
    /// Changes whenever this discovery starts with an empty store; brokers re-register when it changes.
    pub epoch: String,
    /// Readiness of the role.
    pub readiness: Readiness,
    /// Largest request body.
    pub max_body_bytes: usize,
    gauges: DiscoveryGauges,
}

/// Gauges kept up to date by the state.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryGauges {
    /// Registrations held.
    pub registrations: Gauge,
    /// Brokers with a live lease.
    pub brokers: Gauge,
}

impl DiscoveryState {
    /// Opens the registry and the subscriptions (restarting their delivery) from the store.
    pub fn open(
        store: Store,
        notifier: AvailabilityNotifier,
        lease: Duration,
        readiness: Readiness,
        max_body_bytes: usize,
        gauges: DiscoveryGauges,
    ) -> Result<DiscoveryState, DiscoveryError> {
        let registry = Registry::open(&store)?;
        let subscription_tree = store.tree::<SubscribeContextAvailabilityRequest>("availability_subscriptions")?;
        let meta = store.tree::<String>("discovery_meta")?;
        let epoch = match meta.get("epoch")? {
            Some(epoch) => epoch,
            None => {
                let epoch = uuid::Uuid::new_v4().to_string();
                meta.insert("epoch", &epoch)?;
                store.flush_blocking()?;
                epoch
            }
        };
        let state = DiscoveryState(Arc::new(DiscoveryInner {
            registry,
            subscriptions: RwLock::new(HashMap::new()),
            subscription_tree,
            store,
            notifier,
            brokers: Brokers::new(lease),
            epoch,
            readiness,
            max_body_bytes,
            gauges,
        }));
        for entry in state.subscription_tree.iter() {
            let (_, request) = entry?;
            match AvailabilityQuery::compile(&request.entities, &request.attributes, request.restriction.as_ref()) {
                Ok(query) => {
                    let id = request.subscription_id.clone();
                    let live = state.notifier.start(request, query);
                    state.subscriptions.write().unwrap_or_else(|p| p.into_inner()).insert(id, live);
                }
                Err(error) => {
                    tracing::error!(%error, "stored availability subscription cannot be compiled; skipping it")
                }
            }
        }
        state.gauges.registrations.set(state.registry.len() as i64);
        tracing::info!(registrations = state.registry.len(), epoch = %state.epoch, "discovery state loaded");
        Ok(state)
    }

    /// Registers (or updates) availability, durably, and announces the changes (301, and 410 for what a named
    /// registration no longer lists).
    ///
    /// A request with a `registrationId` is a *named* registration (NGSI9's update of that registration; the
    /// broker's NGSI-LD context source registrations): it replaces every entry of that id, may register id
    /// patterns, and expires after its `duration`. Without one, entries are merged per (provider, entity) as
    /// FogFlow's brokers expect, never patterns, and live as long as their provider's lease.
    pub async fn register(&self, request: RegisterContextRequest) -> Result<RegisterContextResponse, DiscoveryError> {
        let named = !request.registration_id.is_empty();
        let expires_at = if named {
            limits::check_name("registration id", &request.registration_id)?;
            match request.duration.as_str() {
                "" => None,
                duration => {
                    let lease = crate::ngsi::duration::parse_iso8601("duration", duration)?;
                    let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
                    Some(chrono::Utc::now().timestamp_millis().saturating_add(lease))
                }
            }
        } else {
            None
        };
        let mut registrations = Vec::new();
        for registration in &request.context_registrations {
            validate_provider(&registration.providing_application)?;
            for attribute in &registration.attributes {
                limits::check_name("attribute name", &attribute.name)?;
            }
            for metadata in &registration.context_metadata {
                limits::check_name("metadata name", &metadata.name)?;
            }
            if registration.entities.is_empty() {
                return Err(ParseError::new("a context registration needs at least one entity").into());
            }
            for entity in &registration.entities {
                if entity.is_pattern && !named {
                    return Err(ParseError::new("registered entities cannot be patterns").into());
                }
                if entity.is_pattern {
                    EntitySelector::compile(std::slice::from_ref(entity))?;
                } else {
                    limits::check_name("entity id", &entity.id)?;
                }
                limits::check_optional_name("entity type", &entity.entity_type)?;
                if entity.entity_type == "IoTBroker" {
                    self.brokers.check_unique(&entity.id, &registration.providing_application)?;
                }
                registrations.push(Registration {
                    entity: entity.clone(),
                    attributes: registration.attributes.clone(),
                    metadata: registration.context_metadata.clone(),
                    provider: registration.providing_application.clone(),
                    registration_id: request.registration_id.clone(),
                    expires_at,
                });
            }
        }
        if registrations.len() > limits::MAX_ELEMENTS_PER_REQUEST {
            return Err(ParseError::new(format!(
                "more than {} registered entities in one request",
                limits::MAX_ELEMENTS_PER_REQUEST
            ))
            .into());
        }
        let changes = if named {
            self.registry.replace(&request.registration_id, registrations).await?
        } else {
            self.registry.upsert(registrations).await?
        };
        self.announce(&changes);
        let registration_id =
            if request.registration_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { request.registration_id };
        Ok(RegisterContextResponse { duration: request.duration, registration_id, error_code: StatusCode::ok() })
    }

    /// Answers a discovery query: one entry per provider, nearest first for `nearby`.
    pub fn discover(
        &self,
        request: &DiscoverContextAvailabilityRequest,
    ) -> Result<DiscoverContextAvailabilityResponse, DiscoveryError> {
        let query = AvailabilityQuery::compile(&request.entities, &request.attributes, request.restriction.as_ref())?;
        let mut found = self.registry.select(|registration| query.matches(registration));
        query.order(&mut found);
        Ok(DiscoverContextAvailabilityResponse {
            context_registration_responses: group_by_provider(&found),
            error_code: Some(StatusCode::ok()),
        })
    }

    /// The records of the registrations a [`RegistrationQuery`] selects, in key order (provider, then id).
    pub fn records(&self, query: &RegistrationQuery) -> Result<Vec<RegistrationRecord>, DiscoveryError> {
        let any = [EntityId { id: ".*".into(), entity_type: String::new(), is_pattern: true }];
        let entities = if query.entities.is_empty() { &any[..] } else { &query.entities[..] };
        let selection = AvailabilityQuery::compile(entities, &[], None)?;
        let found = self.registry.select(|registration| {
            (query.registration_id.is_empty() || registration.registration_id == query.registration_id)
                && selection.matches(registration)
        });
        Ok(found.iter().map(Registration::to_fogflow_record).collect())
    }

    /// Deletes every entry of a named registration; returns how many there were.
    pub async fn delete_named(&self, registration_id: &str) -> Result<usize, DiscoveryError> {
        limits::check_name("registration id", registration_id)?;
        let removed =
            self.registry.remove_where(|registration| registration.registration_id == registration_id).await?;
        let count = removed.len();
        self.announce(&removed.into_iter().map(RegistryChange::Removed).collect::<Vec<_>>());
        Ok(count)
    }

    /// Creates (or, with `id`, replaces) an availability subscription, durably, and queues the current matches
    /// as a 201 notification.
    pub async fn subscribe(
        &self,
        mut request: SubscribeContextAvailabilityRequest,
        id: Option<String>,
    ) -> Result<String, DiscoveryError> {
        let query = AvailabilityQuery::compile(&request.entities, &request.attributes, request.restriction.as_ref())?;
        validate_reference(&request.reference)?;
        let id = match id {
            Some(id) => {
                limits::check_name("subscription id", &id)?;
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        request.subscription_id = id.clone();
        self.subscription_tree.insert(&id, &request)?;
        self.store.commit().await?;
        let live = self.notifier.start(request, query);
        let previous = {
            // The current matches are taken and the subscription made visible under the same lock that
            // `announce` takes after changing the registry: a registration written meanwhile is either in this
            // snapshot or announced to the subscription after it (never lost between the two, nor announced
            // before the snapshot).
            let mut subscriptions = self.subscriptions.write().unwrap_or_else(|p| p.into_inner());
            for registration in self.registry.select(|registration| live.query.matches(registration)) {
                live.push(AvailabilityAction::Create, registration);
            }
            subscriptions.insert(id.clone(), live)
        };
        if let Some(previous) = previous {
            previous.cancel();
        }
        Ok(id)
    }

    /// Cancels a subscription; false when unknown.
    pub async fn unsubscribe(&self, id: &str) -> Result<bool, DiscoveryError> {
        if !self.subscription_tree.remove(id)? {
            return Ok(false);
        }
        self.store.commit().await?;
        if let Some(live) = self.subscriptions.write().unwrap_or_else(|p| p.into_inner()).remove(id) {
            live.cancel();
        }
        Ok(true)
    }

    /// One subscription's request.
    pub fn subscription(&self, id: &str) -> Option<SubscribeContextAvailabilityRequest> {
        self.subscriptions.read().unwrap_or_else(|p| p.into_inner()).get(id).map(|live| live.request.clone())
    }

    /// Every subscription's request, by id.
    pub fn subscription_requests(&self) -> Vec<SubscribeContextAvailabilityRequest> {
        let mut all: Vec<_> = self
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|live| live.request.clone())
            .collect();
        all.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        all
    }

    /// Deletes every registration of an entity id; when the entity is a broker (`IoTBroker`), the broker's
    /// lease and everything it registered go too. Returns how many registrations were removed.
    pub async fn delete_entity(&self, entity_id: &str) -> Result<usize, DiscoveryError> {
        let removed = self.registry.remove_where(|registration| registration.entity.id == entity_id).await?;
        let mut all_removed = removed.clone();
        for broker in removed.iter().filter(|r| r.entity.entity_type == "IoTBroker") {
            self.brokers.remove(entity_id);
            all_removed.extend(self.registry.remove_where(|r| r.provider == broker.provider).await?);
        }
        let count = all_removed.len();
        self.announce(&all_removed.into_iter().map(RegistryChange::Removed).collect::<Vec<_>>());
        Ok(count)
    }

    /// Records a broker's heartbeat.
    pub fn heartbeat(&self, profile: &BrokerProfile) -> Result<(), DiscoveryError> {
        limits::check_name("broker id", &profile.id)?;
        validate_provider(&profile.my_url)?;
        self.brokers.heartbeat(&profile.id, &profile.my_url)?;
        self.gauges.brokers.set(self.brokers.live().len() as i64);
        Ok(())
    }

    /// The live brokers.
    pub fn brokers(&self) -> Vec<BrokerView> {
        self.brokers.live()
    }

    /// Expires brokers whose lease ran out, with everything they registered, and named registrations past their
    /// expiry, every second until `shutdown`.
    pub async fn expire_brokers(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = chrono::Utc::now().timestamp_millis();
            match self.registry.remove_where(|r| r.expires_at.is_some_and(|at| at <= now)).await {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(registrations = removed.len(), "named registrations expired");
                    self.announce(&removed.into_iter().map(RegistryChange::Removed).collect::<Vec<_>>());
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot remove expired registrations"),
            }
            let expired = self.brokers.expire();
            if !expired.is_empty() {
                self.gauges.brokers.set(self.brokers.live().len() as i64);
            }
            for broker in expired {
                match self.registry.remove_where(|r| r.provider == broker.my_url).await {
                    Ok(removed) => {
                        tracing::warn!(broker = %broker.id, url = %broker.my_url, registrations = removed.len(), "broker lease expired; its registrations are removed");
                        self.announce(&removed.into_iter().map(RegistryChange::Removed).collect::<Vec<_>>());
                    }
                    Err(error) => {
                        tracing::error!(broker = %broker.id, %error, "cannot remove the registrations of an expired broker")
                    }
                }
            }
        }
    }

    fn announce(&self, changes: &[RegistryChange]) {
        self.gauges.registrations.set(self.registry.len() as i64);
        self.gauges.brokers.set(self.brokers.live().len() as i64);
        if changes.is_empty() {
            return;
        }
        let subscriptions: Vec<Arc<AvailabilitySubscription>> =
            self.subscriptions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for change in changes {
            let (action, registration) = match change {
                RegistryChange::Upserted(registration) => (AvailabilityAction::Update, registration),
                RegistryChange::Removed(registration) => (AvailabilityAction::Delete, registration),
            };
            for subscription in subscriptions.iter().filter(|s| s.query.matches(registration)) {
                subscription.push(action, registration.clone());
            }
        }
    }

    /// Flushes the store (shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush_blocking()
    }
}

fn validate_provider(url: &str) -> Result<(), ParseError> {
    let uri: http::Uri =
        url.parse().map_err(|_| ParseError::new(format!("providingApplication `{url}` is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || url.len() > 2048 {
        return Err(ParseError::new(format!("providingApplication `{url}` must be an http(s) URL")));
    }
    Ok(())
}

fn validate_reference(url: &str) -> Result<(), ParseError> {
    if url.is_empty() {
        return Err(ParseError::new("reference is missing: give the URL availability notifications are sent to"));
    }
    let uri: http::Uri = url.parse().map_err(|_| ParseError::new(format!("reference `{url}` is not a URL")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() || url.len() > 2048 {
        return Err(ParseError::new(format!("reference `{url}` must be an http:// URL")));
    }
    Ok(())
}
