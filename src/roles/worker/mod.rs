//! The worker role (spec §4): runs task instances for the master through a [`TaskRuntime`] (Docker containers
//! or child processes, `worker.runtime`), subscribes their inputs at the worker's broker, and reports over the
//! bus. While the runtime cannot launch (the Docker daemon is unreachable) the worker stays up, not ready, and
//! advertises capacity 0.
//!
//! Bus behaviour: consumes its queue `<WorkerID>` (binding `<WorkerID>.*`) one message at a time, acking after
//! processing and rejecting malformed payloads without requeue; then publishes `WORKER_JOIN`, a
//! `WORKER_HEARTBEAT` every `worker.heartbeat_interval` seconds (with `workload` and `tasks`), `TASK_UPDATE` /
//! `TASK_INFO` on `task.`, and `WORKER_LEAVE` after removing every task on shutdown. Commands older than the
//! highest epoch seen are refused; a newly active master's `MASTER_JOIN` (with its epoch) raises that epoch,
//! and heartbeats report it. A second worker with the same id is refused at start (its queue has a consumer). Serves `/health`, `/ready`, `/metrics`, `/version` and `GET /tasks` on
//! `worker.http_port`.
//!
//! Owns: its tasks and their broker subscriptions. Must not: import another role, or start processes other
//! than through [`crate::runtime`].

pub mod admission;
pub mod api;
pub mod engine;
pub mod executor;
mod flows;
pub mod inputs;
pub mod lifecycle;
pub mod outbox;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::api::TaskViews;
use self::executor::{Backoff, Executor};
use self::inputs::HttpTaskBroker;
use self::lifecycle::Launcher;
use self::outbox::Outbox;
use super::{RoleContext, RoleError};
use crate::bus::envelope::keys;
use crate::bus::{Bus, Delivery, Envelope, MessageType, QueueSpec};
use crate::clients::http_client::HttpClient;
use crate::config::Config;
use crate::http::{serve, Metrics, Readiness, ServerLimits};
use crate::model::worker::host_platform;
use crate::model::{DockerImage, FlowInfo, GeoPoint, MasterProfile, ScheduledTaskInstance, WorkerProfile};
use crate::role::Role;
use crate::runtime::process::ProcessRuntime;
use crate::runtime::{PortAllocator, TaskRuntime};

use self::engine::HEALTH_PERIOD;

/// Time a task process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The worker's metrics.
#[derive(Debug, Clone, Default)]
pub struct WorkerMetrics {
    /// Commands refused for a stale epoch.
    pub stale_commands: Counter,
    /// Successful launches (restarts included).
    pub launches: Counter,
    /// Failed launches.
    pub launch_failures: Counter,
    /// Restarts after a task's process ended by itself.
    pub restarts: Counter,
    /// Tasks held.
    pub tasks: Gauge,
}

impl WorkerMetrics {
    fn register(&self, metrics: &Metrics) {
        metrics.register("worker_stale_commands", "Commands refused for a stale epoch", self.stale_commands.clone());
        metrics.register("worker_task_launches", "Task launches that succeeded", self.launches.clone());
        metrics.register("worker_task_launch_failures", "Task launches that failed", self.launch_failures.clone());
        metrics.register("worker_task_restarts", "Restarts of tasks whose operator ended", self.restarts.clone());
        metrics.register("worker_tasks", "Tasks held by this worker", self.tasks.clone());
    }
}

/// Everything the worker loop needs, built from the configuration (or by tests).
pub struct WorkerParts {
    /// The worker's id.
    pub worker_id: String,
    /// Its profile without workload and tasks.
    pub profile: WorkerProfile,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Launches, teardowns.
    pub launcher: Launcher,
    /// Restart backoff.
    pub backoff: Backoff,
    /// Metrics.
    pub metrics: WorkerMetrics,
    /// What `GET /tasks` shows.
    pub views: TaskViews,
    /// Readiness (ready once consuming).
    pub readiness: Readiness,
    /// Time allowed for removing every task on shutdown.
    pub teardown_budget: Duration,
}

/// The worker's profile from the configuration.
pub fn profile(config: &Config, worker_id: &str, runtime: &str) -> WorkerProfile {
    let (os, hardware) = host_platform();
    WorkerProfile {
        id: worker_id.to_string(),
        location: GeoPoint {
            latitude: config.physical_location.latitude,
            longitude: config.physical_location.longitude,
        },
        os: os.into(),
        hardware: hardware.into(),
        capacity: config.worker.capacity,
        last_heartbeat_update: "0001-01-01T00:00:00Z".into(),
        runtime: runtime.into(),
        ..WorkerProfile::default()
    }
}

