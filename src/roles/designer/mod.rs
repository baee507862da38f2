//! Designer role: FogFlow's designer REST on `designer.webSrvPort` (default 8080) — the registry of
//! operators, docker images, topologies, services, fog functions, service intents, devices and persistent
//! subscriptions, system information, `config.js`, and pass-through proxies to the broker and discovery
//! (spec `master-worker-designer.md` §6).
//!
//! Owns: the `<data_dir>/designer` store (every write durable before its answer), the built-in seeds, the
//! announcer that publishes intents to the master on the bus (`orchestration.`), the task table fed by
//! `TASK_UPDATE`s on queue `fogflow-designer`, and the start-up restore of devices and subscriptions at the
//! broker. Talks to: the master over the bus and its REST API, the broker and discovery over HTTP. Never
//! imports another role.

pub mod announcer;
pub mod api;
pub mod error;
pub mod proxy;
pub mod restore;
pub mod routes;
pub mod seed;
pub mod state;
pub mod store;
pub mod tasks;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::announcer::Announcer;
use self::proxy::{base_of, Proxy};
use self::state::DesignerState;
use self::store::DesignerStore;
use self::tasks::TaskTable;
use super::{RoleContext, RoleError};
use crate::clients::http_client::HttpClient;
use crate::http::{serve, Readiness, ServerLimits};
use crate::role::Role;
use crate::store::{Store, StoreOptions};

/// Runs the designer until `shutdown` fires, then drains: readiness off, stop accepting, finish in-flight
/// requests, stop the background tasks, flush the store.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let config = ctx.config.clone();
    let bus = ctx.bus(Role::Designer)?;
    let readiness = Readiness::new("opening the store");
    readiness.require(crate::bus::readiness_check(&bus));
    let store_dir = config.data_dir.join("designer");
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, StoreOptions::default()))
        .await
        .map_err(|error| RoleError::Other(format!("store open task failed: {error}")))??;
    let store = DesignerStore::open(store)?;
    if seed::seed_if_new(&store)? {
        tracing::info!("built-in operators, topology and fog functions registered");
    }
    store.commit().await?;

    let tasks = TaskTracker::new();
    let background = CancellationToken::new();
    let http = HttpClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let (announcer, queue) = Announcer::new(store.clone());
    let replayed = announcer.queue_startup()?;
    tracing::info!(announcements = replayed, "re-announcing stored intents");
    let counters = announcer::AnnounceCounters::default();
    ctx.metrics.register("designer_intents_announced", "Intent announcements the bus took", counters.announced.clone());
    ctx.metrics.register(
        "designer_announce_retries",
        "Intent announcements the bus refused for now (retried)",
        counters.retries.clone(),
    );
    tasks.spawn(announcer::run(bus.clone(), store.clone(), queue, counters, background.clone()));
    let table = TaskTable::default();
    tasks.spawn(tasks::consume(bus, table.clone(), background.clone()));
    tasks.spawn(tasks::seed_from_master(http.clone(), config.master_rest_url(), table.clone(), background.clone()));
    tasks.spawn(restore::run(http.clone(), config.broker_url(), store.clone(), background.clone()));

    let state = DesignerState {
        store: store.clone(),
        announcer,
        tasks: table,
        http,
        proxy: Proxy::new(base_of(&config.broker_url()), base_of(&config.discovery_url())),
        config: config.clone(),
        readiness: readiness.clone(),
    };
    readiness.set_ready();
    tracing::info!("designer ready");
    serve(listener, routes::router(state, ctx.metrics.clone()), shutdown.clone(), ServerLimits::default()).await;
    readiness.set_not_ready("shutting down");
    background.cancel();
    tasks.close();
    tasks.wait().await;
    tokio::task::spawn_blocking(move || store.flush_blocking())
        .await
        .map_err(|error| RoleError::Other(format!("store flush task failed: {error}")))??;
    tracing::info!("designer stopped");
    Ok(())
}
