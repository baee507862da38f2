//! Routes every role serves beside its API: `/health` (liveness), `/ready` (readiness with a reason),
//! `/metrics` (Prometheus text) and `/version` (FogFlow's shape plus our version and commit).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{Metrics, Readiness};

/// Our release version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`-dirty` when the tree had changes).
pub const GIT_COMMIT: &str = env!("FOGFLOW_GIT_COMMIT");
/// The date of that commit.
pub const GIT_DATE: &str = env!("FOGFLOW_GIT_DATE");

#[derive(Clone)]
struct CommonState {
    role: &'static str,
    readiness: Readiness,
    metrics: Arc<Metrics>,
}

/// The common routes for one role.
pub fn routes(role: &'static str, readiness: Readiness, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/version", get(version))
        .with_state(CommonState { role, readiness, metrics })
}

async fn health(State(state): State<CommonState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "role": state.role }))
}

async fn ready(State(state): State<CommonState>) -> Response {
    match state.readiness.check() {
        Ok(()) => Json(json!({ "status": "ready", "role": state.role })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "role": state.role, "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics_text(State(state): State<CommonState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

async fn version(State(state): State<CommonState>) -> Json<serde_json::Value> {
    Json(json!({
        "version": VERSION,
        "date": GIT_DATE,
        "commit": GIT_COMMIT,
        "name": "fogflow",
        "role": state.role,
    }))
}
