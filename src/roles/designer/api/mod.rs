//! The designer's REST handlers (spec §6.3), one file per resource family: the registry (operators, docker
//! images, topologies, services), intents and fog functions, devices and subscriptions, and system info.
//! Handlers validate with `model/`, change the store under its writer lock, commit, and only then answer and
//! release their intent announcements.

pub mod devices;
pub mod info;
pub mod intents;
pub mod registry;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// A 200 with `value` as JSON.
pub fn ok_json(value: impl Serialize) -> Response {
    Json(value).into_response()
}
