//! The `docker` runtime: each task runs as a container of the Docker engine (spec §4.4, with our fixes).
//!
//! A launch removes any container left for the same task by an earlier run (when leftovers may exist), creates
//! and starts the container planned by [`plan`] — labelled with task, worker, epoch and run — and, when the
//! daemon says the image is missing, pulls it (progress in the log) and tries once more; no image and no
//! registry → [`RuntimeError::ImageUnavailable`], which the worker reports as a `failed` task and retries with
//! backoff. A monitor per run waits for the
//! container to end (riding out daemon outages: it re-attaches when the daemon answers again), forwards its
//! output to the log, and reports exactly one [`ExitEvent`] with the exit code, or `out of memory`; stopping
//! is `docker stop` with the grace, then removal. Containers of this worker that no live run owns (left by a
//! killed worker, or whose removal failed while the daemon was away) are removed by [`DockerRuntime::sweep`],
//! at start and whenever the daemon comes back.
//!
//! Must not: know about the bus, the broker or task states; import bollard outside [`engine`].

pub mod engine;
pub mod plan;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use tokio::sync::{mpsc, oneshot, watch};

use self::engine::{Engine, EngineError};
use self::plan::{keys, Network};
use super::{BoxFuture, ExitChannel, ExitEvent, LaunchSpec, Launched, RunningTask, RuntimeError, TaskRuntime};
use crate::config::RegistryConfig;
use crate::sync::lock;

/// Longest a pull may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a health probe waits for the daemon.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between attempts to re-attach to a container while the daemon is unreachable.
const REATTACH_PAUSE: Duration = Duration::from_secs(1);

struct Run {
    task_id: String,
    container_id: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    done: watch::Receiver<bool>,
}

/// The `docker` runtime.
pub struct DockerRuntime {
    engine: Arc<Engine>,
    worker_id: String,
    network: Network,
    grace: Duration,
    credentials: Option<DockerCredentials>,
    runs: Arc<Mutex<HashMap<String, Run>>>,
    exits: ExitChannel,
    next_run: AtomicU64,
    healthy: AtomicBool,
    /// Whether containers no run owns may exist (at start, and after a removal failed); launches then look
    /// for earlier containers of their task first. Clear otherwise, saving a list call per launch.
    leftovers_possible: Arc<AtomicBool>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("socket", &self.engine.socket())
            .field("worker_id", &self.worker_id)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

fn runtime_error(error: EngineError) -> RuntimeError {
    match error {
        EngineError::Unreachable { .. } => RuntimeError::EngineUnavailable(error.to_string()),
        EngineError::NotFound(message) | EngineError::Refused(message) => RuntimeError::EngineRefused(message),
    }
}

/// The Docker socket to use: `worker.docker_host`, else `DOCKER_HOST` when it is a `unix://` URL, else
/// `/var/run/docker.sock`.
pub fn default_socket(configured: Option<&str>) -> String {
    if let Some(configured) = configured.filter(|value| !value.trim().is_empty()) {
        return configured.trim().to_string();
    }
    match std::env::var("DOCKER_HOST") {
        Ok(value) if value.starts_with("unix://") => value,
        _ => "/var/run/docker.sock".into(),
    }
}

impl DockerRuntime {
    /// A runtime for `worker_id` on the engine at `socket`; nothing is contacted yet.
    pub fn new(
        socket: &str,
        worker_id: &str,
        network: Network,
        grace: Duration,
        registry: Option<&RegistryConfig>,
    ) -> Self {
        let credentials =
            registry.filter(|r| !r.username.is_empty() && !r.serveraddress.is_empty()).map(|r| DockerCredentials {
                username: Some(r.username.clone()),
                password: Some(r.password.clone()),
                email: (!r.email.is_empty()).then(|| r.email.clone()),
                serveraddress: Some(r.serveraddress.clone()),
                ..Default::default()
            });
        DockerRuntime {
            engine: Arc::new(Engine::new(socket)),
            worker_id: worker_id.to_string(),
            network,
            grace,
            credentials,
            runs: Arc::default(),
            exits: ExitChannel::new(),
            next_run: AtomicU64::new(1),
            healthy: AtomicBool::new(false),
            leftovers_possible: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the daemon answers within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), String> {
        match tokio::time::timeout(PING_TIMEOUT, self.engine.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("Docker daemon at {} did not answer within {PING_TIMEOUT:?}", self.engine.socket())),
        }
    }

    /// Removes this worker's containers that no live run owns; returns how many.
    pub async fn sweep(&self) -> Result<usize, RuntimeError> {
        self.leftovers_possible.store(false, Ordering::SeqCst);
        let swept = self.sweep_once().await;
        if swept.is_err() {
            self.leftovers_possible.store(true, Ordering::SeqCst);
        }
        swept
    }

