//! The Docker engine, reached through bollard over the engine's Unix socket: the handful of calls the Docker
//! runtime makes (ping, image presence and pull, create + start, wait, stop, remove, list by label, logs),
//! with bollard's errors folded into [`EngineError`]: *unreachable* (the socket is missing or the daemon does
//! not answer — retry later), *not found*, or *refused* (the daemon answered no).
//!
//! The client is made lazily and made again after a failure, so a worker started while the daemon is down
//! connects once it is up. The API version is negotiated with the daemon (old and new engines both answer).
//!
//! Owns: every use of bollard in the crate. Must not: decide what runs or keep task state (the runtime does).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;

use super::plan::{ContainerPlan, Network};

/// Seconds bollard waits for one engine request.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The daemon cannot be reached (socket missing, connection refused or cut, timeout).
    #[error("Docker daemon unreachable at {socket}: {reason}")]
    Unreachable {
        /// The socket tried.
        socket: String,
        /// What failed.
        reason: String,
    },
    /// No such container or image.
    #[error("not found: {0}")]
    NotFound(String),
    /// The daemon answered with an error.
    #[error("Docker refused: {0}")]
    Refused(String),
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// Its exit code.
    pub code: i64,
    /// Whether the kernel killed it for memory.
    pub oom_killed: bool,
}

/// A container found by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledContainer {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
}

/// The Docker engine at one socket.
pub struct Engine {
    socket: String,
    client: Mutex<Option<Docker>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl Engine {
    /// The engine at `socket` (a path or `unix://` URL); nothing is connected yet.
    pub fn new(socket: &str) -> Self {
        Engine { socket: socket.trim_start_matches("unix://").to_string(), client: Mutex::new(None) }
    }

    /// The socket path.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable { socket: self.socket.clone(), reason: reason.to_string() }
    }

    fn fold(&self, error: BollardError) -> EngineError {
        match error {
            BollardError::DockerResponseServerError { status_code: 404, message } => EngineError::NotFound(message),
            BollardError::DockerResponseServerError { message, .. }
            | BollardError::DockerStreamError { error: message } => EngineError::Refused(message),
            other => {
                // Transport failures: forget the client so the next call connects (and negotiates) again.
                *self.client.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.unreachable(other)
            }
        }
    }

    async fn client(&self) -> Result<Docker, EngineError> {
        if let Some(client) = self.client.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(client);
        }
        let docker = Docker::connect_with_unix(&self.socket, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            .map_err(|error| self.unreachable(error))?;
        let docker = docker.negotiate_version().await.map_err(|error| self.unreachable(error))?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(docker.clone());
        Ok(docker)
    }

