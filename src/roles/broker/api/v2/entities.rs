//! The NGSIv2 entity routes: `POST /v2/entities` (create, `upsert`, `keyValues`), `GET /v2/entities` (ids,
//! patterns, types, `q`, geo queries, paging, `count`), `GET`/`DELETE /v2/entities/{id}`, and the notification
//! receivers `POST /v2/notify` (FogFlow's) and `POST /v2/op/notify` (Orion's), which upsert every notified entity.
//! With federation, a client's reads also see the entities other brokers hold.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::error::V2Error;
use super::params::{Filter, Params};
use super::{apply, find, find_for_write, meta, paths, read_json};
use crate::ngsi::limits::MAX_ELEMENTS_PER_REQUEST;
use crate::ngsi::v2::service_path::ROOT;
use crate::ngsi::v2::{
    check_identifier, parse_entity, render_entity, render_entity_with, Builtins, Edit, Format, IfExists,
};
use crate::ngsi::ParseError;
use crate::roles::broker::api::federated;
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::federation::FederationHandle;
use crate::roles::broker::state::{BrokerState, RequestMeta};

/// `POST /v2/entities[?options=upsert,keyValues]`: 201 with `Location`, 422 when it exists, 204 when an upsert
/// updated it.
pub async fn create(
    State(state): State<BrokerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    paths(&meta).update_path()?;
    let params = Params::parse(&uri)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    let element = parse_entity(&body, params.format == Format::KeyValues)?;
    let id = element.entity_id.id.clone();
    let entity_type = element.entity_id.entity_type.clone();
    let if_exists = if params.upsert { IfExists::Append } else { IfExists::Refuse };
    let created = apply(&state, &meta, &id, None, Edit::Create { element, if_exists }).await?;
    if !created {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let location = HeaderValue::from_str(&format!("/v2/entities/{id}?type={entity_type}"))
        .map_err(|_| V2Error::bad_request("entity id or type cannot be used in a Location header"))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// `GET /v2/entities`: the tenant's entities selected by `id`/`idPattern`/`type`/`q`/`georel`, in creation order
/// (milliseconds, ties by id), paged by `limit`/`offset`, projected to `attrs`; `options=count` adds
/// `Fiware-Total-Count`. With federation, a client's listing also gets the matching entities of the other brokers
/// (after this broker's own, by id) before filtering and paging; `FogFlow-Partial-Result` names who did not
/// answer.
pub async fn list(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let filter = params.filter()?;
    let (remote, unanswered) = match federation.for_client(&headers) {
        Some(federation) => federated::remote_entities(&state, federation, &meta.tenant, params.entities()).await,
        None => (Vec::new(), Vec::new()),
    };
    let mut response = page(&state, &meta, &filter, &params.attrs, &params, remote);
    federated::mark_partial(&mut response, &unanswered);
    Ok(response)
}

/// The page of the tenant's entities in the request's service paths (and of `remote`, other brokers' entities, in
/// the root path) that `filter` selects, in creation order (milliseconds, ties by id; other brokers' entities last) or nearest first for a `near` query, paged and
/// rendered as `params` say, projected to `attrs`; `Fiware-Total-Count` when `params.count`.
pub fn page(
    state: &BrokerState,
    meta: &RequestMeta,
    filter: &Filter,
    attrs: &[String],
    params: &Params,
    remote: Vec<Arc<StoredEntity>>,
) -> Response {
    let scope = paths(meta);
    let selected = |entity: &StoredEntity| scope.matches(&entity.service_path) && filter.matches(&entity.element);
    // Only the entities of the filter's types are visited; a page in creation order of this broker's entities
    // alone without a count stops at the page's end.
    let stop_after = (remote.is_empty() && filter.geo.is_none() && !params.count)
        .then(|| params.offset.saturating_add(params.limit));
    let types = filter.selector.required_types();
    let mut matching = state.entities.select_in_creation_order(&meta.tenant, types.as_deref(), selected, stop_after);
    matching.extend(remote.into_iter().filter(|entity| selected(entity)));
    matching.sort_by(|a, b| a.element.entity_id.id.cmp(&b.element.entity_id.id));
    matching.sort_by_key(|entity| entity.created_at);
    if let Some(geo) = &filter.geo {
        let far = |entity: &StoredEntity| geo.distance(&entity.element).unwrap_or(f64::INFINITY);
        matching.sort_by(|a, b| far(a).total_cmp(&far(b)));
    }
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(params.offset)
        .take(params.limit)
        .map(|entity| render_entity_with(&entity.element, attrs, params.format, &builtins(entity, params)))
        .collect();
    let mut response = Json(page).into_response();
    if params.count {
        response.headers_mut().insert("fiware-total-count", HeaderValue::from(total));
    }
    response
}

/// Orion's builtins an entity read asks for (`attrs=dateCreated,dateModified`, `metadata=`); none of another broker's
/// entity (its times are not known here).
pub fn builtins<'a>(entity: &'a StoredEntity, params: &'a Params) -> Builtins<'a> {
    let times = (!federated::is_held_elsewhere(entity)).then(|| entity.times());
    Builtins { times, metadata: params.metadata.as_deref() }
}

/// `GET /v2/entities/{id}[?type=&attrs=&metadata=&options=keyValues|values]`; with federation, a client's `GET` of an
/// entity another broker owns is fetched from it (when the request's service paths cover `/`).
pub async fn retrieve(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    let entity_type = params.entity_type()?;
    check_identifier("entity id", &id)?;
    let element = match find(&state, &meta, &id, entity_type) {
        Ok(entity) => {
            let rendered =
                render_entity_with(&entity.element, &params.attrs, params.format, &builtins(&entity, &params));
            return Ok(Json(rendered).into_response());
        }
        Err(not_found) => {
            let remote = match federation.for_client(&headers) {
                // Other brokers' entities are seen as living in the root path.
                Some(federation) if state.entities.get(&meta.tenant, &id).is_none() && paths(&meta).matches(ROOT) => {
                    federated::get_remote(federation, &meta.tenant, &id).await
                }
                _ => None,
            };
            remote.filter(|element| entity_type.is_none_or(|t| t == element.entity_id.entity_type)).ok_or(not_found)?
        }
    };
    Ok(Json(render_entity(&element, &params.attrs, params.format)).into_response())
}

/// `DELETE /v2/entities/{id}[?type=]`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = Params::parse(&uri)?;
    find_for_write(&state, &meta, &id, params.entity_type()?)?;
    state.delete_entity(&meta.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v2/notify`, `POST /v2/op/notify`: an Orion notification `{"subscriptionId","data":[entity]}`; every
/// entity is upserted (attributes merged, as NGSI10 `UPDATE` does). 200 with an empty body.
pub async fn notify(State(state): State<BrokerState>, headers: HeaderMap, body: Body) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    paths(&meta).update_path()?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    let data = match body.get("data") {
        Some(Value::Array(data)) => data,
        Some(_) => return Err(ParseError::new("data must be an array of entities").into()),
        None => return Err(ParseError::new("data is missing").into()),
    };
    if data.len() > MAX_ELEMENTS_PER_REQUEST {
        return Err(V2Error::bad_request(format!(
            "{} entities in one notification, the limit is {MAX_ELEMENTS_PER_REQUEST}",
            data.len()
        )));
    }
    let elements = data.iter().map(|entity| parse_entity(entity, false)).collect::<Result<Vec<_>, _>>()?;
    for element in elements {
        let id = element.entity_id.id.clone();
        apply(&state, &meta, &id, None, Edit::Create { element, if_exists: IfExists::Append }).await?;
    }
    Ok(StatusCode::OK.into_response())
}