    async fn sweep_once(&self) -> Result<usize, RuntimeError> {
        let mine = [format!("{}=true", keys::MANAGED), format!("{}={}", keys::WORKER_ID, self.worker_id)];
        let found = self.engine.list_labelled(&mine).await.map_err(runtime_error)?;
        let mut removed = 0;
        for container in found {
            let owned = container.labels.get(keys::RUN).is_some_and(|run| lock(&self.runs).contains_key(run));
            if owned {
                continue;
            }
            let task = container.labels.get(keys::TASK_ID).cloned().unwrap_or_default();
            tracing::warn!(container = %short(&container.id), %task, "removing a task container no run of this worker owns");
            self.engine.remove(&container.id).await.map_err(runtime_error)?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        if self.engine.image_present(image).await.map_err(runtime_error)? {
            return Ok(());
        }
        tracing::info!(%image, "image not on this node; pulling it");
        let pulling = self.engine.pull(image, self.credentials.clone(), |line| {
            tracing::info!(%image, progress = %line, "pulling");
        });
        match tokio::time::timeout(PULL_TIMEOUT, pulling).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(EngineError::Unreachable { socket, reason })) => {
                Err(RuntimeError::EngineUnavailable(EngineError::Unreachable { socket, reason }.to_string()))
            }
            Ok(Err(EngineError::NotFound(reason) | EngineError::Refused(reason))) => {
                Err(RuntimeError::ImageUnavailable { image: image.to_string(), reason })
            }
            Err(_) => Err(RuntimeError::ImageUnavailable {
                image: image.to_string(),
                reason: format!("pull did not finish within {PULL_TIMEOUT:?}"),
            }),
        }
    }

    async fn start(&self, mut spec: LaunchSpec) -> Result<Launched, RuntimeError> {
        let run_id = format!("run-{}-{}", std::process::id(), self.next_run.fetch_add(1, Ordering::Relaxed));
        let plan = plan::plan(&spec, &run_id, self.network)?;
        if self.leftovers_possible.load(Ordering::SeqCst) {
            self.remove_earlier_containers(&spec.task_id).await?;
        }
        let (stop, stop_requested) = oneshot::channel();
        let (done_sender, done) = watch::channel(false);
        // Registered before the container exists, so a concurrent sweep never takes it for a leftover.
        lock(&self.runs)
            .insert(run_id.clone(), Run { task_id: spec.task_id.clone(), container_id: None, stop: Some(stop), done });
        let port = spec.port.port();
        spec.port.unbind();
        // Create first and pull only when the daemon says the image is missing: one call less per launch.
        let mut created = self.engine.run(&plan).await;
        if let Err(EngineError::NotFound(_)) = created {
            created = match self.ensure_image(&spec.image).await {
                Ok(()) => self.engine.run(&plan).await,
                Err(error) => {
                    lock(&self.runs).remove(&run_id);
                    return Err(error);
                }
            };
        }
        let container_id = match created {
            Ok(id) => id,
            Err(error) => {
                lock(&self.runs).remove(&run_id);
                return Err(runtime_error(error));
            }
        };
        if let Some(run) = lock(&self.runs).get_mut(&run_id) {
            run.container_id = Some(container_id.clone());
        }
        tracing::info!(task = %spec.task_id, container = %short(&container_id), image = %spec.image, port, "task container started");
        let engine = self.engine.clone();
        let (logs_id, logs_task) = (container_id.clone(), spec.task_id.clone());
        tokio::spawn(async move { engine.forward_logs(&logs_id, &logs_task).await });
        let monitor = Monitor {
            engine: self.engine.clone(),
            container_id: container_id.clone(),
            task_id: spec.task_id,
            run_id: run_id.clone(),
            grace: self.grace,
            runs: self.runs.clone(),
            exits: self.exits.sender(),
            leftovers_possible: self.leftovers_possible.clone(),
            _port: spec.port,
        };
        tokio::spawn(monitor.watch(stop_requested, done_sender));
        Ok(Launched { run_id, container_id: short(&container_id).to_string(), pid: None, port })
    }

    /// Removes containers of this worker for `task_id` that no live run owns (a previous run whose removal
    /// failed, or one left by a killed worker with the same id).
    async fn remove_earlier_containers(&self, task_id: &str) -> Result<(), RuntimeError> {
        let labels = [
            format!("{}=true", keys::MANAGED),
            format!("{}={}", keys::WORKER_ID, self.worker_id),
            format!("{}={task_id}", keys::TASK_ID),
        ];
        for container in self.engine.list_labelled(&labels).await.map_err(runtime_error)? {
            let owned = container.labels.get(keys::RUN).is_some_and(|run| lock(&self.runs).contains_key(run));
            if !owned {
                self.engine.remove(&container.id).await.map_err(runtime_error)?;
            }
        }
        Ok(())
    }