    /// Whether the daemon answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        let docker = self.client().await?;
        docker.ping().await.map(|_| ()).map_err(|error| self.fold(error))
    }

    /// Whether the image is present locally.
    pub async fn image_present(&self, image: &str) -> Result<bool, EngineError> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(error) => match self.fold(error) {
                EngineError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Pulls `image` (`name:tag`), calling `progress` with each status line; fails with the daemon's reason
    /// (e.g. no registry reachable).
    pub async fn pull(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
        mut progress: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let (name, tag) = split_tag(image);
        let options =
            CreateImageOptions { from_image: Some(name.to_string()), tag: Some(tag.to_string()), ..Default::default() };
        let mut stream = docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|error| self.fold(error))?;
            if let Some(status) = info.status {
                let detail = match info.progress_detail.and_then(|d| Some((d.current?, d.total?))) {
                    Some((current, total)) if total > 0 => format!(" {}%", current * 100 / total),
                    _ => String::new(),
                };
                progress(&format!("{status}{detail}"));
            }
        }
        Ok(())
    }

    /// Creates and starts a container; returns its id. A container that cannot start is removed again.
    pub async fn run(&self, plan: &ContainerPlan) -> Result<String, EngineError> {
        let docker = self.client().await?;
        let port_key = |port: u16| format!("{port}/tcp");
        let mut host_config = HostConfig {
            memory: plan.memory_bytes,
            nano_cpus: plan.nano_cpus,
            init: Some(false),
            ..Default::default()
        };
        let mut exposed = None;
        match plan.network {
            Network::Host => host_config.network_mode = Some("host".into()),
            Network::Bridge => {
                let ports: Vec<u16> = std::iter::once(plan.port).chain(plan.service_ports.iter().copied()).collect();
                exposed = Some(ports.iter().map(|p| port_key(*p)).collect());
                host_config.port_bindings = Some(
                    ports
                        .iter()
                        .map(|p| {
                            let binding =
                                PortBinding { host_ip: Some(plan.bind_ip.clone()), host_port: Some(p.to_string()) };
                            (port_key(*p), Some(vec![binding]))
                        })
                        .collect(),
                );
            }
        }
        let body = ContainerCreateBody {
            image: Some(plan.image.clone()),
            env: Some(plan.env.clone()),
            labels: Some(plan.labels.clone()),
            exposed_ports: exposed,
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(CreateContainerOptions::default()), body)
            .await
            .map_err(|error| self.fold(error))?;
        if let Err(error) = docker.start_container(&created.id, None).await {
            let error = self.fold(error);
            let _ = self.remove(&created.id).await;
            return Err(error);
        }
        Ok(created.id)
    }

    /// Waits until the container stops; its exit code and whether it was killed for memory.
    pub async fn wait(&self, id: &str) -> Result<ContainerExit, EngineError> {
        let docker = self.client().await?;
        let mut stream = docker.wait_container(id, None::<WaitContainerOptions>);
        let code = match stream.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => return Err(self.fold(error)),
            None => return Err(self.unreachable("the wait stream ended without a status")),
        };
        let oom_killed = match docker.inspect_container(id, None).await {
            Ok(details) => details.state.and_then(|state| state.oom_killed).unwrap_or(false),
            Err(_) => false,
        };
        Ok(ContainerExit { code, oom_killed })
    }

    /// Whether the container is running (`None`: it does not exist).
    pub async fn running(&self, id: &str) -> Result<Option<bool>, EngineError> {
        let docker = self.client().await?;
        match docker.inspect_container(id, None).await {
            Ok(details) => Ok(Some(details.state.and_then(|state| state.running).unwrap_or(false))),
            Err(error) => match self.fold(error) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Stops the container: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let seconds = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptions { t: Some(seconds), ..Default::default() };
        match docker.stop_container(id, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(self.fold(error)),
        }
    }

    /// Removes the container (killing it if it still runs); a missing container is not an error.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) => match self.fold(error) {
                EngineError::NotFound(_) => Ok(()),
                // 409: removal already in progress.
                EngineError::Refused(message) if message.contains("in progress") => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Every container (running or not) carrying all of `labels` (`key=value`).
    pub async fn list_labelled(&self, labels: &[String]) -> Result<Vec<LabelledContainer>, EngineError> {
        let docker = self.client().await?;
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let found = docker.list_containers(Some(options)).await.map_err(|error| self.fold(error))?;
        Ok(found
            .into_iter()
            .filter_map(|summary| {
                Some(LabelledContainer { id: summary.id?, labels: summary.labels.unwrap_or_default() })
            })
            .collect())
    }

    /// Forwards the container's output to the log, line by line, until it ends or the daemon goes away.
    pub async fn forward_logs(&self, id: &str, task_id: &str) {
        let Ok(docker) = self.client().await else { return };
        let options = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
        let mut stream = docker.logs(id, Some(options));
        while let Some(Ok(output)) = stream.next().await {
            let text = output.to_string();
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                let line: String = line.chars().take(8 * 1024).collect();
                tracing::info!(target: "fogflow::task", task = %task_id, "{line}");
            }
        }
    }
}

/// `name:tag` → (`name`, `tag`), `latest` when there is no tag (a `:` in a registry host is not a tag).
pub fn split_tag(image: &str) -> (&str, &str) {
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => (&image[..colon], &image[colon + 1..]),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_off_names() {
        assert_eq!(split_tag("fogflow/converter"), ("fogflow/converter", "latest"));
        assert_eq!(split_tag("fogflow/converter:1.2"), ("fogflow/converter", "1.2"));
        assert_eq!(split_tag("registry:5000/a/b"), ("registry:5000/a/b", "latest"));
        assert_eq!(split_tag("registry:5000/a/b:x"), ("registry:5000/a/b", "x"));
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_not_a_panic() {
        let engine = Engine::new("unix:///nonexistent/fogflow-test/docker.sock");
        assert_eq!(engine.socket(), "/nonexistent/fogflow-test/docker.sock");
        match engine.ping().await {
            Err(EngineError::Unreachable { socket, reason }) => {
                assert_eq!(socket, "/nonexistent/fogflow-test/docker.sock");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
