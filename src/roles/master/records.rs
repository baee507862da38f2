//! What the master keeps in its store (`<data_dir>/master`): the intents in force with the topology and
//! operators fetched for them, the availability subscriptions made for them (to cancel after a restart), the
//! task assignments (the desired state the workers are reconciled against), and the fencing epoch.

use serde::{Deserialize, Serialize};

use crate::model::{Operator, ScheduledTaskInstance, ServiceIntent, Topology};
use crate::store::{Store, StoreError, Tree};

/// An intent in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// The intent (without action).
    pub intent: ServiceIntent,
    /// Its topology as the designer gave it.
    pub topology: Topology,
    /// The operators its tasks use.
    pub operators: Vec<Operator>,
    /// Availability subscription ids made at discovery for it.
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

/// A task instance the master wants to run, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The instance as last sent (or to send) in `ADD_TASK`.
    pub instance: ScheduledTaskInstance,
    /// The flow (`<intent id>/<task name>`) that wants it.
    pub flow: String,
    /// The worker it is placed on, if any.
    #[serde(default)]
    pub worker: Option<String>,
    /// Last status a worker reported.
    #[serde(default)]
    pub reported: String,
    /// Why it is not running, when known.
    #[serde(default)]
    pub reason: String,
}

/// The master's trees.
#[derive(Clone)]
pub struct MasterStore {
    /// The store (for commits).
    pub store: Store,
    /// Intents by id.
    pub intents: Tree<IntentRecord>,
    /// Tasks by id.
    pub tasks: Tree<TaskRecord>,
    meta: Tree<u64>,
}

impl MasterStore {
    /// Opens the trees.
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(MasterStore {
            intents: store.tree("intents")?,
            tasks: store.tree("tasks")?,
            meta: store.tree("meta")?,
            store,
        })
    }

    /// The stored epoch (0 before the first activation).
    pub fn epoch(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get("epoch")?.unwrap_or(0))
    }

    /// Stores `epoch` (durably).
    pub async fn set_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        self.meta.insert("epoch", &epoch)?;
        self.store.commit().await
    }
}
