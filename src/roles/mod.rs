//! The composition root: checks the requested roles, binds every listener before any role starts, runs each
//! role on its own task with a child shutdown token, and drains them within the grace period. The only place
//! that matches on [`Role`] to start one.

pub mod broker;
pub mod designer;
pub mod discovery;
pub mod master;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bus::amqp::{AmqpBus, AmqpOptions};
use crate::bus::memory::MemoryBus;
use crate::bus::{Bus, BusError, Consumer, QueueSpec};
use crate::config::{BusKind, Config};
use crate::http::Metrics;
use crate::role::{Role, RoleSet};
use crate::store::StoreError;

/// What every role gets from the process.
#[derive(Debug, Clone)]
pub struct RoleContext {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The process's metrics registry.
    pub metrics: Arc<Metrics>,
    /// The control bus, for the roles that use it (master, worker, designer).
    pub bus: Option<Arc<dyn Bus>>,
    /// Listeners beyond a role's main one, bound before any role started (e.g. the master's REST port).
    extra_listeners: Arc<Mutex<HashMap<&'static str, TcpListener>>>,
}

impl RoleContext {
    /// A context without a bus or extra listeners.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        RoleContext { config, metrics, bus: None, extra_listeners: Arc::default() }
    }

    /// Takes the extra listener bound under `name` (once).
    pub fn take_listener(&self, name: &str) -> Option<TcpListener> {
        self.extra_listeners.lock().unwrap_or_else(|p| p.into_inner()).remove(name)
    }

    /// The bus, or an error naming the role that needs it.
    pub fn bus(&self, role: Role) -> Result<Arc<dyn Bus>, RoleError> {
        self.bus.clone().ok_or_else(|| RoleError::Other(format!("the {role} role needs the control bus")))
    }
}

impl std::fmt::Debug for dyn Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bus({})", self.kind())
    }
}

/// How long a process-owned queue may stay taken by another consumer before the process gives up: covers a
/// predecessor killed a moment ago whose connection RabbitMQ has not closed yet.
const ID_TAKEN_WAIT: Duration = Duration::from_secs(5);

/// Starts consuming the queue named after this process's id (`what`, e.g. `worker`, identifies the role),
/// once the bus is connected. `Ok(None)` when `shutdown` fired first. A queue that another process keeps
/// consuming (the same id twice, FogFlow's `Worker.<site_id>` collision) is refused with an error that says
/// what to change (`hint`), never shared silently.
pub(crate) async fn consume_own_queue(
    bus: &dyn Bus,
    spec: QueueSpec,
    what: &str,
    hint: &str,
    shutdown: &CancellationToken,
) -> Result<Option<Consumer>, RoleError> {
    let mut backoff = Duration::from_millis(100);
    let mut taken_since: Option<tokio::time::Instant> = None;
    loop {
        if bus.is_connected() {
            match bus.consume(spec.clone()).await {
                Ok(consumer) => return Ok(Some(consumer)),
                Err(BusError::Busy(queue)) => {
                    let since = *taken_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= ID_TAKEN_WAIT {
                        return Err(RoleError::DuplicateId(format!(
                            "another {what} with id `{}` is running (its bus queue `{queue}` has a consumer                              in another process); every {what} needs a unique id: {hint}",
                            spec.name
                        )));
                    }
                    tracing::info!(%queue, "the queue of this {what}'s id has a consumer; waiting for it to go");
                    backoff = Duration::from_millis(250);
                }
                Err(error) => {
                    taken_since = None;
                    tracing::warn!(%error, ?backoff, "cannot consume the {what}'s queue; retrying");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(2)),
        }
    }
}

/// Name of the master's REST listener in [`RoleContext::take_listener`].
pub const MASTER_REST_LISTENER: &str = "master-rest";

/// Why a role stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Its store could not be opened or used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process runs with this role's id.
    #[error("{0}")]
    DuplicateId(String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The in-process bus was asked for, but master, worker and designer do not all run in this process.
    #[error(
        "the in-process bus (bus = memory) only connects roles of one process: run master, worker and designer \
         together (e.g. `fogflow --role all`), or use RabbitMQ (bus = auto or rabbitmq); requested: {0}"
    )]
    BusUnavailable(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for the {role} role: {source}")]
    Bind {
        /// The role.
        role: Role,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A role failed.
    #[error("{role} role failed: {source}")]
    RoleFailed {
        /// The role.
        role: Role,
        /// Why.
        source: RoleError,
    },
    /// Roles did not finish within the grace period.
    #[error("shutdown did not complete within {0:?}; exiting anyway")]
    DrainTimeout(Duration),
    /// The process could not start.
    #[error("{0}")]
    Startup(String),
}

impl RunError {
    /// Whether this is a usage error (exit code 64) rather than a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::BusUnavailable(_))
    }
}

