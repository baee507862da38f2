//! Deployment: turning flow changes into task placements and worker commands, and keeping workers in line
//! with the desired state — placement on the nearest live worker with room (pending when none fits, retried
//! every tick; FogFlow dropped the task), `ADD_TASK` / `REMOVE_TASK` / `ADD_INPUT` / `REMOVE_INPUT` stamped with
//! the master's epoch, worker liveness on the master's monotonic clock, rescheduling of a lost worker's tasks
//! (FogFlow never did), resending unconfirmed tasks, and reconciling what each worker reports it runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::flow::{DesiredTask, FlowChange};
use super::orchestrator::{Orchestrator, TaskState, WorkerState};
use super::records::TaskRecord;
use super::scheduler::{select_worker, Candidate};
use crate::bus::envelope::keys;
use crate::bus::{Envelope, MessageType};
use crate::model::{FlowInfo, GeoPoint, InputEntity, ScheduledTaskInstance, TaskStatus, TaskUpdate, WorkerProfile};

/// How long a REMOVE_TASK sent while reconciling is not repeated.
const REMOVAL_REPEAT: Duration = Duration::from_secs(5);

impl Orchestrator {
    /// The liveness window: `worker.heartbeat_interval × worker.detection_duration` seconds.
    pub(super) fn liveness(&self) -> Duration {
        Duration::from_secs(self.config.worker.heartbeat_interval * self.config.worker.detection_duration)
    }

    fn confirm_timeout(&self) -> Duration {
        Duration::from_secs(self.config.master.task_confirm_timeout_secs)
    }

    /// Applies a flow's changes.
    pub(super) async fn apply(&mut self, flow_key: &str, _input: Option<usize>, changes: Vec<FlowChange>) {
        for change in changes {
            match change {
                FlowChange::Add(desired) => self.add_task(flow_key, desired).await,
                FlowChange::Remove(task_id) => self.remove_task(&task_id).await,
                FlowChange::AddInput { task_id, input } => self.change_input(&task_id, input, true).await,
                FlowChange::RemoveInput { task_id, input } => self.change_input(&task_id, input, false).await,
            }
        }
    }

    async fn add_task(&mut self, flow_key: &str, desired: DesiredTask) {
        let Some(entry) = self.flows.get(flow_key) else { return };
        let Some(record) = self.intents.get(&entry.intent_id) else { return };
        let spec = entry.flow.task();
        let instance = ScheduledTaskInstance {
            id: desired.task_id.clone(),
            topology_name: record.topology.name.clone(),
            task_name: spec.name.clone(),
            service_intent_id: record.intent.id.clone(),
            operator_name: spec.operator.clone(),
            parameters: entry.operator.as_ref().map(|o| o.parameters.clone()).unwrap_or_default(),
            is_exclusive: record.intent.priority.exclusive,
            priority_level: record.intent.priority.level,
            status: TaskStatus::Scheduled,
            inputs: desired.inputs,
            outputs: desired.outputs,
            epoch: self.epoch,
            ..Default::default()
        };
        if self.tasks.contains_key(&desired.task_id) {
            self.claim(flow_key, instance).await;
            return;
        }
        tracing::info!(task = %instance.id, "task instance wanted");
        let record = TaskRecord {
            instance,
            flow: flow_key.into(),
            worker: None,
            reported: String::new(),
            reason: "waiting for a worker".into(),
        };
        self.tasks.insert(desired.task_id.clone(), TaskState { record, sent_at: None, claimed: true });
        self.place(&desired.task_id).await;
    }

    /// A flow wants a task the master knows already (loaded from the store, adopted from a worker's report at
    /// a takeover, or wanted by a second intent): claims it, completes what an adopted record lacks (the
    /// operator, outputs, image), and brings its inputs up to date with `ADD_INPUT` / `REMOVE_INPUT`, which
    /// the worker takes idempotently.
    async fn claim(&mut self, flow_key: &str, desired: ScheduledTaskInstance) {
        let image = self.image_on_current_worker(flow_key, &desired.id);
        let Some(task) = self.tasks.get_mut(&desired.id) else { return };
        task.claimed = true;
        task.record.flow = flow_key.into();
        let held = &mut task.record.instance;
        let old: Vec<InputEntity> = std::mem::take(&mut held.inputs);
        *held = ScheduledTaskInstance {
            inputs: old.clone(),
            worker_id: held.worker_id.clone(),
            docker_image: if held.docker_image.is_empty() { image } else { held.docker_image.clone() },
            epoch: held.epoch,
            status: held.status,
            ..desired.clone()
        };
        self.persist(&desired.id);
        for input in desired.inputs.iter().filter(|i| !old.contains(i)) {
            self.change_input(&desired.id, input.clone(), true).await;
        }
        for input in old.iter().filter(|i| !desired.inputs.contains(i)) {
            self.change_input(&desired.id, input.clone(), false).await;
        }
    }

