//! The NGSI-LD entity routes: `POST /ngsi-ld/v1/entities` (201 + `Location`, 409 `AlreadyExists`),
//! `GET /ngsi-ld/v1/entities` (query: type, id, idPattern, attrs, q, geo-query, paging, `count` →
//! `NGSILD-Results-Count`), `GET`/`PUT`/`PATCH` (merge)/`DELETE /ngsi-ld/v1/entities/{id}`, and the query batch
//! `POST /ngsi-ld/v1/entityOperations/query`. With federation, a client's reads also see the entities other
//! brokers hold. Entities read are rendered (`options`, `attrs`, `lang`), projected (`pick`/`omit`), compacted
//! with the request's context (`negotiation::respond_in`) and, for `Accept: application/geo+json`, answered as a
//! GeoJSON Feature (retrieve) or FeatureCollection (queries) whose geometry is the `geometryProperty`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use super::error::LdError;
use super::negotiation::{
    accept_entities, answer_compactor, body_context, link_only, read_body, respond_geojson, respond_in, tenant,
    EntityMedia, Media,
};
use super::params::Params;
use super::selection::EntityQuery;
use super::{apply, find, meta, tenant_exists};
use crate::ngsi::ld::context::Compactor;
use crate::ngsi::ld::edit::Edit;
use crate::ngsi::ld::entity::{fragment_types, parse_attributes_owned, parse_entity_owned};
use crate::ngsi::ld::geojson::{feature, feature_collection, geometry};
use crate::ngsi::ld::projection::Projection;
use crate::ngsi::ld::render::{render_entity, view, Rendering};
use crate::ngsi::ld::subscription::render::compact_entity;
use crate::ngsi::ld::{check_uri, LOCATION};
use crate::ngsi::times::EntityTimes;
use crate::roles::broker::api::federated;
use crate::roles::broker::contexts::LdContext;
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::federation::{Federation, FederationHandle};
use crate::roles::broker::state::BrokerState;

/// `POST /ngsi-ld/v1/entities`: 201 with `Location: /ngsi-ld/v1/entities/<id>`, 409 when it exists.
pub async fn create(State(state): State<BrokerState>, headers: HeaderMap, body: Body) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let element = parse_entity_owned(&context, body)?;
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

/// An entity rendered; one held by another broker without `createdAt`/`modifiedAt` (not known here).
fn render(entity: &StoredEntity, rendering: &Rendering) -> Value {
    if federated::is_held_elsewhere(entity) && rendering.sys_attrs {
        let rendering = Rendering { sys_attrs: false, ..rendering.clone() };
        return render_entity(&entity.element, &EntityTimes::default(), &rendering);
    }
    render_entity(&entity.element, &entity.times(), rendering)
}

/// How the entities of a read are shown: rendered, projected (`pick`/`omit`), then compacted with the request's
/// context in the representation asked for (GeoJSON: a Feature per entity, its geometry the `geometryProperty`).
struct Shape<'a> {
    rendering: Rendering,
    projection: Projection,
    media: EntityMedia,
    /// The GeoProperty of the geometry (GeoJSON answers only).
    geometry_property: Option<String>,
    context: &'a LdContext,
}

impl<'a> Shape<'a> {
    /// Reads the shape from the URL; a query batch's `body_attrs` project when the URL has no `attrs`.
    fn read(
        params: &Params,
        media: EntityMedia,
        context: &'a LdContext,
        body_attrs: &[String],
    ) -> Result<Shape<'a>, LdError> {
        let mut rendering = params.rendering(context, &[])?;
        if rendering.attrs.is_empty() {
            rendering.attrs = body_attrs.to_vec();
        }
        let projection = params.projection(context, !body_attrs.is_empty())?;
        let geometry_property = params.geometry_property(context, media == EntityMedia::GeoJson)?;
        Ok(Shape { rendering, projection, media, geometry_property, context })
    }

    /// One entity rendered and projected (canonical names).
    fn entity(&self, entity: &StoredEntity) -> Value {
        self.projection.apply(render(entity, &self.rendering))
    }

    /// One entity as a GeoJSON Feature, compacted with `compactor`.
    fn feature(&self, entity: &StoredEntity, compactor: &Compactor) -> Value {
        let shape = geometry(&entity.element, self.geometry_property.as_deref().unwrap_or(LOCATION));
        feature(compact_entity(compactor, self.entity(entity)), shape)
    }

    /// The answer of one entity.
    fn respond_one(&self, entity: &StoredEntity) -> Response {
        match self.media {
            EntityMedia::Ld(media) => respond_in(media, StatusCode::OK, self.entity(entity), self.context),
            EntityMedia::GeoJson => {
                let compactor = answer_compactor(Media::LdJson, self.context);
                respond_geojson(StatusCode::OK, self.feature(entity, &compactor), self.context)
            }
        }
    }

    /// The answer of a page of entities.
    fn respond_page<'e>(&self, entities: impl Iterator<Item = &'e Arc<StoredEntity>>) -> Response {
        match self.media {
            EntityMedia::Ld(media) => {
                let page = entities.map(|entity| self.entity(entity)).collect();
                respond_in(media, StatusCode::OK, Value::Array(page), self.context)
            }
            EntityMedia::GeoJson => {
                let compactor = answer_compactor(Media::LdJson, self.context);
                let features = entities.map(|entity| self.feature(entity, &compactor)).collect();
                respond_geojson(StatusCode::OK, feature_collection(features), self.context)
            }
        }
    }
}

