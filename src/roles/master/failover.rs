//! Master failover: several masters run, exactly one is active, chosen by RabbitMQ rather than by any
//! consensus of our own.
//!
//! - **Election.** Every master consumes the shared single-active queue [`MASTER_QUEUE`] (bound to
//!   `heartbeat.*`, `task.`, `orchestration.*` and [`keys::MASTER_PROBE`]); RabbitMQ delivers to one consumer
//!   at a time and hands over to the next when that one's channel closes (a crash, a `kill -9`, a lost
//!   connection). A master is *standby* until the first delivery on that queue reaches it. Each master
//!   publishes a probe there every second, so the hand-over is noticed within a second even when no worker
//!   or designer speaks. Each master's own queue `<MasterID>` (its direct key only) stays exclusive: a second
//!   master with the same id is refused at start.
//! - **Stepping down.** The bus ends a single-active consumer's stream when it loses the AMQP consumer (it
//!   never resumes it silently): the master drops its orchestration state at once, sends nothing more, and
//!   queues up again as standby.
//! - **Epoch.** On activation the master collects worker heartbeats for one heartbeat interval (plus a second),
//!   then takes `max(its stored epoch, the highest epoch any worker reports, the epochs of their tasks) + 1`,
//!   stores it, and sends `MASTER_JOIN` with it to every live worker. Workers refuse commands below the
//!   highest epoch they have accepted, so a previous master's late or replayed commands are refused.
//! - **Rebuild.** Intents come from the designer (`GET /intent` and the enabled `GET /fogfunction`; stored
//!   intents the designer no longer has are dropped), tasks from the workers' reports (adopted where they
//!   run; a task reported by two workers is kept on one), availability from discovery (subscriptions made
//!   anew). Adopted tasks are claimed by the flows that want them, the others removed after the usual window.
//!
//! Owns: the activation state machine's pieces. Must not: decide orchestration (the orchestrator does).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::orchestrator::{Orchestrator, TaskState};
use super::records::TaskRecord;
use crate::bus::envelope::keys;
use crate::bus::{Bus, Consumer, Delivery, Envelope, MessageType, QueueSpec};
use crate::clients::http_client::HttpClient;
use crate::model::{FogFunction, ScheduledTaskInstance, ServiceIntent, WorkerProfile};

/// The masters' shared single-active queue.
pub const MASTER_QUEUE: &str = "fogflow.master";

/// How often every master probes the shared queue.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How often an active master that could not read the designer's intents at its takeover asks again.
const DESIGNER_RETRY: Duration = Duration::from_secs(5);

/// The masters' shared queue with its bindings.
pub fn shared_queue() -> QueueSpec {
    QueueSpec::single_active(MASTER_QUEUE, ["heartbeat.*", keys::TASK, "orchestration.*", keys::MASTER_PROBE])
}

/// What a master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activity {
    /// Waiting to be chosen: sends nothing, holds no orchestration state.
    #[default]
    Standby,
    /// Chosen; collecting worker reports before acting.
    Activating,
    /// Orchestrating.
    Active,
}

impl Activity {
    /// `standby`, `activating`, `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Standby => "standby",
            Activity::Activating => "activating",
            Activity::Active => "active",
        }
    }
}

/// What `GET /status` shows besides the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    /// The activity.
    pub activity: Activity,
    /// The epoch while active (0 otherwise).
    pub epoch: u64,
}

/// What the shared queue's follower hands to the master loop.
#[derive(Debug)]
pub enum Event {
    /// A delivery on the shared queue (the first one makes this master active).
    Delivery(Delivery),
    /// The bus lost this master's consumer of the shared queue: it may not be the active one any more.
    Lost,
}

/// Consumes the shared queue (again after every loss) and forwards its deliveries until `stop`.
pub async fn follow_shared(bus: Arc<dyn Bus>, events: mpsc::Sender<Event>, stop: CancellationToken) {
    loop {
        let Some(mut consumer) = consume_shared(&*bus, &stop).await else { return };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                delivery = consumer.next() => match delivery {
                    Some(delivery) => if events.send(Event::Delivery(delivery)).await.is_err() { return },
                    None => break,
                },
            }
        }
        if events.send(Event::Lost).await.is_err() {
            return;
        }
    }
}

