//! The NGSI-LD entity routes: `POST /ngsi-ld/v1/entities` (201 + `Location`, 409 `AlreadyExists`),
//! `GET /ngsi-ld/v1/entities` (query: type, id, idPattern, attrs, q, geo-query, paging, `count` →
//! `NGSILD-Results-Count`), `GET`/`PUT`/`PATCH` (merge)/`DELETE /ngsi-ld/v1/entities/{id}`, and the query batch
//! `POST /ngsi-ld/v1/entityOperations/query`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::LdError;
use super::negotiation::{accept, body_context, link_only, read_body, respond, tenant, Media};
use super::params::Params;
use super::selection::EntityQuery;
use super::{apply, find, meta, tenant_exists};
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::edit::Edit;
use crate::ngsi::ld::entity::{parse_attributes, parse_entity};
use crate::ngsi::ld::render::{render_entity, view, Rendering};
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::state::BrokerState;

/// `POST /ngsi-ld/v1/entities`: 201 with `Location: /ngsi-ld/v1/entities/<id>`, 409 when it exists.
pub async fn create(State(state): State<BrokerState>, headers: HeaderMap, body: Body) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&headers, media, &body)?;
    let element = parse_entity(&context, &body)?;
    let id = element.entity_id.id.clone();
    apply(&state, &meta, &id, Edit::Create(element)).await??;
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/ngsi-ld/v1/entities/{}", encode_path(&id))) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// An id as a path segment: bytes outside visible ASCII, and `/ ? # %`, percent-encoded.
pub fn encode_path(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_graphic() && !b"/?#%".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `GET /ngsi-ld/v1/entities/{id}[?attrs=&options=keyValues|concise|sysAttrs]`; 404 when it does not exist or
/// has none of the `attrs`.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&headers)?;
    let rendering = Params::parse(&uri)?.rendering(&context, &[])?;
    let entity = find(&state, &tenant, &id)?;
    if !rendering.attrs.is_empty() && !view(&entity.element).iter().any(|a| rendering.attrs.contains(&a.name)) {
        return Err(LdError::not_found(format!("entity `{id}` has none of the attributes asked for")));
    }
    let rendered = render_entity(&entity.element, entity.created_at, entity.modified_at, &rendering);
    Ok(respond(media, StatusCode::OK, rendered))
}

/// `PUT /ngsi-ld/v1/entities/{id}`: replaces the entity (type and attributes); 204, or 404.
pub async fn replace(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    check_uri("entity id", &id)?;
    let (mut body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&headers, media, &body)?;
    let Value::Object(object) = &mut body else { return Err(LdError::bad_data("an entity must be a JSON object")) };
    match object.get("id") {
        None => {
            object.insert("id".into(), Value::String(id.clone()));
        }
        Some(Value::String(given)) if *given == id => {}
        Some(_) => return Err(LdError::bad_data("the id in the payload differs from the id in the URL")),
    }
    let element = parse_entity(&context, &body)?;
    apply(&state, &meta, &id, Edit::Replace(element)).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /ngsi-ld/v1/entities/{id}` (merge entity): adds or replaces the attributes of the payload; 204, or 404.
pub async fn merge(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    check_uri("entity id", &id)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&headers, media, &body)?;
    let Value::Object(object) = &body else { return Err(LdError::bad_data("an entity must be a JSON object")) };
    if object.get("id").is_some_and(|given| given.as_str() != Some(id.as_str())) {
        return Err(LdError::bad_data("the id in the payload differs from the id in the URL"));
    }
    let attributes = parse_attributes(&context, object)?;
    if attributes.is_empty() {
        return Err(LdError::bad_data("no attributes in the payload"));
    }
    find(&state, &meta.tenant, &id)?;
    apply(&state, &meta, &id, Edit::Append { attributes, no_overwrite: false }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /ngsi-ld/v1/entities/{id}`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    link_only(&headers)?;
    find(&state, &tenant, &id)?;
    state.delete_entity(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ngsi-ld/v1/entities`: the tenant's entities the query selects, in creation order (ties by id) or
/// nearest first for `near`, paged; `count=true` adds `NGSILD-Results-Count`.
pub async fn query(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&headers)?;
    let params = Params::parse(&uri)?;
    let rendering = params.rendering(&context, &[])?;
    let query = EntityQuery::parse(&params, &context)?;
    page(&state, &tenant, &query, &rendering, media)
}

/// `POST /ngsi-ld/v1/entityOperations/query`: a `Query` body (`entities`, `attrs`, `q`, `geoQ`), paged and
/// rendered from the URL as `GET /ngsi-ld/v1/entities`.
pub async fn query_body(
    State(state): State<BrokerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let tenant = tenant(&headers)?;
    let (body, body_media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&headers, body_media, &body)?;
    let params = Params::parse(&uri)?;
    let mut rendering = params.rendering(&context, &[])?;
    let query = EntityQuery::from_body(&params, &body, &context)?;
    if rendering.attrs.is_empty() {
        rendering.attrs = query.attrs().to_vec();
    }
    page(&state, &tenant, &query, &rendering, media)
}

/// The page of the tenant's entities that `query` selects, rendered.
fn page(
    state: &BrokerState,
    tenant: &str,
    query: &EntityQuery,
    rendering: &Rendering,
    media: Media,
) -> Result<Response, LdError> {
    if !tenant_exists(state, tenant) {
        return Err(LdError::nonexistent_tenant(tenant));
    }
    // Filter first, then order only what the page needs: a query over a large store costs one pass plus a
    // partial sort, not a full sort of every entity.
    let mut matching: Vec<std::sync::Arc<StoredEntity>> =
        state.entities.select(tenant, |entity| query.matches(&entity.element));
    let total = matching.len();
    let needed = query.offset.saturating_add(query.limit).min(total);
    if needed == 0 {
        matching.clear();
    }
    match &query.geo {
        Some(geo) => {
            let far = |entity: &StoredEntity| geo.distance(&entity.element).unwrap_or(f64::INFINITY);
            let order = |a: &std::sync::Arc<StoredEntity>, b: &std::sync::Arc<StoredEntity>| {
                far(a).total_cmp(&far(b)).then(a.created_at.cmp(&b.created_at))
            };
            if needed > 0 && needed < matching.len() {
                matching.select_nth_unstable_by(needed - 1, order);
                matching.truncate(needed);
            }
            matching.sort_by(order);
        }
        None => {
            if needed > 0 && needed < matching.len() {
                matching.select_nth_unstable_by_key(needed - 1, |entity| entity.created_at);
                matching.truncate(needed);
            }
            matching.sort_by_key(|entity| entity.created_at);
        }
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|entity| render_entity(&entity.element, entity.created_at, entity.modified_at, rendering))
        .collect();
    let mut response = respond(media, StatusCode::OK, Value::Array(page));
    if query.count {
        response.headers_mut().insert("ngsild-results-count", HeaderValue::from(total));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_percent_encoded() {
        assert_eq!(encode_path("urn:ngsi-ld:Room:1"), "urn:ngsi-ld:Room:1");
        assert_eq!(encode_path("urn:a/é?#%"), "urn:a%2F%C3%A9%3F%23%25");
    }
}
