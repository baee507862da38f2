//! The NGSIv2 subscription routes (Orion's `/v2/subscriptions`): create (201 + `Location`,
//! `options=skipInitialNotification`), list (`limit`/`offset`/`options=count`), retrieve, PATCH (204), delete
//! (204). Parsing is [`crate::ngsi::v2::subscription`]; the subscription engine is the broker's, shared with
//! NGSI10. Only NGSIv2 subscriptions are listed and addressable here.

use axum::body::Body;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::V2Error;
use super::params::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{meta, paths, read_json};
use crate::ngsi::v2::service_path::EVERYTHING;
use crate::ngsi::v2::subscription::V2Subscription;
use crate::roles::broker::state::{BrokerState, LiveSubscription};

/// Orion's description of a missing subscription.
const NOT_FOUND: &str = "The requested subscription has not been found. Check id";

/// The URL parameters of the subscription routes.
#[derive(Debug, Default)]
struct SubscriptionParams {
    skip_initial: bool,
    count: bool,
    limit: Option<usize>,
    offset: usize,
}

fn params(uri: &Uri) -> Result<SubscriptionParams, V2Error> {
    let UrlQuery(pairs) = UrlQuery::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|error| V2Error::bad_request(format!("invalid URL parameters: {error}")))?;
    let mut params = SubscriptionParams::default();
    let number = |key: &str, value: &str| {
        value.parse::<usize>().map_err(|_| V2Error::bad_request(format!("invalid value for URL parameter {key}")))
    };
    for (key, value) in &pairs {
        match key.as_str() {
            "options" => {
                for option in value.split(',') {
                    match option {
                        "skipInitialNotification" => params.skip_initial = true,
                        "count" => params.count = true,
                        other => {
                            return Err(V2Error::bad_request(format!(
                                "invalid value for URL parameter options: `{other}`"
                            )))
                        }
                    }
                }
            }
            "limit" => match number(key, value)? {
                limit @ 1..=MAX_LIMIT => params.limit = Some(limit),
                _ => {
                    return Err(V2Error::bad_request(format!(
                        "bad pagination limit: {value} (must be a decimal number between 1 and {MAX_LIMIT})"
                    )))
                }
            },
            "offset" => params.offset = number(key, value)?,
            _ => {}
        }
    }
    Ok(params)
}

/// A subscription in Orion's shape: the stored fields plus `id`, the shown `status` (`active`, `inactive`,
/// `expired`, `failed`) and the delivery counters under `notification`.
fn describe(live: &LiveSubscription) -> Value {
    let record = &live.compiled.record;
    let Some(v2) = &record.v2 else { return Value::Null };
    let mut body = v2.render();
    let delivery = live.delivery.status();
    let status = if v2.is_expired(chrono::Utc::now().timestamp_millis()) {
        "expired"
    } else if BrokerState::is_stopped(live) {
        "inactive"
    } else if delivery.fails_counter > 0 {
        "failed"
    } else {
        "active"
    };
    body["id"] = json!(record.id);
    body["status"] = json!(status);
    let notification = &mut body["notification"];
    notification["timesSent"] = json!(delivery.times_sent);
    notification["failsCounter"] = json!(delivery.fails_counter);
    for (key, value) in [
        ("lastNotification", &delivery.last_notification),
        ("lastSuccess", &delivery.last_success),
        ("lastFailure", &delivery.last_failure),
        ("lastFailureReason", &delivery.last_failure_reason),
    ] {
        if let Some(value) = value {
            notification[key] = json!(value);
        }
    }
    body
}

fn find(state: &BrokerState, tenant: &str, id: &str) -> Result<Value, V2Error> {
    state
        .subscription(tenant, id)
        .filter(|live| live.compiled.record.v2.is_some())
        .map(|live| describe(&live))
        .ok_or_else(|| V2Error::not_found(NOT_FOUND))
}

/// `POST /v2/subscriptions[?options=skipInitialNotification]`: 201 with `Location: /v2/subscriptions/<id>`.
pub async fn create(
    State(state): State<BrokerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = params(&uri)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    let subscription = V2Subscription { service_path: Some(paths(&meta).text()), ..V2Subscription::parse(&body)? };
    let id = state.subscribe_v2(&meta.tenant, subscription, params.skip_initial).await?;
    let location = HeaderValue::from_str(&format!("/v2/subscriptions/{id}"))
        .map_err(|_| V2Error::bad_request("subscription id cannot be used in a Location header"))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// `GET /v2/subscriptions[?limit=&offset=&options=count]`: the tenant's NGSIv2 subscriptions in creation order
/// (with `Fiware-ServicePath`, those created with exactly that path).
pub async fn list(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let params = params(&uri)?;
    // With `Fiware-ServicePath`, only the subscriptions made with exactly that path (Orion's rule).
    let scope = paths(&meta);
    let wanted = scope.is_given().then(|| scope.text());
    let all: Vec<_> = state
        .subscriptions(&meta.tenant)
        .into_iter()
        .filter(|live| {
            live.compiled.record.v2.as_ref().is_some_and(|v2| {
                wanted.as_deref().is_none_or(|wanted| v2.service_path.as_deref().unwrap_or(EVERYTHING) == wanted)
            })
        })
        .collect();
    let page: Vec<Value> =
        all.iter().skip(params.offset).take(params.limit.unwrap_or(DEFAULT_LIMIT)).map(|live| describe(live)).collect();
    let mut response = Json(page).into_response();
    if params.count {
        response.headers_mut().insert("fiware-total-count", HeaderValue::from(all.len()));
    }
    Ok(response)
}

/// `GET /v2/subscriptions/{id}`: the subscription, or 404.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    Ok(Json(find(&state, &meta.tenant, &id)?).into_response())
}

/// `PATCH /v2/subscriptions/{id}`: replaces the fields given; 204, or 404.
pub async fn update(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    let body = read_json(&headers, body, state.max_body_bytes).await?;
    find(&state, &meta.tenant, &id)?;
    if state.update_v2(&meta.tenant, &id, |current| current.patch(&body)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(V2Error::not_found(NOT_FOUND))
    }
}

/// `DELETE /v2/subscriptions/{id}`: 204, or 404.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, V2Error> {
    let meta = meta(&headers)?;
    find(&state, &meta.tenant, &id)?;
    if state.unsubscribe(&meta.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(V2Error::not_found(NOT_FOUND))
    }
}
