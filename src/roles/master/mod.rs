//! Master role: FogFlow's topology master. Turns service intents into task instances per `groupBy` and
//! geoscope, places them on the nearest live worker with room, and keeps workers in line with that desired
//! state — rescheduling the tasks of a lost worker and resuming after a restart without duplicating any.
//!
//! Owns: `<data_dir>/master` (intents in force with their topologies, task assignments, the fencing epoch), the
//! `Master.<site_id>` bus queue, availability subscriptions at discovery. Talks to: the bus (workers, designer),
//! discovery (availability), brokers (entity metadata), the designer (`GET /topology/<name>`). Listens on
//! `master.ngsi_agent_port` (1060) and `master.rest_api_port` (8010), both serving the same routes.
//! Never imports another role.

pub mod api;
pub mod deploy;
pub mod flow;
pub mod orchestrator;
pub mod records;
pub mod scheduler;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::api::ApiState;
use self::orchestrator::{Input, Links, Orchestrator, Snapshot};
use self::records::MasterStore;
use super::{RoleContext, RoleError, MASTER_REST_LISTENER};
use crate::bus::envelope::keys;
use crate::bus::{MessageType, QueueSpec};
use crate::clients::broker::BrokerClient;
use crate::clients::discovery::DiscoveryClient;
use crate::clients::http_client::HttpClient;
use crate::http::{serve, Readiness, ServerLimits};
use crate::model::{GeoPoint, MasterProfile};
use crate::role::Role;
use crate::store::{Store, StoreOptions};

/// Inputs waiting for the orchestrator (availability notifications beyond it get 503).
const INPUT_QUEUE: usize = 4096;

/// Runs the master until `shutdown` fires.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let config = ctx.config.clone();
    let bus = ctx.bus(Role::Master)?;
    let readiness = Readiness::new("opening the store");
    readiness.require(crate::bus::readiness_check(&bus));
    let id = config.master_id();
    let store_dir = config.data_dir.join("master");
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, StoreOptions::default()))
        .await
        .map_err(|error| RoleError::Other(format!("store open task failed: {error}")))??;
    let store = MasterStore::open(store)?;
    let epoch = store.next_epoch().await?;
    let http = HttpClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let links = Links {
        bus: bus.clone(),
        discovery: DiscoveryClient::new(config.discovery_url(), http.clone()),
        brokers: BrokerClient::new(http.clone()),
        http,
    };
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let mut orchestrator = Orchestrator::load(id.clone(), epoch, config.clone(), links, store, snapshot.clone())?;
    let (inputs, mut queue) = mpsc::channel(INPUT_QUEUE);
    let profile = MasterProfile {
        id: id.clone(),
        location: GeoPoint {
            latitude: config.physical_location.latitude,
            longitude: config.physical_location.longitude,
        },
        agent: config.master_agent_url(),
    };
    let state = ApiState { inputs: inputs.clone(), snapshot, profile };
    let router = api::router(state, readiness.clone(), ctx.metrics.clone());
    let mut servers = tokio::task::JoinSet::new();
    if let Some(rest) = ctx.take_listener(MASTER_REST_LISTENER) {
        servers.spawn(serve(rest, router.clone(), shutdown.clone(), ServerLimits::default()));
    }
    servers.spawn(serve(listener, router, shutdown.clone(), ServerLimits::default()));

    let queue_spec = QueueSpec::new(
        id.clone(),
        [keys::direct(&id), "heartbeat.*".into(), keys::TASK.into(), "orchestration.*".into()],
    );
    let mut consumer =
        bus.consume(queue_spec).await.map_err(|error| RoleError::Other(format!("master bus queue: {error}")))?;
    let forward = inputs.clone();
    let stop_consuming = CancellationToken::new();
    let consuming = stop_consuming.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = consuming.cancelled() => break,
                delivery = consumer.next() => match delivery {
                    Some(delivery) => if forward.send(Input::Bus(delivery)).await.is_err() { break },
                    None => break,
                },
            }
        }
    });
    drop(inputs);

    tracing::info!(%id, epoch, "master starting");
    orchestrator.resume().await;
    orchestrator.announce(MessageType::MasterJoin).await;
    readiness.set_ready();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            input = queue.recv() => match input {
                Some(input) => orchestrator.handle(input).await,
                None => break,
            },
            _ = ticker.tick() => orchestrator.tick().await,
        }
    }
    readiness.set_not_ready("shutting down");
    stop_consuming.cancel();
    let _ = forwarder.await;
    queue.close();
    // Deliveries still queued go back to the bus unacknowledged (dropped → requeued).
    while queue.try_recv().is_ok() {}
    orchestrator.announce(MessageType::MasterLeave).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), orchestrator.unsubscribe_all()).await;
    while servers.join_next().await.is_some() {}
    tracing::info!("master stopped");
    Ok(())
}
