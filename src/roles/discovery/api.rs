//! Discovery's HTTP handlers (FogFlow's `/ngsi9` paths, spec §7.1) and their NGSIv1-shaped errors. Handlers
//! read and validate, call [`DiscoveryState`], and map errors: unknown ids are 404 (FogFlow answered `null`,
//! 500, or crashed, §12.16).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::state::{DiscoveryError, DiscoveryState};
use crate::http::{read_json, BodyError};
use crate::ngsi::v1::{error_body, StatusCode as NgsiStatus};
use crate::ngsi::v9::{
    BrokerProfile, DiscoverContextAvailabilityRequest, RegisterContextRequest, RegistrationQuery,
    SubscribeContextAvailabilityRequest, SubscribeContextAvailabilityResponse, UnsubscribeContextAvailabilityRequest,
    UnsubscribeContextAvailabilityResponse,
};
use crate::ngsi::ParseError;

/// An NGSI9 error: `{"errorCode":{"code":"404","reasonPhrase":…,"details":…}}` with the HTTP status.
#[derive(Debug)]
pub struct Ngsi9Error {
    status: StatusCode,
    details: String,
}

impl Ngsi9Error {
    fn new(status: StatusCode, details: impl Into<String>) -> Self {
        Ngsi9Error { status, details: details.into() }
    }
}

impl IntoResponse for Ngsi9Error {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        (self.status, Json(error_body(self.status.as_u16(), reason, &self.details))).into_response()
    }
}

impl From<DiscoveryError> for Ngsi9Error {
    fn from(error: DiscoveryError) -> Self {
        match error {
            DiscoveryError::Invalid(error) => Ngsi9Error::new(StatusCode::BAD_REQUEST, error.message()),
            DiscoveryError::NotFound(details) => Ngsi9Error::new(StatusCode::NOT_FOUND, details),
            DiscoveryError::Conflict(error) => Ngsi9Error::new(StatusCode::CONFLICT, error.to_string()),
            DiscoveryError::Store(error) => {
                tracing::error!(%error, "store failure; request not acknowledged");
                Ngsi9Error::new(StatusCode::INTERNAL_SERVER_ERROR, format!("not stored: {error}"))
            }
        }
    }
}

