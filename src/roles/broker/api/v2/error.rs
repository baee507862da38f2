//! NGSIv2 errors as Orion renders them: `{"error":"<Code>","description":"…"}` with the matching HTTP status,
//! and the `/v2` fallbacks for unknown paths (400, as Orion) and methods (405). A client's mistake is a 4xx; only
//! a store failure is a 5xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::http::BodyError;
use crate::ngsi::v2::Rejection;
use crate::ngsi::ParseError;
use crate::roles::broker::api::error::V1Error;
use crate::roles::broker::state::BrokerError;
use crate::store::StoreError;

/// Orion's description of a missing entity.
pub const ENTITY_NOT_FOUND: &str = "The requested entity has not been found. Check type and id";

/// An NGSIv2 error response.
#[derive(Debug)]
pub struct V2Error {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl V2Error {
    /// An error with a status, Orion's error name and a description.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        V2Error { status, code, description: description.into() }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        V2Error::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    /// 404 `NotFound`.
    pub fn not_found(description: impl Into<String>) -> Self {
        V2Error::new(StatusCode::NOT_FOUND, "NotFound", description)
    }

    /// 404 `NotFound` for a missing entity, with Orion's description.
    pub fn entity_not_found() -> Self {
        V2Error::not_found(ENTITY_NOT_FOUND)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(description: impl Into<String>) -> Self {
        V2Error::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", description)
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "description": self.description }))).into_response()
    }
}

impl From<ParseError> for V2Error {
    fn from(error: ParseError) -> Self {
        V2Error::bad_request(error.message())
    }
}

impl From<BodyError> for V2Error {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { .. } => {
                V2Error::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", error.to_string())
            }
            BodyError::Json(_) => V2Error::new(StatusCode::BAD_REQUEST, "ParseError", error.to_string()),
            BodyError::Read(_) | BodyError::Empty => V2Error::bad_request(error.to_string()),
        }
    }
}

impl From<StoreError> for V2Error {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store failure; request not acknowledged");
        V2Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            format!("the write was not stored: {error}"),
        )
    }
}

impl From<BrokerError> for V2Error {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Invalid(error) => error.into(),
            BrokerError::NotFound(_) => V2Error::entity_not_found(),
            BrokerError::AlreadyExists(detail) => V2Error::new(StatusCode::CONFLICT, "AlreadyExists", detail),
            BrokerError::Store(error) => error.into(),
            BrokerError::OtherServicePath(_) => V2Error::entity_not_found(),
        }
    }
}

impl From<Rejection> for V2Error {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::EntityNotFound => V2Error::entity_not_found(),
            Rejection::AttributesNotFound(names) => {
                V2Error::not_found(format!("the entity has no attribute {}", names.join(", ")))
            }
            Rejection::Unprocessable(description) => {
                V2Error::new(StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable", description)
            }
        }
    }
}

/// Header errors are found by the NGSI10 header reader; they keep their status in the v2 shape.
impl From<V1Error> for V2Error {
    fn from(error: V1Error) -> Self {
        match error.status() {
            StatusCode::BAD_REQUEST => V2Error::bad_request(error.details()),
            status => V2Error::new(status, "InternalServerError", error.details()),
        }
    }
}

/// Fallback for unknown paths under `/v2`: 400 `BadRequest`, as Orion answers (`service not found`).
pub async fn unknown_path(uri: axum::http::Uri) -> V2Error {
    V2Error::bad_request(format!("service not found: check the URL, there is no resource at {}", uri.path()))
}

/// Fallback for a known `/v2` path with another method: 405 in the NGSIv2 shape.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> V2Error {
    V2Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