/// The address a role listens on.
fn listen_addr(config: &Config, role: Role) -> SocketAddr {
    let port = match role {
        Role::Broker => config.broker.http_port,
        Role::Discovery => config.discovery.http_port,
        Role::Designer => config.designer.web_srv_port,
        Role::Master => config.master.ngsi_agent_port,
        Role::Worker => config.worker.http_port,
    };
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// The bus this process needs: `None` without master, worker or designer; the in-process bus when
/// `bus = memory`, or `auto` with all three here; RabbitMQ otherwise. `memory` with the three apart is a usage
/// error.
fn choose_bus(config: &Config, roles: &RoleSet) -> Result<Option<BusKind>, RunError> {
    let control_plane = [Role::Master, Role::Worker, Role::Designer];
    let wanted: Vec<Role> = control_plane.iter().copied().filter(|role| roles.contains(*role)).collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let together = wanted.len() == control_plane.len();
    match config.bus {
        BusKind::Memory if !together => {
            let names: Vec<&str> = wanted.iter().map(|role| role.as_str()).collect();
            Err(RunError::BusUnavailable(names.join(", ")))
        }
        BusKind::Memory => Ok(Some(BusKind::Memory)),
        BusKind::Auto if together => Ok(Some(BusKind::Memory)),
        BusKind::Auto | BusKind::Rabbitmq => Ok(Some(BusKind::Rabbitmq)),
    }
}

/// Runs `roles` until `shutdown` fires or one fails.
pub async fn run(config: Arc<Config>, roles: RoleSet, shutdown: CancellationToken) -> Result<(), RunError> {
    let bus_choice = choose_bus(&config, &roles)?;
    crate::clients::tls::install(config.tls.ca_file.as_deref())
        .map_err(|error| RunError::Startup(error.to_string()))?;
    let mut listeners = Vec::new();
    let mut extra_listeners = HashMap::new();
    if roles.contains(Role::Master) && config.master.rest_api_port != config.master.ngsi_agent_port {
        let addr = SocketAddr::from(([0, 0, 0, 0], config.master.rest_api_port));
        let listener =
            TcpListener::bind(addr).await.map_err(|source| RunError::Bind { role: Role::Master, addr, source })?;
        tracing::info!(role = %Role::Master, addr = %listener.local_addr().unwrap_or(addr), "listening (REST)");
        extra_listeners.insert(MASTER_REST_LISTENER, listener);
    }
    for role in roles.iter() {
        let addr = listen_addr(&config, role);
        let listener = TcpListener::bind(addr).await.map_err(|source| RunError::Bind { role, addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%role, addr = %bound, "listening");
        listeners.push((role, listener));
    }
    tracing::info!(roles = %roles, version = crate::http::common::VERSION, commit = crate::http::common::GIT_COMMIT, "starting");
    let mut rabbitmq = None;
    let bus: Option<Arc<dyn Bus>> = match bus_choice {
        None => None,
        Some(BusKind::Memory) => Some(Arc::new(MemoryBus::new())),
        Some(_) => {
            // The name RabbitMQ shows for the connection: the roles and the process, to tell replicas apart.
            let name = format!("fogflow {roles} pid {}", std::process::id());
            let amqp = AmqpBus::start(AmqpOptions::from_config(&config, name));
            rabbitmq = Some(amqp.clone());
            Some(Arc::new(amqp))
        }
    };
    let context = RoleContext {
        config: config.clone(),
        metrics: Metrics::new(),
        bus,
        extra_listeners: Arc::new(Mutex::new(extra_listeners)),
    };
    // Each role has its own token so that roles can be stopped in reverse start order: the roles that use
    // discovery (brokers unregister on the way out) stop before discovery does.
    let mut running = JoinSet::new();
    let mut stop_order = Vec::new();
    for (role, listener) in listeners {
        let token = CancellationToken::new();
        stop_order.push((role, token.clone()));
        let context = context.clone();
        running.spawn(async move { (role, start(role, context, listener, token).await) });
    }
    stop_order.reverse();
    let mut first_error = None;
    let mut stopped = Vec::new();
    tokio::select! {
        () = shutdown.cancelled() => {}
        Some(finished) = running.join_next() => {
            if let Ok((role, _)) = &finished {
                stopped.push(*role);
            }
            first_error = Some(role_outcome(finished));
            shutdown.cancel();
        }
    }
    let grace = config.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        for (role, token) in &stop_order {
            token.cancel();
            while !stopped.contains(role) {
                let Some(finished) = running.join_next().await else { break };
                if let Ok((done, _)) = &finished {
                    stopped.push(*done);
                }
                let outcome = role_outcome(finished);
                if first_error.is_none() || matches!(first_error, Some(Ok(()))) {
                    first_error = Some(outcome);
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        running.abort_all();
        return Err(RunError::DrainTimeout(grace));
    }
    if let Some(rabbitmq) = rabbitmq {
        rabbitmq.close().await;
    }
    match first_error {
        Some(Err(error)) => Err(error),
        _ => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

async fn start(
    role: Role,
    context: RoleContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RoleError> {
    match role {
        Role::Broker => broker::run(context, listener, shutdown).await,
        Role::Discovery => discovery::run(context, listener, shutdown).await,
        Role::Designer => designer::run(context, listener, shutdown).await,
        Role::Master => master::run(context, listener, shutdown).await,
        Role::Worker => worker::run(context, listener, shutdown).await,
    }
}

fn role_outcome(finished: Result<(Role, Result<(), RoleError>), tokio::task::JoinError>) -> Result<(), RunError> {
    match finished {
        Ok((_, Ok(()))) => Ok(()),
        Ok((role, Err(source))) => {
            tracing::error!(%role, error = %source, "role failed");
            Err(RunError::RoleFailed { role, source })
        }
        Err(join_error) => Err(RunError::Startup(format!("a role task ended abnormally: {join_error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(bus: BusKind, roles: &[Role]) -> Result<Option<BusKind>, RunError> {
        choose_bus(&Config { bus, ..Config::default() }, &RoleSet::of(roles))
    }

    #[test]
    fn the_bus_follows_the_roles_of_this_process() {
        let all = Role::ALL;
        let core = [Role::Broker, Role::Discovery];
        assert!(matches!(choice(BusKind::Auto, &core), Ok(None)));
        assert!(matches!(choice(BusKind::Auto, &all), Ok(Some(BusKind::Memory))));
        assert!(matches!(choice(BusKind::Auto, &[Role::Master]), Ok(Some(BusKind::Rabbitmq))));
        assert!(matches!(choice(BusKind::Rabbitmq, &all), Ok(Some(BusKind::Rabbitmq))));
        assert!(matches!(choice(BusKind::Memory, &all), Ok(Some(BusKind::Memory))));
        let apart = choice(BusKind::Memory, &[Role::Worker, Role::Designer]);
        assert!(matches!(&apart, Err(error) if error.is_usage()), "{apart:?}");
    }
}