    /// The image of the flow's operator for the hardware of the worker a task is on (empty when unknown).
    fn image_on_current_worker(&self, flow_key: &str, task_id: &str) -> String {
        let worker = self.tasks.get(task_id).and_then(|t| t.record.worker.as_deref());
        let hardware = worker.and_then(|w| self.workers.get(w)).map(|w| w.profile.hardware.as_str());
        let operator = self.flows.get(flow_key).and_then(|f| f.operator.as_ref());
        match (operator, hardware) {
            (Some(operator), Some(hardware)) => operator.image_for(hardware).map(|i| i.reference()).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Stops wanting a task: REMOVE_TASK to its worker, forget it.
    pub(super) async fn remove_task(&mut self, task_id: &str) {
        let Some(task) = self.tasks.remove(task_id) else { return };
        tracing::info!(task = %task_id, "task instance removed");
        if let Some(worker) = &task.record.worker {
            self.send_remove(worker, task_id).await;
        }
        if let Err(error) = self.store.tasks.remove(task_id) {
            tracing::error!(%error, "master store write failed");
        }
    }

    async fn change_input(&mut self, task_id: &str, input: InputEntity, add: bool) {
        let Some(task) = self.tasks.get_mut(task_id) else { return };
        let inputs = &mut task.record.instance.inputs;
        if add {
            if inputs.contains(&input) {
                return;
            }
            inputs.push(input.clone());
        } else {
            let before = inputs.len();
            inputs.retain(|i| i != &input);
            if inputs.len() == before {
                return;
            }
        }
        let worker = task.record.worker.clone();
        self.persist(task_id);
        if let Some(worker) = worker {
            let flow = FlowInfo {
                input_stream: Some(input),
                task_instance_id: task_id.into(),
                worker_id: worker.clone(),
                epoch: self.epoch,
            };
            let kind = if add { MessageType::AddInput } else { MessageType::RemoveInput };
            self.publish(Envelope::new(kind, keys::direct(&worker), &self.id, &flow)).await;
        }
    }

    fn persist(&self, task_id: &str) {
        if let Some(task) = self.tasks.get(task_id) {
            if let Err(error) = self.store.tasks.insert(task_id, &task.record) {
                tracing::error!(%error, "master store write failed");
            }
        }
    }

    /// The input locations of a task, from its flow's known entities.
    fn input_locations(&self, task: &TaskState) -> Vec<GeoPoint> {
        let Some(entry) = self.flows.get(&task.record.flow) else { return Vec::new() };
        let ids: Vec<&str> = task.record.instance.inputs.iter().map(|i| i.id.as_str()).collect();
        (0..entry.flow.task().input_streams.len())
            .flat_map(|index| entry.flow.entities(index))
            .filter(|e| ids.contains(&e.id.as_str()))
            .filter_map(|e| e.location())
            .collect()
    }

    /// The best worker for a task now (its own slot on its current worker counts as free), with the image.
    fn best_worker(&self, task_id: &str) -> Option<(String, String)> {
        let task = self.tasks.get(task_id)?;
        let mut placed: BTreeMap<&str, u32> = BTreeMap::new();
        for (id, other) in &self.tasks {
            if let Some(worker) = other.record.worker.as_deref().filter(|_| id != task_id) {
                *placed.entry(worker).or_default() += 1;
            }
        }
        let candidates: Vec<Candidate> = self
            .workers
            .values()
            .map(|w| Candidate { profile: &w.profile, placed: placed.get(w.profile.id.as_str()).copied().unwrap_or(0) })
            .collect();
        let operator = self.flows.get(&task.record.flow).and_then(|f| f.operator.as_ref());
        let locations = self.input_locations(task);
        select_worker(&candidates, &locations, operator).map(|(w, image)| (w.id.clone(), image))
    }

    /// An input of these tasks moved: a task whose best worker is now another one migrates there (REMOVE_TASK on
    /// the old worker, ADD_TASK with the same id on the new one), as FogFlow does.
    pub(super) async fn relocate_tasks_reading(&mut self, entity_id: &str) {
        let affected: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.record.worker.is_some() && t.record.instance.inputs.iter().any(|i| i.id == entity_id))
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in affected {
            let current = self.tasks.get(&task_id).and_then(|t| t.record.worker.clone());
            let Some((best, _)) = self.best_worker(&task_id) else { continue };
            let Some(current) = current.filter(|current| *current != best) else { continue };
            tracing::info!(task = %task_id, from = %current, to = %best, "input moved; migrating the task");
            self.send_remove(&current, &task_id).await;
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.record.worker = None;
                task.sent_at = None;
            }
            self.place(&task_id).await;
        }
    }

