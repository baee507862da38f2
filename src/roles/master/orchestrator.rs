//! The master's orchestrator: one task that owns all orchestration state and handles, one at a time, what the
//! bus delivers (intents, worker heartbeats, task updates), what discovery notifies (input availability), and
//! a one-second tick (liveness, pending placements, confirmations). Intents become flows (one per topology
//! task); flows turn registrations into task instances; [`super::deploy`] places them on workers and keeps
//! the workers in line with the desired state.
//!
//! Owns: the in-memory state and its mirror in the master's store. Must not: serve HTTP (api.rs does), or block
//! on anything without a timeout.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http::Method;

use super::flow::{EntityInfo, Flow};
use super::records::{IntentRecord, MasterStore, TaskRecord};
use crate::bus::{Bus, Delivery, Envelope, MessageType};
use crate::clients::broker::BrokerClient;
use crate::clients::discovery::{encode_segment, DiscoveryClient};
use crate::clients::http_client::HttpClient;
use crate::config::Config;
use crate::model::{IntentAction, Operator, ServiceIntent, TaskUpdate, Topology, WorkerProfile};
use crate::ngsi::scope::ScopeFilter;
use crate::ngsi::v1::{EntityId, QueryContextRequest};
use crate::ngsi::v9::{NotifyContextAvailabilityRequest, SubscribeContextAvailabilityRequest};

/// Something for the orchestrator to handle.
#[derive(Debug)]
pub enum Input {
    /// A bus delivery (acked once handled).
    Bus(Delivery),
    /// An availability notification from discovery.
    Availability(NotifyContextAvailabilityRequest),
}

/// A flow and what it needs besides its pure state.
pub(super) struct FlowEntry {
    pub flow: Flow,
    pub intent_id: String,
    pub operator: Option<Operator>,
    /// Availability subscription per input stream (`None`: to be made).
    pub subscriptions: Vec<Option<String>>,
}

/// A task the master wants, with its delivery bookkeeping.
pub(super) struct TaskState {
    pub record: TaskRecord,
    /// When `ADD_TASK` was last sent.
    pub sent_at: Option<Instant>,
    /// Whether a flow claimed it since this process started (loaded ones are unclaimed until then).
    pub claimed: bool,
}

/// A live worker.
pub(super) struct WorkerState {
    pub profile: WorkerProfile,
    pub last_seen: Instant,
}

/// What the REST API shows, refreshed after every step.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Live workers.
    pub workers: Vec<WorkerProfile>,
    /// Tasks: (record, worker).
    pub tasks: Vec<TaskRecord>,
    /// Intents in force.
    pub intents: Vec<ServiceIntent>,
}

/// Outside systems the orchestrator talks to.
#[derive(Clone)]
pub struct Links {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// Discovery.
    pub discovery: DiscoveryClient,
    /// Brokers (entity details).
    pub brokers: BrokerClient,
    /// Plain HTTP (the designer).
    pub http: HttpClient,
}

/// The orchestration state.
pub struct Orchestrator {
    pub(super) id: String,
    pub(super) epoch: u64,
    pub(super) config: Arc<Config>,
    pub(super) links: Links,
    pub(super) store: MasterStore,
    pub(super) intents: BTreeMap<String, IntentRecord>,
    pub(super) flows: BTreeMap<String, FlowEntry>,
    pub(super) subscriptions: HashMap<String, (String, usize)>,
    pub(super) tasks: BTreeMap<String, TaskState>,
    pub(super) workers: BTreeMap<String, WorkerState>,
    pub(super) removals: HashMap<(String, String), Instant>,
    pub(super) started: Instant,
    /// After a takeover without an answer from the designer: when to ask it again for the intents in force
    /// (`None` once they are known). Unclaimed tasks are not removed meanwhile.
    pub(super) designer_retry: Option<Instant>,
    snapshot: Arc<RwLock<Snapshot>>,
}

