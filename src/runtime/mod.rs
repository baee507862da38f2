//! Task runtimes: how a worker runs a task instance's operator. The [`TaskRuntime`] trait is the narrow seam
//! the worker uses (launch, stop, list, exit events); [`process::ProcessRuntime`] runs each task as a child
//! process of the worker; [`docker::DockerRuntime`] runs each task as a container of the Docker engine.
//!
//! Owns: starting, stopping and reaping task processes, choosing their ports, and the launch contract's
//! environment (`myport`, `adminCfg`, parameters — spec §5.1). Must not: talk to the bus or the broker, or
//! decide what runs (the worker does). This is the only module that starts processes or containers, and
//! [`docker`] the only one that imports bollard.

pub mod docker;
pub mod process;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::model::admin::AdminCommand;
use crate::model::Parameter;

/// A boxed future (the trait is object safe so the worker holds an `Arc<dyn TaskRuntime>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Label keys every launched task carries (env vars for processes, labels for containers).
pub mod labels {
    /// The task id.
    pub const TASK_ID: &str = "FOGFLOW_TASK_ID";
    /// The worker that launched it.
    pub const WORKER_ID: &str = "FOGFLOW_WORKER_ID";
    /// The epoch of the command that placed it.
    pub const EPOCH: &str = "FOGFLOW_EPOCH";
}

/// Why a runtime operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The image cannot be run by this runtime (permanent: retrying does not help).
    #[error("no {runtime}-runtime operator for image {image}")]
    UnknownImage {
        /// The runtime.
        runtime: &'static str,
        /// The image, `name:tag`.
        image: String,
    },
    /// No free port for the task.
    #[error("no free port for the task: {0}")]
    NoPort(String),
    /// The operator could not be started.
    #[error("cannot start {command}: {reason}")]
    Spawn {
        /// What was started.
        command: String,
        /// Why it failed.
        reason: String,
    },
    /// No such run.
    #[error("no running task {0}")]
    NotFound(String),
    /// An operator parameter the runtime interprets (a resource limit, a port) is malformed.
    #[error("operator parameter {name}={value:?} is invalid: expected {expected}")]
    InvalidParameter {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The image is not on this node and could not be pulled (retried with backoff: it may be loaded later).
    #[error("image {image} is not available: {reason}")]
    ImageUnavailable {
        /// The image.
        image: String,
        /// Why it could not be pulled.
        reason: String,
    },
    /// The container engine does not answer (retried with backoff).
    #[error("{0}")]
    EngineUnavailable(String),
    /// The container engine refused the operation.
    #[error("the container engine refused to run the task: {0}")]
    EngineRefused(String),
}

impl RuntimeError {
    /// Whether retrying the launch later may succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, RuntimeError::UnknownImage { .. } | RuntimeError::InvalidParameter { .. })
    }
}

/// A port handed to a task as `myport`, held (bound) until the task is spawned so that two launches never get
/// the same port; dropping it returns the port to the allocator.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    listener: Option<TcpListener>,
    allocator: PortAllocator,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Releases the socket holding the port (just before the task binds it); the port stays leased.
    pub fn unbind(&mut self) {
        self.listener = None;
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.allocator.leased.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.port);
    }
}

/// Hands out free TCP ports for tasks: from `min` upward, or any port the OS gives when `min` is 0; ports
/// leased to live tasks are never handed out twice.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    min: u16,
    leased: Arc<Mutex<HashSet<u16>>>,
}

impl PortAllocator {
    /// An allocator starting at `min` (0: OS-chosen ports).
    pub fn new(min: u16) -> Self {
        PortAllocator { min, leased: Arc::default() }
    }

    /// Leases a free port (bound on 0.0.0.0 until [`PortLease::unbind`]).
    pub fn lease(&self) -> Result<PortLease, RuntimeError> {
        let mut leased = self.leased.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: Box<dyn Iterator<Item = u16>> =
            if self.min == 0 { Box::new(std::iter::repeat_n(0, 16)) } else { Box::new(self.min..=u16::MAX) };
        let mut last_error = String::from("port range exhausted");
        for candidate in candidates {
            if candidate != 0 && leased.contains(&candidate) {
                continue;
            }
            match TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, candidate))) {
                Ok(listener) => {
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(candidate);
                    if port == 0 || !leased.insert(port) {
                        continue;
                    }
                    return Ok(PortLease { port, listener: Some(listener), allocator: self.clone() });
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(RuntimeError::NoPort(last_error))
    }
}

/// What to launch.
#[derive(Debug)]
pub struct LaunchSpec {
    /// The task id.
    pub task_id: String,
    /// The image, `name:tag`.
    pub image: String,
    /// The port the operator listens on (`myport`).
    pub port: PortLease,
    /// The admin commands (`adminCfg`).
    pub admin: Vec<AdminCommand>,
    /// The operator's parameters (passed as env vars when their names are valid env var names).
    pub parameters: Vec<Parameter>,
    /// Labels (task id, worker id, epoch; see [`labels`]).
    pub labels: BTreeMap<String, String>,
}

