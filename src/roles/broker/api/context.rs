//! The NGSI10 operations posted as JSON: `updateContext` (and `/v1/updateContext`), `queryContext`,
//! `subscribeContext`, `unsubscribeContext`, `notifyContext` (relay from other brokers) and
//! `notifyContextAvailability` (callback from discovery).

use crate::ngsi::v9::NotifyContextAvailabilityRequest;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;

use super::error::V1Error;
use super::federated;
use super::headers::request_meta;
use crate::http::read_json;
use crate::ngsi::v1::{
    ContextElementResponse, NotifyContextRequest, NotifyContextResponse, QueryContextRequest, QueryContextResponse,
    StatusCode as NgsiStatus, SubscribeContextRequest, SubscribeContextResponse, SubscribeResponse,
    UnsubscribeContextRequest, UnsubscribeContextResponse, UpdateContextRequest,
};
use crate::roles::broker::federation::FederationHandle;
use crate::roles::broker::state::BrokerState;

/// `POST /ngsi10/updateContext`; with federation, a client's update of an entity another broker owns is
/// forwarded there.
pub async fn update_context(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let request: UpdateContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    let response = match federation.0.as_deref().filter(|_| !meta.subscriber.is_internal) {
        Some(federation) => federated::update(&state, federation, &meta, &request).await?,
        None => state.update(&meta, &request).await?,
    };
    Ok(Json(response).into_response())
}

/// `POST /ngsi10/queryContext[?limit=&offset=]`; the total number of matches is in `Fiware-Total-Count`. With
/// federation, a client's query also gets the other brokers' matches; `FogFlow-Partial-Result` names those
/// that did not answer.
pub async fn query_context(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let (offset, limit) = paging(query.as_deref())?;
    let request: QueryContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    let (page, unanswered) = match federation.0.as_deref().filter(|_| !meta.subscriber.is_internal) {
        Some(federation) => federated::query(&state, federation, &meta.tenant, &request, offset, limit).await?,
        None => (state.query(&meta.tenant, &request, offset, limit)?, Vec::new()),
    };
    let response = QueryContextResponse {
        context_responses: page
            .elements
            .into_iter()
            .map(|element| ContextElementResponse { context_element: element, status_code: NgsiStatus::ok() })
            .collect(),
        error_code: Some(NgsiStatus::ok()),
    };
    let mut response = Json(response).into_response();
    response.headers_mut().insert("fiware-total-count", HeaderValue::from(page.total));
    federated::mark_partial(&mut response, &unanswered);
    Ok(response)
}

/// Parses `offset` and `limit` from the query string.
pub fn paging(query: Option<&str>) -> Result<(usize, Option<usize>), V1Error> {
    let mut offset = 0;
    let mut limit = None;
    for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| V1Error::bad_request(format!("{key} must be a non-negative integer, not `{value}`")))
        };
        match key {
            "offset" => offset = number()?,
            "limit" => limit = Some(number()?),
            "details" => {}
            other => {
                return Err(V1Error::bad_request(format!("unknown query parameter `{other}` (expected limit, offset)")))
            }
        }
    }
    Ok((offset, limit))
}

/// `POST /ngsi10/subscribeContext`; with federation, a client's subscription is also linked (in the
/// background) to the other brokers holding matching entities.
pub async fn subscribe_context(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let request: SubscribeContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    let duration = request.duration.clone();
    let throttling = request.throttling.clone();
    let federated =
        federation.0.filter(|_| !meta.subscriber.is_internal).map(|federation| (federation, request.clone()));
    let subscription_id = state.subscribe(&meta, request).await?;
    if let Some((federation, request)) = federated {
        let (id, tenant) = (subscription_id.clone(), meta.tenant.clone());
        tokio::spawn(async move { federation.subscriptions.link(&id, &tenant, &request).await });
    }
    Ok(Json(SubscribeContextResponse {
        subscribe_response: SubscribeResponse { subscription_id, duration, throttling },
    })
    .into_response())
}

/// `POST /ngsi10/unsubscribeContext`: 200 echoing the id, or 404 for an unknown one.
pub async fn unsubscribe_context(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let request: UnsubscribeContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    let found = state.unsubscribe(&meta.tenant, &request.subscription_id).await?;
    let (status, code) = if found {
        unlink_in_background(&federation, &request.subscription_id);
        (StatusCode::OK, NgsiStatus::ok())
    } else {
        (
            StatusCode::NOT_FOUND,
            NgsiStatus::new(
                404,
                "No context element found",
                format!("subscription `{}` does not exist", request.subscription_id),
            ),
        )
    };
    Ok((status, Json(UnsubscribeContextResponse { subscription_id: request.subscription_id, status_code: code }))
        .into_response())
}

/// `POST /ngsi10/notifyContext`: elements notified by another broker, relayed to local subscribers.
pub async fn notify_context(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let meta = request_meta(&headers)?;
    let request: NotifyContextRequest = read_json(&headers, body, state.max_body_bytes).await?;
    let elements: Vec<_> = request.context_responses.into_iter().map(|response| response.context_element).collect();
    for element in &elements {
        crate::ngsi::limits::check_name("entity id", &element.entity_id.id)?;
    }
    // A notification of one of our internal subscriptions at another broker goes to the one subscription it
    // belongs to (exactly once); anything else is relayed to every subscription that selects it, as FogFlow does.
    let owner = federation.0.as_deref().and_then(|federation| federation.subscriptions.route(&request.subscription_id));
    let routed = owner.is_some_and(|id| state.relay_to_subscription(&meta.tenant, &id, &elements));
    if !routed {
        state.relay(&meta.tenant, &elements);
    }
    Ok(Json(NotifyContextResponse { response_code: NgsiStatus::ok() }).into_response())
}

/// Cancels a subscription's links to other brokers, in the background.
pub fn unlink_in_background(federation: &FederationHandle, id: &str) {
    if let Some(federation) = federation.0.clone() {
        let id = id.to_string();
        tokio::spawn(async move { federation.subscriptions.unlink(&id).await });
    }
}

/// `POST /ngsi10/notifyContextAvailability`: discovery's callback for the availability subscriptions of
/// federated client subscriptions; each newly announced broker (201 or 301) gets an internal subscription, and a
/// broker that no longer holds anything selected (410) loses it.
pub async fn notify_context_availability(
    State(state): State<BrokerState>,
    Extension(federation): Extension<FederationHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V1Error> {
    let notification: NotifyContextAvailabilityRequest = read_json(&headers, body, state.max_body_bytes).await?;
    if let Some(federation) = federation.0 {
        let providers: Vec<String> = notification
            .context_registration_responses
            .iter()
            .map(|response| response.context_registration.providing_application.clone())
            .collect();
        tokio::spawn(async move {
            let request_of = |tenant: &str, id: &str| {
                state.subscription(tenant, id).map(|live| live.compiled.record.request.clone())
            };
            let links = &federation.subscriptions;
            match notification.error_code.code {
                201 | 301 => links.on_availability(&notification.subscribe_id, &providers, request_of).await,
                410 => links.on_removed(&notification.subscribe_id, &providers, request_of).await,
                _ => {}
            }
        });
    }
    Ok(Json(NotifyContextResponse { response_code: NgsiStatus::ok() }).into_response())
}
