//! The broker's shared state and its operations, independent of HTTP: apply updates and fan changes out to
//! subscriptions and to discovery, answer queries, create and cancel subscriptions, relay notifications from
//! other brokers, expire subscriptions. NGSIv2 subscription operations are in [`ngsiv2`].

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::contexts::ContextResolver;
use super::entities::{ElementOutcome, Entities, EntityChange, QueryPage, RepoError};
use super::notifier::{Delivery, Notifier};
use super::registrar::Registrar;
use super::subscriptions::{validate_request, CompiledSubscription, Subscriber, SubscriptionRecord, SubscriptionTable};
use crate::http::Readiness;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::times::Edited;
use crate::ngsi::v1::{
    ContextAttribute, ContextElement, ContextElementResponse, QueryContextRequest, StatusCode, SubscribeContextRequest,
    UpdateContextRequest, UpdateContextResponse,
};
use crate::ngsi::v2::service_path::{ServicePaths, ROOT};
use crate::ngsi::ParseError;
use crate::store::{Store, StoreError, Tree};

mod ngsild;
mod ngsiv2;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The client's input is invalid.
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already (an NGSI-LD subscription id).
    #[error("{0}")]
    AlreadyExists(String),
    /// The store failed; the write was not acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An NGSIv2 write names another service path than the one the entity lives in (nothing written).
    #[error("{0}")]
    OtherServicePath(String),
}

impl From<RepoError> for BrokerError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Invalid(error) => BrokerError::Invalid(error),
            RepoError::Store(error) => BrokerError::Store(error),
            error @ RepoError::OtherServicePath { .. } => BrokerError::OtherServicePath(error.to_string()),
        }
    }
}

/// Request context taken from NGSI10 headers.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `Fiware-Service`, lower-cased; empty for the default tenant.
    pub tenant: String,
    /// `Fiware-Correlator`.
    pub correlator: Option<String>,
    /// Who is subscribing (from the other headers).
    pub subscriber: Subscriber,
    /// NGSIv2 requests only: their `Fiware-ServicePath` (empty when absent), which scopes their reads and names
    /// the path of their writes. None for NGSI10 and NGSI-LD, which see every path and write in place (`/` for
    /// new entities).
    pub service_path: Option<ServicePaths>,
}

/// A subscription with its delivery task.
#[derive(Debug)]
pub struct LiveSubscription {
    /// Matching logic and record.
    pub compiled: CompiledSubscription,
    /// Its queue.
    pub delivery: Arc<Delivery>,
}

/// What an update answer echoes of an element, as Orion's NGSIv1 does: its id and the names and types of its
/// attributes, with empty values (the values are the client's own).
pub fn acknowledgement(element: &ContextElement) -> ContextElement {
    ContextElement {
        entity_id: element.entity_id.clone(),
        attributes: element
            .attributes
            .iter()
            .map(|attribute| ContextAttribute {
                name: attribute.name.clone(),
                attribute_type: attribute.attribute_type.clone(),
                value: serde_json::Value::String(String::new()),
                metadata: Vec::new(),
            })
            .collect(),
        domain_metadata: Vec::new(),
        extra_types: Vec::new(),
    }
}

/// Queues for one subscription the received elements it selects, filtered and projected its way.
fn relay_to(live: &LiveSubscription, tenant: &str, elements: &[ContextElement]) {
    for element in elements {
        if let Some(relayed) = live.compiled.relay_for(tenant, element) {
            live.delivery.push(relayed, None, None, None, ROOT);
        }
    }
}

/// Gauges kept up to date by the state.
#[derive(Debug, Clone, Default)]
pub struct StateGauges {
    /// Number of entities.
    pub entities: Gauge,
    /// Number of subscriptions.
    pub subscriptions: Gauge,
}

/// Everything the broker's handlers share. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct BrokerState(Arc<BrokerInner>);

impl std::ops::Deref for BrokerState {
    type Target = BrokerInner;

    fn deref(&self) -> &BrokerInner {
        &self.0
    }
}