/// Runs the worker until `shutdown` fires.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let config = ctx.config.clone();
    let worker_id = config.worker_id();
    let bus = ctx.bus(Role::Worker)?;
    let leftovers = ProcessRuntime::cleanup_leftovers(&worker_id);
    if leftovers > 0 {
        tracing::warn!(count = leftovers, "killed task processes left behind by an earlier run of this worker");
    }
    let grace = STOP_GRACE.min(config.shutdown_grace() / 4);
    let runtime = engine::choose(&config, &worker_id, bus.kind(), grace).await;
    let http = HttpClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let launcher = Launcher {
        worker_id: worker_id.clone(),
        runtime: runtime.clone(),
        broker: Arc::new(HttpTaskBroker::new(http, &config.broker_url())),
        ports: PortAllocator::new(config.worker.task_port_min),
        broker_url: config.broker_url(),
        host_ip: config.my_hostip.clone(),
        listen_wait: self::lifecycle::OPERATOR_LISTEN_WAIT,
    };
    let metrics = WorkerMetrics::default();
    metrics.register(&ctx.metrics);
    let readiness = Readiness::new("not consuming its queue yet");
    readiness.require(crate::bus::readiness_check(&bus));
    let views = TaskViews::default();
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        api::routes(views.clone(), readiness.clone(), ctx.metrics.clone()),
        http_stop.clone(),
        ServerLimits::default(),
    ));
    let parts = WorkerParts {
        profile: profile(&config, &worker_id, runtime.kind()),
        worker_id,
        heartbeat: Duration::from_secs(config.worker.heartbeat_interval),
        launcher,
        backoff: Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) },
        metrics,
        views,
        readiness,
        teardown_budget: config.shutdown_grace() / 2,
    };
    let outcome = run_worker(parts, bus, shutdown).await;
    http_stop.cancel();
    let _ = server.await;
    outcome
}

/// The worker loop: consume, join, handle commands, heartbeats and exits; on shutdown remove every task and
/// leave. Fails at once when another worker with the same id consumes its queue.
pub async fn run_worker(parts: WorkerParts, bus: Arc<dyn Bus>, shutdown: CancellationToken) -> Result<(), RoleError> {
    let WorkerParts { worker_id, profile, heartbeat, launcher, backoff, metrics, views, readiness, teardown_budget } =
        parts;
    let (outbox, publisher) = Outbox::start(bus.clone());
    let spec = QueueSpec::new(&worker_id, [format!("{worker_id}.*")]);
    let hint = "set worker.id, or worker.instance (FOGFLOW__WORKER__INSTANCE) for several workers of one site";
    let consumed = super::consume_own_queue(&*bus, spec, "worker", hint, &shutdown).await;
    let mut consumer = match consumed {
        Ok(Some(consumer)) => consumer,
        Ok(None) => {
            outbox.close();
            return Ok(());
        }
        Err(error) => {
            tracing::error!(worker = %worker_id, %error, "worker refused to start");
            readiness.set_not_ready(error.to_string());
            outbox.close();
            return Err(error);
        }
    };
    let runtime = launcher.runtime.clone();
    let stop_probing = CancellationToken::new();
    let mut health = engine::watch_health(runtime.clone(), HEALTH_PERIOD, stop_probing.clone()).await;
    let readiness_health = health.clone();
    readiness.require(move || readiness_health.borrow().clone());
    readiness.set_ready();
    let (internal_sender, mut internal) = mpsc::unbounded_channel();
    let capacity = profile.capacity;
    let mut exec =
        Executor::new(worker_id.clone(), capacity, launcher, outbox.clone(), metrics, views, backoff, internal_sender);
    let (_keep_open, no_exits) = mpsc::unbounded_channel();
    let mut exits = runtime.take_exit_events().unwrap_or(no_exits);
    // A runtime that cannot launch advertises no room, so the master places nothing here.
    let heartbeat_of = |exec: &Executor, health: &watch::Receiver<Result<(), String>>| {
        let tasks = exec.reported();
        let capacity = if health.borrow().is_ok() { profile.capacity } else { 0 };
        WorkerProfile {
            workload: tasks.len() as u32,
            tasks: Some(tasks),
            capacity,
            epoch: exec.highest_epoch(),
            ..profile.clone()
        }
    };
    outbox.send(Envelope::new(MessageType::WorkerJoin, keys::HEARTBEAT, &worker_id, &heartbeat_of(&exec, &health)));
    tracing::info!(worker = %worker_id, runtime = runtime.kind(), "worker joined");
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    exec.publish_views();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            delivery = consumer.next() => match delivery {
                Some(delivery) => handle(&mut exec, &runtime, delivery).await,
                None => {
                    tracing::error!("the bus closed the worker's queue; stopping");
                    break;
                }
            },
            Some(message) = internal.recv() => exec.internal(message).await,
            Ok(()) = health.changed() => {
                health.borrow_and_update();
                outbox.send(Envelope::new(MessageType::WorkerHeartbeat, keys::HEARTBEAT, &worker_id, &heartbeat_of(&exec, &health)));
            }
            Some(event) = exits.recv() => exec.exited(event).await,
            _ = ticker.tick() => {
                exec.resync_all().await;
                outbox.send(Envelope::new(MessageType::WorkerHeartbeat, keys::HEARTBEAT, &worker_id, &heartbeat_of(&exec, &health)));
            }
        }
        exec.publish_views();
    }
    readiness.set_not_ready("shutting down");
    stop_probing.cancel();
    drop(consumer);
    exec.remove_all(&mut internal, teardown_budget).await;
    for left in runtime.list().await {
        tracing::warn!(task = %left.task_id, "stopping a run left after teardown");
        let _ = runtime.stop(&left.run_id).await;
    }
    outbox.send(Envelope::new(MessageType::WorkerLeave, keys::HEARTBEAT, &worker_id, &heartbeat_of(&exec, &health)));
    outbox.close();
    if tokio::time::timeout(teardown_budget / 2 + Duration::from_millis(200), publisher).await.is_err() {
        tracing::warn!(pending = outbox.pending(), "bus messages not published before shutdown");
    }
    tracing::info!(worker = %worker_id, "worker left");
    Ok(())
}

