//! What every designer handler shares: the registry store, the announcer, the task table, the outbound HTTP
//! client and the addresses of the broker, discovery and master.
//!
//! Owns: nothing beyond the handles it groups. Must not: hold request logic.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::announcer::Announcer;
use super::error::DesignerError;
use super::proxy::Proxy;
use super::store::DesignerStore;
use super::tasks::TaskTable;
use crate::clients::http_client::HttpClient;
use crate::config::Config;
use crate::http::{read_json, Readiness};

/// Largest request body the designer reads (designboards included): 4 MiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The designer's shared state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DesignerState {
    /// The registry.
    pub store: DesignerStore,
    /// Intent announcements to the master.
    pub announcer: Announcer,
    /// `/info/task`.
    pub tasks: TaskTable,
    /// Calls to the broker, discovery and master.
    pub http: HttpClient,
    /// Pass-through to the broker and discovery.
    pub proxy: Proxy,
    /// The configuration.
    pub config: Arc<Config>,
    /// `/ready`.
    pub readiness: Readiness,
}

impl DesignerState {
    /// The broker's NGSI10 URL (`…/ngsi10`).
    pub fn broker_url(&self) -> String {
        self.config.broker_url()
    }

    /// Reads the body as `T` within [`MAX_BODY_BYTES`].
    pub async fn body<T: DeserializeOwned>(&self, headers: &HeaderMap, body: Body) -> Result<T, DesignerError> {
        Ok(read_json(headers, body, MAX_BODY_BYTES).await?)
    }
}

/// A JSON list, or a single object taken as a list of one.
pub fn one_or_many(value: Value) -> Result<Vec<Value>, DesignerError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(_) => Ok(vec![value]),
        _ => Err(DesignerError::Invalid("expected a JSON array of objects (or one object)".into())),
    }
}

/// Decodes one item of a request, naming what it was meant to be.
pub fn decode<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, DesignerError> {
    serde_json::from_value(value).map_err(|error| DesignerError::Invalid(format!("invalid {what}: {error}")))
}
