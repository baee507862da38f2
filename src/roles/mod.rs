//! The composition root: checks the requested roles, binds every listener before any role starts, runs each
//! role on its own task with a child shutdown token, and drains them within the grace period. The only place
//! that matches on [`Role`] to start one.

pub mod broker;
pub mod discovery;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
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
}

/// Why a role stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Its store could not be opened or used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A requested role is not part of this release.
    #[error("not built yet in this release: {0} (available: broker, discovery); run e.g. `fogflow --role broker`")]
    NotBuilt(String),
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
        matches!(self, RunError::NotBuilt(_))
    }
}

/// The address a role listens on.
fn listen_addr(config: &Config, role: Role) -> Option<SocketAddr> {
    let port = match role {
        Role::Broker => config.broker.http_port,
        Role::Discovery => config.discovery.http_port,
        _ => return None,
    };
    Some(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// Runs `roles` until `shutdown` fires or one fails.
pub async fn run(config: Arc<Config>, roles: RoleSet, shutdown: CancellationToken) -> Result<(), RunError> {
    let missing: Vec<&str> =
        roles.iter().filter(|role| listen_addr(&config, *role).is_none()).map(Role::as_str).collect();
    if !missing.is_empty() {
        return Err(RunError::NotBuilt(missing.join(", ")));
    }
    let mut listeners = Vec::new();
    for role in roles.iter() {
        let Some(addr) = listen_addr(&config, role) else { continue };
        let listener = TcpListener::bind(addr).await.map_err(|source| RunError::Bind { role, addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%role, addr = %bound, "listening");
        listeners.push((role, listener));
    }
    tracing::info!(roles = %roles, version = crate::http::common::VERSION, commit = crate::http::common::GIT_COMMIT, "starting");
    let context = RoleContext { config: config.clone(), metrics: Metrics::new() };
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
        other => Err(RoleError::Other(format!("role {other} is not built yet"))),
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
