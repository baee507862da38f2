//! NGSI-LD content negotiation and request context (ETSI GS CIM 009 clause 6.3): the tenant (`NGSILD-Tenant`),
//! the body media type (`application/json` or `application/ld+json`, else 415), the response media type from
//! `Accept` (else 406), the `@context` (`Link` header for `application/json` and bodiless requests, body
//! `@context` for `application/ld+json`; both at once → 400; remote contexts resolved by the broker's
//! [`ContextResolver`]), and answers with the context as the spec says: a `Link` header for `application/json`, a
//! body `@context` for `application/ld+json`, entities compacted with the request's context ([`respond_in`]).
//! Entity reads may also ask for GeoJSON (`application/geo+json`, [`accept_entities`], [`respond_geojson`]).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::LdError;
use crate::http::body::read_bytes;
use crate::ngsi::ld::context::{Compactor, CORE_CONTEXT_URL};
use crate::ngsi::ld::subscription::render::compact_entity;
use crate::roles::broker::api::headers::MAX_TENANT_LEN;
use crate::roles::broker::contexts::{ContextResolver, LdContext};

/// The `rel` of a JSON-LD context `Link`.
const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// A JSON media type of NGSI-LD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`.
    Json,
    /// `application/ld+json`.
    LdJson,
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, LdError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(LdError::bad_data(format!("header {name} is given more than once")));
    }
    let text = first.to_str().map_err(|_| LdError::bad_data(format!("header {name} is not visible ASCII")))?;
    Ok(Some(text.trim()))
}

/// The tenant of a request: `NGSILD-Tenant` (the same tenant names as `Fiware-Service`, lower-cased), empty for
/// the default tenant.
pub fn tenant(headers: &HeaderMap) -> Result<String, LdError> {
    match single(headers, "ngsild-tenant")? {
        None | Some("") => Ok(String::new()),
        Some(tenant)
            if tenant.len() <= MAX_TENANT_LEN && tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(tenant.to_ascii_lowercase())
        }
        Some(tenant) => Err(LdError::bad_data(format!(
            "NGSILD-Tenant `{tenant}` must be at most {MAX_TENANT_LEN} letters, digits or _"
        ))),
    }
}

/// The representation of an entity read: NGSI-LD JSON / JSON-LD, or GeoJSON (`application/geo+json`, clause
/// 4.5.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityMedia {
    /// `application/json` or `application/ld+json`.
    Ld(Media),
    /// `application/geo+json`.
    GeoJson,
}

/// The media range of `Accept` of highest `q` that `classify` knows (the first of equal ones); `None` when there
/// is no `Accept` header; 406 naming `wanted` when it allows none of them.
fn negotiate<T: Copy>(
    headers: &HeaderMap,
    classify: impl Fn(&str) -> Option<T>,
    wanted: &str,
) -> Result<Option<T>, LdError> {
    let Some(accept) = single(headers, "accept")? else { return Ok(None) };
    let mut best: Option<(f32, T)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality =
            parts.filter_map(|p| p.trim().strip_prefix("q=")).find_map(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        let Some(candidate) = classify(&media) else { continue };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, candidate));
        }
    }
    match best {
        Some((_, media)) => Ok(Some(media)),
        None => Err(LdError::not_acceptable(format!("Accept `{accept}` allows {wanted}"))),
    }
}

/// An NGSI-LD JSON media type (`*/*` and `application/*` mean JSON).
fn ld_media(media: &str) -> Option<Media> {
    match media {
        "application/ld+json" => Some(Media::LdJson),
        "application/json" | "application/*" | "*/*" => Some(Media::Json),
        _ => None,
    }
}

/// The response media type the `Accept` header allows (highest `q` first; JSON when absent), or 406.
pub fn accept(headers: &HeaderMap) -> Result<Media, LdError> {
    let media = negotiate(headers, ld_media, "neither application/json nor application/ld+json")?;
    Ok(media.unwrap_or(Media::Json))
}

/// The representation of an entity read that the `Accept` header allows: as [`accept`], or GeoJSON.
pub fn accept_entities(headers: &HeaderMap) -> Result<EntityMedia, LdError> {
    let classify = |media: &str| match media {
        "application/geo+json" => Some(EntityMedia::GeoJson),
        other => ld_media(other).map(EntityMedia::Ld),
    };
    let wanted = "neither application/json, application/ld+json nor application/geo+json";
    Ok(negotiate(headers, classify, wanted)?.unwrap_or(EntityMedia::Ld(Media::Json)))
}