/// `GET /ngsi-ld/v1/entities/{id}[?attrs=&options=keyValues|concise|sysAttrs]`; 404 when it does not exist or
/// has none of the `attrs`. With federation, a client's `GET` of an entity another broker owns is fetched from
/// it.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept_entities(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let shape = Shape::read(&Params::parse(&uri)?, media, &context, &[])?;
    check_uri("entity id", &id)?;
    let entity = match find(&state, &tenant, &id) {
        Ok(entity) => entity,
        Err(not_found) => {
            let remote = match federation.for_client(&headers) {
                Some(federation) if state.entities.get(&tenant, &id).is_none() => {
                    federated::get_remote(federation, &tenant, &id).await
                }
                _ => None,
            };
            Arc::new(federated::held_elsewhere(&tenant, remote.ok_or(not_found)?))
        }
    };
    let attrs = &shape.rendering.attrs;
    if !attrs.is_empty() && !view(&entity.element).iter().any(|a| attrs.contains(&a.name)) {
        return Err(LdError::not_found(format!("entity `{id}` has none of the attributes asked for")));
    }
    Ok(shape.respond_one(&entity))
}

/// `PUT /ngsi-ld/v1/entities/{id}`: replaces the entity (types and attributes); 204, or 404.
pub async fn replace(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    check_uri("entity id", &id)?;
    let (mut body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let Value::Object(object) = &mut body else { return Err(LdError::bad_data("an entity must be a JSON object")) };
    match object.get("id") {
        None => {
            object.insert("id".into(), Value::String(id.clone()));
        }
        Some(Value::String(given)) if *given == id => {}
        Some(_) => return Err(LdError::bad_data("the id in the payload differs from the id in the URL")),
    }
    let element = parse_entity_owned(&context, body)?;
    apply(&state, &meta, &id, Edit::Replace(element)).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /ngsi-ld/v1/entities/{id}` (merge entity): adds or replaces the attributes of the payload and adds its
/// types (a `type` member) to the entity's; 204, or 404.
pub async fn merge(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let meta = meta(tenant(&headers)?);
    check_uri("entity id", &id)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let Value::Object(object) = body else { return Err(LdError::bad_data("an entity must be a JSON object")) };
    if object.get("id").is_some_and(|given| given.as_str() != Some(id.as_str())) {
        return Err(LdError::bad_data("the id in the payload differs from the id in the URL"));
    }
    let types = fragment_types(&context, &object)?;
    let attributes = parse_attributes_owned(&context, object)?;
    if attributes.is_empty() && types.is_empty() {
        return Err(LdError::bad_data("no attributes in the payload"));
    }
    find(&state, &meta.tenant, &id)?;
    apply(&state, &meta, &id, Edit::Append { attributes, no_overwrite: false, types }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /ngsi-ld/v1/entities/{id}`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    link_only(&state.contexts, &headers).await?;
    find(&state, &tenant, &id)?;
    state.delete_entity(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ngsi-ld/v1/entities`: the tenant's entities the query selects, in creation order (ties by id) or
/// nearest first for `near`, paged; `count=true` adds `NGSILD-Results-Count`. With federation, a client's query
/// also gets the matching entities of the other brokers (after this broker's own, by id) before filtering and
/// paging; `FogFlow-Partial-Result` names who did not answer.
pub async fn query(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept_entities(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let params = Params::parse(&uri)?;
    let shape = Shape::read(&params, media, &context, &[])?;
    let query = EntityQuery::parse(&params, &context)?;
    federated_page(&state, federation.for_client(&headers), &tenant, &query, &shape).await
}

/// `POST /ngsi-ld/v1/entityOperations/query`: a `Query` body (`entities`, `attrs`, `q`, `geoQ`), paged and
/// rendered from the URL as `GET /ngsi-ld/v1/entities`.
pub async fn query_body(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let media = accept_entities(&headers)?;
    let tenant = tenant(&headers)?;
    let (body, body_media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, body_media, &body).await?;
    let params = Params::parse(&uri)?;
    let query = EntityQuery::from_body(&params, &body, &context)?;
    let shape = Shape::read(&params, media, &context, query.attrs())?;
    federated_page(&state, federation.for_client(&headers), &tenant, &query, &shape).await
}

/// The page of what `query` selects among the tenant's entities and, with `federation`, the other brokers'
/// (fetched first, then filtered and paged together), rendered; marked partial when some did not answer.
async fn federated_page(
    state: &BrokerState,
    federation: Option<&Federation>,
    tenant: &str,
    query: &EntityQuery,
    shape: &Shape<'_>,
) -> Result<Response, LdError> {
    let (remote, unanswered) = match federation {
        Some(federation) => federated::remote_entities(state, federation, tenant, query.entities()).await,
        None => (Vec::new(), Vec::new()),
    };
    let mut response = page(state, tenant, query, shape, remote)?;
    federated::mark_partial(&mut response, &unanswered);
    Ok(response)
}

/// The page of the tenant's entities (and of `remote`, other brokers' entities, which come after this broker's
/// own) that `query` selects, rendered.
fn page(
    state: &BrokerState,
    tenant: &str,
    query: &EntityQuery,
    shape: &Shape<'_>,
    remote: Vec<Arc<StoredEntity>>,
) -> Result<Response, LdError> {
    if remote.is_empty() && !tenant_exists(state, tenant) {
        return Err(LdError::nonexistent_tenant(tenant));
    }
    // Filter first, then order only what the page needs: a query over a large store costs one pass plus a
    // partial sort, not a full sort of every entity.
    // Only the entities of the query's types are visited; a page in creation order of this broker's entities alone
    // without a count stops at the page's end.
    let stop_after =
        (remote.is_empty() && query.geo.is_none() && !query.count).then(|| query.offset.saturating_add(query.limit));
    let types = query.types();
    let mut matching: Vec<Arc<StoredEntity>> = state.entities.select_in_creation_order(
        tenant,
        types.as_deref(),
        |entity| query.matches(&entity.element),
        stop_after,
    );
    matching.extend(remote.into_iter().filter(|entity| query.matches(&entity.element)));
    let total = matching.len();
    let needed = query.offset.saturating_add(query.limit).min(total);
    if needed == 0 {
        matching.clear();
    }
    match &query.geo {
        Some(geo) => {
            let far = |entity: &StoredEntity| geo.distance(&entity.element).unwrap_or(f64::INFINITY);
            let order = |a: &Arc<StoredEntity>, b: &Arc<StoredEntity>| {
                far(a).total_cmp(&far(b)).then_with(|| creation_order(a, b))
            };
            if needed > 0 && needed < matching.len() {
                matching.select_nth_unstable_by(needed - 1, order);
                matching.truncate(needed);
            }
            matching.sort_by(order);
        }
        None => {
            if needed > 0 && needed < matching.len() {
                matching.select_nth_unstable_by(needed - 1, creation_order);
                matching.truncate(needed);
            }
            matching.sort_by(creation_order);
        }
    }
    let mut response = shape.respond_page(matching.iter().skip(query.offset).take(query.limit));
    if query.count {
        response.headers_mut().insert("ngsild-results-count", HeaderValue::from(total));
    }
    Ok(response)
}

/// Creation order; entities held elsewhere (no creation time here) last, by id.
fn creation_order(a: &Arc<StoredEntity>, b: &Arc<StoredEntity>) -> std::cmp::Ordering {
    a.created_at.cmp(&b.created_at).then_with(|| a.element.entity_id.id.cmp(&b.element.entity_id.id))
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