    /// Places a task without a worker, if a worker fits; sends ADD_TASK.
    pub(super) async fn place(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get(task_id) else { return };
        if task.record.worker.is_some() {
            return;
        }
        let choice = self.best_worker(task_id);
        let Some((worker, image)) = choice else {
            let reason = if self.workers.is_empty() {
                "no live worker".to_string()
            } else {
                "no live worker with free capacity and an image for its hardware".to_string()
            };
            if let Some(task) = self.tasks.get_mut(task_id) {
                if task.record.reason != reason {
                    tracing::warn!(task = %task_id, %reason, "task not placed yet");
                    task.record.reason = reason;
                }
            }
            return;
        };
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.record.worker = Some(worker.clone());
            task.record.reason.clear();
            task.record.reported.clear();
            task.record.instance.worker_id = worker.clone();
            task.record.instance.docker_image = image;
            task.record.instance.epoch = self.epoch;
        }
        tracing::info!(task = %task_id, %worker, "task placed");
        self.persist(task_id);
        self.send_add(task_id).await;
    }

    async fn send_add(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get_mut(task_id) else { return };
        let Some(worker) = task.record.worker.clone() else { return };
        task.sent_at = Some(Instant::now());
        task.record.instance.epoch = self.epoch;
        let envelope = Envelope::new(MessageType::AddTask, keys::direct(&worker), &self.id, &task.record.instance);
        self.publish(envelope).await;
    }

    async fn send_remove(&mut self, worker: &str, task_id: &str) {
        let instance = ScheduledTaskInstance {
            id: task_id.into(),
            worker_id: worker.into(),
            epoch: self.epoch,
            ..Default::default()
        };
        self.removals.insert((worker.into(), task_id.into()), Instant::now());
        self.publish(Envelope::new(MessageType::RemoveTask, keys::direct(worker), &self.id, &instance)).await;
    }

    async fn publish(&self, envelope: Envelope) {
        if let Err(error) = self.links.bus.publish(envelope).await {
            tracing::warn!(%error, "command not delivered; the next reconciliation retries it");
        }
    }

    /// A worker joined or heartbeated: refresh it and reconcile what it reports.
    pub(super) async fn on_worker_alive(&mut self, mut profile: WorkerProfile) {
        let id = profile.id.clone();
        profile.last_heartbeat_update = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let reported = profile.tasks.clone();
        let new = !self.workers.contains_key(&id);
        self.workers.insert(id.clone(), WorkerState { profile, last_seen: Instant::now() });
        if new {
            tracing::info!(worker = %id, "worker joined");
        }
        if let Some(reported) = reported {
            self.reconcile(&id, &reported).await;
        }
        if new {
            self.place_pending().await;
        }
    }

    async fn reconcile(&mut self, worker: &str, reported: &[crate::model::ReportedTask]) {
        let now = Instant::now();
        for task in reported {
            let wanted_here = self.tasks.get(&task.id).is_some_and(|t| t.record.worker.as_deref() == Some(worker));
            if wanted_here {
                if let Some(state) = self.tasks.get_mut(&task.id) {
                    if state.record.reported != task.status {
                        state.record.reported = task.status.clone();
                        self.persist(&task.id);
                    }
                }
                continue;
            }
            let key = (worker.to_string(), task.id.clone());
            let recently = self.removals.get(&key).is_some_and(|at| now.duration_since(*at) < REMOVAL_REPEAT);
            if !recently {
                tracing::info!(task = %task.id, %worker, "worker runs a task it should not; removing it there");
                self.send_remove(worker, &task.id).await;
            }
        }
        let grace = Duration::from_secs(self.config.worker.heartbeat_interval * 2);
        let missing: Vec<String> = self
            .tasks
            .iter()
            .filter(|(id, t)| {
                // Only tasks a flow wants now: a record loaded or adopted and not claimed yet may be stale.
                t.claimed
                    && t.record.worker.as_deref() == Some(worker)
                    && !reported.iter().any(|r| &r.id == *id)
                    && t.sent_at.is_none_or(|at| now.duration_since(at) > grace)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in missing {
            tracing::info!(task = %task_id, %worker, "worker does not hold a task placed on it; sending it again");
            self.send_add(&task_id).await;
        }
    }

    /// A worker left or went silent: its tasks are placed elsewhere.
    pub(super) async fn on_worker_lost(&mut self, worker: &str, why: &str) {
        if self.workers.remove(worker).is_none() {
            return;
        }
        tracing::warn!(%worker, why, "worker lost; rescheduling its tasks");
        let orphans: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.record.worker.as_deref() == Some(worker))
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in &orphans {
            if let Some(task) = self.tasks.get_mut(task_id) {
                task.record.worker = None;
                task.record.reported.clear();
                task.record.reason = format!("worker {worker} {why}");
                task.sent_at = None;
            }
            self.persist(task_id);
        }
        self.place_pending().await;
        self.commit().await;
    }

    /// A worker's status report.
    pub(super) async fn on_task_update(&mut self, from: &str, update: TaskUpdate) {
        let Some(task) = self.tasks.get_mut(&update.task_id) else { return };
        if task.record.worker.as_deref() != Some(from) && !from.is_empty() {
            return;
        }
        task.record.reported = update.status.as_str().into();
        task.record.reason = update.reason.clone();
        if update.status == TaskStatus::Removed {
            // The worker dropped a task we still want there (e.g. it restarted): send it again.
            task.sent_at = None;
        }
        self.persist(&update.task_id);
    }

    async fn place_pending(&mut self) {
        // Unclaimed records (loaded or adopted, no flow wants them yet) are not placed: they may be stale.
        let pending: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.claimed && t.record.worker.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in pending {
            self.place(&task_id).await;
        }
    }

    /// Every second: liveness, pending placements, confirmations, unclaimed tasks after a restart, missing
    /// subscriptions.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        let liveness = self.liveness();
        let silent: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) >= liveness)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in silent {
            self.on_worker_lost(&worker, "missed its heartbeats").await;
        }
        self.place_pending().await;
        let confirm = self.confirm_timeout();
        let unconfirmed: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.record.worker.is_some()
                    && t.record.reported != TaskStatus::Running.as_str()
                    && t.sent_at.is_some_and(|at| now.duration_since(at) > confirm)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in unconfirmed {
            self.send_add(&task_id).await;
        }
        if self.designer_retry.is_some_and(|at| now >= at) {
            self.retry_designer().await;
        }
        // Not while the intents in force are unknown (the designer did not answer at a takeover).
        if self.designer_retry.is_none() && now.duration_since(self.started) > liveness * 2 + Duration::from_secs(5) {
            let unclaimed: Vec<String> =
                self.tasks.iter().filter(|(_, t)| !t.claimed).map(|(id, _)| id.clone()).collect();
            for task_id in unclaimed {
                tracing::info!(task = %task_id, "task from before the restart is no longer wanted");
                self.remove_task(&task_id).await;
            }
        }
        self.removals.retain(|_, at| now.duration_since(*at) < REMOVAL_REPEAT * 4);
        if self.flows.values().any(|f| f.subscriptions.iter().any(Option::is_none)) {
            self.subscribe_missing().await;
        }
        self.commit().await;
        self.refresh_snapshot();
    }
}
