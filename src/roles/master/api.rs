//! The master's HTTP side, on both of its ports: FogFlow's NGSI agent (`POST /notifyContextAvailability`,
//! `POST /notifyContext`) and REST (`GET /workers` as an object keyed by worker id, `GET /status` with the
//! master's profile plus `state` (`standby`, `activating`, `active`) and `epoch`, `GET /tasks` in the designer's
//! task-table shape, `GET /intents`), plus the common routes. Availability notifications are queued for the
//! orchestrator and acknowledged once queued (503 when the queue is full, so discovery retries); nothing here
//! touches orchestration state directly. A master that is not active answers the orchestration routes with 503
//! and a body saying so (its `/health` and `/ready` stay 200: a standby is a healthy replica).

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;

use super::failover::{Activity, Status};
use super::orchestrator::{Input, Snapshot};
use crate::http::body::read_json;
use crate::http::metrics::RequestMetricsLayer;
use crate::http::{common, Metrics, Readiness};
use crate::model::MasterProfile;
use crate::ngsi::v9::NotifyContextAvailabilityRequest;

/// Largest notification body accepted.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Queue to the orchestrator.
    pub inputs: mpsc::Sender<Input>,
    /// The orchestrator's latest view.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// This master's profile.
    pub profile: MasterProfile,
    /// Whether it is active, and its epoch.
    pub status: Arc<RwLock<Status>>,
}

impl ApiState {
    fn status(&self) -> Status {
        *self.status.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A 503 answer unless this master is the active one (or, with `activating`, taking over: availability
    /// notifications for its new subscriptions arrive while it rebuilds, and wait in its queue).
    fn refusal(&self, activating: bool) -> Option<Response> {
        let status = self.status();
        if status.activity == Activity::Active || (activating && status.activity == Activity::Activating) {
            return None;
        }
        let details = format!(
            "master {} is {}: another master is the active one, or this one is taking over; ask the active master",
            self.profile.id,
            status.activity.as_str()
        );
        Some(error(StatusCode::SERVICE_UNAVAILABLE, details))
    }
}

/// The whole router.
pub fn router(state: ApiState, readiness: Readiness, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/notifyContextAvailability", post(notify_availability))
        .route("/notifyContext", post(notify_context))
        .route("/workers", get(workers))
        .route("/status", get(status))
        .route("/tasks", get(tasks))
        .route("/intents", get(intents))
        .with_state(state)
        .merge(common::routes("master", readiness, metrics.clone()))
        .fallback(not_found)
        .layer(CorsLayer::permissive())
        .layer(RequestMetricsLayer::new(metrics, "master"))
        .layer(CatchPanicLayer::new())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"responseCode": {"code": status.as_u16(), "reasonPhrase": status.canonical_reason().unwrap_or(""), "details": message.into()}});
    (status, Json(body)).into_response()
}

async fn notify_availability(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    if let Some(response) = state.refusal(true) {
        return response;
    }
    let notification: NotifyContextAvailabilityRequest = match read_json(&headers, body, MAX_BODY_BYTES).await {
        Ok(notification) => notification,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state.inputs.try_send(Input::Availability(notification)) {
        Ok(()) => Json(json!({"responseCode": {"code": 200, "reasonPhrase": "OK"}})).into_response(),
        Err(mpsc::error::TrySendError::Full(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "master busy; retry"),
        Err(mpsc::error::TrySendError::Closed(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "master stopping"),
    }
}

async fn notify_context() -> Response {
    Json(json!({"responseCode": {"code": 200, "reasonPhrase": "OK"}})).into_response()
}

fn read(state: &ApiState) -> Snapshot {
    state.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn workers(State(state): State<ApiState>) -> Response {
    if let Some(response) = state.refusal(false) {
        return response;
    }
    let snapshot = read(&state);
    let mut object = Map::new();
    for worker in snapshot.workers {
        object.insert(worker.id.clone(), serde_json::to_value(worker).unwrap_or(Value::Null));
    }
    Json(Value::Object(object)).into_response()
}

async fn status(State(state): State<ApiState>) -> Response {
    let status = state.status();
    let mut body = serde_json::to_value(MasterProfile { epoch: status.epoch, ..state.profile.clone() })
        .unwrap_or_else(|_| json!({}));
    if let Some(object) = body.as_object_mut() {
        object.insert("state".into(), json!(status.activity.as_str()));
        object.insert("epoch".into(), json!(status.epoch));
    }
    Json(body).into_response()
}

async fn tasks(State(state): State<ApiState>) -> Response {
    if let Some(response) = state.refusal(false) {
        return response;
    }
    let snapshot = read(&state);
    let list: Vec<Value> = snapshot
        .tasks
        .iter()
        .map(|task| {
            let instance = &task.instance;
            let status = if task.reported.is_empty() {
                if task.worker.is_some() {
                    "scheduled"
                } else {
                    "pending"
                }
            } else {
                task.reported.as_str()
            };
            json!({
                "ID": instance.id, "TaskID": instance.id, "TopologyName": instance.topology_name,
                "TaskName": instance.task_name, "ServiceIntentID": instance.service_intent_id,
                "Status": status, "Worker": task.worker.clone().unwrap_or_default(),
                "Reason": task.reason, "Inputs": instance.inputs, "Outputs": instance.outputs,
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn intents(State(state): State<ApiState>) -> Response {
    if let Some(response) = state.refusal(false) {
        return response;
    }
    Json(read(&state).intents).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path on the master")
}
