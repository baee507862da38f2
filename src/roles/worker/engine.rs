//! Which task runtime the worker uses (`worker.runtime`), and the watch on its health that drives the worker's
//! readiness and advertised capacity: a runtime that cannot launch (the Docker daemon is unreachable) makes the
//! worker not ready with the reason, and report capacity 0 so the master places nothing here, until it answers
//! again.
//!
//! Must not: launch or stop tasks (the executor does, through the runtime).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::runtime::docker::plan::Network;
use crate::runtime::docker::{default_socket, DockerRuntime};
use crate::runtime::process::ProcessRuntime;
use crate::runtime::TaskRuntime;

/// How often the runtime's health is probed.
pub const HEALTH_PERIOD: Duration = Duration::from_secs(2);

/// The runtime `worker.runtime` asks for. `auto`: `process` on the in-process bus (`--role all`, the laptop
/// mode that needs nothing installed), else `docker` when the socket answers now, else `process`.
pub async fn choose(config: &Config, worker_id: &str, bus_kind: &str, grace: Duration) -> Arc<dyn TaskRuntime> {
    let socket = default_socket(config.worker.docker_host.as_deref());
    let network = Network::parse(&config.worker.docker_network).unwrap_or(Network::Host);
    let docker = || DockerRuntime::new(&socket, worker_id, network, grace, config.worker.registry.as_ref());
    let process = || Arc::new(ProcessRuntime::new(config.worker.operators.clone(), grace));
    match config.worker.runtime.as_str() {
        "docker" => Arc::new(docker()),
        "process" => process(),
        _ if bus_kind == "memory" => {
            tracing::info!("worker.runtime auto: process (in-process bus, all roles in one process)");
            process()
        }
        _ => {
            let candidate = docker();
            match candidate.ping().await {
                Ok(()) => {
                    tracing::info!(%socket, "worker.runtime auto: docker (the Docker socket answers)");
                    Arc::new(candidate)
                }
                Err(reason) => {
                    tracing::info!(%reason, "worker.runtime auto: process (no Docker engine answers)");
                    process()
                }
            }
        }
    }
}

/// Probes `runtime` every `period` until `stop`, publishing each change of its health (the first probe's result
/// is the initial value).
pub async fn watch_health(
    runtime: Arc<dyn TaskRuntime>,
    period: Duration,
    stop: CancellationToken,
) -> watch::Receiver<Result<(), String>> {
    let first = runtime.health().await;
    if let Err(reason) = &first {
        tracing::warn!(runtime = runtime.kind(), %reason, "task runtime unavailable: not ready, capacity 0");
    }
    let (sender, receiver) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(period) => {}
            }
            let now = runtime.health().await;
            sender.send_if_modified(|held| {
                if *held == now {
                    return false;
                }
                match &now {
                    Ok(()) => tracing::info!(runtime = runtime.kind(), "task runtime available again"),
                    Err(reason) => {
                        tracing::warn!(runtime = runtime.kind(), %reason, "task runtime unavailable: not ready, capacity 0")
                    }
                }
                *held = now.clone();
                true
            });
        }
    });
    receiver
}
