//! Starting and tearing down one task instance (spec §4.4–§4.6): lease a port, build the admin configuration,
//! launch through the runtime, subscribe the inputs at the broker; and the reverse — stop the run, unsubscribe
//! every input, delete the configured outputs. These run outside the executor's state (a launch runs in a task
//! of its own) and report back what they did.
//!
//! Must not: touch the task table or publish on the bus (the executor does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inputs::TaskBroker;
use crate::model::admin::AdminCommand;
use crate::model::{InputEntity, OutputEntity, ScheduledTaskInstance};
use crate::runtime::{labels, LaunchSpec, Launched, PortAllocator, RuntimeError, TaskRuntime};

/// What a launch needs; cheap to clone.
#[derive(Clone)]
pub struct Launcher {
    /// The worker's id (a label of every run).
    pub worker_id: String,
    /// The runtime.
    pub runtime: Arc<dyn TaskRuntime>,
    /// The broker, on the tasks' behalf.
    pub broker: Arc<dyn TaskBroker>,
    /// Ports for tasks.
    pub ports: PortAllocator,
    /// `CONNECT_BROKER` (NGSI10 URL).
    pub broker_url: String,
    /// Host in `SET_REFERENCE` / refURL.
    pub host_ip: String,
    /// How long a launch waits for the operator to listen before subscribing its inputs
    /// ([`OPERATOR_LISTEN_WAIT`] in production).
    pub listen_wait: Duration,
}

/// A task that runs: its run, reference and input subscriptions.
#[derive(Debug, Clone)]
pub struct RunState {
    /// The runtime's run.
    pub launched: Launched,
    /// `http://<my_hostip>:<port>`.
    pub ref_url: String,
    /// Subscribed inputs with their subscription ids.
    pub subscriptions: Vec<(InputEntity, String)>,
    /// When it started.
    pub started: Instant,
}

/// Why a launch failed.
#[derive(Debug, Clone)]
pub struct LaunchFailure {
    /// What to report as `Reason`.
    pub reason: String,
    /// Whether a retry cannot help.
    pub permanent: bool,
}

impl From<RuntimeError> for LaunchFailure {
    fn from(error: RuntimeError) -> Self {
        LaunchFailure { permanent: error.is_permanent(), reason: error.to_string() }
    }
}

/// Whether two inputs are the same stream (FogFlow keys them by entity id; REMOVE_INPUT carries only the id).
pub fn same_input(a: &InputEntity, b: &InputEntity) -> bool {
    if a.id.is_empty() && b.id.is_empty() {
        a.r#type == b.r#type
    } else {
        a.id == b.id
    }
}

/// The admin configuration of a task (spec §4.4 step 3).
pub fn admin_commands(broker_url: &str, task: &ScheduledTaskInstance, ref_url: &str) -> Vec<AdminCommand> {
    let mut commands = vec![
        AdminCommand::ConnectBroker { broker_url: broker_url.to_string() },
        AdminCommand::SetCorrelatorId { correlator_id: task.id.clone() },
        AdminCommand::SetReference { url: ref_url.to_string() },
    ];
    commands.extend(
        task.outputs
            .iter()
            .map(|o| AdminCommand::SetOutputs { entity_type: o.r#type.clone(), id: o.stream_id.clone() }),
    );
    commands
}

/// How long a launch waits for the operator to accept connections before subscribing its inputs.
pub const OPERATOR_LISTEN_WAIT: Duration = Duration::from_secs(5);

/// Whether `host:port` accepts a TCP connection within `limit` (polled every 10 ms).
async fn wait_listening(host: &str, port: u16, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return false;
        }
        let attempt = tokio::time::timeout(remaining, tokio::net::TcpStream::connect((host, port))).await;
        if matches!(attempt, Ok(Ok(_))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Launcher {
    /// Launches `task` and subscribes its inputs; on a subscription failure the run is stopped again.
    pub async fn launch(&self, task: &ScheduledTaskInstance) -> Result<RunState, LaunchFailure> {
        let port = self.ports.lease()?;
        let port_number = port.port();
        let ref_url = format!("http://{}:{}", self.host_ip, port_number);
        let spec = LaunchSpec {
            task_id: task.id.clone(),
            image: task.docker_image.clone(),
            port,
            admin: admin_commands(&self.broker_url, task, &ref_url),
            parameters: task.parameters.clone(),
            labels: BTreeMap::from([
                (labels::TASK_ID.to_string(), task.id.clone()),
                (labels::WORKER_ID.to_string(), self.worker_id.clone()),
                (labels::EPOCH.to_string(), task.epoch.to_string()),
            ]),
        };
        let launched = self.runtime.launch(spec).await?;
        // Subscribing makes the broker notify at once; waiting (bounded) until the operator listens saves that
        // first notification a failed attempt and a retry. An operator that never listens is still subscribed:
        // the broker keeps retrying (`Require-Reliability`).
        if !wait_listening(&self.host_ip, port_number, self.listen_wait).await {
            tracing::debug!(task = %task.id, port = port_number, "operator not listening yet; subscribing anyway");
        }
        let mut state = RunState { launched, ref_url, subscriptions: Vec::new(), started: Instant::now() };
        for input in &task.inputs {
            if state.subscriptions.iter().any(|(held, _)| same_input(held, input)) {
                continue;
            }
            match self.broker.subscribe(&task.id, input, &state.ref_url).await {
                Ok(sid) => state.subscriptions.push((input.clone(), sid)),
                Err(error) => {
                    let reason = format!("cannot subscribe input {} ({}): {error}", input.id, input.r#type);
                    self.teardown(&task.id, Some(state), &[]).await;
                    return Err(LaunchFailure { reason, permanent: false });
                }
            }
        }
        Ok(state)
    }

    /// Stops the run (if any), unsubscribes its inputs and deletes `outputs` at the broker. Failures are logged:
    /// the task is gone either way.
    pub async fn teardown(&self, task_id: &str, run: Option<RunState>, outputs: &[OutputEntity]) {
        if let Some(run) = run {
            match self.runtime.stop(&run.launched.run_id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(error) => tracing::warn!(task = task_id, %error, "cannot stop the task's run"),
            }
            for (input, sid) in &run.subscriptions {
                if let Err(error) = self.broker.unsubscribe(sid).await {
                    tracing::warn!(task = task_id, input = %input.id, %error, "cannot unsubscribe a task input");
                }
            }
        }
        for output in outputs {
            if let Err(error) = self.broker.delete_entity(&output.r#type, &output.stream_id).await {
                tracing::warn!(task = task_id, output = %output.stream_id, %error, "cannot delete a task output");
            }
        }
    }
}