/// The state behind a [`BrokerState`].
pub struct BrokerInner {
    /// Entities.
    pub entities: Entities,
    subscriptions: Arc<SubscriptionTable<LiveSubscription>>,
    subscription_tree: Tree<SubscriptionRecord>,
    /// Serializes the creation of NGSI-LD subscriptions, whose ids clients choose (a taken id is refused).
    ld_creation: tokio::sync::Mutex<()>,
    store: Store,
    notifier: Notifier,
    registrar: Option<Registrar>,
    /// Readiness of the role.
    pub readiness: Readiness,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Default and largest query page.
    pub max_query_results: usize,
    /// This broker's URL.
    pub broker_url: String,
    /// Resolves the JSON-LD `@context`s of NGSI-LD requests.
    pub contexts: Arc<ContextResolver>,
    gauges: StateGauges,
}

impl BrokerState {
    /// Opens entities and subscriptions from the store and restarts every subscription's delivery.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        store: Store,
        notifier: Notifier,
        registrar: Option<Registrar>,
        readiness: Readiness,
        max_body_bytes: usize,
        max_query_results: usize,
        broker_url: String,
        contexts: Arc<ContextResolver>,
        gauges: StateGauges,
    ) -> Result<BrokerState, StoreError> {
        let entities = Entities::open(&store)?;
        let subscription_tree = store.tree::<SubscriptionRecord>("subscriptions")?;
        let state = BrokerState(Arc::new(BrokerInner {
            entities,
            subscriptions: Arc::new(SubscriptionTable::new()),
            subscription_tree,
            ld_creation: tokio::sync::Mutex::new(()),
            store,
            notifier,
            registrar,
            readiness,
            max_body_bytes,
            max_query_results,
            broker_url,
            contexts,
            gauges,
        }));
        for entry in state.subscription_tree.iter() {
            let (_, record) = entry?;
            match CompiledSubscription::compile(record.clone()) {
                Ok(compiled) => state.activate(compiled),
                Err(error) => {
                    tracing::error!(subscription = %record.id, %error, "stored subscription cannot be compiled; skipping it")
                }
            }
        }
        state.refresh_gauges();
        tracing::info!(
            entities = state.entities.len(),
            subscriptions = state.subscriptions.len(),
            "broker state loaded"
        );
        Ok(state)
    }

    /// Sets the gauges from the counts; called where they can change (creations, deletions, subscriptions), not
    /// on every write (counting the entities visits every shard of the map).
    fn refresh_gauges(&self) {
        self.gauges.entities.set(self.entities.len() as i64);
        self.gauges.subscriptions.set(self.subscriptions.len() as i64);
    }

    fn activate(&self, compiled: CompiledSubscription) {
        self.activate_then(compiled, |_| {});
    }

    /// [`BrokerState::activate`], calling `initial` on the live subscription before any change can be queued for
    /// it: the current state `initial` queues is never delivered after a newer change (a change made while it ran
    /// is queued after it, and one made before it is in what it reads).
    fn activate_then(&self, compiled: CompiledSubscription, initial: impl FnOnce(&LiveSubscription)) {
        let delivery = self.notifier.start(&compiled.record, compiled.throttling);
        let id = compiled.record.id.clone();
        let period = compiled.period().filter(|_| compiled.record.ld.as_ref().is_some_and(|ld| ld.is_active));
        let live = Arc::new(LiveSubscription { compiled, delivery: delivery.clone() });
        self.subscriptions.insert_then(id.clone(), live, |live| initial(live));
        if let Some(period) = period {
            self.notify_periodically(id, delivery, period);
        }
    }

    /// Replaces a live subscription by `record` (durably first), carrying its delivery counters over to the new
    /// delivery; `reset_fails` clears the failure count (a subscription made active again).
    async fn replace_subscription(
        &self,
        live: &LiveSubscription,
        record: SubscriptionRecord,
        reset_fails: bool,
    ) -> Result<(), BrokerError> {
        let compiled = CompiledSubscription::compile(record.clone())?;
        self.subscription_tree.insert(&record.id, &record)?;
        self.store.commit().await?;
        let counters = live.delivery.status();
        live.delivery.cancel();
        self.activate(compiled);
        if let Some(new) = self.subscriptions.get(&record.id) {
            new.delivery.inherit(&counters, reset_fails);
        }
        Ok(())
    }

    /// Applies an `updateContext` and answers with one status per element.
    pub async fn update(
        &self,
        meta: &RequestMeta,
        request: &UpdateContextRequest,
    ) -> Result<UpdateContextResponse, BrokerError> {
        let action = request.action()?;
        let outcomes = self.entities.apply_update(&meta.tenant, &request.context_elements, action).await?;
        let mut responses = Vec::with_capacity(outcomes.len());
        let mut counted = false;
        for (element, outcome) in request.context_elements.iter().zip(outcomes) {
            let status = match outcome {
                ElementOutcome::Applied(change) => {
                    counted |= change.before.is_none() || change.after.is_none();
                    self.publish_change(&meta.tenant, &change, meta.correlator.as_deref());
                    StatusCode::ok()
                }
                ElementOutcome::NotFound(details) => StatusCode::new(404, "No context element found", details),
            };
            responses.push(ContextElementResponse { context_element: acknowledgement(element), status_code: status });
        }
        // Only creations and deletions change the count.
        if counted {
            self.refresh_gauges();
        }
        Ok(UpdateContextResponse { context_responses: responses })
    }

    /// Replaces one entity by what `edit` makes of it (see [`Entities::edit`]), then notifies subscriptions and
    /// discovery as an update does. Answers whether the entity was created, or `edit`'s refusal. An NGSIv2
    /// request's write goes to its one service path ([`BrokerError::OtherServicePath`] for an entity elsewhere).
    pub async fn edit_entity<E>(
        &self,
        meta: &RequestMeta,
        id: &str,
        edit: impl FnOnce(Option<&ContextElement>) -> Result<Edited, E>,
    ) -> Result<Result<bool, E>, BrokerError> {
        Ok(self.edit_entity_touched(meta, id, edit).await?.map(|(created, _)| created))
    }

    /// [`BrokerState::edit_entity`], also answering the attribute names `edit` wrote or removed.
    pub async fn edit_entity_touched<E>(
        &self,
        meta: &RequestMeta,
        id: &str,
        edit: impl FnOnce(Option<&ContextElement>) -> Result<Edited, E>,
    ) -> Result<Result<(bool, Vec<String>), E>, BrokerError> {
        let path = meta.service_path.as_ref().map(ServicePaths::update_path).transpose()?;
        let change = match self.entities.edit(&meta.tenant, id, path.as_deref(), edit).await? {
            Ok(change) => change,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.publish_change(&meta.tenant, &change, meta.correlator.as_deref());
        let created = change.before.is_none();
        if created {
            // An edit never deletes: only a creation changes the count.
            self.refresh_gauges();
        }
        Ok(Ok((created, change.touched)))
    }

    /// Deletes one entity.
    pub async fn delete_entity(&self, tenant: &str, id: &str) -> Result<(), BrokerError> {
        match self.entities.delete(tenant, id).await? {
            Some(change) => {
                self.publish_change(tenant, &change, None);
                self.refresh_gauges();
                Ok(())
            }
            None => Err(BrokerError::NotFound(format!("entity `{id}` does not exist"))),
        }
    }

    fn publish_change(&self, tenant: &str, change: &EntityChange, correlator: Option<&str>) {
        if !self.subscriptions.is_empty() {
            let now = chrono::Utc::now().timestamp_millis();
            self.subscriptions.for_each(|live| {
                if live.compiled.is_expired(now) {
                    return;
                }
                if let Some(notified) = live.compiled.notification_for(tenant, change, correlator) {
                    // NGSI-LD notifications may show the system times of the entity's attributes (of the entity as it
                    // was, when deleted).
                    let entity =
                        live.compiled.record.ld.as_ref().and(change.after.clone().or_else(|| change.before.clone()));
                    let correlator = correlator.map(str::to_string);
                    live.delivery.push(notified.element, entity, notified.notice, correlator, notified.service_path);
                }
            });
        }
        if !change.registration_changed || !tenant.is_empty() {
            return;
        }
        if let Some(registrar) = &self.registrar {
            match (&change.after, &change.before) {
                (Some(after), _) => registrar.register(&after.element),
                (None, Some(before)) => registrar.unregister(&before.element.entity_id.id),
                (None, None) => {}
            }
        }
    }

    /// Answers a `queryContext` page.
    pub fn query(
        &self,
        tenant: &str,
        request: &QueryContextRequest,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<QueryPage, BrokerError> {
        let selector = EntitySelector::compile(&request.entities)?;
        let scopes = ScopeFilter::compile(request.restriction.as_ref())?;
        for name in &request.attributes {
            crate::ngsi::limits::check_name("attribute name", name)?;
        }
        let limit = match limit {
            None => self.max_query_results,
            Some(0) => return Err(ParseError::new("limit must be at least 1").into()),
            Some(limit) if limit > self.max_query_results => {
                return Err(
                    ParseError::new(format!("limit {limit} is over the maximum of {}", self.max_query_results)).into()
                )
            }
            Some(limit) => limit,
        };
        Ok(self.entities.query(tenant, &selector, &scopes, &request.attributes, offset, limit))
    }

    /// Creates a subscription (durable before this returns) and queues the current state of what it selects.
    pub async fn subscribe(&self, meta: &RequestMeta, request: SubscribeContextRequest) -> Result<String, BrokerError> {
        let duration = validate_request(&request)?;
        let now = chrono::Utc::now().timestamp_millis();
        let record = SubscriptionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: meta.tenant.clone(),
            request,
            subscriber: Subscriber { broker_url: self.broker_url.clone(), ..meta.subscriber.clone() },
            created_at: now,
            expires_at: duration.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            v2: None,
            ld: None,
        };
        let compiled = CompiledSubscription::compile(record.clone())?;
        self.subscription_tree.insert(&record.id, &record)?;
        self.store.commit().await?;
        let id = record.id.clone();
        self.activate_then(compiled, |live| {
            let current: Vec<(ContextElement, String)> = self
                .entities
                .list(&meta.tenant)
                .iter()
                .filter(|entity| live.compiled.selects(&meta.tenant, &entity.service_path, &entity.element))
                .map(|entity| {
                    let element = super::entities::project(&entity.element, &live.compiled.record.request.attributes);
                    (element, entity.service_path.clone())
                })
                .collect();
            if !current.is_empty() {
                live.delivery.push_initial(current);
            }
        });
        self.refresh_gauges();
        tracing::debug!(subscription = %id, "subscription created");
        Ok(id)
    }

    /// Cancels a subscription; false when it does not exist (in this tenant).
    pub async fn unsubscribe(&self, tenant: &str, id: &str) -> Result<bool, BrokerError> {
        match self.subscriptions.get(id) {
            Some(live) if live.compiled.record.tenant == tenant => {}
            _ => return Ok(false),
        }
        self.subscription_tree.remove(id)?;
        self.store.commit().await?;
        if let Some(live) = self.subscriptions.remove(id) {
            live.delivery.cancel();
        }
        self.refresh_gauges();
        Ok(true)
    }

    /// One subscription of a tenant.
    pub fn subscription(&self, tenant: &str, id: &str) -> Option<Arc<LiveSubscription>> {
        self.subscriptions.get(id).filter(|live| live.compiled.record.tenant == tenant)
    }

    /// Every subscription of a tenant.
    pub fn subscriptions(&self, tenant: &str) -> Vec<Arc<LiveSubscription>> {
        let mut all: Vec<_> =
            self.subscriptions.all().into_iter().filter(|live| live.compiled.record.tenant == tenant).collect();
        all.sort_by_key(|live| live.compiled.record.created_at);
        all
    }

    /// Relays elements notified by another broker to the subscriptions that select them, as received.
    pub fn relay(&self, tenant: &str, elements: &[ContextElement]) {
        for live in self.subscriptions.all() {
            relay_to(&live, tenant, elements);
        }
    }

    /// Relays elements to one subscription only (a notification of one of its internal subscriptions at another
    /// broker); false when it does not exist.
    pub fn relay_to_subscription(&self, tenant: &str, id: &str, elements: &[ContextElement]) -> bool {
        match self.subscription(tenant, id) {
            Some(live) => {
                relay_to(&live, tenant, elements);
                true
            }
            None => false,
        }
    }

    /// Removes expired NGSI10 subscriptions and marks NGSIv2 ones that reached `maxFailsLimit` inactive, every
    /// second, until `shutdown` fires.
    pub async fn expire_subscriptions(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = chrono::Utc::now().timestamp_millis();
            for live in self.subscriptions.all() {
                if live.delivery.is_disabled() {
                    self.deactivate_failed(&live).await;
                }
                if !live.compiled.must_be_removed(now) {
                    continue;
                }
                let record = &live.compiled.record;
                match self.unsubscribe(&record.tenant, &record.id).await {
                    Ok(_) => tracing::info!(subscription = %record.id, "subscription expired and was removed"),
                    Err(error) => {
                        tracing::warn!(subscription = %record.id, %error, "cannot remove an expired subscription yet")
                    }
                }
            }
        }
    }

    /// Flushes the store (shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush_blocking()
    }
}
