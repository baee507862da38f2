//! The worker's task table and the commands that change it (spec §4.2–§4.6), handled one at a time in bus
//! order: `ADD_TASK` (capacity, admission, preemption, idempotent by task id), `REMOVE_TASK`, `ADD_INPUT`,
//! `REMOVE_INPUT`; epoch fencing; exits of task processes (report `failed`, restart with capped backoff); and
//! the final teardown. Launches run in tasks of their own and report back through [`Internal`], so a command
//! never waits for an operator to start; an input added meanwhile is subscribed once the launch is done.
//!
//! Must not: start processes or call the broker itself ([`super::lifecycle`] does), or touch the HTTP side.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc;

use super::admission::{admit, to_resume, Held};
use super::api::{TaskView, TaskViews};
use super::lifecycle::{LaunchFailure, Launcher, RunState};
use super::outbox::Outbox;
use super::WorkerMetrics;
use crate::bus::envelope::keys;
use crate::bus::{Envelope, MessageType};
use crate::model::{ReportedTask, ScheduledTaskInstance, TaskInfo, TaskStatus, TaskUpdate};
use crate::runtime::ExitEvent;

/// Restart backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub first: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before restart number `failures` (1-based): first, 2×first, 4×first … capped.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// Results of work the executor started, sent back to it.
#[derive(Debug)]
pub enum Internal {
    /// A launch finished.
    LaunchDone {
        /// The task.
        task_id: String,
        /// The generation it was started for.
        generation: u64,
        /// What happened.
        outcome: Result<RunState, LaunchFailure>,
    },
    /// A restart is due.
    Restart {
        /// The task.
        task_id: String,
        /// The generation it was scheduled for.
        generation: u64,
    },
}

#[derive(Debug)]
pub(super) enum Phase {
    Idle,
    Launching,
    Running(RunState),
}

#[derive(Debug)]
pub(super) struct Task {
    pub(super) spec: ScheduledTaskInstance,
    status: TaskStatus,
    pub(super) phase: Phase,
    generation: u64,
    paused: bool,
    removing: bool,
    failures: u32,
    reason: String,
}

impl Task {
    fn held(&self) -> Held<'_> {
        Held {
            id: &self.spec.id,
            exclusive: self.spec.is_exclusive,
            level: self.spec.priority_level,
            running: !self.paused,
        }
    }
}

/// The task table and its rules.
pub struct Executor {
    worker_id: String,
    capacity: u32,
    pub(super) launcher: Launcher,
    outbox: Outbox,
    metrics: WorkerMetrics,
    views: TaskViews,
    backoff: Backoff,
    internal: mpsc::UnboundedSender<Internal>,
    pub(super) tasks: BTreeMap<String, Task>,
    highest_epoch: u64,
    ended_runs: HashSet<String>,
}

impl Executor {
    /// An empty table; launches report on `internal`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker_id: String,
        capacity: u32,
        launcher: Launcher,
        outbox: Outbox,
        metrics: WorkerMetrics,
        views: TaskViews,
        backoff: Backoff,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Self {
        Executor {
            worker_id,
            capacity,
            launcher,
            outbox,
            metrics,
            views,
            backoff,
            internal,
            tasks: BTreeMap::new(),
            highest_epoch: 0,
            ended_runs: HashSet::new(),
        }
    }

    /// The tasks held, for heartbeats.
    pub fn reported(&self) -> Vec<ReportedTask> {
        self.tasks
            .values()
            .map(|t| ReportedTask { id: t.spec.id.clone(), epoch: t.spec.epoch, status: t.status.as_str().into() })
            .collect()
    }

    /// The highest master epoch accepted so far (reported in heartbeats).
    pub fn highest_epoch(&self) -> u64 {
        self.highest_epoch
    }

    /// `MASTER_JOIN` from a newly active master: its epoch fences every earlier master from now on.
    pub fn master_joined(&mut self, master: &str, epoch: u64) {
        if self.fence("MASTER_JOIN", master, epoch) {
            tracing::info!(master, epoch, "active master announced; earlier epochs are refused from now on");
        }
    }

