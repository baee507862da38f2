//! NGSI-LD context source registrations on the broker, backed by discovery (`ngsi::ld::csource` has the codec):
//! `POST /ngsi-ld/v1/csourceRegistrations` (201 + `Location`, 409 `AlreadyExists`), `GET` (list, by `type`, `id`,
//! `idPattern`, paged by `limit`/`offset`, `count=true` → `NGSILD-Results-Count`), `GET`/`PATCH`/`DELETE
//! /ngsi-ld/v1/csourceRegistrations/{id}`.
//!
//! Registrations are stored at discovery as NGSI9 named registrations whose provider is the `endpoint`, so every
//! broker lists the same registrations and discovery-based lookups (federated queries and subscriptions) see them.
//! The registrations brokers make of the entities they hold are listed too; they are managed by those brokers,
//! so changing or deleting one is refused (422 `OperationNotSupported`). Registrations are not per tenant.
//! Without discovery (`broker.use_discovery` off) every route answers 422 `OperationNotSupported`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use super::error::LdError;
use super::negotiation::{accept, body_context, link_only, read_body, respond};
use super::params::Params;
use super::selection::{number, page_limit};
use crate::clients::discovery::DiscoveryError;
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::csource::{self, CSourceRegistration, ID_PREFIX};
use crate::ngsi::v1::EntityId;
use crate::ngsi::v9::RegistrationQuery;
use crate::roles::broker::federation::{Federation, FederationHandle};
use crate::roles::broker::state::BrokerState;

impl From<DiscoveryError> for LdError {
    fn from(error: DiscoveryError) -> Self {
        match error {
            DiscoveryError::Refused { status: 400, what } => {
                LdError::bad_data(format!("discovery refused the registration ({what})"))
            }
            other => {
                tracing::warn!(error = %other, "discovery did not serve a context source registration request");
                LdError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "InternalError",
                    "Discovery unavailable",
                    other.to_string(),
                )
            }
        }
    }
}

fn registry(federation: &FederationHandle) -> Result<&Federation, LdError> {
    federation.0.as_deref().ok_or_else(|| {
        LdError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "OperationNotSupported",
            "Operation not supported",
            "context source registrations need discovery (broker.use_discovery)",
        )
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The registration `id` as discovery holds it, or 404.
async fn find(federation: &Federation, id: &str) -> Result<Value, LdError> {
    check_uri("registration id", id)?;
    let query = match csource::parse_held_id(id) {
        Some((entity, _)) => RegistrationQuery {
            entities: vec![EntityId { id: entity.into(), entity_type: String::new(), is_pattern: false }],
            registration_id: String::new(),
        },
        None => RegistrationQuery { entities: Vec::new(), registration_id: id.into() },
    };
    let records = federation.discovery().query_registrations(&query).await?;
    csource::from_records(&records)
        .remove(id)
        .ok_or_else(|| LdError::not_found(format!("context source registration `{id}` does not exist")))
}

fn refuse_held(id: &str) -> Result<(), LdError> {
    match csource::parse_held_id(id) {
        Some(_) => Err(LdError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "OperationNotSupported",
            "Operation not supported",
            format!("`{id}` is a broker's registration of an entity it holds; that broker manages it"),
        )),
        None => Ok(()),
    }
}

/// Stores a validated registration at discovery.
async fn store(federation: &Federation, registration: &CSourceRegistration) -> Result<(), LdError> {
    Ok(federation.discovery().register_context(&registration.to_ngsi9(now())).await?)
}

/// `POST /ngsi-ld/v1/csourceRegistrations`: 201 with `Location`, 409 when the id exists.
pub async fn create(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let federation = registry(&federation)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let id = match body.get("id") {
        None => format!("{ID_PREFIX}{}", uuid::Uuid::new_v4()),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(LdError::bad_data("id must be a string")),
    };
    refuse_held(&id)?;
    let registration = csource::parse(&context, &body, &id, now())?;
    if find(federation, &id).await.is_ok() {
        return Err(LdError::already_exists(format!("context source registration `{id}` exists")));
    }
    store(federation, &registration).await?;
    let mut response = StatusCode::CREATED.into_response();
    let location = format!("/ngsi-ld/v1/csourceRegistrations/{}", crate::clients::discovery::encode_segment(&id));
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The discovery query of a listing: any of the `type`s with any of the `id`s (or the `idPattern`, or any id).
fn listing_query(params: &Params, context: &crate::ngsi::ld::context::Context) -> Result<RegistrationQuery, LdError> {
    let types = params.list("type", context, true)?;
    let ids: Vec<(String, bool)> = match (params.get("idPattern"), params.list("id", context, false)?) {
        (Some(_), ids) if !ids.is_empty() => return Err(LdError::bad_data("id and idPattern exclude each other")),
        (Some(pattern), _) => vec![(pattern.to_string(), true)],
        (None, ids) if ids.is_empty() => vec![(".*".to_string(), true)],
        (None, ids) => ids.into_iter().map(|id| (id, false)).collect(),
    };
    let types = if types.is_empty() { vec![String::new()] } else { types };
    let mut entities = Vec::with_capacity(ids.len() * types.len());
    for (id, is_pattern) in &ids {
        for entity_type in &types {
            entities.push(EntityId { id: id.clone(), entity_type: entity_type.clone(), is_pattern: *is_pattern });
        }
    }
    crate::ngsi::pattern::EntitySelector::compile(&entities)?;
    Ok(RegistrationQuery { entities, registration_id: String::new() })
}

/// `GET /ngsi-ld/v1/csourceRegistrations[?type=&id=&idPattern=&limit=&offset=&count=true]`: the registrations
/// with an entity the filter selects, ordered by id.
pub async fn list(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let federation = registry(&federation)?;
    let media = accept(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let params = Params::parse(&uri)?;
    let query = listing_query(&params, &context)?;
    let count = params.flag("count")?;
    let limit = page_limit(&params, count)?;
    let offset = number(&params, "offset", 0)?;
    let records = federation.discovery().query_registrations(&query).await?;
    let all = csource::from_records(&records);
    let total = all.len();
    let page: Vec<Value> = all.into_values().skip(offset).take(limit).collect();
    let mut response = respond(media, StatusCode::OK, Value::Array(page));
    if count {
        response.headers_mut().insert("ngsild-results-count", HeaderValue::from(total));
    }
    Ok(response)
}

/// `GET /ngsi-ld/v1/csourceRegistrations/{id}`: the registration, or 404.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let federation = registry(&federation)?;
    let media = accept(&headers)?;
    link_only(&state.contexts, &headers).await?;
    Ok(respond(media, StatusCode::OK, find(federation, &id).await?))
}

/// `PATCH /ngsi-ld/v1/csourceRegistrations/{id}`: the fragment's members replace the registration's; 204, or
/// 404.
pub async fn update(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let federation = registry(&federation)?;
    refuse_held(&id)?;
    let (fragment, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &fragment).await?;
    let current = find(federation, &id).await?;
    let document = csource::merged(&current, &fragment)?;
    let registration = csource::parse(&context, &document, &id, now())?;
    store(federation, &registration).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /ngsi-ld/v1/csourceRegistrations/{id}`: 204, or 404.
pub async fn delete(
    Extension(federation): Extension<FederationHandle>,
    Path(id): Path<String>,
) -> Result<Response, LdError> {
    let federation = registry(&federation)?;
    check_uri("registration id", &id)?;
    refuse_held(&id)?;
    if federation.discovery().delete_named(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(LdError::not_found(format!("context source registration `{id}` does not exist")))
    }
}