/// Why handling an input must be retried later.
#[derive(Debug, thiserror::Error)]
pub enum RetryLater {
    /// The designer did not answer.
    #[error("designer unreachable: {0}")]
    Designer(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

impl Orchestrator {
    /// Loads the stored intents and tasks; flows start with [`Orchestrator::resume`].
    pub fn load(
        id: String,
        epoch: u64,
        config: Arc<Config>,
        links: Links,
        store: MasterStore,
        snapshot: Arc<RwLock<Snapshot>>,
    ) -> Result<Self, crate::store::StoreError> {
        let mut intents = BTreeMap::new();
        for entry in store.intents.iter() {
            let (key, record) = entry?;
            intents.insert(key, record);
        }
        let mut tasks = BTreeMap::new();
        for entry in store.tasks.iter() {
            let (key, record) = entry?;
            tasks.insert(key, TaskState { record, sent_at: None, claimed: false });
        }
        Ok(Orchestrator {
            id,
            epoch,
            config,
            links,
            store,
            intents,
            flows: BTreeMap::new(),
            subscriptions: HashMap::new(),
            tasks,
            workers: BTreeMap::new(),
            removals: HashMap::new(),
            started: Instant::now(),
            designer_retry: None,
            snapshot,
        })
    }

    /// Cancels the availability subscriptions of a previous run and starts the flows of the stored intents.
    pub async fn resume(&mut self) {
        let records: Vec<IntentRecord> = self.intents.values().cloned().collect();
        for mut record in records {
            for sid in &record.subscriptions {
                let _ = self.links.discovery.unsubscribe_availability(sid).await;
            }
            record.subscriptions.clear();
            let _ = self.store.intents.insert(&record.intent.id, &record);
            self.intents.insert(record.intent.id.clone(), record.clone());
            self.start_flows(&record);
        }
        self.subscribe_missing().await;
        self.refresh_snapshot();
    }

    /// Handles one input.
    pub async fn handle(&mut self, input: Input) {
        match input {
            Input::Availability(notification) => self.on_availability(notification).await,
            Input::Bus(delivery) => match self.on_message(&delivery.envelope).await {
                Ok(()) => delivery.ack(),
                Err(error) => {
                    tracing::warn!(%error, "bus message will be retried");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    delivery.reject(true);
                }
            },
        }
        self.refresh_snapshot();
    }

    pub(super) async fn on_message(&mut self, envelope: &Envelope) -> Result<(), RetryLater> {
        let Some(kind) = envelope.kind() else {
            tracing::debug!(message_type = %envelope.message_type, "unknown bus message ignored");
            return Ok(());
        };
        match kind {
            MessageType::ServiceIntent => match envelope.payload_as::<ServiceIntent>() {
                Ok(intent) if intent.action == Some(IntentAction::Delete) => self.remove_intent(&intent.id).await,
                Ok(intent) => self.add_intent(intent).await,
                Err(error) => {
                    tracing::warn!(%error, "malformed ServiceIntent ignored");
                    Ok(())
                }
            },
            MessageType::WorkerJoin | MessageType::WorkerHeartbeat => {
                match envelope.payload_as::<WorkerProfile>() {
                    Ok(profile) if !profile.id.is_empty() => self.on_worker_alive(profile).await,
                    _ => tracing::warn!(from = %envelope.from, "malformed worker profile ignored"),
                }
                Ok(())
            }
            MessageType::WorkerLeave => {
                let id = envelope.payload.get("id").and_then(|v| v.as_str()).unwrap_or(&envelope.from).to_string();
                self.on_worker_lost(&id, "left").await;
                Ok(())
            }
            MessageType::TaskUpdate => {
                match envelope.payload_as::<TaskUpdate>() {
                    Ok(update) => self.on_task_update(&envelope.from, update).await,
                    Err(error) => tracing::warn!(%error, "malformed TASK_UPDATE ignored"),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Adds (or, when it changed, replaces) an intent; an identical repeat is a no-op.
    pub(super) async fn add_intent(&mut self, mut intent: ServiceIntent) -> Result<(), RetryLater> {
        intent.action = None;
        if let Some(known) = self.intents.get(&intent.id) {
            if known.intent == intent {
                return Ok(());
            }
            self.remove_intent(&intent.id.clone()).await?;
        }
        let Some((topology, operators)) = self.fetch_topology(&intent.topology).await? else {
            tracing::error!(intent = %intent.id, topology = %intent.topology, "intent names an unknown topology; ignored");
            return Ok(());
        };
        let record = IntentRecord { intent, topology, operators, subscriptions: Vec::new() };
        tracing::info!(intent = %record.intent.id, topology = %record.topology.name, "intent added");
        self.store.intents.insert(&record.intent.id, &record).map_err(|e| RetryLater::Store(e.to_string()))?;
        self.intents.insert(record.intent.id.clone(), record.clone());
        self.start_flows(&record);
        self.subscribe_missing().await;
        self.commit().await;
        Ok(())
    }

    pub(super) async fn remove_intent(&mut self, intent_id: &str) -> Result<(), RetryLater> {
        if self.intents.remove(intent_id).is_none() {
            return Ok(());
        }
        tracing::info!(intent = %intent_id, "intent removed");
        let keys: Vec<String> =
            self.flows.iter().filter(|(_, f)| f.intent_id == intent_id).map(|(k, _)| k.clone()).collect();
        for key in keys {
            let Some(mut entry) = self.flows.remove(&key) else { continue };
            for sid in entry.subscriptions.iter().flatten() {
                self.subscriptions.remove(sid);
                if let Err(error) = self.links.discovery.unsubscribe_availability(sid).await {
                    tracing::warn!(%error, sid, "could not cancel an availability subscription");
                }
            }
            let changes = entry.flow.teardown();
            self.apply(&key, None, changes).await;
        }
        // Tasks of this intent that no flow holds any more (e.g. loaded, never claimed).
        let orphans: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.record.instance.service_intent_id == intent_id)
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in orphans {
            self.remove_task(&task_id).await;
        }
        self.store.intents.remove(intent_id).map_err(|e| RetryLater::Store(e.to_string()))?;
        self.commit().await;
        Ok(())
    }

    /// `GET <designer>/topology/<name>`: the topology and its operators, `None` when the designer has none.
    async fn fetch_topology(&self, name: &str) -> Result<Option<(Topology, Vec<Operator>)>, RetryLater> {
        let url = format!("{}/topology/{}", self.config.designer_url(), encode_segment(name));
        let response =
            self.links.http.send_empty(Method::GET, &url).await.map_err(|e| RetryLater::Designer(e.to_string()))?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(RetryLater::Designer(format!("GET {url} answered {}", response.status)));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&response.body).map_err(|e| RetryLater::Designer(e.to_string()))?;
        if value.as_object().is_none_or(|o| o.is_empty()) {
            return Ok(None);
        }
        let operators: Vec<Operator> =
            value.get("operators").and_then(|o| serde_json::from_value(o.clone()).ok()).unwrap_or_default();
        match serde_json::from_value::<Topology>(value) {
            Ok(topology) => Ok(Some((topology, operators))),
            Err(error) => {
                tracing::error!(%error, topology = name, "designer answered an unreadable topology");
                Ok(None)
            }
        }
    }

    /// Creates the flows of an intent (subscriptions are made by [`Orchestrator::subscribe_missing`]).
    fn start_flows(&mut self, record: &IntentRecord) {
        let scope = match ScopeFilter::compile(record.intent.scope_restriction().as_ref()) {
            Ok(scope) => scope,
            Err(error) => {
                tracing::error!(%error, intent = %record.intent.id, "bad geoscope; treated as global");
                ScopeFilter::default()
            }
        };
        for task in &record.topology.tasks {
            let key = format!("{}/{}", record.intent.id, task.name);
            let operator = record.operators.iter().find(|o| o.name == task.operator).cloned();
            let inputs = task.input_streams.len();
            let flow = Flow::new(&record.topology.name, task.clone(), scope.clone());
            self.flows.insert(
                key,
                FlowEntry { flow, intent_id: record.intent.id.clone(), operator, subscriptions: vec![None; inputs] },
            );
        }
    }

    /// Makes the availability subscriptions still missing (discovery may have been down); retried by the tick.
    pub(super) async fn subscribe_missing(&mut self) {
        let reference = format!("{}/notifyContextAvailability", self.config.master_agent_url());
        let mut made: Vec<(String, usize, String)> = Vec::new();
        for (key, entry) in &self.flows {
            let Some(record) = self.intents.get(&entry.intent_id) else { continue };
            for (index, sid) in entry.subscriptions.iter().enumerate() {
                if sid.is_some() {
                    continue;
                }
                let stream = &entry.flow.task().input_streams[index];
                let request = SubscribeContextAvailabilityRequest {
                    entities: vec![EntityId {
                        id: ".*".into(),
                        entity_type: stream.selected_type.clone(),
                        is_pattern: true,
                    }],
                    attributes: stream.attributes(),
                    reference: reference.clone(),
                    restriction: if stream.scoped { record.intent.scope_restriction() } else { None },
                    ..Default::default()
                };
                match self.links.discovery.subscribe_availability(&request).await {
                    Ok(sid) => made.push((key.clone(), index, sid)),
                    Err(error) => {
                        tracing::warn!(%error, flow = %key, "availability subscription failed; retrying");
                        break;
                    }
                }
            }
        }
        for (key, index, sid) in made {
            if let Some(entry) = self.flows.get_mut(&key) {
                entry.subscriptions[index] = Some(sid.clone());
                let intent_id = entry.intent_id.clone();
                if let Some(record) = self.intents.get_mut(&intent_id) {
                    record.subscriptions.push(sid.clone());
                    let _ = self.store.intents.insert(&intent_id, record);
                }
            }
            self.subscriptions.insert(sid, (key, index));
        }
    }

    async fn on_availability(&mut self, notification: NotifyContextAvailabilityRequest) {
        let Some((key, index)) = self.subscriptions.get(&notification.subscribe_id).cloned() else {
            tracing::debug!(sid = %notification.subscribe_id, "availability for an unknown subscription ignored");
            return;
        };
        let code = notification.error_code.code;
        for response in notification.context_registration_responses {
            let registration = response.context_registration;
            let provider = registration.providing_application.clone();
            if code == 410 {
                for entity in &registration.entities {
                    let changes = match self.flows.get_mut(&key) {
                        Some(entry) => entry.flow.remove(index, &entity.id),
                        None => return,
                    };
                    self.apply(&key, Some(index), changes).await;
                }
                continue;
            }
            let details = self.entity_details(&provider, &registration.entities).await;
            for entity in &registration.entities {
                let info = details.get(&entity.id).cloned().unwrap_or_else(|| EntityInfo {
                    id: entity.id.clone(),
                    entity_type: entity.entity_type.clone(),
                    metadata: BTreeMap::new(),
                    provider: provider.clone(),
                });
                let new_location = info.location();
                let (old_location, changes) = match self.flows.get_mut(&key) {
                    Some(entry) => {
                        let old = entry.flow.entities(index).find(|e| e.id == entity.id).map(|e| e.location());
                        (old, entry.flow.upsert(index, info))
                    }
                    None => return,
                };
                self.apply(&key, Some(index), changes).await;
                if old_location.is_some_and(|old| old != new_location) {
                    self.relocate_tasks_reading(&entity.id).await;
                }
            }
        }
        self.commit().await;
    }

    /// Asks the providing broker for the entities' domain metadata (location, grouping keys).
    async fn entity_details(&self, provider: &str, entities: &[EntityId]) -> BTreeMap<String, EntityInfo> {
        let request = QueryContextRequest {
            entities: entities.iter().map(|e| EntityId { is_pattern: false, ..e.clone() }).collect(),
            ..Default::default()
        };
        let mut details = BTreeMap::new();
        match self.links.brokers.query(provider, "", &request).await {
            Ok(elements) => {
                for element in elements {
                    let metadata = element.domain_metadata.iter().map(|m| (m.name.clone(), m.clone())).collect();
                    details.insert(
                        element.entity_id.id.clone(),
                        EntityInfo {
                            id: element.entity_id.id,
                            entity_type: element.entity_id.entity_type,
                            metadata,
                            provider: provider.into(),
                        },
                    );
                }
            }
            Err(error) => tracing::warn!(%error, provider, "entity details unavailable; grouping by id and type only"),
        }
        details
    }

    pub(super) async fn commit(&self) {
        if let Err(error) = self.store.store.commit().await {
            tracing::error!(%error, "master store commit failed");
        }
    }

    pub(super) fn refresh_snapshot(&self) {
        let snapshot = Snapshot {
            workers: self.workers.values().map(|w| w.profile.clone()).collect(),
            tasks: self.tasks.values().map(|t| t.record.clone()).collect(),
            intents: self.intents.values().map(|r| r.intent.clone()).collect(),
        };
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// This master's profile with its epoch.
    pub(super) fn profile(&self) -> crate::model::MasterProfile {
        crate::model::MasterProfile {
            id: self.id.clone(),
            location: crate::model::GeoPoint {
                latitude: self.config.physical_location.latitude,
                longitude: self.config.physical_location.longitude,
            },
            agent: self.config.master_agent_url(),
            epoch: self.epoch,
        }
    }

    /// Tells the designer (and anyone listening) that this master is here or leaving.
    pub async fn announce(&self, kind: MessageType) {
        let profile = self.profile();
        let envelope = Envelope::new(kind, crate::bus::envelope::keys::DESIGNER, &self.id, &profile);
        if let Err(error) = self.links.bus.publish(envelope).await {
            tracing::debug!(%error, "master presence not delivered");
        }
    }

    /// Cancels every availability subscription (graceful shutdown).
    pub async fn unsubscribe_all(&mut self) {
        let sids: Vec<String> = self.subscriptions.keys().cloned().collect();
        for sid in sids {
            let _ = self.links.discovery.unsubscribe_availability(&sid).await;
        }
        for record in self.intents.values_mut() {
            record.subscriptions.clear();
            let _ = self.store.intents.insert(&record.intent.id, record);
        }
        self.commit().await;
    }
}