    /// Whether `epoch` may act: refuses (and counts) a command older than the highest epoch seen.
    pub(super) fn fence(&mut self, kind: &str, id: &str, epoch: u64) -> bool {
        if epoch < self.highest_epoch {
            tracing::warn!(kind, id, epoch, highest = self.highest_epoch, "stale-epoch command refused");
            self.metrics.stale_commands.inc();
            return false;
        }
        self.highest_epoch = epoch;
        true
    }

    fn publish_update(&self, update: TaskUpdate) {
        tracing::info!(task = %update.task_id, status = update.status.as_str(), reason = %update.reason, "task update");
        self.outbox.send(Envelope::new(MessageType::TaskUpdate, keys::TASK, &self.worker_id, &update));
    }

    fn report(&self, task: &Task) {
        self.publish_update(task.spec.update(task.status, task.reason.clone()));
    }

    /// `ADD_TASK`.
    pub async fn add_task(&mut self, mut spec: ScheduledTaskInstance) {
        if !self.fence("ADD_TASK", &spec.id, spec.epoch) {
            return;
        }
        if let Some(task) = self.tasks.get_mut(&spec.id) {
            task.spec.epoch = task.spec.epoch.max(spec.epoch);
            task.removing = false;
            tracing::debug!(task = %spec.id, "ADD_TASK for a task already held; re-reporting its status");
            if task.status != TaskStatus::Scheduled {
                let update = task.spec.update(task.status, task.reason.clone());
                self.publish_update(update);
            }
            return;
        }
        if self.tasks.len() >= self.capacity as usize {
            self.publish_update(spec.update(TaskStatus::Failed, "worker at capacity"));
            return;
        }
        let admission = admit(spec.is_exclusive, spec.priority_level, self.tasks.values().map(Task::held));
        for id in admission.overtaken {
            self.pause(&id).await;
        }
        spec.status = TaskStatus::Scheduled;
        let id = spec.id.clone();
        let task = Task {
            spec,
            status: TaskStatus::Scheduled,
            phase: Phase::Idle,
            generation: 0,
            paused: !admission.runnable,
            removing: false,
            failures: 0,
            reason: String::new(),
        };
        self.tasks.insert(id.clone(), task);
        if admission.runnable {
            self.start_launch(&id);
        } else if let Some(task) = self.tasks.get_mut(&id) {
            task.status = TaskStatus::Paused;
            let update = task.spec.update(TaskStatus::Paused, "");
            self.publish_update(update);
        }
    }