impl From<BodyError> for Ngsi9Error {
    fn from(error: BodyError) -> Self {
        let status = match error {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Ngsi9Error::new(status, error.to_string())
    }
}

impl From<ParseError> for Ngsi9Error {
    fn from(error: ParseError) -> Self {
        Ngsi9Error::new(StatusCode::BAD_REQUEST, error.message())
    }
}

type Answer = Result<Response, Ngsi9Error>;

/// `POST /ngsi9/registerContext`.
pub async fn register_context(State(state): State<DiscoveryState>, headers: HeaderMap, body: Body) -> Answer {
    let request: RegisterContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    Ok(Json(state.register(request).await?).into_response())
}

/// `POST /ngsi9/discoverContextAvailability`.
pub async fn discover_context_availability(
    State(state): State<DiscoveryState>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: DiscoverContextAvailabilityRequest = read_json(&headers, body, state.max_body_bytes).await?;
    Ok(Json(state.discover(&request)?).into_response())
}

/// `POST /ngsi9/subscribeContextAvailability`.
pub async fn subscribe_context_availability(
    State(state): State<DiscoveryState>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: SubscribeContextAvailabilityRequest = read_json(&headers, body, state.max_body_bytes).await?;
    subscribed(&state, request, None).await
}

/// `POST /ngsi9/UpdateLDContextAvailability/{sid}`: replaces (or creates) the subscription with that id.
pub async fn update_ld_context_availability(
    State(state): State<DiscoveryState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: SubscribeContextAvailabilityRequest = read_json(&headers, body, state.max_body_bytes).await?;
    subscribed(&state, request, Some(id)).await
}

async fn subscribed(
    state: &DiscoveryState,
    request: SubscribeContextAvailabilityRequest,
    id: Option<String>,
) -> Answer {
    let duration = request.duration.clone();
    let subscribe_id = state.subscribe(request, id).await?;
    Ok(Json(SubscribeContextAvailabilityResponse { subscribe_id, duration, error_code: NgsiStatus::ok() })
        .into_response())
}

/// `POST /ngsi9/unsubscribeContextAvailability`: 200 echoing the id, 404 for an unknown one.
pub async fn unsubscribe_context_availability(
    State(state): State<DiscoveryState>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: UnsubscribeContextAvailabilityRequest = read_json(&headers, body, state.max_body_bytes).await?;
    if !state.unsubscribe(&request.subscription_id).await? {
        return Err(
            DiscoveryError::NotFound(format!("subscription `{}` does not exist", request.subscription_id)).into()
        );
    }
    let status = NgsiStatus { code: 200, reason_phrase: String::new(), details: "OK".into() };
    Ok(Json(UnsubscribeContextAvailabilityResponse { subscription_id: request.subscription_id, status_code: status })
        .into_response())
}

/// `GET /ngsi9/registration/{eid}` and `GET /ngsi9/ngsi-ld/registration/{eid}`: FogFlow's record of the entity
/// (the last listed provider's when several hold it; a broker's own registration before a named one); 404 when
/// unknown.
pub async fn get_registration(State(state): State<DiscoveryState>, Path(id): Path<String>) -> Answer {
    crate::ngsi::limits::check_name("entity id", &id)?;
    let mut all = state.registry.of_entity(&id);
    all.sort_by_key(|registration| registration.registration_id.is_empty());
    match all.last() {
        Some(registration) => Ok(Json(registration.to_fogflow_record()).into_response()),
        None => Err(DiscoveryError::NotFound(format!("no registration for entity `{id}`")).into()),
    }
}

/// `DELETE /ngsi9/registration/{eid}`: 200, or 404 when nothing was registered under that id.
pub async fn delete_registration(State(state): State<DiscoveryState>, Path(id): Path<String>) -> Answer {
    crate::ngsi::limits::check_name("entity id", &id)?;
    match state.delete_entity(&id).await? {
        0 => Err(DiscoveryError::NotFound(format!("no registration for entity `{id}`")).into()),
        _ => Ok(StatusCode::OK.into_response()),
    }
}

/// `POST /ngsi9/registrations/query` (our addition): the records of the registrations a
/// [`RegistrationQuery`] selects, as a JSON array.
pub async fn query_registrations(State(state): State<DiscoveryState>, headers: HeaderMap, body: Body) -> Answer {
    let query: RegistrationQuery = read_json(&headers, body, state.max_body_bytes).await?;
    Ok(Json(state.records(&query)?).into_response())
}

/// `DELETE /ngsi9/registrations/{rid}` (our addition): removes a named registration; 200, or 404.
pub async fn delete_named_registration(State(state): State<DiscoveryState>, Path(id): Path<String>) -> Answer {
    match state.delete_named(&id).await? {
        0 => Err(DiscoveryError::NotFound(format!("no registration `{id}`")).into()),
        _ => Ok(StatusCode::OK.into_response()),
    }
}

/// `GET /ngsi9/subscription`: `{id: subscription}`.
pub async fn list_subscriptions(State(state): State<DiscoveryState>) -> Answer {
    let all: Map<String, Value> = state
        .subscription_requests()
        .into_iter()
        .map(|request| (request.subscription_id.clone(), serde_json::to_value(request).unwrap_or(Value::Null)))
        .collect();
    Ok(Json(Value::Object(all)).into_response())
}

/// `GET /ngsi9/subscription/{sid}` (which crashed FogFlow's discovery).
pub async fn get_subscription(State(state): State<DiscoveryState>, Path(id): Path<String>) -> Answer {
    match state.subscription(&id) {
        Some(request) => Ok(Json(request).into_response()),
        None => Err(DiscoveryError::NotFound(format!("subscription `{id}` does not exist")).into()),
    }
}

/// `GET /ngsi9/broker`: the live brokers, `{id: {"id","myURL","Last_Heartbeat_Update"}}`.
pub async fn list_brokers(State(state): State<DiscoveryState>) -> Answer {
    let all: Map<String, Value> = state
        .brokers()
        .into_iter()
        .map(|broker| (broker.id.clone(), serde_json::to_value(broker).unwrap_or(Value::Null)))
        .collect();
    Ok(Json(Value::Object(all)).into_response())
}

/// `POST /ngsi9/broker/heartbeat`: FogFlow's answer plus `epoch`, which changes when discovery lost its state
/// (brokers then register everything again).
pub async fn heartbeat(State(state): State<DiscoveryState>, headers: HeaderMap, body: Body) -> Answer {
    let profile: BrokerProfile = read_json(&headers, body, state.max_body_bytes).await?;
    state.heartbeat(&profile)?;
    Ok(Json(json!({ "contextResponses": null, "epoch": state.epoch })).into_response())
}

/// `GET /etype`: the distinct registered entity types.
pub async fn entity_types(State(state): State<DiscoveryState>) -> Answer {
    Ok(Json(state.registry.types()).into_response())
}

/// `GET /ngsi9/status`.
pub async fn status() -> Json<&'static str> {
    Json("ok")
}

/// Fallback for unknown paths.
pub async fn unknown_path(uri: axum::http::Uri) -> Ngsi9Error {
    Ngsi9Error::new(StatusCode::NOT_FOUND, format!("no resource at {}", uri.path()))
}

/// Fallback for a known path with another method.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Ngsi9Error {
    Ngsi9Error::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
