//! The designer's pass-through to the broker (`/ngsi10/*`, `/ngsi-ld/*`) and discovery (`/ngsi9/*`), as the
//! dashboard uses it: method, path, query, headers and body go through unchanged (bodies are streamed both
//! ways), hop-by-hop headers are dropped, and an unreachable target is a 502 with a JSON body saying which.
//!
//! Owns: its pooled client. Must not: read or change what it forwards.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::state::DesignerState;

/// Time the target has to answer with its headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy's client and targets.
#[derive(Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    broker: String,
    discovery: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("broker", &self.broker).field("discovery", &self.discovery).finish()
    }
}

impl Proxy {
    /// A proxy to the broker's and discovery's base URLs (`http://host:port`, no path).
    pub fn new(broker: String, discovery: String) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Proxy { client, broker: trim(broker), discovery: trim(discovery) }
    }

    async fn forward(&self, base: &str, target: &'static str, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let uri: Uri = match format!("{base}{path_and_query}").parse() {
            Ok(uri) => uri,
            Err(error) => return bad_gateway(target, &format!("cannot build the target address: {error}")),
        };
        parts.uri = uri;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        let outbound = Request::from_parts(parts, body);
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(outbound)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // The designer answers CORS itself; the target's own CORS headers would be doubled.
                let cors: Vec<HeaderName> =
                    parts.headers.keys().filter(|name| name.as_str().starts_with("access-control-")).cloned().collect();
                for name in cors {
                    parts.headers.remove(name);
                }
                Response::from_parts(parts, Body::new(body))
            }
            Ok(Err(error)) => bad_gateway(target, &error.to_string()),
            Err(_) => bad_gateway(target, &format!("no answer within {RESPONSE_TIMEOUT:?}")),
        }
    }
}

fn trim(url: String) -> String {
    url.trim_end_matches('/').to_string()
}

/// The base URL (scheme, host, port) of an address like `http://h:8070/ngsi10`.
pub fn base_of(url: &str) -> String {
    match url.find("://").map(|at| at + 3) {
        Some(start) => match url[start..].find('/') {
            Some(slash) => url[..start + slash].to_string(),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

fn bad_gateway(target: &str, reason: &str) -> Response {
    tracing::warn!(target, reason, "proxy target unreachable");
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({"error": "BadGateway", "description": format!("the {target} is not reachable: {reason}")})),
    )
        .into_response()
}

/// `ALL /ngsi10/*`, `ALL /ngsi-ld/*` → the broker.
pub async fn to_broker(State(state): State<DesignerState>, request: Request) -> Response {
    let base = state.proxy.broker.clone();
    state.proxy.forward(&base, "broker", request).await
}

/// `ALL /ngsi9/*` → discovery.
pub async fn to_discovery(State(state): State<DesignerState>, request: Request) -> Response {
    let base = state.proxy.discovery.clone();
    state.proxy.forward(&base, "discovery", request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_target_is_a_502_naming_it() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let proxy = Proxy::new(format!("http://127.0.0.1:{closed}"), String::new());
        let request = Request::builder().uri("/ngsi10/entity/x?attr=1").body(Body::empty()).unwrap();
        let response = proxy.forward(&proxy.broker.clone(), "broker", request).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["description"].as_str().unwrap().contains("broker is not reachable"), "{body}");
    }

    #[test]
    fn bases() {
        assert_eq!(base_of("http://127.0.0.1:8070/ngsi10"), "http://127.0.0.1:8070");
        assert_eq!(base_of("http://h:1"), "http://h:1");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "close".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
    }
}
