//! The NGSIv2 (Orion-compatible) entity API and batch operations under `/v2`, over the same entities as NGSI10:
//! its routes, and what its handlers share (tenant from `Fiware-Service`, service paths from `Fiware-ServicePath`
//! scoping reads and naming the path of writes, JSON bodies
//! with Orion's 413/415/ParseError answers, entity look-ups and edits through [`BrokerState`] so that
//! subscriptions and discovery see every write).
//!
//! The codec (parsing, rendering, edits) is [`crate::ngsi::v2`]; handlers are in [`entities`], [`attributes`],
//! [`op`] and [`subscriptions`] (Orion's `/v2/subscriptions`, on the broker's shared subscription engine).

pub mod attributes;
pub mod entities;
pub mod error;
pub mod op;
pub mod params;
pub mod subscriptions;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use self::error::V2Error;
use super::headers::request_meta;
use crate::http::body::read_bytes;
use crate::http::BodyError;
use crate::ngsi::times::Edited;
use crate::ngsi::v2::service_path::ServicePaths;
use crate::ngsi::v2::{check_identifier, Edit};
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::state::{BrokerError, BrokerState, RequestMeta};

/// The `/v2` routes, answering wrong methods with NGSIv2-shaped 405s.
pub fn routes(state: BrokerState) -> Router {
    Router::new()
        .route("/v2/entities", get(entities::list).post(entities::create))
        .route("/v2/entities/{id}", get(entities::retrieve).delete(entities::delete))
        .route(
            "/v2/entities/{id}/attrs",
            get(attributes::list).post(attributes::append).patch(attributes::update).put(attributes::replace),
        )
        .route(
            "/v2/entities/{id}/attrs/{name}",
            get(attributes::retrieve).put(attributes::update_one).delete(attributes::delete),
        )
        .route("/v2/entities/{id}/attrs/{name}/value", get(attributes::value).put(attributes::set_value))
        .route("/v2/op/update", post(op::update))
        .route("/v2/op/query", post(op::query))
        .route("/v2/notify", post(entities::notify))
        .route("/v2/op/notify", post(entities::notify))
        .route("/v2/subscriptions", get(subscriptions::list).post(subscriptions::create))
        .route(
            "/v2/subscriptions/{id}",
            get(subscriptions::retrieve).patch(subscriptions::update).delete(subscriptions::delete),
        )
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state)
}

/// Whether a path belongs to the NGSIv2 API (for the unknown-path fallback).
pub fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// Reads `Fiware-ServicePath` with Orion's syntax and messages ([`ServicePaths`]); empty when absent.
fn service_paths(headers: &HeaderMap) -> Result<ServicePaths, V2Error> {
    let mut values = headers.get_all("fiware-servicepath").iter();
    let Some(value) = values.next() else { return Ok(ServicePaths::default()) };
    if values.next().is_some() {
        return Err(V2Error::bad_request("header Fiware-ServicePath is given more than once"));
    }
    let text = value.to_str().map_err(|_| V2Error::bad_request("Fiware-ServicePath is not visible ASCII"))?;
    Ok(ServicePaths::parse(text)?)
}

/// The tenant, correlator and service paths of a request (`Fiware-ServicePath` is checked first, as Orion does).
pub fn meta(headers: &HeaderMap) -> Result<RequestMeta, V2Error> {
    let paths = service_paths(headers)?;
    Ok(RequestMeta { service_path: Some(paths), ..request_meta(headers)? })
}

/// The service paths of a v2 request's meta (every path for a meta not made by [`meta`]).
pub fn paths(meta: &RequestMeta) -> ServicePaths {
    meta.service_path.clone().unwrap_or_default()
}

/// The media type of the request (lower-cased, without parameters), if any.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, V2Error> {
    let bytes = read_bytes(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(V2Error::bad_request("empty payload"));
    }
    Ok(bytes)
}

/// Reads a JSON body: `application/json` only (415 otherwise), at most `limit` bytes (413), valid JSON (400
/// `ParseError`).
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, V2Error> {
    match media_type(headers).as_deref() {
        Some("application/json") => {}
        Some(other) => return Err(V2Error::unsupported_media_type(format!("not supported content type: {other}"))),
        None => return Err(V2Error::unsupported_media_type("Content-Type is missing (expected application/json)")),
    }
    let bytes = read_body(headers, body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|error| BodyError::Json(error).into())
}

/// The stored entity `id` (of type `entity_type` when given) in the service paths the request reads, or 404.
pub fn find(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    entity_type: Option<&str>,
) -> Result<Arc<StoredEntity>, V2Error> {
    check_identifier("entity id", id)?;
    let paths = meta.service_path.as_ref();
    state
        .entities
        .get(&meta.tenant, id)
        .filter(|entity| entity_type.is_none_or(|t| t == entity.element.entity_id.entity_type))
        .filter(|entity| paths.is_none_or(|paths| paths.matches(&entity.service_path)))
        .ok_or_else(V2Error::entity_not_found)
}

/// The stored entity `id` (of type `entity_type` when given) in the one service path the request writes to, or
/// 404 (400 when the request does not name exactly one path).
pub fn find_for_write(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    entity_type: Option<&str>,
) -> Result<Arc<StoredEntity>, V2Error> {
    let path = paths(meta).update_path()?;
    let entity = find(state, meta, id, entity_type)?;
    if entity.service_path != path {
        return Err(V2Error::entity_not_found());
    }
    Ok(entity)
}

/// Applies an edit to entity `id` in the request's one service path through the broker state; answers whether it
/// created the entity. An entity of that id in another path is 422 `Unprocessable` (`Already Exists`) for a
/// creation, as one id names one entity per tenant here, else 404.
pub async fn apply(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    entity_type: Option<&str>,
    edit: Edit,
) -> Result<bool, V2Error> {
    check_identifier("entity id", id)?;
    let creates = matches!(edit, Edit::Create { .. });
    let entity_type = entity_type.map(str::to_string);
    let edit = move |stored: Option<&_>| edit.apply(stored, entity_type.as_deref()).map(Edited::by_name);
    match state.edit_entity(meta, id, edit).await {
        Ok(outcome) => Ok(outcome?),
        Err(BrokerError::OtherServicePath(_)) if creates => {
            Err(V2Error::new(StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable", "Already Exists"))
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("fiware-servicepath", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn service_paths_are_read_into_the_meta() {
        let read = meta(&headers("/a/#, /b/")).unwrap();
        assert_eq!(paths(&read).text(), "/a/#,/b");
        assert!(meta(&headers("a")).is_err());
        let mut twice = headers("/a");
        twice.append("fiware-servicepath", HeaderValue::from_static("/b"));
        assert!(meta(&twice).is_err());
        assert!(!paths(&meta(&HeaderMap::new()).unwrap()).is_given());
    }
}