impl LaunchSpec {
    /// The task's environment per FogFlow's launch contract: parameters first (so they cannot override the
    /// contract's variables), then `myport`, `adminCfg` and the labels.
    pub fn env(&self) -> Vec<(String, String)> {
        let reserved = |name: &str| {
            name == "myport" || name == "adminCfg" || self.labels.contains_key(name) || is_protected_env(name)
        };
        let mut env: Vec<(String, String)> = self
            .parameters
            .iter()
            .filter(|p| is_env_name(&p.name) && !reserved(&p.name))
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        env.push(("myport".into(), self.port.port().to_string()));
        env.push(("adminCfg".into(), serde_json::to_string(&self.admin).unwrap_or_else(|_| "[]".into())));
        env.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// Variables a parameter may not set: they change how the operator's program is found, loaded or run.
fn is_protected_env(name: &str) -> bool {
    const EXACT: [&str; 7] = ["PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV", "PYTHONPATH"];
    const PREFIXES: [&str; 4] = ["LD_", "DYLD_", "FOGFLOW_", "PYTHONSTARTUP"];
    EXACT.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Whether `name` is a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// A launched task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// The runtime's handle of this run (unique across restarts of the same task).
    pub run_id: String,
    /// What `TASK_INFO` reports as `containerID` (the pid for processes).
    pub container_id: String,
    /// The process id, when there is one.
    pub pid: Option<u32>,
    /// The port it listens on.
    pub port: u16,
}

/// A task the runtime runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    /// The task id.
    pub task_id: String,
    /// The run.
    pub run_id: String,
    /// The process id, when there is one.
    pub pid: Option<u32>,
}

/// A task's operator ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitEvent {
    /// The task id.
    pub task_id: String,
    /// The run that ended.
    pub run_id: String,
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Human-readable reason (`exited with code 1`, `killed by signal 9`).
    pub reason: String,
    /// Whether it ended because [`TaskRuntime::stop`] asked it to.
    pub requested: bool,
}

/// A runtime's exit events: every run sends its one [`ExitEvent`] on a clone of the sender; the worker takes the
/// receiver once ([`TaskRuntime::take_exit_events`]).
pub struct ExitChannel {
    sender: mpsc::UnboundedSender<ExitEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<ExitEvent>>>,
}

impl ExitChannel {
    /// A new channel.
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        ExitChannel { sender, receiver: Mutex::new(Some(receiver)) }
    }

    /// A sender for one run.
    pub fn sender(&self) -> mpsc::UnboundedSender<ExitEvent> {
        self.sender.clone()
    }

    /// The receiver, once.
    pub fn take(&self) -> Option<mpsc::UnboundedReceiver<ExitEvent>> {
        crate::sync::lock(&self.receiver).take()
    }
}

impl Default for ExitChannel {
    fn default() -> Self {
        ExitChannel::new()
    }
}

/// How the worker runs tasks.
pub trait TaskRuntime: Send + Sync + 'static {
    /// `process` or `docker`.
    fn kind(&self) -> &'static str;

    /// Starts a task; resolves once it is running (not necessarily listening yet).
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Launched, RuntimeError>>;

    /// Stops a run: SIGTERM, then SIGKILL after the grace; resolves once it is gone (and reaped).
    fn stop<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// What runs now.
    fn list(&self) -> BoxFuture<'_, Vec<RunningTask>>;

    /// The exit events (every run ends with exactly one); `None` after the first call.
    fn take_exit_events(&self) -> Option<mpsc::UnboundedReceiver<ExitEvent>>;

    /// Whether the runtime can launch tasks now (`Err` says why not, e.g. the Docker daemon is unreachable).
    fn health(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Fetches an image ahead of use (FogFlow's `PREFETCH_IMAGE`); runtimes without images do nothing.
    fn prefetch<'a>(&'a self, _image: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("window_seconds"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("service-port"));
        assert!(!is_env_name("1abc"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("a=b"));
    }

    #[test]
    fn launch_env_keeps_the_contract() {
        let allocator = PortAllocator::new(0);
        let port = allocator.lease().unwrap();
        let number = port.port();
        let spec = LaunchSpec {
            task_id: "T".into(),
            image: "fogflow/dummy:latest".into(),
            port,
            admin: vec![AdminCommand::SetCorrelatorId { correlator_id: "T".into() }],
            parameters: vec![
                Parameter { name: "threshold".into(), value: "40".into() },
                Parameter { name: "service-port".into(), value: "1".into() },
                Parameter { name: "myport".into(), value: "1".into() },
                Parameter { name: "LD_PRELOAD".into(), value: "/tmp/x.so".into() },
                Parameter { name: "PATH".into(), value: "/tmp".into() },
            ],
            labels: BTreeMap::from([(labels::TASK_ID.to_string(), "T".to_string())]),
        };
        let env = spec.env();
        assert!(env.contains(&("threshold".into(), "40".into())));
        assert!(env.contains(&("myport".into(), number.to_string())));
        assert!(env.contains(&(labels::TASK_ID.into(), "T".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "myport").count(), 1);
        assert!(!env.iter().any(|(k, _)| k == "service-port" || k == "LD_PRELOAD" || k == "PATH"));
        let admin = &env.iter().find(|(k, _)| k == "adminCfg").unwrap().1;
        assert_eq!(admin, r#"[{"command":"SET_CORRELATORID","correlatorID":"T"}]"#);
    }

    #[test]
    fn leased_ports_are_distinct_and_returned() {
        let allocator = PortAllocator::new(0);
        let a = allocator.lease().unwrap();
        let b = allocator.lease().unwrap();
        assert_ne!(a.port(), b.port());
        let port = a.port();
        drop(a);
        assert!(!allocator.leased.lock().unwrap().contains(&port));
        let ranged = PortAllocator::new(42_000);
        let first = ranged.lease().unwrap();
        let second = ranged.lease().unwrap();
        assert!(first.port() >= 42_000 && second.port() > first.port());
    }
}
