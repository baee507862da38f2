//! NGSIv1 errors as FogFlow's and Orion's clients read them:
//! `{"errorCode":{"code":"400","reasonPhrase":"Bad Request","details":"…"}}` with the matching HTTP status.
//! A client's mistake is a 4xx; only a store failure is a 5xx.

use crate::ngsi::v1::error_body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::BodyError;
use crate::ngsi::ParseError;
use crate::roles::broker::state::BrokerError;
use crate::store::StoreError;

/// An NGSIv1 error response.
#[derive(Debug)]
pub struct V1Error {
    status: StatusCode,
    details: String,
}

impl V1Error {
    /// An error with an HTTP status and details.
    pub fn new(status: StatusCode, details: impl Into<String>) -> Self {
        V1Error { status, details: details.into() }
    }

    /// 400 Bad Request.
    pub fn bad_request(details: impl Into<String>) -> Self {
        V1Error::new(StatusCode::BAD_REQUEST, details)
    }

    /// 404 Not Found.
    pub fn not_found(details: impl Into<String>) -> Self {
        V1Error::new(StatusCode::NOT_FOUND, details)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The details text.
    pub fn details(&self) -> &str {
        &self.details
    }

    fn reason_phrase(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "Bad Request",
            StatusCode::NOT_FOUND => "No context element found",
            StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let body = error_body(self.status.as_u16(), self.reason_phrase(), &self.details);
        (self.status, Json(body)).into_response()
    }
}

impl From<ParseError> for V1Error {
    fn from(error: ParseError) -> Self {
        V1Error::bad_request(error.message())
    }
}

impl From<BodyError> for V1Error {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { .. } => V1Error::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
            BodyError::Read(_) | BodyError::Empty | BodyError::Json(_) => V1Error::bad_request(error.to_string()),
        }
    }
}

impl From<StoreError> for V1Error {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store failure; request not acknowledged");
        V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the write was not stored: {error}"))
    }
}

impl From<BrokerError> for V1Error {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Invalid(error) => error.into(),
            BrokerError::NotFound(details) => V1Error::not_found(details),
            BrokerError::AlreadyExists(details) => V1Error::new(StatusCode::CONFLICT, details),
            BrokerError::Store(error) => error.into(),
            BrokerError::OtherServicePath(details) => V1Error::not_found(details),
        }
    }
}

/// Fallback for unknown paths: 404 in the NGSIv1 shape.
pub async fn unknown_path(uri: axum::http::Uri) -> V1Error {
    V1Error::not_found(format!("no resource at {}", uri.path()))
}

/// Fallback for a known path with another method: 405 in the NGSIv1 shape.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> V1Error {
    V1Error::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
