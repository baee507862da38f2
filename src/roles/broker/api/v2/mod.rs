//! The NGSIv2 (Orion-compatible) entity API and batch operations under `/v2`, over the same entities as NGSI10:
//! its routes, and what its handlers share (tenant from `Fiware-Service`, `Fiware-ServicePath` syntax, JSON bodies
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
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use self::error::V2Error;
use super::headers::request_meta;
use crate::http::body::read_bytes;
use crate::http::BodyError;
use crate::ngsi::v2::{check_identifier, Edit};
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::state::{BrokerState, RequestMeta};

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

/// Most paths in a `Fiware-ServicePath` (Orion's limit).
const MAX_SERVICE_PATHS: usize = 10;
/// Most levels in one service path (Orion's limit).
const MAX_SERVICE_PATH_LEVELS: usize = 10;
/// Longest level of a service path (Orion's limit).
const MAX_SERVICE_PATH_LEVEL_LEN: usize = 50;

/// Checks `Fiware-ServicePath` against Orion's syntax (it is not used to scope entities yet): up to 10
/// comma-separated absolute paths of up to 10 levels of 1–50 letters, digits or `_`, optionally ending in `/#`.
fn check_service_path(headers: &HeaderMap) -> Result<(), V2Error> {
    let mut values = headers.get_all("fiware-servicepath").iter();
    let Some(value) = values.next() else { return Ok(()) };
    if values.next().is_some() {
        return Err(V2Error::bad_request("header Fiware-ServicePath is given more than once"));
    }
    let text = value.to_str().map_err(|_| V2Error::bad_request("Fiware-ServicePath is not visible ASCII"))?;
    let paths: Vec<&str> = text.split(',').map(str::trim).collect();
    if paths.len() > MAX_SERVICE_PATHS {
        return Err(V2Error::bad_request(format!("more than {MAX_SERVICE_PATHS} paths in Fiware-ServicePath")));
    }
    for path in paths {
        let path = path.strip_suffix("/#").map_or(path, |prefix| if prefix.is_empty() { "/" } else { prefix });
        let Some(levels) = path.strip_prefix('/') else {
            return Err(V2Error::bad_request("a Fiware-ServicePath must begin with /"));
        };
        if levels.is_empty() {
            continue;
        }
        let levels: Vec<&str> = levels.split('/').collect();
        if levels.len() > MAX_SERVICE_PATH_LEVELS {
            return Err(V2Error::bad_request(format!(
                "more than {MAX_SERVICE_PATH_LEVELS} levels in Fiware-ServicePath `{path}`"
            )));
        }
        let valid = |level: &&str| {
            (1..=MAX_SERVICE_PATH_LEVEL_LEN).contains(&level.len())
                && level.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !levels.iter().all(valid) {
            return Err(V2Error::bad_request(format!(
                "Fiware-ServicePath `{path}`: each level must be 1 to {MAX_SERVICE_PATH_LEVEL_LEN} letters, digits or _"
            )));
        }
    }
    Ok(())
}

/// The tenant and correlator of a request; `Fiware-ServicePath` is checked.
pub fn meta(headers: &HeaderMap) -> Result<RequestMeta, V2Error> {
    check_service_path(headers)?;
    Ok(request_meta(headers)?)
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

/// The stored entity `id` (of type `entity_type` when given), or 404.
pub fn find(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    entity_type: Option<&str>,
) -> Result<Arc<StoredEntity>, V2Error> {
    check_identifier("entity id", id)?;
    state
        .entities
        .get(&meta.tenant, id)
        .filter(|entity| entity_type.is_none_or(|t| t == entity.element.entity_id.entity_type))
        .ok_or_else(V2Error::entity_not_found)
}

/// Applies an edit to entity `id` through the broker state; answers whether it created the entity.
pub async fn apply(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    entity_type: Option<&str>,
    edit: Edit,
) -> Result<bool, V2Error> {
    check_identifier("entity id", id)?;
    let entity_type = entity_type.map(str::to_string);
    let outcome = state.edit_entity(meta, id, move |stored| edit.apply(stored, entity_type.as_deref())).await?;
    Ok(outcome?)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn service_path(value: &str) -> Result<(), V2Error> {
        let mut headers = HeaderMap::new();
        headers.insert("fiware-servicepath", HeaderValue::from_str(value).unwrap());
        check_service_path(&headers)
    }

    #[test]
    fn service_paths_follow_orion_syntax() {
        for good in ["/", "/a", "/a/b_c/D1", "/a/#", "/#", "/a, /b", &format!("/{}", "x".repeat(50))] {
            assert!(service_path(good).is_ok(), "{good}");
        }
        let eleven_levels = "/a".repeat(11);
        let eleven_paths = ["/a"; 11].join(",");
        let long_level = format!("/{}", "x".repeat(51));
        for bad in ["a", "/a/", "/a b", "/a-b", "//", &eleven_levels, &eleven_paths, &long_level] {
            assert!(service_path(bad).is_err(), "{bad}");
        }
        assert!(check_service_path(&HeaderMap::new()).is_ok());
    }
}
