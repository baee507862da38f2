//! NGSI-LD errors as ProblemDetails (RFC 7807, ETSI GS CIM 009 clause 5.5.2):
//! `{"type":"https://uri.etsi.org/ngsi-ld/errors/<Type>","title":…,"status":…,"detail":…}` with
//! `Content-Type: application/json`, and the status of the spec's table (BadRequestData and InvalidRequest 400,
//! ResourceNotFound and NonexistentTenant 404, AlreadyExists 409, OperationNotSupported 422, TooManyResults 403,
//! LdContextNotAvailable 503, InternalError 500). Content negotiation failures are 406 `NotAcceptable` and 415
//! `UnsupportedMediaType`, a body over the limit 413 `InvalidRequest`, a wrong method 405 `OperationNotSupported`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::http::BodyError;
use crate::ngsi::ld::context::ContextError;
use crate::ngsi::ld::edit::Refusal;
use crate::ngsi::ld::subscription::SubscriptionError;
use crate::ngsi::ParseError;
use crate::roles::broker::state::BrokerError;

/// The base of every ProblemDetails type URI.
const ERRORS: &str = "https://uri.etsi.org/ngsi-ld/errors/";

/// An NGSI-LD error response.
#[derive(Debug, Clone)]
pub struct LdError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    tenant: Option<String>,
}

impl LdError {
    /// An error of a ProblemDetails type with its status.
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        LdError { status, kind, title, detail: detail.into(), tenant: None }
    }

    /// 400 `BadRequestData`.
    pub fn bad_data(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::BAD_REQUEST, "BadRequestData", "Bad request data", detail)
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid request", detail)
    }

    /// 404 `ResourceNotFound`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::NOT_FOUND, "ResourceNotFound", "Resource not found", detail)
    }

    /// 404 `NonexistentTenant`, echoing the tenant in the `NGSILD-Tenant` header.
    pub fn nonexistent_tenant(tenant: &str) -> Self {
        let detail = format!("tenant `{tenant}` does not exist");
        let error = LdError::new(StatusCode::NOT_FOUND, "NonexistentTenant", "Nonexistent tenant", detail);
        LdError { tenant: Some(tenant.to_string()), ..error }
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::CONFLICT, "AlreadyExists", "Already exists", detail)
    }

    /// 422 `OperationNotSupported`.
    pub fn operation_not_supported(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::UNPROCESSABLE_ENTITY, "OperationNotSupported", "Operation not supported", detail)
    }

    /// 403 `TooManyResults`: more results asked for than the broker gives in one answer.
    pub fn too_many_results(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::FORBIDDEN, "TooManyResults", "Too many results", detail)
    }

    /// 406 `NotAcceptable`.
    pub fn not_acceptable(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", "Not acceptable", detail)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        LdError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", "Unsupported media type", detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The ProblemDetails body.
    pub fn body(&self) -> Value {
        json!({
            "type": format!("{ERRORS}{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        })
    }
}

impl IntoResponse for LdError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json")], self.body().to_string()).into_response();
        if let Some(tenant) = self.tenant.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
            response.headers_mut().insert("ngsild-tenant", tenant);
        }
        response
    }
}

impl From<ParseError> for LdError {
    fn from(error: ParseError) -> Self {
        LdError::bad_data(error.message())
    }
}

impl From<BodyError> for LdError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { .. } => LdError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidRequest",
                "Request entity too large",
                error.to_string(),
            ),
            other => LdError::invalid_request(other.to_string()),
        }
    }
}

impl From<ContextError> for LdError {
    fn from(error: ContextError) -> Self {
        match error {
            ContextError::NotAvailable { .. } => LdError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "LdContextNotAvailable",
                "@context not available",
                error.to_string(),
            ),
            ContextError::Invalid(error) => error.into(),
        }
    }
}

impl From<BrokerError> for LdError {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Invalid(error) => error.into(),
            BrokerError::NotFound(detail) => LdError::not_found(detail),
            BrokerError::AlreadyExists(detail) => LdError::already_exists(detail),
            BrokerError::OtherServicePath(detail) => LdError::not_found(detail),
            BrokerError::Store(error) => {
                tracing::error!(%error, "store failure answering an NGSI-LD request");
                LdError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "Internal error", error.to_string())
            }
        }
    }
}

impl From<SubscriptionError> for LdError {
    fn from(error: SubscriptionError) -> Self {
        match error {
            SubscriptionError::Invalid(error) => error.into(),
            SubscriptionError::NotSupported(detail) => LdError::operation_not_supported(detail),
            SubscriptionError::Context(error) => error.into(),
        }
    }
}

impl From<Refusal> for LdError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(detail) => LdError::not_found(detail),
            Refusal::AlreadyExists(detail) => LdError::already_exists(detail),
            Refusal::NothingUpdated => LdError::not_found("none of the attributes could be updated"),
            Refusal::Invalid(error) => error.into(),
        }
    }
}

/// `/ngsi-ld/…` paths that do not exist: 404 `ResourceNotFound`.
pub async fn unknown_path(uri: axum::http::Uri) -> LdError {
    LdError::not_found(format!("no NGSI-LD resource at {}", uri.path()))
}

/// Wrong methods on `/ngsi-ld/…` resources: 405 `OperationNotSupported`.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> LdError {
    let detail = format!("{method} is not allowed on {}", uri.path());
    LdError::new(StatusCode::METHOD_NOT_ALLOWED, "OperationNotSupported", "Method not allowed", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_carry_the_etsi_type_uri() {
        let body = LdError::bad_data("no id").body();
        assert_eq!(body["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData");
        assert_eq!((body["status"].as_u64(), body["detail"].as_str()), (Some(400), Some("no id")));
        let context: LdError = ContextError::not_available("https://x", "not allowed").into();
        assert_eq!(context.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(LdError::nonexistent_tenant("t").into_response().headers()["ngsild-tenant"], "t");
    }
}