/// The context URL of a `Link` header, if there is one.
fn link_context(headers: &HeaderMap) -> Result<Option<String>, LdError> {
    let Some(link) = single(headers, "link")? else { return Ok(None) };
    for entry in link.split(',') {
        let mut parts = entry.split(';');
        let target = parts.next().unwrap_or_default().trim();
        let is_context = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=").is_some_and(|rel| rel.trim_matches('"') == CONTEXT_REL)
        });
        if is_context {
            let url = target.strip_prefix('<').and_then(|t| t.strip_suffix('>'));
            return match url {
                Some(url) => Ok(Some(url.to_string())),
                None => Err(LdError::bad_data(format!("invalid Link header `{link}`"))),
            };
        }
    }
    Ok(None)
}

/// The context of a request without a body: the `Link` context, or the core context.
pub async fn link_only(contexts: &ContextResolver, headers: &HeaderMap) -> Result<LdContext, LdError> {
    match link_context(headers)? {
        Some(url) => Ok(contexts.link(&url).await?),
        None => Ok(LdContext::core()),
    }
}

/// Reads a JSON body: `application/json` or `application/ld+json` (415 otherwise), at most `limit` bytes
/// (413), valid JSON (400 `InvalidRequest`).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<(Value, Media), LdError> {
    let media_type =
        single(headers, "content-type")?.map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let media = match media_type.as_deref() {
        Some("application/json") => Media::Json,
        Some("application/ld+json") => Media::LdJson,
        Some(other) => {
            return Err(LdError::unsupported_media_type(format!(
                "Content-Type `{other}` is not supported (application/json or application/ld+json)"
            )))
        }
        None => return Err(LdError::unsupported_media_type("Content-Type is missing")),
    };
    let bytes = read_bytes(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LdError::invalid_request("the payload is empty"));
    }
    let value = serde_json::from_slice(&bytes).map_err(|e| LdError::invalid_request(format!("invalid JSON: {e}")))?;
    Ok((value, media))
}

/// The context of one body object (an entity or a fragment): for `application/ld+json` its `@context`
/// (required, and no `Link` allowed); for `application/json` the `Link` context (a body `@context` is refused).
pub async fn body_context(
    contexts: &ContextResolver,
    headers: &HeaderMap,
    media: Media,
    object: &Value,
) -> Result<LdContext, LdError> {
    let inline = object.get("@context");
    match (media, inline) {
        (Media::LdJson, _) if link_context(headers)?.is_some() => {
            Err(LdError::bad_data("a Link context header cannot be given with application/ld+json"))
        }
        (Media::LdJson, Some(context)) => Ok(contexts.body(context).await?),
        (Media::LdJson, None) => Err(LdError::bad_data("an application/ld+json payload must carry an @context")),
        (Media::Json, Some(_)) => Err(LdError::bad_data(
            "an application/json payload cannot carry an @context (use application/ld+json or a Link header)",
        )),
        (Media::Json, None) => link_only(contexts, headers).await,
    }
}

fn with_context(value: Value, context: &Value) -> Value {
    match value {
        Value::Object(mut object) => {
            object.insert("@context".into(), context.clone());
            Value::Object(object)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|item| with_context(item, context)).collect()),
        other => other,
    }
}

/// A JSON answer in the negotiated media type, with the core context as a `Link` header (JSON) or in each
/// entity (JSON-LD).
pub fn respond(media: Media, status: StatusCode, value: Value) -> Response {
    respond_linked(media, status, value, CORE_CONTEXT_URL, &Value::String(CORE_CONTEXT_URL.into()))
}

/// The compactor for an answer in `media` with the request's context: the context's user terms when the answer
/// names that context (JSON with a `Link` URL, or JSON-LD with a body `@context`), else none (names as stored, with
/// the core context named).
pub fn answer_compactor(media: Media, context: &LdContext) -> Arc<Compactor> {
    if context.is_core() || (media == Media::Json && context.link_url().is_none()) {
        return Arc::new(Compactor::default());
    }
    context.compactor()
}

/// An answer of entities (one, or an array) with the request's context: for JSON compacted with it when one
/// URL names it (in the `Link` header; else the core context), for JSON-LD compacted with it and carrying it as
/// `@context` (as written, or its inline equivalent).
pub fn respond_in(media: Media, status: StatusCode, value: Value, context: &LdContext) -> Response {
    let compactor = answer_compactor(media, context);
    let value = match value {
        Value::Array(items) => Value::Array(items.into_iter().map(|item| compact_entity(&compactor, item)).collect()),
        single => compact_entity(&compactor, single),
    };
    respond_named(media, status, value, context)
}

