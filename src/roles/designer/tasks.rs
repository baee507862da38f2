//! The task table behind `/info/task`: FogFlow's designer `taskMap`, keyed by task id and fed by the
//! `TASK_UPDATE`s on queue `fogflow-designer` (bindings `designer.*`, `task.`), seeded at start from the
//! master's `GET /tasks` (retried until the master answers).
//!
//! Owns: the in-memory table, its bus consumer and the seeding task. Must not: keep it in the store (the
//! workers and the master are its source of truth) or send anything on the bus.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::announcer::next_delay;
use crate::bus::{Bus, Delivery, MessageType, QueueSpec};
use crate::clients::http_client::HttpClient;
use crate::model::{TaskStatus, TaskUpdate};

/// The designer's queue.
pub const QUEUE: &str = "fogflow-designer";

/// One row of `/info/task`, FogFlow's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The task id (FogFlow's table repeats it as `ID`).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// The task id.
    #[serde(rename = "TaskID", default)]
    pub task_id: String,
    /// Topology.
    #[serde(rename = "TopologyName", default)]
    pub topology_name: String,
    /// Task of the topology.
    #[serde(rename = "TaskName", default)]
    pub task_name: String,
    /// The intent.
    #[serde(rename = "ServiceIntentID", default)]
    pub service_intent_id: String,
    /// Status text.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// The worker that reported it.
    #[serde(rename = "Worker", default)]
    pub worker: String,
}

#[derive(Debug, Default)]
struct Inner {
    rows: BTreeMap<String, TaskRow>,
    /// Tasks reported removed before the master's list arrived (so the seed does not bring them back).
    removed_before_seed: BTreeSet<String>,
    seeded: bool,
}

/// The table. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TaskTable {
    inner: Arc<RwLock<Inner>>,
}

impl TaskTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one `TASK_UPDATE` sent by `worker`.
    pub fn apply(&self, update: &TaskUpdate, worker: &str) {
        let mut inner = self.write();
        if update.status == TaskStatus::Removed {
            inner.rows.remove(&update.task_id);
            if !inner.seeded {
                inner.removed_before_seed.insert(update.task_id.clone());
            }
            return;
        }
        inner.removed_before_seed.remove(&update.task_id);
        let row = inner.rows.entry(update.task_id.clone()).or_insert_with(|| TaskRow {
            id: update.task_id.clone(),
            task_id: update.task_id.clone(),
            topology_name: update.topology_name.clone(),
            task_name: update.task_name.clone(),
            service_intent_id: update.service_intent_id.clone(),
            status: String::new(),
            worker: worker.to_string(),
        });
        row.status = update.status.as_str().to_string();
        if !worker.is_empty() {
            row.worker = worker.to_string();
        }
        if row.service_intent_id.is_empty() {
            row.service_intent_id = update.service_intent_id.clone();
        }
    }

    /// Merges the master's list: rows the bus has not reported yet are added, fresher rows are kept.
    pub fn seed(&self, rows: Vec<TaskRow>) {
        let mut inner = self.write();
        for mut row in rows {
            if row.task_id.is_empty() {
                row.task_id = row.id.clone();
            }
            if row.id.is_empty() {
                row.id = row.task_id.clone();
            }
            if row.task_id.is_empty() || row.status == "removed" || inner.removed_before_seed.contains(&row.task_id) {
                continue;
            }
            inner.rows.entry(row.task_id.clone()).or_insert(row);
        }
        inner.seeded = true;
        inner.removed_before_seed.clear();
    }

    /// Every row, by task id; only those of `intent` when given.
    pub fn list(&self, intent: Option<&str>) -> Vec<TaskRow> {
        self.read()
            .rows
            .values()
            .filter(|row| intent.is_none_or(|intent| row.service_intent_id == intent))
            .cloned()
            .collect()
    }
}

/// Consumes the designer's queue until `shutdown`, keeping `table` current.
pub async fn consume(bus: Arc<dyn Bus>, table: TaskTable, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    let mut consumer = loop {
        match bus.consume(QueueSpec::new(QUEUE, ["designer.*", "task."])).await {
            Ok(consumer) => break consumer,
            Err(error) => {
                tracing::warn!(%error, queue = QUEUE, "cannot consume the designer queue yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = next_delay(delay);
            }
        }
    };
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(delivery) => delivery,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        handle(&table, delivery);
    }
}

