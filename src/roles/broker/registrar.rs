//! Keeps IoT Discovery informed, in the background, as FogFlow's broker does (spec §5.1–§5.2): registers the
//! broker itself (an `IoTBroker` entity with its location), heartbeats, registers every entity whose
//! registration changed (with its FULL attribute list, fixing FogFlow's partial lists, §12.3), removes deleted
//! entities, and unregisters the broker on shutdown. After each heartbeat it checks that discovery still knows
//! the broker; when it does not (discovery restarted and lost its state, §12.17, F12) it registers the broker
//! and every entity again, as it also does after discovery was unreachable. While discovery is down it retries
//! with capped backoff;
//! the latest pending registration per entity is kept (older ones are superseded), so memory stays bounded by
//! the number of entities. Local reads and writes never wait on any of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clients::discovery::{DiscoveryClient, DiscoveryError};
use crate::ngsi::v1::{ContextElement, ContextMetadata, EntityId};
use crate::ngsi::v9::{BrokerProfile, ContextRegistration, ContextRegistrationAttribute, RegisterContextRequest};

const REGISTRATION_LEASE: &str = "PT10M";
/// Most entity registrations sent in one `registerContext`.
const REGISTRATIONS_PER_REQUEST: usize = 100;

/// What discovery should learn about one entity.
#[derive(Debug, Clone)]
enum Pending {
    Register(ContextElement),
    Unregister,
}

/// Gives the current state of every entity to register (for a full re-registration).
pub type EntitySnapshot = Arc<dyn Fn() -> Vec<ContextElement> + Send + Sync>;

/// The registrar's inbox; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registrar {
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    wake: Arc<Notify>,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar::new()
    }
}

/// Who this broker is.
#[derive(Debug, Clone)]
pub struct BrokerIdentity {
    /// Broker id, e.g. `Broker.001`.
    pub id: String,
    /// Its NGSI10 URL.
    pub url: String,
    /// Its location.
    pub latitude: f64,
    /// Its location.
    pub longitude: f64,
    /// Seconds between heartbeats.
    pub heartbeat_interval: Duration,
}

impl Registrar {
    /// An inbox whose loop is not running yet (see [`Registrar::run`]).
    pub fn new() -> Registrar {
        Registrar { pending: Arc::new(Mutex::new(HashMap::new())), wake: Arc::new(Notify::new()) }
    }

    /// Queues a (re-)registration of an entity in its current state.
    pub fn register(&self, element: &ContextElement) {
        self.queue(element.entity_id.id.clone(), Pending::Register(element.clone()));
    }

    /// Queues the removal of an entity's registration.
    pub fn unregister(&self, id: &str) {
        self.queue(id.to_string(), Pending::Unregister);
    }