async fn consume_shared(bus: &dyn Bus, stop: &CancellationToken) -> Option<Consumer> {
    let mut logged = false;
    loop {
        if bus.is_connected() {
            match bus.consume(shared_queue()).await {
                Ok(consumer) => return Some(consumer),
                Err(error) if !logged => {
                    tracing::warn!(%error, queue = MASTER_QUEUE, "cannot consume the masters' queue; retrying");
                    logged = true;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Publishes a probe on the shared queue every second until `stop` (failures are expected while no master
/// queue exists yet, and ignored).
pub async fn probe(bus: Arc<dyn Bus>, id: String, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                let envelope = Envelope::new(MessageType::MasterProbe, keys::MASTER_PROBE, &id, &serde_json::json!({"id": id}));
                if let Err(error) = bus.publish(envelope).await {
                    tracing::debug!(%error, "master probe not published");
                }
            }
        }
    }
}

/// Holds the master's own queue (which makes its id unique) until `stop`, acking whatever arrives there
/// (nothing is addressed to a master directly; an old `Master.<site_id>` queue may still carry FogFlow's
/// broad bindings, and the shared queue has those messages too).
pub async fn hold_own(mut consumer: Consumer, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            delivery = consumer.next() => match delivery {
                Some(delivery) => {
                    tracing::debug!(message_type = %delivery.envelope.message_type, "message on the master's own queue ignored");
                    delivery.ack();
                }
                None => return,
            },
        }
    }
}

/// What a master collects between its election and acting.
#[derive(Debug, Default)]
pub struct Takeover {
    /// The latest profile of every worker heard from.
    pub heartbeats: BTreeMap<String, WorkerProfile>,
    /// Other messages, handled once the rebuild is done.
    pub buffered: Vec<Envelope>,
}

impl Takeover {
    /// Takes one delivery (acked: intents are re-read from the designer anyway, task updates are repeated by
    /// heartbeats).
    pub fn take(&mut self, delivery: Delivery) {
        let envelope = &delivery.envelope;
        match envelope.kind() {
            Some(MessageType::WorkerJoin | MessageType::WorkerHeartbeat) => {
                match envelope.payload_as::<WorkerProfile>() {
                    Ok(profile) if !profile.id.is_empty() => {
                        self.heartbeats.insert(profile.id.clone(), profile);
                    }
                    _ => tracing::warn!(from = %envelope.from, "malformed worker profile ignored"),
                }
            }
            Some(MessageType::WorkerLeave) => {
                let id = envelope.payload.get("id").and_then(Value::as_str).unwrap_or(&envelope.from).to_string();
                self.heartbeats.remove(&id);
            }
            Some(MessageType::MasterProbe) => {}
            _ => self.buffered.push(envelope.clone()),
        }
        delivery.ack();
    }

    /// The epoch to act with: above the stored one and above every epoch a worker has seen or holds a task
    /// with.
    pub fn epoch(&self, stored: u64) -> u64 {
        let reported = self
            .heartbeats
            .values()
            .flat_map(|p| std::iter::once(p.epoch).chain(p.tasks.iter().flatten().map(|t| t.epoch)))
            .max()
            .unwrap_or(0);
        stored.max(reported).saturating_add(1)
    }
}

/// The intents in force at the designer: `GET /intent` and the enabled fog functions' intents.
pub async fn designer_intents(http: &HttpClient, designer_url: &str) -> Result<Vec<ServiceIntent>, String> {
    let intents: BTreeMap<String, ServiceIntent> = fetch(http, &format!("{designer_url}/intent")).await?;
    let functions: BTreeMap<String, FogFunction> = fetch(http, &format!("{designer_url}/fogfunction")).await?;
    let mut all: Vec<ServiceIntent> = intents.into_values().collect();
    all.extend(functions.into_values().filter(FogFunction::is_enabled).map(|f| f.intent));
    all.retain(|intent| !intent.id.is_empty());
    Ok(all)
}

async fn fetch<T: serde::de::DeserializeOwned>(http: &HttpClient, url: &str) -> Result<T, String> {
    let response = http.send_empty(Method::GET, url).await.map_err(|e| format!("GET {url}: {e}"))?;
    if !response.is_success() {
        return Err(format!("GET {url} answered {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("GET {url}: unreadable answer: {e}"))
}

impl Orchestrator {
    /// Rebuilds after an election: adopts what the workers report, aligns the intents with the designer's
    /// (`None`: the designer did not answer; the stored intents stay), restarts the flows (new availability
    /// subscriptions), fences the workers with the new epoch, then handles the heartbeats and messages
    /// collected meanwhile.
    pub async fn take_over(&mut self, takeover: Takeover, designer: Option<Vec<ServiceIntent>>) {
        self.adopt_reported(&takeover.heartbeats);
        if let Some(wanted) = &designer {
            self.drop_stale_intents(wanted).await;
        }
        self.resume().await;
        match designer {
            Some(intents) => self.add_designer_intents(intents).await,
            None => self.designer_retry = Some(std::time::Instant::now() + DESIGNER_RETRY),
        }
        for profile in takeover.heartbeats.values() {
            self.on_worker_alive(profile.clone()).await;
        }
        self.fence_workers().await;
        for envelope in &takeover.buffered {
            if let Err(error) = self.on_message(envelope).await {
                tracing::warn!(%error, message_type = %envelope.message_type, "message collected during takeover dropped");
            }
        }
        self.announce(MessageType::MasterJoin).await;
        self.commit().await;
        self.refresh_snapshot();
    }

    async fn add_designer_intents(&mut self, intents: Vec<ServiceIntent>) {
        for intent in intents {
            if let Err(error) = self.add_intent(intent).await {
                tracing::warn!(%error, "an intent of the designer could not be taken over yet; it is re-announced");
            }
        }
    }

    /// Asks the designer again for the intents in force (its answer was missing at the takeover); once it
    /// answers, aligns the intents with it and starts the window after which unclaimed tasks are removed.
    pub(super) async fn retry_designer(&mut self) {
        match designer_intents(&self.links.http, &self.config.designer_url()).await {
            Ok(intents) => {
                tracing::info!(intents = intents.len(), "intents read from the designer after the takeover");
                self.designer_retry = None;
                self.started = std::time::Instant::now();
                let stale: Vec<String> =
                    self.intents.keys().filter(|id| !intents.iter().any(|i| &i.id == *id)).cloned().collect();
                for id in stale {
                    tracing::info!(intent = %id, "stored intent no longer at the designer; removed");
                    if let Err(error) = self.remove_intent(&id).await {
                        tracing::warn!(%error, intent = %id, "stale intent not removed yet");
                    }
                }
                self.add_designer_intents(intents).await;
            }
            Err(error) => {
                tracing::debug!(%error, "designer still unreachable");
                self.designer_retry = Some(std::time::Instant::now() + DESIGNER_RETRY);
            }
        }
    }

    /// Places every task where a worker reports running it (the first worker by id when two do; the other
    /// one is told to remove it by the reconciliation); records tasks no worker holds as unplaced. Reported
    /// tasks the store does not know are adopted as records to be claimed by their flows (unclaimed ones are
    /// removed after the usual window).
    fn adopt_reported(&mut self, heartbeats: &BTreeMap<String, WorkerProfile>) {
        let mut holders: HashMap<&str, (&str, &crate::model::ReportedTask)> = HashMap::new();
        for (worker, profile) in heartbeats {
            for task in profile.tasks.iter().flatten() {
                holders.entry(task.id.as_str()).or_insert((worker.as_str(), task));
            }
        }
        for (id, task) in self.tasks.iter_mut() {
            let record = &mut task.record;
            match holders.get(id.as_str()) {
                Some((worker, reported)) => {
                    record.worker = Some((*worker).to_string());
                    record.instance.worker_id = (*worker).to_string();
                    record.reported = reported.status.clone();
                    record.reason.clear();
                }
                None => {
                    record.worker = None;
                    record.reported.clear();
                    record.reason = "not held by any worker at takeover".into();
                }
            }
            task.sent_at = None;
        }
        for (id, (worker, reported)) in holders {
            if self.tasks.contains_key(id) {
                continue;
            }
            tracing::info!(task = id, worker, "adopting a task a worker runs");
            let instance = ScheduledTaskInstance {
                id: id.to_string(),
                worker_id: worker.to_string(),
                epoch: reported.epoch,
                ..Default::default()
            };
            let record = TaskRecord {
                instance,
                flow: String::new(),
                worker: Some(worker.to_string()),
                reported: reported.status.clone(),
                reason: String::new(),
            };
            self.tasks.insert(id.to_string(), TaskState { record, sent_at: None, claimed: false });
        }
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            if let Some(task) = self.tasks.get(&id) {
                if let Err(error) = self.store.tasks.insert(&id, &task.record) {
                    tracing::error!(%error, "master store write failed");
                }
            }
        }
    }

    /// Forgets stored intents the designer no longer has (deleted while no master was active here), cancelling
    /// their old availability subscriptions; their tasks are left unclaimed and removed after the window.
    async fn drop_stale_intents(&mut self, wanted: &[ServiceIntent]) {
        let stale: Vec<String> =
            self.intents.keys().filter(|id| !wanted.iter().any(|w| &w.id == *id)).cloned().collect();
        for id in stale {
            let Some(record) = self.intents.remove(&id) else { continue };
            tracing::info!(intent = %id, "stored intent no longer at the designer; dropped");
            for sid in &record.subscriptions {
                let _ = self.links.discovery.unsubscribe_availability(sid).await;
            }
            if let Err(error) = self.store.intents.remove(&id) {
                tracing::error!(%error, "master store write failed");
            }
        }
    }

    /// `MASTER_JOIN` with the epoch to every live worker: from now on they refuse every earlier master.
    async fn fence_workers(&self) {
        let profile = self.profile();
        for worker in self.workers.keys() {
            let envelope = Envelope::new(MessageType::MasterJoin, keys::direct(worker), &self.id, &profile);
            if let Err(error) = self.links.bus.publish(envelope).await {
                tracing::warn!(%error, %worker, "could not announce the new epoch to a worker; its next command does");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReportedTask;

    fn profile(id: &str, epoch: u64, tasks: &[(&str, u64)]) -> WorkerProfile {
        WorkerProfile {
            id: id.into(),
            epoch,
            tasks: Some(
                tasks
                    .iter()
                    .map(|(t, e)| ReportedTask { id: (*t).into(), epoch: *e, status: "running".into() })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn the_takeover_epoch_is_above_every_epoch_seen() {
        let mut takeover = Takeover::default();
        assert_eq!(takeover.epoch(0), 1);
        assert_eq!(takeover.epoch(4), 5);
        takeover.heartbeats.insert("Worker.1".into(), profile("Worker.1", 7, &[("T1", 6)]));
        takeover.heartbeats.insert("Worker.2".into(), profile("Worker.2", 0, &[("T2", 9)]));
        assert_eq!(takeover.epoch(3), 10);
        assert_eq!(takeover.epoch(12), 13);
    }
}