    fn start_launch(&mut self, id: &str) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        task.generation += 1;
        task.phase = Phase::Launching;
        let (spec, generation) = (task.spec.clone(), task.generation);
        let launcher = self.launcher.clone();
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let outcome = launcher.launch(&spec).await;
            let _ = internal.send(Internal::LaunchDone { task_id: spec.id, generation, outcome });
        });
    }

    /// Preempts a task: its run stops, inputs are unsubscribed, outputs deleted; reported `paused`.
    async fn pause(&mut self, id: &str) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        task.paused = true;
        task.status = TaskStatus::Paused;
        task.reason.clear();
        if let Phase::Running(_) | Phase::Idle = task.phase {
            task.generation += 1; // cancels a pending restart
            let run = match std::mem::replace(&mut task.phase, Phase::Idle) {
                Phase::Running(run) => Some(run),
                _ => None,
            };
            let outputs = task.spec.outputs.clone();
            let update = task.spec.update(TaskStatus::Paused, "");
            self.launcher.teardown(id, run, &outputs).await;
            self.publish_update(update);
        } else {
            // Launching: reported now, torn down when the launch reports back.
            let update = task.spec.update(TaskStatus::Paused, "");
            self.publish_update(update);
        }
    }

    /// `REMOVE_TASK`.
    pub async fn remove_task(&mut self, spec: ScheduledTaskInstance) {
        if !self.fence("REMOVE_TASK", &spec.id, spec.epoch) {
            return;
        }
        let Some(task) = self.tasks.get_mut(&spec.id) else {
            tracing::debug!(task = %spec.id, "REMOVE_TASK for a task not held; confirming");
            self.publish_update(spec.update(TaskStatus::Removed, ""));
            return;
        };
        task.spec.epoch = task.spec.epoch.max(spec.epoch);
        if matches!(task.phase, Phase::Launching) {
            task.removing = true; // finished when the launch reports back
            return;
        }
        self.finish_removal(&spec.id).await;
    }

    async fn finish_removal(&mut self, id: &str) {
        let Some(mut task) = self.tasks.remove(id) else { return };
        let run = match std::mem::replace(&mut task.phase, Phase::Idle) {
            Phase::Running(run) => Some(run),
            _ => None,
        };
        self.launcher.teardown(id, run, &task.spec.outputs).await;
        self.publish_update(task.spec.update(TaskStatus::Removed, ""));
        self.readmit();
    }

    fn readmit(&mut self) {
        let held: Vec<Held<'_>> = self.tasks.values().map(Task::held).collect();
        let resume: Vec<String> = to_resume(&held).into_iter().map(str::to_string).collect();
        for id in resume {
            if let Some(task) = self.tasks.get_mut(&id) {
                task.paused = false;
                if matches!(task.phase, Phase::Idle) {
                    self.start_launch(&id);
                }
            }
        }
    }

    /// A launch or restart reported back.
    pub async fn internal(&mut self, message: Internal) {
        match message {
            Internal::LaunchDone { task_id, generation, outcome } => {
                self.launch_done(task_id, generation, outcome).await
            }
            Internal::Restart { task_id, generation } => {
                let Some(task) = self.tasks.get(&task_id) else { return };
                if task.generation == generation && !task.paused && matches!(task.phase, Phase::Idle) {
                    self.metrics.restarts.inc();
                    self.start_launch(&task_id);
                }
            }
        }
    }

    async fn launch_done(&mut self, id: String, generation: u64, outcome: Result<RunState, LaunchFailure>) {
        let current = self.tasks.get(&id).is_some_and(|t| t.generation == generation);
        if !current {
            if let Ok(run) = outcome {
                self.launcher.teardown(&id, Some(run), &[]).await;
            }
            return;
        }
        let Some(task) = self.tasks.get_mut(&id) else { return };
        match outcome {
            Ok(run) if task.removing => {
                task.phase = Phase::Running(run);
                self.finish_removal(&id).await;
            }
            Ok(run) if task.paused => {
                task.phase = Phase::Idle;
                let outputs = task.spec.outputs.clone();
                self.launcher.teardown(&id, Some(run), &outputs).await;
            }
            Ok(run) => {
                let died = self.ended_runs.remove(&run.launched.run_id);
                let info = TaskInfo {
                    task_id: id.clone(),
                    topology_name: task.spec.topology_name.clone(),
                    task_name: task.spec.task_name.clone(),
                    service_intent_id: task.spec.service_intent_id.clone(),
                    info: format!("refURL={}; containerID={}", run.ref_url, run.launched.container_id),
                };
                task.phase = Phase::Running(run);
                task.status = TaskStatus::Running;
                task.reason.clear();
                self.metrics.launches.inc();
                self.report_by_id(&id);
                self.outbox.send(Envelope::new(MessageType::TaskInfo, keys::TASK, &self.worker_id, &info));
                self.sync_subscriptions(&id).await;
                if died {
                    self.run_ended(&id, "exited during launch".into()).await;
                }
            }
            Err(failure) => {
                self.metrics.launch_failures.inc();
                task.phase = Phase::Idle;
                if task.removing {
                    self.finish_removal(&id).await;
                } else if failure.permanent {
                    let task = self.tasks.remove(&id);
                    if let Some(task) = task {
                        self.publish_update(task.spec.update(TaskStatus::Failed, failure.reason));
                    }
                    self.readmit();
                } else if !task.paused {
                    self.fail_and_schedule(&id, failure.reason);
                }
            }
        }
    }

    fn report_by_id(&self, id: &str) {
        if let Some(task) = self.tasks.get(id) {
            self.report(task);
        }
    }

    fn fail_and_schedule(&mut self, id: &str, reason: String) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        task.status = TaskStatus::Failed;
        task.reason = reason;
        task.failures += 1;
        task.generation += 1;
        let delay = self.backoff.delay(task.failures);
        let (task_id, generation) = (id.to_string(), task.generation);
        tracing::warn!(task = id, reason = %task.reason, ?delay, "task failed; restarting after a delay");
        self.report_by_id(id);
        let internal = self.internal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = internal.send(Internal::Restart { task_id, generation });
        });
    }

    /// A run ended.
    pub async fn exited(&mut self, event: ExitEvent) {
        if event.requested {
            return;
        }
        let matches = self
            .tasks
            .get(&event.task_id)
            .is_some_and(|t| matches!(&t.phase, Phase::Running(run) if run.launched.run_id == event.run_id));
        if matches {
            self.run_ended(&event.task_id, event.reason).await;
        } else {
            if self.ended_runs.len() > 1024 {
                self.ended_runs.clear();
            }
            self.ended_runs.insert(event.run_id);
        }
    }

    async fn run_ended(&mut self, id: &str, reason: String) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        let Phase::Running(run) = std::mem::replace(&mut task.phase, Phase::Idle) else { return };
        if run.started.elapsed() > self.backoff.max * 2 {
            task.failures = 0;
        }
        self.launcher.teardown(id, Some(run), &[]).await;
        self.fail_and_schedule(id, format!("operator {reason}"));
    }

    /// Updates the `/tasks` view.
    pub fn publish_views(&self) {
        let views = self
            .tasks
            .values()
            .map(|t| {
                let run = match &t.phase {
                    Phase::Running(run) => Some(run),
                    _ => None,
                };
                TaskView {
                    id: t.spec.id.clone(),
                    status: t.status.as_str().to_string(),
                    epoch: t.spec.epoch,
                    ref_url: run.map(|r| r.ref_url.clone()),
                    pid: run.and_then(|r| r.launched.pid),
                    container_id: run.map(|r| r.launched.container_id.clone()),
                    reason: t.reason.clone(),
                    inputs: t.spec.inputs.clone(),
                    outputs: t.spec.outputs.clone(),
                }
            })
            .collect();
        self.views.set(views);
        self.metrics.tasks.set(self.tasks.len() as i64);
    }

    /// Whether a launch is in flight.
    pub fn launching(&self) -> bool {
        self.tasks.values().any(|t| matches!(t.phase, Phase::Launching))
    }

    /// Shutdown: every task is removed (runs stopped, inputs unsubscribed, outputs deleted, `removed` reported);
    /// launches in flight are finished first.
    pub async fn remove_all(&mut self, internal: &mut mpsc::UnboundedReceiver<Internal>, budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        for task in self.tasks.values_mut() {
            task.removing = true;
        }
        let idle: Vec<String> =
            self.tasks.values().filter(|t| !matches!(t.phase, Phase::Launching)).map(|t| t.spec.id.clone()).collect();
        let mut teardowns = Vec::new();
        for id in idle {
            if let Some(mut task) = self.tasks.remove(&id) {
                let run = match std::mem::replace(&mut task.phase, Phase::Idle) {
                    Phase::Running(run) => Some(run),
                    _ => None,
                };
                let launcher = self.launcher.clone();
                teardowns.push(async move {
                    launcher.teardown(&task.spec.id, run, &task.spec.outputs).await;
                    task.spec.update(TaskStatus::Removed, "")
                });
            }
        }
        let updates = tokio::time::timeout_at(deadline, futures_util::future::join_all(teardowns)).await;
        for update in updates.unwrap_or_default() {
            self.publish_update(update);
        }
        while self.launching() {
            match tokio::time::timeout_at(deadline, internal.recv()).await {
                Ok(Some(message @ Internal::LaunchDone { .. })) => self.internal(message).await,
                Ok(Some(Internal::Restart { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.publish_views();
    }
}
