//! The NGSI-LD subscription routes (ETSI GS CIM 009 clauses 6.10 and 6.11): `POST /ngsi-ld/v1/subscriptions`
//! (201 + `Location`, 409 `AlreadyExists` for a taken id), `GET /ngsi-ld/v1/subscriptions` (`limit`, `offset`,
//! `count` → `NGSILD-Results-Count`), `GET`, `PATCH` (204) and `DELETE` (204) of
//! `/ngsi-ld/v1/subscriptions/{id}`. Parsing is [`crate::ngsi::ld::subscription`]; the subscription engine and
//! notifier are the broker's, shared with NGSI10 and NGSIv2. Only NGSI-LD subscriptions are listed and
//! addressable here, per tenant (`NGSILD-Tenant`). Subscriptions are shown with their names compacted with the
//! request's context (a `Link` header, named back; or echoed as `@context` for `application/ld+json`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::entities::encode_path;
use super::error::LdError;
use super::negotiation::{accept, answer_compactor, body_context, link_only, read_body, respond_named, tenant};
use super::params::Params;
use super::selection::{number, page_limit};
use super::tenant_exists;
use crate::ngsi::ld::check_uri;
use crate::ngsi::ld::context::Compactor;
use crate::ngsi::ld::subscription::render::{render_subscription, Shown};
use crate::ngsi::ld::subscription::LdSubscription;
use crate::roles::broker::contexts::LdContext;
use crate::roles::broker::state::{BrokerState, LiveSubscription};

/// The subscription as shown, with its delivery counters and names compacted by `compactor`.
fn describe(live: &LiveSubscription, compactor: &Compactor) -> Value {
    let record = &live.compiled.record;
    let Some(ld) = &record.ld else { return Value::Null };
    let status = live.delivery.status();
    let shown = Shown {
        times_sent: status.times_sent,
        times_failed: status.times_failed,
        failing: status.fails_counter > 0,
        last_notification: status.last_notification,
        last_success: status.last_success,
        last_failure: status.last_failure,
    };
    render_subscription(&record.id, ld, &shown, chrono::Utc::now().timestamp_millis(), compactor)
}

/// The NGSI-LD subscription `id` of `tenant`, or 404 (`NonexistentTenant` when the tenant does not exist).
fn find(state: &BrokerState, tenant: &str, id: &str) -> Result<std::sync::Arc<LiveSubscription>, LdError> {
    check_uri("subscription id", id)?;
    match state.subscription(tenant, id).filter(|live| live.compiled.record.ld.is_some()) {
        Some(live) => Ok(live),
        None if !tenant_exists(state, tenant) => Err(LdError::nonexistent_tenant(tenant)),
        None => Err(LdError::not_found(format!("subscription `{id}` does not exist"))),
    }
}

/// The `@context` a subscription stores (no remote URL left; null: the core context) and the one it echoes
/// when that named remote contexts (a `Link` URL, or a body `@context` with URLs; null otherwise).
fn stored_context(context: &LdContext) -> (Value, Value) {
    ((*context.inline).clone(), context.written.clone())
}

/// Refuses an `expiresAt` that is not in the future.
fn check_expiry(subscription: &LdSubscription) -> Result<(), LdError> {
    match subscription.expires_at {
        Some(at) if at <= chrono::Utc::now().timestamp_millis() => {
            Err(LdError::bad_data("expiresAt must be in the future"))
        }
        _ => Ok(()),
    }
}

/// `POST /ngsi-ld/v1/subscriptions`: 201 with `Location: /ngsi-ld/v1/subscriptions/<id>`.
pub async fn create(State(state): State<BrokerState>, headers: HeaderMap, body: Body) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let (inline, written) = stored_context(&context);
    let (id, mut subscription) = LdSubscription::parse(&body, &context, inline)?;
    subscription.written_context = written;
    check_expiry(&subscription)?;
    let id = state.subscribe_ld(&tenant, id, subscription).await?;
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/ngsi-ld/v1/subscriptions/{}", encode_path(&id))) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /ngsi-ld/v1/subscriptions[?limit=&offset=&count=true]`: the tenant's NGSI-LD subscriptions in creation
/// order.
pub async fn list(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let compactor = answer_compactor(media, &context);
    let params = Params::parse(&uri)?;
    let count = params.flag("count")?;
    let (limit, offset) = (page_limit(&params, count)?, number(&params, "offset", 0)?);
    if !tenant_exists(&state, &tenant) {
        return Err(LdError::nonexistent_tenant(&tenant));
    }
    let all: Vec<_> =
        state.subscriptions(&tenant).into_iter().filter(|live| live.compiled.record.ld.is_some()).collect();
    let page: Vec<Value> = all.iter().skip(offset).take(limit).map(|live| describe(live, &compactor)).collect();
    let mut response = respond_named(media, StatusCode::OK, Value::Array(page), &context);
    if count {
        response.headers_mut().insert("ngsild-results-count", HeaderValue::from(all.len()));
    }
    Ok(response)
}

/// `GET /ngsi-ld/v1/subscriptions/{id}`: the subscription, or 404.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let media = accept(&headers)?;
    let tenant = tenant(&headers)?;
    let context = link_only(&state.contexts, &headers).await?;
    let live = find(&state, &tenant, &id)?;
    let body = describe(&live, &answer_compactor(media, &context));
    Ok(respond_named(media, StatusCode::OK, body, &context))
}

/// `PATCH /ngsi-ld/v1/subscriptions/{id}`: replaces the members given (`notification` member by member); 204, or
/// 404.
pub async fn update(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    find(&state, &tenant, &id)?;
    let (body, media) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = body_context(&state.contexts, &headers, media, &body).await?;
    let (inline, written) = stored_context(&context);
    let outcome = state
        .update_ld(&tenant, &id, |current| {
            let changes_context = !inline.is_null();
            let mut updated = current.patch(&body, &context, inline).map_err(LdError::from)?;
            if changes_context {
                updated.written_context = written;
            }
            if body.get("expiresAt").is_some() {
                check_expiry(&updated)?;
            }
            Ok::<_, LdError>(updated)
        })
        .await?;
    match outcome? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(LdError::not_found(format!("subscription `{id}` does not exist"))),
    }
}

/// `DELETE /ngsi-ld/v1/subscriptions/{id}`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    let tenant = tenant(&headers)?;
    link_only(&state.contexts, &headers).await?;
    find(&state, &tenant, &id)?;
    if state.unsubscribe(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(LdError::not_found(format!("subscription `{id}` does not exist")))
    }
}