    /// Registrations not yet accepted by discovery.
    pub fn backlog(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn queue(&self, id: String, item: Pending) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, item);
        self.wake.notify_one();
    }

    /// The background loop: registers the broker and every entity of `snapshot`, then follows the inbox and
    /// heartbeats until `shutdown` fires, and finally unregisters the broker.
    pub async fn run(
        self,
        client: DiscoveryClient,
        identity: BrokerIdentity,
        snapshot: EntitySnapshot,
        shutdown: CancellationToken,
    ) {
        let mut failures: u32 = 0;
        let mut sync = SyncState {
            epoch: None,
            broker_registered: false,
            full_sync_needed: true,
            next_heartbeat: tokio::time::Instant::now(),
        };
        loop {
            if sync.full_sync_needed {
                for element in snapshot() {
                    self.register(&element);
                }
                sync.full_sync_needed = false;
            }
            let round = self.round(&client, &identity, &mut sync).await;
            let wait = match round {
                Ok(()) => {
                    if failures > 0 {
                        // Discovery may have restarted while unreachable: register everything again.
                        tracing::info!(
                            discovery = client.base_url(),
                            "discovery reachable again; registering everything again"
                        );
                        sync.broker_registered = false;
                        sync.full_sync_needed = true;
                    }
                    failures = 0;
                    None
                }
                Err(error) => {
                    failures += 1;
                    // Never wait longer than a heartbeat interval, so a returning discovery is refilled within two.
                    let backoff = Duration::from_millis(250)
                        .saturating_mul(1 << failures.min(7))
                        .min(identity.heartbeat_interval);
                    let duplicate_id = matches!(error, DiscoveryError::Refused { status: 409, .. });
                    if duplicate_id && (failures == 1 || failures.is_power_of_two()) {
                        tracing::error!(broker = %identity.id, "discovery refuses this broker id: another live broker uses it; give each replica its own broker.instance (or broker.id)");
                    } else if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(discovery = client.base_url(), %error, failures, retry_in = ?backoff, "cannot reach discovery; serving locally and retrying");
                    }
                    Some(backoff)
                }
            };
            let sleep_until = match wait {
                Some(backoff) => tokio::time::Instant::now() + backoff,
                None if !sync.broker_registered || sync.full_sync_needed => tokio::time::Instant::now(),
                None => sync.next_heartbeat,
            };
            tokio::select! {
                () = tokio::time::sleep_until(sleep_until) => {}
                () = self.wake.notified(), if wait.is_none() => {}
                () = shutdown.cancelled() => break,
            }
        }
        if sync.broker_registered {
            match tokio::time::timeout(Duration::from_secs(2), client.delete_registration(&identity.id)).await {
                Ok(Ok(())) => tracing::info!(broker = %identity.id, "unregistered from discovery"),
                Ok(Err(error)) => tracing::warn!(%error, "cannot unregister from discovery"),
                Err(_) => tracing::warn!("unregistering from discovery timed out"),
            }
        }
    }

    /// One round: register the broker if needed, heartbeat when due (and check discovery still knows the
    /// broker), then send every pending registration.
    async fn round(
        &self,
        client: &DiscoveryClient,
        identity: &BrokerIdentity,
        sync: &mut SyncState,
    ) -> Result<(), DiscoveryError> {
        if !sync.broker_registered {
            client.register_context(&broker_registration(identity)).await?;
            sync.broker_registered = true;
            tracing::info!(broker = %identity.id, discovery = client.base_url(), "registered with discovery");
        }
        if tokio::time::Instant::now() >= sync.next_heartbeat {
            let profile = BrokerProfile {
                id: identity.id.clone(),
                my_url: identity.url.clone(),
                last_heartbeat_update: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let epoch = client.heartbeat(&profile).await?;
            sync.next_heartbeat = tokio::time::Instant::now() + identity.heartbeat_interval;
            let forgotten = match epoch {
                // Our discovery reports an epoch that changes when it lost its state.
                Some(epoch) => sync.epoch.replace(epoch.clone()).is_some_and(|previous| previous != epoch),
                // FogFlow's does not: ask whether it still knows this broker.
                None => !client.is_registered(&identity.id).await?,
            };
            if forgotten {
                tracing::warn!(broker = %identity.id, "discovery no longer knows this broker (restarted?); registering everything again");
                sync.broker_registered = false;
                sync.full_sync_needed = true;
                return Ok(());
            }
        }
        loop {
            // Up to REGISTRATIONS_PER_REQUEST registrations travel in one registerContext; removals one by one.
            let batch: Vec<(String, Pending)> = {
                let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                match pending.iter().find(|(_, item)| matches!(item, Pending::Unregister)) {
                    Some((id, item)) => vec![(id.clone(), item.clone())],
                    None => pending
                        .iter()
                        .take(REGISTRATIONS_PER_REQUEST)
                        .map(|(id, item)| (id.clone(), item.clone()))
                        .collect(),
                }
            };
            if batch.is_empty() {
                return Ok(());
            }
            let elements: Vec<&ContextElement> = batch
                .iter()
                .filter_map(|(_, item)| match item {
                    Pending::Register(element) => Some(element),
                    Pending::Unregister => None,
                })
                .collect();
            if elements.is_empty() {
                client.delete_registration(&batch[0].0).await?;
            } else {
                client.register_context(&entity_registrations(&elements, &identity.url)).await?;
            }
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (id, sent) in batch {
                // Only forget an item if no newer one replaced it while it was being sent.
                let unchanged = match (pending.get(&id), &sent) {
                    (Some(Pending::Register(now)), Pending::Register(sent)) => now == sent,
                    (Some(Pending::Unregister), Pending::Unregister) => true,
                    _ => false,
                };
                if unchanged {
                    pending.remove(&id);
                }
            }
        }
    }
}

/// Where the loop stands with discovery.
struct SyncState {
    epoch: Option<String>,
    broker_registered: bool,
    full_sync_needed: bool,
    next_heartbeat: tokio::time::Instant,
}

fn broker_registration(identity: &BrokerIdentity) -> RegisterContextRequest {
    RegisterContextRequest {
        context_registrations: vec![ContextRegistration {
            entities: vec![EntityId { id: identity.id.clone(), entity_type: "IoTBroker".into(), is_pattern: false }],
            attributes: vec![],
            context_metadata: vec![ContextMetadata {
                name: "location".into(),
                metadata_type: "point".into(),
                value: json!({ "latitude": identity.latitude, "longitude": identity.longitude }),
            }],
            providing_application: identity.url.clone(),
        }],
        duration: REGISTRATION_LEASE.into(),
        registration_id: String::new(),
    }
}

/// One registerContext for several entities: one contextRegistration each, with its full attribute list.
fn entity_registrations(elements: &[&ContextElement], broker_url: &str) -> RegisterContextRequest {
    RegisterContextRequest {
        context_registrations: elements
            .iter()
            .map(|element| ContextRegistration {
                entities: vec![EntityId {
                    id: element.entity_id.id.clone(),
                    entity_type: element.entity_id.entity_type.clone(),
                    is_pattern: false,
                }],
                attributes: element
                    .attributes
                    .iter()
                    .map(|a| ContextRegistrationAttribute {
                        name: a.name.clone(),
                        attribute_type: a.attribute_type.clone(),
                        is_domain: false,
                    })
                    .collect(),
                context_metadata: element.domain_metadata.clone(),
                providing_application: broker_url.into(),
            })
            .collect(),
        duration: REGISTRATION_LEASE.into(),
        registration_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_registration_lists_every_attribute_and_the_broker_url() {
        let element: ContextElement = serde_json::from_value(json!({"entityId":{"id":"e","type":"T"},
            "attributes":[{"name":"a","type":"integer","value":1},{"name":"b","value":2}],
            "domainMetadata":[{"name":"location","type":"point","value":{"latitude":1.0,"longitude":2.0}}]}))
        .unwrap();
        let request = entity_registrations(&[&element], "http://h:8070/ngsi10");
        let body = serde_json::to_value(&request).unwrap();
        let registration = &body["contextRegistrations"][0];
        assert_eq!(registration["attributes"].as_array().unwrap().len(), 2);
        assert_eq!(registration["providingApplication"], "http://h:8070/ngsi10");
        assert_eq!(registration["contextMetadata"][0]["name"], "location");
        assert_eq!(body["duration"], "PT10M");
    }
}
