//! The NGSI-LD @context management API (ETSI GS CIM 009 V1.6+ clause 5.13, HTTP 6.30–6.31):
//! `POST /ngsi-ld/v1/jsonldContexts` (Add @context: 201 + `Location`), `GET /ngsi-ld/v1/jsonldContexts` (List
//! @contexts: URLs, or metadata objects with `details=true`; `kind` filter), `GET
//! /ngsi-ld/v1/jsonldContexts/{contextId}` (Serve @context: the hosted `{"@context": …}` as
//! `application/ld+json`, or the metadata with `details=true`) and `DELETE …/{contextId}` (Delete and reload
//! @context: 204; `reload=true` fetches a cached context again).
//!
//! Hosted contexts are global (the `NGSILD-Tenant` header is checked but does not scope them) and durable
//! (`roles::broker::contexts::hosted`); cached ones are the resolver's (`roles::broker::contexts::catalog`). The
//! URLs listed are built from the request's `X-Forwarded-Proto` / `X-Forwarded-Host` or `Host`, so they name
//! the broker as the client reached it; any host resolves locally (see `ngsi::ld::context::hosted`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::LdError;
use super::negotiation::{accept, read_body, respond, tenant, Media};
use super::params::Params;
use crate::ngsi::ld::context::hosted::{parse_add, ContextInfo, ContextKind, CONTEXTS_PATH};
use crate::roles::broker::contexts::catalog::CachedContext;
use crate::roles::broker::contexts::hosted::{HostError, HostedContexts};
use crate::roles::broker::state::BrokerState;

impl From<HostError> for LdError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::TooLarge { .. } => LdError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidRequest",
                "Request entity too large",
                error.to_string(),
            ),
            HostError::Full(_) => LdError::operation_not_supported(error.to_string()),
            HostError::Store(error) => crate::roles::broker::state::BrokerError::Store(error).into(),
        }
    }
}

/// The hosted contexts, or 422 when hosting is not set up.
fn hosted(state: &BrokerState) -> Result<&HostedContexts, LdError> {
    state.contexts.hosted().map(|hosted| &**hosted).ok_or_else(|| {
        LdError::operation_not_supported("this broker does not host @contexts (context.max_hosted is 0)")
    })
}

/// Refuses URL parameters other than `allowed`.
fn only(uri: &Uri, allowed: &[&str]) -> Result<Params, LdError> {
    Params::parse(uri)?.only(allowed)
}

/// 404 for a context id this broker does not hold.
fn not_held(id: &str) -> LdError {
    LdError::not_found(format!("@context `{id}` is not held by this broker"))
}

