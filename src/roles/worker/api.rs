//! The worker's own HTTP endpoint: the common routes (`/health`, `/ready`, `/metrics`, `/version`) and
//! `GET /tasks`, the tasks it holds as the executor last published them.
//!
//! Must not: change tasks (commands come only over the bus).

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::http::metrics::RequestMetricsLayer;
use crate::http::{common, Metrics, Readiness};
use crate::model::{InputEntity, OutputEntity};

/// One held task as `GET /tasks` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// `scheduled` (launching), `running`, `paused`, `failed`.
    pub status: String,
    /// The epoch of the command that placed it.
    pub epoch: u64,
    /// `http://<my_hostip>:<port>` while it runs.
    #[serde(rename = "refURL")]
    pub ref_url: Option<String>,
    /// Its process id while it runs (process runtime).
    pub pid: Option<u32>,
    /// What `TASK_INFO` reports as `containerID` while it runs: the container id (12 characters) for Docker,
    /// the pid for processes.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    /// Why it failed last.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Its inputs.
    pub inputs: Vec<InputEntity>,
    /// Its outputs.
    pub outputs: Vec<OutputEntity>,
}

/// The latest task list, shared with the HTTP side.
#[derive(Debug, Clone, Default)]
pub struct TaskViews(Arc<RwLock<Vec<TaskView>>>);

impl TaskViews {
    /// Replaces the list.
    pub fn set(&self, views: Vec<TaskView>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = views;
    }

    /// The list.
    pub fn get(&self) -> Vec<TaskView> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The worker's routes.
pub fn routes(views: TaskViews, readiness: Readiness, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/tasks", get(list_tasks))
        .with_state(views)
        .merge(common::routes("worker", readiness, metrics.clone()))
        .layer(RequestMetricsLayer::new(metrics, "worker"))
}

async fn list_tasks(State(views): State<TaskViews>) -> Json<Vec<TaskView>> {
    Json(views.get())
}