/// Handles one delivery and settles it: ack after processing, reject without requeue when malformed.
async fn handle(exec: &mut Executor, runtime: &Arc<dyn TaskRuntime>, delivery: Delivery) {
    let envelope = &delivery.envelope;
    let kind = envelope.kind();
    let outcome = match kind {
        Some(MessageType::AddTask) => match task_payload(envelope) {
            Ok(task) => {
                exec.add_task(task).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Some(MessageType::RemoveTask) => match task_payload(envelope) {
            Ok(task) => {
                exec.remove_task(task).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Some(MessageType::AddInput) => match flow_payload(envelope) {
            Ok(flow) => {
                exec.add_input(flow).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Some(MessageType::RemoveInput) => match flow_payload(envelope) {
            Ok(flow) => {
                exec.remove_input(flow).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Some(MessageType::MasterJoin) => match envelope.payload_as::<MasterProfile>() {
            Ok(master) => {
                exec.master_joined(&master.id, master.epoch);
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        },
        Some(MessageType::PrefetchImage) => match envelope.payload_as::<DockerImage>() {
            Ok(image) if !image.name.trim().is_empty() => {
                let reference = format!("{}:{}", image.name, if image.tag.is_empty() { "latest" } else { &image.tag });
                let runtime = runtime.clone();
                // In the background: a pull may take minutes and must not hold up commands.
                tokio::spawn(async move {
                    if let Err(error) = runtime.prefetch(&reference).await {
                        tracing::warn!(image = %reference, %error, "PREFETCH_IMAGE failed");
                    }
                });
                Ok(())
            }
            Ok(_) => Err("PREFETCH_IMAGE without an image name".into()),
            Err(error) => Err(error.to_string()),
        },
        _ => Err(format!("unexpected message type {:?}", envelope.message_type)),
    };
    match outcome {
        Ok(()) => delivery.ack(),
        Err(reason) => {
            tracing::warn!(message_type = %envelope.message_type, from = %envelope.from, %reason, "malformed bus message rejected");
            delivery.reject(false);
        }
    }
}

fn task_payload(envelope: &Envelope) -> Result<ScheduledTaskInstance, String> {
    let task: ScheduledTaskInstance = envelope.payload_as().map_err(|e| e.to_string())?;
    if task.id.trim().is_empty() {
        return Err("task without an ID".into());
    }
    Ok(task)
}

fn flow_payload(envelope: &Envelope) -> Result<FlowInfo, String> {
    let flow: FlowInfo = envelope.payload_as().map_err(|e| e.to_string())?;
    if flow.task_instance_id.trim().is_empty() || flow.input_stream.is_none() {
        return Err("flow without a TaskInstanceID or an InputStream".into());
    }
    Ok(flow)
}
