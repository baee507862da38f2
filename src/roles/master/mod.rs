//! Master role: FogFlow's topology master. Turns service intents into task instances per `groupBy` and
//! geoscope, places them on the nearest live worker with room, and keeps workers in line with that desired
//! state — rescheduling the tasks of a lost worker and resuming after a restart or a failover without
//! duplicating any. Several masters may run: one is active, the others standby ([`failover`]).
//!
//! Owns: `<data_dir>/master` (intents in force with their topologies, task assignments, the fencing epoch), the
//! `<MasterID>` bus queue (its id's lock) and a consumer of the shared `fogflow.master` queue, availability
//! subscriptions at discovery while active. Talks to: the bus (workers, designer), discovery (availability),
//! brokers (entity metadata), the designer (`GET /topology/<name>`, `/intent`, `/fogfunction`). Listens on
//! `master.ngsi_agent_port` (1060) and `master.rest_api_port` (8010), both serving the same routes.
//! Never imports another role.

pub mod api;
pub mod deploy;
pub mod failover;
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
use self::failover::{Activity, Event, Status, Takeover};
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

/// Runs the master until `shutdown` fires: standby until the shared queue elects it, then active until it
/// loses that queue (standby again) or stops.
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
    let http = HttpClient::new(Duration::from_secs(2), Duration::from_secs(5));
    let links = Links {
        bus: bus.clone(),
        discovery: DiscoveryClient::new(config.discovery_url(), http.clone()),
        brokers: BrokerClient::new(http.clone()),
        http,
    };
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let status = Arc::new(RwLock::new(Status::default()));
    let (inputs, mut queue) = mpsc::channel(INPUT_QUEUE);
    let profile = MasterProfile {
        id: id.clone(),
        location: GeoPoint {
            latitude: config.physical_location.latitude,
            longitude: config.physical_location.longitude,
        },
        agent: config.master_agent_url(),
        epoch: 0,
    };
    let state = ApiState { inputs: inputs.clone(), snapshot: snapshot.clone(), profile, status: status.clone() };
    drop(inputs);
    let router = api::router(state, readiness.clone(), ctx.metrics.clone());
    let mut servers = tokio::task::JoinSet::new();
    if let Some(rest) = ctx.take_listener(MASTER_REST_LISTENER) {
        servers.spawn(serve(rest, router.clone(), shutdown.clone(), ServerLimits::default()));
    }
    servers.spawn(serve(listener, router, shutdown.clone(), ServerLimits::default()));

    readiness.set_not_ready("waiting for the control bus");
    let hint = "set master.id (FOGFLOW__MASTER__ID), or a distinct site_id, for each master";
    let own = QueueSpec::new(id.clone(), [keys::direct(&id)]);
    let own = match super::consume_own_queue(&*bus, own, "master", hint, &shutdown).await {
        Ok(Some(consumer)) => consumer,
        Ok(None) => {
            while servers.join_next().await.is_some() {}
            return Ok(());
        }
        Err(error) => {
            tracing::error!(%id, %error, "master refused to start");
            return Err(error);
        }
    };
    let stop = CancellationToken::new();
    let (events_sender, mut events) = mpsc::channel(16);
    let helpers = [
        tokio::spawn(failover::hold_own(own, stop.clone())),
        tokio::spawn(failover::follow_shared(bus.clone(), events_sender, stop.clone())),
        tokio::spawn(failover::probe(bus.clone(), id.clone(), stop.clone())),
    ];
    readiness.set_ready();
    tracing::info!(%id, "master standing by until the shared queue elects it");

    let master = Activation { id, config, links, store, snapshot, status };
    let mut active: Option<Orchestrator> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.recv() => match (event, active.as_mut()) {
                (Some(Event::Delivery(delivery)), Some(orchestrator)) => orchestrator.handle(Input::Bus(delivery)).await,
                (Some(Event::Delivery(delivery)), None) => {
                    active = master.activate(delivery, &mut events, &shutdown).await?;
                }
                (Some(Event::Lost), _) => {
                    if active.take().is_some() {
                        tracing::warn!("lost the masters' queue: no longer the active master; standing by");
                    }
                    master.stand_by();
                }
                (None, _) => break,
            },
            input = queue.recv() => match (input, active.as_mut()) {
                (Some(input), Some(orchestrator)) => orchestrator.handle(input).await,
                (Some(_), None) => {}
                (None, _) => break,
            },
            _ = ticker.tick() => if let Some(orchestrator) = active.as_mut() { orchestrator.tick().await },
        }
    }
    readiness.set_not_ready("shutting down");
    stop.cancel();
    for helper in helpers {
        let _ = helper.await;
    }
    // Deliveries still queued go back to the bus unacknowledged (dropped → requeued).
    events.close();
    while events.try_recv().is_ok() {}
    queue.close();
    while queue.try_recv().is_ok() {}
    if let Some(mut orchestrator) = active {
        orchestrator.announce(MessageType::MasterLeave).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), orchestrator.unsubscribe_all()).await;
    }
    while servers.join_next().await.is_some() {}
    tracing::info!("master stopped");
    Ok(())
}

/// What an activation needs.
struct Activation {
    id: String,
    config: Arc<crate::config::Config>,
    links: Links,
    store: MasterStore,
    snapshot: Arc<RwLock<Snapshot>>,
    status: Arc<RwLock<Status>>,
}

impl Activation {
    fn set_status(&self, activity: Activity, epoch: u64) {
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = Status { activity, epoch };
    }

    fn stand_by(&self) {
        self.set_status(Activity::Standby, 0);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Snapshot::default();
    }

    /// Elected by `first`: collects worker reports for one heartbeat interval (plus a second), picks the
    /// epoch, rebuilds and returns the active orchestrator; `None` when the election was lost meanwhile or
    /// the master is stopping.
    async fn activate(
        &self,
        first: crate::bus::Delivery,
        events: &mut mpsc::Receiver<Event>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Orchestrator>, RoleError> {
        tracing::info!(id = %self.id, "elected by the masters' queue; collecting worker reports before acting");
        self.set_status(Activity::Activating, 0);
        let mut takeover = Takeover::default();
        takeover.take(first);
        // On the in-process bus no other master can have been active and the workers started with this process
        // (holding nothing, having seen no epoch): nothing to wait for.
        let wait = if self.links.bus.kind() == "memory" {
            Duration::ZERO
        } else {
            Duration::from_secs(self.config.worker.heartbeat_interval) + Duration::from_secs(1)
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep_until(deadline) => break,
                event = events.recv() => match event {
                    Some(Event::Delivery(delivery)) => takeover.take(delivery),
                    Some(Event::Lost) | None => {
                        tracing::warn!("lost the masters' queue while activating; standing by");
                        self.stand_by();
                        return Ok(None);
                    }
                },
            }
        }
        let epoch = takeover.epoch(self.store.epoch()?);
        self.store.set_epoch(epoch).await?;
        let mut orchestrator = Orchestrator::load(
            self.id.clone(),
            epoch,
            self.config.clone(),
            self.links.clone(),
            self.store.clone(),
            self.snapshot.clone(),
        )?;
        let designer = match failover::designer_intents(&self.links.http, &self.config.designer_url()).await {
            Ok(intents) => Some(intents),
            Err(error) => {
                tracing::warn!(%error, "designer unreachable at takeover: keeping the stored intents");
                None
            }
        };
        let workers = takeover.heartbeats.len();
        orchestrator.take_over(takeover, designer).await;
        self.set_status(Activity::Active, epoch);
        tracing::info!(id = %self.id, epoch, workers, "active master");
        Ok(Some(orchestrator))
    }
}
