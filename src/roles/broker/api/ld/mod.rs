//! The NGSI-LD core API (ETSI GS CIM 009) under `/ngsi-ld/v1`, over the same entities as NGSI10 and NGSIv2:
//! its routes, and what its handlers share (tenant from `NGSILD-Tenant`, entity look-ups, edits through
//! [`BrokerState::edit_entity`] and [`BrokerState::delete_entity`] so that NGSI10 subscriptions and discovery see
//! every write).
//!
//! The codec is [`crate::ngsi::ld`]; handlers are in [`entities`], [`attributes`], [`batch`], [`subscriptions`],
//! [`discovery`] (`/types`, `/attributes`), [`csource`] (context source registrations, kept at discovery) and
//! [`jsonld_contexts`] (the @context management API, `/jsonldContexts`);
//! content negotiation and contexts in [`negotiation`]; query parameters in
//! [`params`] and [`selection`]; ProblemDetails in [`error`].

pub mod attributes;
pub mod batch;
pub mod csource;
pub mod discovery;
pub mod entities;
pub mod error;
pub mod jsonld_contexts;
pub mod negotiation;
pub mod params;
pub mod selection;
pub mod subscriptions;

use std::sync::Arc;

use axum::routing::{get, patch, post};
use axum::Router;

use self::error::LdError;
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::edit::{Edit, Refusal};
use crate::roles::broker::entities::StoredEntity;
use crate::roles::broker::state::{BrokerState, RequestMeta};

/// The `/ngsi-ld/v1` routes, answering wrong methods with ProblemDetails 405s.
pub fn routes(state: BrokerState) -> Router {
    Router::new()
        .route("/ngsi-ld/v1/entities", get(entities::query).post(entities::create))
        .route(
            "/ngsi-ld/v1/entities/{id}",
            get(entities::retrieve).delete(entities::delete).put(entities::replace).patch(entities::merge),
        )
        .route("/ngsi-ld/v1/entities/{id}/attrs", post(attributes::append).patch(attributes::update))
        .route("/ngsi-ld/v1/entities/{id}/attrs/{attr}", patch(attributes::patch).delete(attributes::delete))
        .route("/ngsi-ld/v1/entityOperations/create", post(batch::create))
        .route("/ngsi-ld/v1/entityOperations/upsert", post(batch::upsert))
        .route("/ngsi-ld/v1/entityOperations/update", post(batch::update))
        .route("/ngsi-ld/v1/entityOperations/merge", post(batch::merge))
        .route("/ngsi-ld/v1/entityOperations/delete", post(batch::delete))
        .route("/ngsi-ld/v1/entityOperations/query", post(entities::query_body))
        .route("/ngsi-ld/v1/subscriptions", get(subscriptions::list).post(subscriptions::create))
        .route(
            "/ngsi-ld/v1/subscriptions/{id}",
            get(subscriptions::retrieve).patch(subscriptions::update).delete(subscriptions::delete),
        )
        .route("/ngsi-ld/v1/types", get(discovery::types))
        .route("/ngsi-ld/v1/types/{type}", get(discovery::entity_type))
        .route("/ngsi-ld/v1/attributes", get(discovery::attributes))
        .route("/ngsi-ld/v1/attributes/{attr}", get(discovery::attribute))
        .route("/ngsi-ld/v1/csourceRegistrations", get(csource::list).post(csource::create))
        .route(
            "/ngsi-ld/v1/csourceRegistrations/{id}",
            get(csource::retrieve).patch(csource::update).delete(csource::delete),
        )
        .route("/ngsi-ld/v1/jsonldContexts", get(jsonld_contexts::list).post(jsonld_contexts::create))
        .route("/ngsi-ld/v1/jsonldContexts/{id}", get(jsonld_contexts::retrieve).delete(jsonld_contexts::delete))
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state)
}

/// Whether a path belongs to the NGSI-LD API (for the unknown-path fallback).
pub fn is_ld_path(path: &str) -> bool {
    path == "/ngsi-ld" || path.starts_with("/ngsi-ld/")
}

/// The broker request metadata of an NGSI-LD request's tenant.
pub fn meta(tenant: String) -> RequestMeta {
    RequestMeta { tenant, ..RequestMeta::default() }
}

/// Whether a tenant exists: the default one always, another once something was written in it (it has
/// entities or subscriptions).
pub fn tenant_exists(state: &BrokerState, tenant: &str) -> bool {
    tenant.is_empty() || state.entities.has_tenant(tenant) || !state.subscriptions(tenant).is_empty()
}

/// The stored entity `id`, or 404 (`NonexistentTenant` when the tenant does not exist).
pub fn find(state: &BrokerState, tenant: &str, id: &str) -> Result<Arc<StoredEntity>, LdError> {
    check_uri("entity id", id)?;
    match state.entities.get(tenant, id) {
        Some(entity) => Ok(entity),
        None if !tenant_exists(state, tenant) => Err(LdError::nonexistent_tenant(tenant)),
        None => Err(LdError::not_found(format!("entity `{id}` does not exist"))),
    }
}

/// Applies an edit to entity `id` through the broker state. Answers whether it created the entity and the names
/// it wrote or removed, or the edit's refusal (nothing written).
pub async fn apply(
    state: &BrokerState,
    meta: &RequestMeta,
    id: &str,
    edit: Edit,
) -> Result<Result<(bool, Vec<String>), Refusal>, LdError> {
    check_uri("entity id", id)?;
    Ok(state.edit_entity_touched(meta, id, |stored| edit.apply(id, stored)).await?)
}