    async fn stop_run(&self, run_id: &str) -> Result<(), RuntimeError> {
        let (stop, mut done) = {
            let mut runs = lock(&self.runs);
            let run = runs.get_mut(run_id).ok_or_else(|| RuntimeError::NotFound(run_id.to_string()))?;
            (run.stop.take(), run.done.clone())
        };
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        // The monitor stops and removes the container; bounded, since the daemon may be away (the sweep removes
        // the container once it is back).
        let bound = self.grace + Duration::from_secs(10);
        if tokio::time::timeout(bound, done.wait_for(|finished| *finished)).await.is_err() {
            tracing::warn!(
                run = run_id,
                "task container not confirmed stopped; it will be removed when the daemon answers"
            );
        }
        Ok(())
    }

    async fn check_health(&self) -> Result<(), String> {
        let result = self.ping().await;
        let was_healthy = self.healthy.swap(result.is_ok(), Ordering::Relaxed);
        if result.is_ok() && !was_healthy {
            match self.sweep().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed task containers no run owns"),
                Err(error) => tracing::warn!(%error, "cannot sweep task containers"),
            }
        }
        result
    }
}

/// The first 12 characters of a container id, as `docker ps` shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

struct Monitor {
    engine: Arc<Engine>,
    container_id: String,
    task_id: String,
    run_id: String,
    grace: Duration,
    runs: Arc<Mutex<HashMap<String, Run>>>,
    exits: mpsc::UnboundedSender<ExitEvent>,
    leftovers_possible: Arc<AtomicBool>,
    _port: super::PortLease,
}

impl Monitor {
    async fn watch(self, stop: oneshot::Receiver<()>, done: watch::Sender<bool>) {
        let mut stop = Some(stop);
        let mut requested = false;
        let (code, reason) = loop {
            let waited = tokio::select! {
                waited = self.engine.wait(&self.container_id) => waited,
                asked = async {
                    match stop.as_mut() {
                        Some(receiver) => receiver.await.is_ok(),
                        None => std::future::pending().await,
                    }
                }, if stop.is_some() => {
                    stop = None;
                    if asked {
                        requested = true;
                        if let Err(error) = self.engine.stop(&self.container_id, self.grace).await {
                            tracing::warn!(task = %self.task_id, %error, "cannot stop the task container");
                            break (None, format!("stopped; container not confirmed stopped: {error}"));
                        }
                    }
                    continue;
                }
            };
            match waited {
                Ok(exit) if exit.oom_killed => break (Some(exit.code as i32), "killed: out of memory".to_string()),
                Ok(exit) => break (Some(exit.code as i32), format!("exited with code {}", exit.code)),
                Err(EngineError::NotFound(_)) => break (None, "the container was removed outside fogflow".into()),
                Err(error) => {
                    // The daemon is away: the container may well still run. Re-attach when it answers.
                    tracing::debug!(task = %self.task_id, %error, "cannot wait for the task container; re-attaching");
                    tokio::time::sleep(REATTACH_PAUSE).await;
                    if let Ok(None) = self.engine.running(&self.container_id).await {
                        break (None, "the container disappeared".into());
                    }
                }
            }
        };
        if let Err(error) = self.engine.remove(&self.container_id).await {
            self.leftovers_possible.store(true, Ordering::SeqCst);
            tracing::warn!(task = %self.task_id, %error, "cannot remove the task container; the sweep will");
        }
        tracing::info!(task = %self.task_id, container = %short(&self.container_id), %reason, requested, "task container ended");
        lock(&self.runs).remove(&self.run_id);
        let _ = self.exits.send(ExitEvent {
            task_id: self.task_id.clone(),
            run_id: self.run_id.clone(),
            code,
            reason,
            requested,
        });
        let _ = done.send(true);
    }
}

impl TaskRuntime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Launched, RuntimeError>> {
        Box::pin(self.start(spec))
    }

    fn stop<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_run(run_id))
    }

    fn list(&self) -> BoxFuture<'_, Vec<RunningTask>> {
        let runs = lock(&self.runs)
            .iter()
            .filter(|(_, run)| run.container_id.is_some())
            .map(|(run_id, run)| RunningTask { task_id: run.task_id.clone(), run_id: run_id.clone(), pid: None })
            .collect();
        Box::pin(async move { runs })
    }

    fn take_exit_events(&self) -> Option<mpsc::UnboundedReceiver<ExitEvent>> {
        self.exits.take()
    }

    fn health(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.check_health())
    }

    fn prefetch<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.ensure_image(image))
    }
}

#[cfg(test)]
mod tests;
