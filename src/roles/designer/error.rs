//! The designer's error answers: `{"error": "<kind>", "description": "<what and why>"}` with the status that
//! fits (a client's mistake is 4xx, an unreachable broker or discovery 502, only a store failure 500).
//!
//! Owns: the mapping from typed errors to responses. Must not: log client mistakes above debug.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::http::BodyError;
use crate::model::intent::IntentError;
use crate::model::operator::OperatorError;
use crate::model::topology::TopologyError;
use crate::store::StoreError;

/// Why a designer request failed.
#[derive(Debug, thiserror::Error)]
pub enum DesignerError {
    /// The request is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The body could not be read as the expected JSON.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Nothing under that name or id.
    #[error("{0}")]
    NotFound(String),
    /// FogFlow's answer when an operator is still used by a topology (501).
    #[error("{0}")]
    InUse(String),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The broker or discovery refused or could not be reached.
    #[error("{0}")]
    Upstream(String),
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OperatorError> for DesignerError {
    fn from(error: OperatorError) -> Self {
        DesignerError::Invalid(error.to_string())
    }
}

impl From<TopologyError> for DesignerError {
    fn from(error: TopologyError) -> Self {
        DesignerError::Invalid(error.to_string())
    }
}

impl From<IntentError> for DesignerError {
    fn from(error: IntentError) -> Self {
        DesignerError::Invalid(error.to_string())
    }
}

impl DesignerError {
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            DesignerError::Invalid(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            DesignerError::Body(BodyError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            DesignerError::Body(_) => (StatusCode::BAD_REQUEST, "ParseError"),
            DesignerError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            DesignerError::InUse(_) => (StatusCode::NOT_IMPLEMENTED, "InUse"),
            DesignerError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            DesignerError::Upstream(_) => (StatusCode::BAD_GATEWAY, "BadGateway"),
            DesignerError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

impl IntoResponse for DesignerError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        match &self {
            DesignerError::Store(error) => tracing::error!(%error, "store failure; request not acknowledged"),
            DesignerError::Upstream(error) => tracing::warn!(%error, "upstream failure"),
            other => tracing::debug!(error = %other, "request refused"),
        }
        (status, Json(json!({ "error": kind, "description": self.to_string() }))).into_response()
    }
}

/// The result of a designer handler.
pub type Answer = Result<Response, DesignerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (DesignerError::Invalid("x".into()), 400),
            (DesignerError::Body(BodyError::TooLarge { limit: 1 }), 413),
            (DesignerError::Body(BodyError::Empty), 400),
            (DesignerError::NotFound("x".into()), 404),
            (DesignerError::InUse("x".into()), 501),
            (DesignerError::Conflict("x".into()), 409),
            (DesignerError::Upstream("x".into()), 502),
        ];
        for (error, status) in cases {
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }
}
