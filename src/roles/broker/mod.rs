//! Broker role: FogFlow's NGSI10 context broker on `broker.http_port` (default 8070), persistent and with
//! bounded, non-blocking notification delivery.
//!
//! Owns: the `<data_dir>/broker` store (entities, subscriptions, hosted `@context`s), one delivery task per subscription, the
//! registrar that keeps discovery informed, the subscription expiry sweeper, the NGSI-LD `@context` resolver
//! ([`contexts`]: preload, cache, allowlisted fetches). Talks to: subscribers (HTTP), discovery and other brokers
//! (HTTP, optional: registration and federation), allowlisted JSON-LD context hosts (HTTP, `context.allowlist`).
//! Never imports another role.

pub mod api;
pub mod contexts;
pub mod entities;
pub mod federation;
pub mod notifier;
pub mod registrar;
pub mod remote_subscriptions;
pub mod routes;
pub mod state;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::contexts::hosted::HostedContexts;
use self::contexts::ContextResolver;
use self::federation::{Federation, FederationHandle};
use self::notifier::{Notifier, NotifierMetrics};
use self::registrar::{BrokerIdentity, EntitySnapshot, Registrar};
use self::state::{BrokerState, StateGauges};
use super::{RoleContext, RoleError};
use crate::clients::discovery::DiscoveryClient;
use crate::clients::http_client::HttpClient;
use crate::config::Durability as ConfigDurability;
use crate::http::{serve, Readiness, ServerLimits};
use crate::store::{Durability, Store, StoreOptions};

/// Runs the broker until `shutdown` fires, then drains: readiness off, stop accepting, finish in-flight
/// requests, stop background tasks, flush the store.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let config = ctx.config.clone();
    let readiness = Readiness::new("opening the store");
    let store_dir = config.data_dir.join("broker");
    let options = StoreOptions {
        durability: match config.broker.durability {
            ConfigDurability::Group => Durability::Group,
            ConfigDurability::Flush => Durability::Flush,
        },
        group_commit_interval: Duration::from_millis(config.broker.group_commit_interval_ms),
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, options))
        .await
        .map_err(|error| RoleError::Other(format!("store open task failed: {error}")))??;

    let tasks = TaskTracker::new();
    let background = CancellationToken::new();
    let notifier = Notifier::new(
        &config.broker.notification,
        NotifierMetrics::register(&ctx.metrics),
        tasks.clone(),
        background.clone(),
    );
    let registrar = config.broker.use_discovery.then(Registrar::new);
    let gauges = StateGauges::default();
    ctx.metrics.register("broker_entities", "Entities held by this broker", gauges.entities.clone());
    ctx.metrics.register("broker_subscriptions", "Subscriptions held by this broker", gauges.subscriptions.clone());
    let mut contexts = ContextResolver::new(&config.context).map_err(|error| RoleError::Other(error.to_string()))?;
    if config.context.max_hosted > 0 {
        let hosted = HostedContexts::open(&store, config.context.max_hosted, config.context.max_bytes)?;
        contexts = contexts.with_hosted(Arc::new(hosted));
    }
    let state = BrokerState::open(
        store.clone(),
        notifier,
        registrar.clone(),
        readiness.clone(),
        config.broker.max_body_bytes,
        config.broker.max_query_results,
        config.broker_url(),
        Arc::new(contexts),
        gauges,
    )?;
    tasks.spawn(state.clone().expire_subscriptions(background.clone()));
    if let Some(registrar) = registrar {
        let identity = BrokerIdentity {
            id: config.broker_id(),
            url: config.broker_url(),
            latitude: config.physical_location.latitude,
            longitude: config.physical_location.longitude,
            heartbeat_interval: Duration::from_secs(config.broker.heartbeat_interval),
        };
        let client = DiscoveryClient::new(
            config.discovery_url(),
            HttpClient::new(Duration::from_secs(2), Duration::from_secs(5)),
        );
        let entities = state.entities.clone();
        let snapshot: EntitySnapshot =
            Arc::new(move || entities.list("").iter().map(|entity| entity.element.clone()).collect());
        tasks.spawn(registrar.run(client, identity, snapshot, background.clone()));
    }

    let federation = if config.broker.use_discovery {
        Some(Arc::new(Federation::new(config.discovery_url(), config.broker_url(), Duration::from_secs(2), &store)?))
    } else {
        None
    };
    readiness.set_ready();
    tracing::info!(broker = %config.broker_id(), url = %config.broker_url(), "broker ready");
    if let Some(federation) = federation.clone() {
        tasks.spawn(unlink_orphans(federation, state.clone(), background.clone()));
    }
    let router = routes::router(state.clone(), ctx.metrics.clone()).layer(Extension(FederationHandle(federation)));
    let server = serve(listener, router, shutdown.clone(), ServerLimits::default());
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => {}
        () = shutdown.cancelled() => {
            readiness.set_not_ready("shutting down");
            server.await;
        }
    }
    readiness.set_not_ready("shutting down");
    background.cancel();
    tasks.close();
    tasks.wait().await;
    let flushed = tokio::task::spawn_blocking(move || state.flush())
        .await
        .map_err(|error| RoleError::Other(format!("store flush task failed: {error}")))?;
    flushed?;
    tracing::info!("broker stopped");
    Ok(())
}

/// Every few seconds, unlinks the federation links of client subscriptions that no longer exist (expired).
async fn unlink_orphans(federation: Arc<Federation>, state: BrokerState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        federation.subscriptions.unlink_orphans(|tenant, id| state.subscription(tenant, id).is_some()).await;
    }
}