/// `scheme://host[:port]` of the broker as the client reached it.
fn base_url(headers: &HeaderMap) -> String {
    let text = |name: &str| {
        headers.get(name).and_then(|value| value.to_str().ok()).and_then(|value| value.split(',').next()).map(str::trim)
    };
    let scheme = match text("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = text("x-forwarded-host")
        .or_else(|| text("host"))
        .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `POST /ngsi-ld/v1/jsonldContexts`: hosts the body's `@context`; 201 with `Location`.
pub async fn create(State(state): State<BrokerState>, headers: HeaderMap, body: Body) -> Result<Response, LdError> {
    tenant(&headers)?;
    let hosted = hosted(&state)?;
    let (body, _) = read_body(&headers, body, state.max_body_bytes).await?;
    let context = parse_add(&body)?;
    let id = hosted.add(context).await?;
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{CONTEXTS_PATH}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /ngsi-ld/v1/jsonldContexts[?details=true][&kind=Hosted|Cached|ImplicitlyCreated]`: the URLs (or the
/// metadata) of the contexts held: hosted ones (oldest first), then cached ones (core, preloaded, fetched).
pub async fn list(State(state): State<BrokerState>, uri: Uri, headers: HeaderMap) -> Result<Response, LdError> {
    tenant(&headers)?;
    let media = accept(&headers)?;
    let params = only(&uri, &["details", "kind"])?;
    let details = params.flag("details")?;
    let kind = params.get("kind").map(ContextKind::parse).transpose()?;
    let mut infos: Vec<ContextInfo> = Vec::new();
    if kind.is_none_or(|kind| kind == ContextKind::Hosted) {
        if let Some(hosted) = state.contexts.hosted() {
            infos.extend(hosted.infos(&base_url(&headers)));
        }
    }
    if kind.is_none_or(|kind| kind == ContextKind::Cached) {
        infos.extend(state.contexts.cached_infos());
    }
    let listed: Vec<Value> =
        infos.iter().map(|info| if details { info.to_json() } else { Value::String(info.url.clone()) }).collect();
    Ok(respond(media, StatusCode::OK, Value::Array(listed)))
}

/// A context the broker holds, by local id (or, for a cached one, its URL).
enum Held {
    Hosted(String),
    Cached(CachedContext),
}

fn find(state: &BrokerState, id: &str) -> Result<Held, LdError> {
    if let Some(hosted) = state.contexts.hosted() {
        if hosted.get(id).is_some() {
            return Ok(Held::Hosted(id.to_string()));
        }
    }
    match state.contexts.find_cached(id) {
        Some(cached) => Ok(Held::Cached(cached)),
        None => Err(not_held(id)),
    }
}

/// `GET /ngsi-ld/v1/jsonldContexts/{contextId}[?details=true]`: a hosted context as `application/ld+json`
/// `{"@context": …}`; with `details=true` the metadata of any held context; a cached context's content is not
/// served (422, as clause 5.13.4 says: fetch it from its URL); 404 when unknown.
pub async fn retrieve(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    tenant(&headers)?;
    let media = accept(&headers)?;
    let details = only(&uri, &["details"])?.flag("details")?;
    let held = find(&state, &id)?;
    if details {
        let info = match held {
            Held::Hosted(id) => hosted(&state)?.info(&id, &base_url(&headers)),
            Held::Cached(cached) => Some(state.contexts.cached_info(&cached)),
        };
        let info = info.ok_or_else(|| not_held(&id))?;
        return Ok(respond(media, StatusCode::OK, info.to_json()));
    }
    match held {
        Held::Hosted(id) => {
            let context = hosted(&state)?.get(&id).ok_or_else(|| not_held(&id))?;
            let content_type =
                if media == Media::Json && asks_json(&headers) { "application/json" } else { "application/ld+json" };
            let body = json!({"@context": context}).to_string();
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response())
        }
        Held::Cached(_) => Err(LdError::operation_not_supported(format!(
            "@context `{id}` is of kind Cached: only Hosted contexts are served (ask with details=true for its URL)"
        ))),
    }
}

/// Whether `Accept` names `application/json` itself (not only `*/*`).
fn asks_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|accept| {
        accept.split(',').any(|range| range.split(';').next().is_some_and(|media| media.trim() == "application/json"))
    })
}

/// `DELETE /ngsi-ld/v1/jsonldContexts/{contextId}[?reload=true]`: removes a hosted context, or evicts a fetched
/// one from the cache (`reload=true`: and fetches it again, 504 `LdContextNotAvailable` when that fails); the
/// core and preloaded contexts, and `reload` of a hosted one, are 400 `BadRequestData`; 404 when unknown.
pub async fn delete(
    State(state): State<BrokerState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, LdError> {
    tenant(&headers)?;
    let reload = only(&uri, &["reload"])?.flag("reload")?;
    match find(&state, &id)? {
        Held::Hosted(_) if reload => {
            return Err(LdError::bad_data(format!(
                "@context `{id}` is Hosted: only Cached contexts can be reloaded (it has no URL to download from)"
            )))
        }
        Held::Hosted(id) => {
            if !hosted(&state)?.remove(&id).await.map_err(HostError::Store)? {
                return Err(not_held(&id));
            }
        }
        Held::Cached(CachedContext::Core) => {
            return Err(LdError::bad_data("the NGSI-LD core @context cannot be deleted"));
        }
        Held::Cached(CachedContext::Preloaded(url)) => {
            return Err(LdError::bad_data(format!(
                "@context `{url}` is preloaded from a local file (context.preload); change the configuration instead"
            )));
        }
        Held::Cached(CachedContext::Fetched(url)) if reload => {
            state.contexts.reload(&url).await.map_err(|error| {
                LdError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "LdContextNotAvailable",
                    "@context not available",
                    error.to_string(),
                )
            })?;
        }
        Held::Cached(CachedContext::Fetched(url)) => {
            state.contexts.evict(&url);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_urls_name_the_broker_as_the_client_reached_it() {
        let headers = |pairs: &[(&'static str, &'static str)]| -> HeaderMap {
            pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
        };
        assert_eq!(base_url(&HeaderMap::new()), "http://localhost");
        assert_eq!(base_url(&headers(&[("host", "10.0.0.1:8070")])), "http://10.0.0.1:8070");
        let proxied = headers(&[
            ("host", "broker:8070"),
            ("x-forwarded-host", "fogflow.example, inner"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(base_url(&proxied), "https://fogflow.example");
        assert_eq!(base_url(&headers(&[("host", "a/b")])), "http://localhost", "a host with a / is ignored");
    }

    #[test]
    fn only_the_parameters_of_a_route_are_accepted() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert!(only(&uri("/x?details=true&kind=Hosted"), &["details", "kind"]).is_ok());
        assert!(only(&uri("/x"), &["details"]).is_ok());
        let refused = only(&uri("/x?details=true&limit=1"), &["details"]).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
}
