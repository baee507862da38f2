//! The NGSI10 resource routes FogFlow adds: `GET /ngsi10/entity[/{eid}[/{attr}]]`,
//! `DELETE /ngsi10/entity/{eid}`, `GET /ngsi10/subscription[/{sid}]`, `DELETE /ngsi10/subscription/{sid}`.
//! Unknown ids answer 404 (FogFlow answered 200 or an empty 404).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{Map, Value};

use super::context::paging;
use super::error::V1Error;
use super::federated;
use super::headers::request_meta;
use crate::ngsi::limits::check_name;
use crate::roles::broker::federation::FederationHandle;
use crate::roles::broker::state::{BrokerState, LiveSubscription};

/// `GET /ngsi10/entity[?limit=&offset=]`: the entities of the tenant ordered by id, a page of at most
/// `broker.max_query_results`; the total is in `Fiware-Total-Count`.
pub async fn list_entities(
    State(state): State<BrokerState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let (offset, limit) = paging(query.as_deref())?;
    let limit = match limit {
        None => state.max_query_results,
        Some(limit) if limit == 0 || limit > state.max_query_results => {
            return Err(V1Error::bad_request(format!("limit must be 1..{}", state.max_query_results)))
        }
        Some(limit) => limit,
    };
    let all = state.entities.list(&meta.tenant);
    let total = all.len();
    let page: Vec<_> = all.iter().skip(offset).take(limit).map(|entity| &entity.element).collect();
    let mut response = Json(page).into_response();
    response.headers_mut().insert("fiware-total-count", HeaderValue::from(total));
    Ok(response)
}

/// `GET /ngsi10/entity/{eid}`; with federation, a client's `GET` of an entity another broker owns is fetched
/// from it.
pub async fn get_entity(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    check_name("entity id", &id)?;
    if let Some(entity) = state.entities.get(&meta.tenant, &id) {
        return Ok(Json(&entity.element).into_response());
    }
    let remote = match federation.0.as_deref().filter(|_| !meta.subscriber.is_internal) {
        Some(federation) => federated::get_remote(federation, &meta.tenant, &id).await,
        None => None,
    };
    match remote {
        Some(element) => Ok(Json(element).into_response()),
        None => Err(V1Error::not_found(format!("entity `{id}` does not exist"))),
    }
}

/// `GET /ngsi10/entity/{eid}/{attr}`.
pub async fn get_attribute(
    State(state): State<BrokerState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    check_name("entity id", &id)?;
    check_name("attribute name", &name)?;
    let entity = state
        .entities
        .get(&meta.tenant, &id)
        .ok_or_else(|| V1Error::not_found(format!("entity `{id}` does not exist")))?;
    match entity.element.attributes.iter().find(|attribute| attribute.name == name) {
        Some(attribute) => Ok(Json(attribute).into_response()),
        None => Err(V1Error::not_found(format!("entity `{id}` has no attribute `{name}`"))),
    }
}

/// `DELETE /ngsi10/entity/{eid}`: 200 with an empty body, 404 for an unknown id.
pub async fn delete_entity(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    check_name("entity id", &id)?;
    state.delete_entity(&meta.tenant, &id).await?;
    Ok(().into_response())
}

/// One subscription as FogFlow lists it (the request's fields plus `Subscriber`), with our additions:
/// `subscriptionId`, `expiresAt` and the delivery counters under `notification`.
fn describe(live: &LiveSubscription) -> Value {
    let record = &live.compiled.record;
    let mut object = match serde_json::to_value(&record.request) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert("subscriptionId".into(), Value::String(record.id.clone()));
    object.insert("Subscriber".into(), serde_json::to_value(&record.subscriber).unwrap_or(Value::Null));
    if let Some(expires_at) = record.expires_at.and_then(chrono::DateTime::from_timestamp_millis) {
        object
            .insert("expiresAt".into(), Value::String(expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    }
    object.insert("notification".into(), serde_json::to_value(live.delivery.status()).unwrap_or(Value::Null));
    Value::Object(object)
}

/// `GET /ngsi10/subscription`: `{sid: subscription}`.
pub async fn list_subscriptions(State(state): State<BrokerState>, headers: HeaderMap) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let all: Map<String, Value> = state
        .subscriptions(&meta.tenant)
        .iter()
        .map(|live| (live.compiled.record.id.clone(), describe(live)))
        .collect();
    Ok(Json(Value::Object(all)).into_response())
}

/// `GET /ngsi10/subscription/{sid}`.
pub async fn get_subscription(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    match state.subscription(&meta.tenant, &id) {
        Some(live) => Ok(Json(describe(&live)).into_response()),
        None => Err(V1Error::not_found(format!("subscription `{id}` does not exist"))),
    }
}

/// `DELETE /ngsi10/subscription/{sid}`: 200 with an empty body, 404 for an unknown id.
pub async fn delete_subscription(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    if state.unsubscribe(&meta.tenant, &id).await? {
        super::context::unlink_in_background(&federation, &id);
        Ok(().into_response())
    } else {
        Err(V1Error::not_found(format!("subscription `{id}` does not exist")))
    }
}