fn handle(table: &TaskTable, delivery: Delivery) {
    let envelope = &delivery.envelope;
    match envelope.kind() {
        Some(MessageType::TaskUpdate) => match envelope.payload_as::<TaskUpdate>() {
            Ok(update) if !update.task_id.is_empty() => {
                table.apply(&update, &envelope.from);
                delivery.ack();
            }
            Ok(_) => {
                tracing::warn!(from = %envelope.from, "TASK_UPDATE without a TaskID; dropped");
                delivery.reject(false);
            }
            Err(error) => {
                tracing::warn!(%error, from = %envelope.from, "malformed TASK_UPDATE; dropped");
                delivery.reject(false);
            }
        },
        // FogFlow's designer ignores these too.
        Some(MessageType::TaskInfo | MessageType::MasterJoin | MessageType::MasterLeave) => delivery.ack(),
        _ => {
            tracing::debug!(message_type = %envelope.message_type, "message the designer does not handle; ignored");
            delivery.ack();
        }
    }
}

/// Seeds `table` from the master's `GET /tasks`, retrying until the master answers or `shutdown`.
pub async fn seed_from_master(http: HttpClient, master_url: String, table: TaskTable, shutdown: CancellationToken) {
    let url = format!("{}/tasks", master_url.trim_end_matches('/'));
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0u32;
    loop {
        match http.send_empty(http::Method::GET, &url).await {
            Ok(response) if response.is_success() => match serde_json::from_slice::<Vec<TaskRow>>(&response.body) {
                Ok(rows) => {
                    tracing::info!(tasks = rows.len(), "task table seeded from the master");
                    table.seed(rows);
                    return;
                }
                Err(error) => tracing::warn!(%error, %url, "the master's task list is not readable; retrying"),
            },
            Ok(response) => tracing::debug!(status = response.status, %url, "master not ready for /tasks"),
            Err(error) => {
                attempts += 1;
                if attempts == 1 || attempts % 20 == 0 {
                    tracing::info!(%error, "master not reachable yet for the task table; retrying");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = next_delay(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, status: TaskStatus) -> TaskUpdate {
        TaskUpdate {
            task_id: id.into(),
            topology_name: "Test".into(),
            task_name: "Main".into(),
            service_intent_id: "ServiceIntent.1".into(),
            status,
            ..Default::default()
        }
    }

    fn row(id: &str, status: &str) -> TaskRow {
        serde_json::from_value(serde_json::json!({"ID": id, "TaskID": id, "Status": status, "Worker": "Worker.001",
            "ServiceIntentID": "ServiceIntent.2"}))
        .unwrap()
    }

    #[test]
    fn updates_insert_change_and_remove_rows() {
        let table = TaskTable::default();
        table.apply(&update("T1", TaskStatus::Running), "Worker.001");
        table.apply(&update("T1", TaskStatus::Paused), "Worker.001");
        table.apply(&update("T2", TaskStatus::Running), "Worker.002");
        let rows = table.list(None);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].status, "paused");
        assert_eq!(rows[1].worker, "Worker.002");
        let wire = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(wire["ID"], "T1");
        assert_eq!(wire["TaskID"], "T1");
        table.apply(&update("T1", TaskStatus::Removed), "Worker.001");
        assert_eq!(table.list(Some("ServiceIntent.1")).len(), 1);
        assert!(table.list(Some("other")).is_empty());
    }

    #[test]
    fn seed_does_not_resurrect_or_overwrite() {
        let table = TaskTable::default();
        table.apply(&update("T1", TaskStatus::Running), "Worker.001");
        table.apply(&update("T3", TaskStatus::Removed), "Worker.001");
        table.seed(vec![row("T1", "scheduled"), row("T2", "running"), row("T3", "running")]);
        let rows = table.list(None);
        assert_eq!(rows.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>(), ["T1", "T2"]);
        assert_eq!(rows[0].status, "running");
        assert_eq!(table.list(Some("ServiceIntent.2")).len(), 1);
    }
}
