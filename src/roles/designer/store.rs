//! The designer's persistent registry in `<data_dir>/designer`: operators, topologies, services, fog
//! functions, service intents, devices, persistent subscriptions, the outbox of intent announcements not yet
//! taken by the bus, and a `meta` tree (the built-in seeds' marker).
//!
//! Owns: the sled trees and the single-writer lock that makes a multi-record change (and its outbox entry)
//! atomic with respect to other writers. Must not: speak HTTP or the bus, or decide validation rules (the API
//! does, with `model/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use crate::model::{FogFunction, Operator, Service, ServiceIntent, Topology};
use crate::store::{Store, StoreError, Tree};

/// A persistent subscription made through the designer (`POST /subscription`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// The entity type forwarded.
    pub entity_type: String,
    /// `NGSIv1`, `NGSIv2` or `NGSI-LD`.
    #[serde(default)]
    pub destination_broker: String,
    /// Where notifications go.
    pub reference_url: String,
    /// NGSI-LD tenant.
    #[serde(default)]
    pub tenant: String,
}

/// One pending announcement in the outbox: its sequence number and the intent (with its action).
pub type OutboxEntry = (u64, ServiceIntent);

/// The designer's trees.
#[derive(Clone)]
pub struct DesignerStore {
    store: Store,
    /// Operators by name.
    pub operators: Tree<Operator>,
    /// Topologies by name (those of services and of fog functions).
    pub topologies: Tree<Topology>,
    /// Services (topology + board) by name.
    pub services: Tree<Service>,
    /// Fog functions by name.
    pub fogfunctions: Tree<FogFunction>,
    /// Service intents by id.
    pub intents: Tree<ServiceIntent>,
    /// Devices by entity id (the body as posted, plus `entityId`).
    pub devices: Tree<Value>,
    /// Persistent subscriptions by their id at the broker.
    pub subscriptions: Tree<SubscriptionRecord>,
    outbox: Tree<ServiceIntent>,
    meta: Tree<Value>,
    writer: std::sync::Arc<Mutex<()>>,
}

impl std::fmt::Debug for DesignerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesignerStore").finish_non_exhaustive()
    }
}

const SEEDED_KEY: &str = "seeded";

impl DesignerStore {
    /// Opens the trees of `store`.
    pub fn open(store: Store) -> Result<DesignerStore, StoreError> {
        Ok(DesignerStore {
            operators: store.tree("operators")?,
            topologies: store.tree("topologies")?,
            services: store.tree("services")?,
            fogfunctions: store.tree("fogfunctions")?,
            intents: store.tree("intents")?,
            devices: store.tree("devices")?,
            subscriptions: store.tree("subscriptions")?,
            outbox: store.tree("outbox")?,
            meta: store.tree("meta")?,
            writer: Default::default(),
            store,
        })
    }

    /// Takes the writer lock: hold it from the first read a change depends on until the change is committed
    /// and its announcements are handed to the announcer, so that changes and announcements keep one order.
    pub async fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Returns once every write made so far is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.store.commit().await
    }

    /// Flushes everything (shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.store.flush_blocking()
    }

    /// Whether the built-in seeds were written once already.
    pub fn seeded(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(SEEDED_KEY)?.is_some())
    }

    /// Records that the seeds were written (or that user data made them unnecessary).
    pub fn mark_seeded(&self) -> Result<(), StoreError> {
        self.meta.insert(SEEDED_KEY, &Value::Bool(true))
    }

    /// Whether no registry data is stored at all.
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
            && self.topologies.is_empty()
            && self.services.is_empty()
            && self.fogfunctions.is_empty()
            && self.intents.is_empty()
    }

    /// Every value of `tree` by key.
    pub fn all<V: Serialize + serde::de::DeserializeOwned>(tree: &Tree<V>) -> Result<BTreeMap<String, V>, StoreError> {
        tree.iter().collect()
    }

    /// Appends an announcement to the outbox (durable with the next commit); its sequence number.
    pub fn push_outbox(&self, intent: &ServiceIntent) -> Result<u64, StoreError> {
        let next = match self.outbox.iter().last() {
            Some(entry) => entry?.0.parse::<u64>().unwrap_or(0) + 1,
            None => 1,
        };
        self.outbox.insert(&outbox_key(next), intent)?;
        Ok(next)
    }

    /// Removes an announcement the bus has taken.
    pub fn pop_outbox(&self, sequence: u64) -> Result<(), StoreError> {
        self.outbox.remove(&outbox_key(sequence)).map(drop)
    }

    /// The pending announcements, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox.iter().map(|entry| entry.map(|(key, intent)| (key.parse::<u64>().unwrap_or(0), intent))).collect()
    }

    /// The first topology with a task running `operator`, if any.
    pub fn operator_user(&self, operator: &str) -> Result<Option<String>, StoreError> {
        for entry in self.topologies.iter() {
            let (name, topology) = entry?;
            if topology.tasks.iter().any(|task| task.operator == operator) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

/// Zero-padded so that key order is sequence order.
fn outbox_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IntentAction;

    fn intent(id: &str, action: IntentAction) -> ServiceIntent {
        let mut intent: ServiceIntent = serde_json::from_value(serde_json::json!({"id": id, "topology": "t"})).unwrap();
        intent.action = Some(action);
        intent
    }

    #[tokio::test]
    async fn outbox_keeps_order_across_pops() {
        let store = DesignerStore::open(Store::temporary().unwrap()).unwrap();
        let a = store.push_outbox(&intent("a", IntentAction::Add)).unwrap();
        let b = store.push_outbox(&intent("a", IntentAction::Delete)).unwrap();
        assert!(b > a);
        store.pop_outbox(a).unwrap();
        let c = store.push_outbox(&intent("b", IntentAction::Add)).unwrap();
        let pending = store.outbox().unwrap();
        assert_eq!(pending.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![b, c]);
        assert_eq!(pending[0].1.action, Some(IntentAction::Delete));
        store.commit().await.unwrap();
    }
}