/// An answer already compacted with [`answer_compactor`], naming the request's context as [`respond_in`] does:
/// its URL in the `Link` header (JSON), or its `@context` in the body (JSON-LD); the core context otherwise.
pub fn respond_named(media: Media, status: StatusCode, value: Value, context: &LdContext) -> Response {
    if context.is_core() {
        return respond(media, status, value);
    }
    match (media, context.link_url()) {
        (Media::Json, Some(url)) => respond_linked(media, status, value, url, &Value::Null),
        (Media::Json, None) => respond(media, status, value),
        (Media::LdJson, _) => {
            let written = if context.written.is_null() { (*context.inline).clone() } else { context.written.clone() };
            respond_linked(media, status, value, CORE_CONTEXT_URL, &written)
        }
    }
}

/// A GeoJSON answer (`application/geo+json`): a Feature or a FeatureCollection of entities compacted with
/// `answer_compactor(Media::LdJson, context)`, carrying the request's context as its top-level `@context` member
/// (as written, or its inline equivalent; the core context URL when none was given; never in each Feature of a
/// collection) and, when one URL names that context, in the `Link` header too.
pub fn respond_geojson(status: StatusCode, value: Value, context: &LdContext) -> Response {
    let (body_context, link) = if context.is_core() {
        (Value::String(CORE_CONTEXT_URL.into()), Some(CORE_CONTEXT_URL))
    } else if context.written.is_null() {
        ((*context.inline).clone(), None)
    } else {
        (context.written.clone(), context.link_url())
    };
    let body = with_context(value, &body_context).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/geo+json")], body).into_response();
    if let Some(link) = link.and_then(|url| HeaderValue::from_str(&context_link(url)).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// The `Link` header value naming a context URL.
fn context_link(url: &str) -> String {
    format!("<{url}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\"")
}

/// An answer naming `link` in the `Link` header (JSON) or carrying `context` in each entity (JSON-LD).
fn respond_linked(media: Media, status: StatusCode, value: Value, link: &str, context: &Value) -> Response {
    match media {
        Media::Json => {
            let link = context_link(link);
            let mut response =
                (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response();
            if let Ok(link) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(header::LINK, link);
            }
            response
        }
        Media::LdJson => {
            (status, [(header::CONTENT_TYPE, "application/ld+json")], with_context(value, context).to_string())
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn accept_and_tenant() {
        assert_eq!(accept(&HeaderMap::new()).unwrap(), Media::Json);
        assert_eq!(accept(&headers(&[("accept", "application/ld+json")])).unwrap(), Media::LdJson);
        assert_eq!(accept(&headers(&[("accept", "application/ld+json;q=0.5, */*")])).unwrap(), Media::Json);
        assert_eq!(
            accept(&headers(&[("accept", "application/xml")])).unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            accept(&headers(&[("accept", "application/geo+json")])).unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE,
            "only entity reads answer GeoJSON"
        );
        let entities = |value: &'static str| accept_entities(&headers(&[("accept", value)]));
        assert_eq!(entities("application/geo+json").unwrap(), EntityMedia::GeoJson);
        assert_eq!(
            entities("application/geo+json;q=0.5, application/ld+json").unwrap(),
            EntityMedia::Ld(Media::LdJson)
        );
        assert_eq!(accept_entities(&HeaderMap::new()).unwrap(), EntityMedia::Ld(Media::Json));
        assert_eq!(entities("text/html").unwrap_err().status(), StatusCode::NOT_ACCEPTABLE);
        assert_eq!(tenant(&headers(&[("ngsild-tenant", "Farm_1")])).unwrap(), "farm_1");
        assert!(tenant(&headers(&[("ngsild-tenant", "a/b")])).is_err());
    }

    #[tokio::test]
    async fn contexts_come_from_the_link_or_the_body() {
        let contexts = ContextResolver::new(&Default::default()).unwrap();
        let link = "<https://example.org/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";
        let remote = headers(&[("link", link)]);
        assert_eq!(link_only(&contexts, &remote).await.unwrap_err().status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = serde_json::json!({"@context": {"a": "https://e.org/a"}});
        let both = body_context(&contexts, &remote, Media::LdJson, &body).await.unwrap_err();
        assert_eq!(both.status(), StatusCode::BAD_REQUEST);
        assert!(body_context(&contexts, &HeaderMap::new(), Media::LdJson, &body).await.is_ok());
        assert!(body_context(&contexts, &HeaderMap::new(), Media::Json, &body).await.is_err());
        assert!(body_context(&contexts, &HeaderMap::new(), Media::LdJson, &serde_json::json!({})).await.is_err());
        assert!(link_only(&contexts, &HeaderMap::new()).await.unwrap().is_core());
    }
}
