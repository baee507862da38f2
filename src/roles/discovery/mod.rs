//! Discovery role: IoT Discovery, FogFlow's NGSI9 registry of which broker holds which entity, on
//! `discovery.http_port` (default 8090) — persistent, with broker leases and availability notifications.
//!
//! Owns: the `<data_dir>/discovery` store (registrations, availability subscriptions, epoch), broker leases
//! (in memory, on this process's clock), one notification task per availability subscription, the lease
//! expiry loop. Talks to: subscribers (brokers, the master) over HTTP. Never imports another role.

pub mod api;
pub mod availability;
pub mod brokers;
pub mod matching;
pub mod registry;
pub mod routes;
pub mod state;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::availability::{AvailabilityCounters, AvailabilityNotifier};
use self::state::{DiscoveryError, DiscoveryGauges, DiscoveryState};
use super::{RoleContext, RoleError};
use crate::clients::http_client::HttpClient;
use crate::http::{serve, Readiness, ServerLimits};
use crate::store::{Store, StoreOptions};

/// Runs discovery until `shutdown` fires, then drains: readiness off, stop accepting, finish in-flight
/// requests, stop notification tasks, flush the store.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let config = ctx.config.clone();
    let readiness = Readiness::new("opening the store");
    let store_dir = config.data_dir.join("discovery");
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, StoreOptions::default()))
        .await
        .map_err(|error| RoleError::Other(format!("store open task failed: {error}")))??;
    let tasks = TaskTracker::new();
    let background = CancellationToken::new();
    let http = HttpClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let counters = AvailabilityCounters::default();
    ctx.metrics.register("discovery_notifications_sent", "Availability notifications delivered", counters.sent.clone());
    ctx.metrics.register(
        "discovery_notifications_failed",
        "Availability notification attempts that failed",
        counters.failed.clone(),
    );
    let gauges = DiscoveryGauges::default();
    ctx.metrics.register("discovery_registrations", "Registrations held by discovery", gauges.registrations.clone());
    ctx.metrics.register("discovery_brokers", "Brokers with a live lease", gauges.brokers.clone());
    let notifier = AvailabilityNotifier::new(http, tasks.clone(), background.clone(), counters);
    let lease = Duration::from_secs(config.broker.heartbeat_interval * u64::from(config.discovery.lease_heartbeats));
    let state = DiscoveryState::open(store, notifier, lease, readiness.clone(), config.broker.max_body_bytes, gauges)
        .map_err(|error| match error {
        DiscoveryError::Store(error) => RoleError::Store(error),
        other => RoleError::Other(other.to_string()),
    })?;
    tasks.spawn(state.clone().expire_brokers(background.clone()));

    readiness.set_ready();
    tracing::info!(lease = ?lease, "discovery ready");
    serve(listener, routes::router(state.clone(), ctx.metrics.clone()), shutdown.clone(), ServerLimits::default())
        .await;
    readiness.set_not_ready("shutting down");
    background.cancel();
    tasks.close();
    tasks.wait().await;
    tokio::task::spawn_blocking(move || state.flush())
        .await
        .map_err(|error| RoleError::Other(format!("store flush task failed: {error}")))??;
    tracing::info!("discovery stopped");
    Ok(())
}
