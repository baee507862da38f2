//! The outbound HTTP client shared by a role: pooled HTTP/1.1 connections, a connect timeout, a total timeout
//! per request and a cap on how much of a response body is read (a peer cannot stall or flood us, B12, B14).
//! `http://` URLs go through a plain connection pool, exactly as before TLS existed (no per-request cost);
//! `https://` URLs go through a second pool whose rustls configuration ([`super::tls`]) is built on the first
//! `https://` request, so a process that never calls one pays nothing. Certificates are always verified; a
//! refused certificate or failed handshake is [`OutboundError::Tls`]. Redirects are never followed.
//! [`HttpClient::get_capped`] reads a whole body up to a caller's cap and fails beyond it (remote JSON-LD contexts).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Most bytes of a response body read before the rest is discarded.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an outbound request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// The URL cannot be used.
    #[error("invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting or sending failed.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (a certificate refused, no common protocol, …).
    #[error("TLS with {url} failed: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The response body is larger than the caller's cap.
    #[error("the answer of {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// No answer within the total timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A response: status and (capped) body.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// HTTP status.
    pub status: u16,
    /// Body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Bytes,
    /// The `Location` header, when there is one (redirects are not followed here; callers that follow them
    /// decide where they may go).
    pub location: Option<String>,
}

impl OutboundResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled client with timeouts. Cheap to clone (clones share both pools).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The `https://` pool, built on first use (`Err`: TLS cannot be configured, said on every `https://` request).
    https: Arc<OnceLock<Result<HttpsClient, String>>>,
    connect_timeout: Duration,
    timeout: Duration,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the given connect and total timeouts.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = pool().build(connector);
        let user_agent = HeaderValue::from_static(concat!("fogflow/", env!("CARGO_PKG_VERSION")));
        HttpClient { client, https: Arc::new(OnceLock::new()), connect_timeout, timeout, user_agent }
    }

    /// The `https://` pool, built on first use with the process's TLS configuration.
    fn https(&self, url: &str) -> Result<&HttpsClient, OutboundError> {
        let built = self.https.get_or_init(|| {
            let config = super::tls::client_config().map_err(|error| error.to_string())?;
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(self.connect_timeout));
            connector.set_nodelay(true);
            connector.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*config).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(connector);
            Ok(pool().build(https))
        });
        built.as_ref().map_err(|reason| OutboundError::Tls { url: url.into(), reason: reason.clone() })
    }

    /// The total timeout per request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<OutboundResponse, OutboundError> {
        self.send(Method::POST, url, headers, body).await
    }

    /// Sends a request without a body.
    pub async fn send_empty(&self, method: Method, url: &str) -> Result<OutboundResponse, OutboundError> {
        self.send(method, url, HeaderMap::new(), Bytes::new()).await
    }

    /// Sends one request and reads at most [`MAX_RESPONSE_BYTES`] of the answer, all within the total timeout.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<OutboundResponse, OutboundError> {
        self.exchange(method, url, headers, body, Cap::Truncate(MAX_RESPONSE_BYTES)).await
    }

    /// GETs `url` and reads its whole answer, refusing one over `max_bytes` ([`OutboundError::TooLarge`]), all
    /// within the total timeout.
    pub async fn get_capped(
        &self,
        url: &str,
        headers: HeaderMap,
        max_bytes: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        self.exchange(Method::GET, url, headers, Bytes::new(), Cap::Refuse(max_bytes)).await
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        cap: Cap,
    ) -> Result<OutboundResponse, OutboundError> {
        let uri: http::Uri = url.parse().map_err(|error: http::uri::InvalidUri| OutboundError::InvalidUrl {
            url: url.into(),
            reason: error.to_string(),
        })?;
        let https = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(self.https(url)?),
            _ => {
                return Err(OutboundError::InvalidUrl {
                    url: url.into(),
                    reason: "only http:// and https:// are supported".into(),
                })
            }
        };
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(request_headers) = request.headers_mut() {
            request_headers.insert(http::header::USER_AGENT, self.user_agent.clone());
            if !body.is_empty() {
                request_headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            request_headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
            request_headers.extend(headers);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| OutboundError::InvalidUrl { url: url.into(), reason: error.to_string() })?;
        let exchange = async {
            let sent = match https {
                None => self.client.request(request).await,
                Some(https) => https.request(request).await,
            };
            let response = sent.map_err(|error| match super::tls::tls_failure(&error) {
                Some(reason) => OutboundError::Tls { url: url.into(), reason },
                None => OutboundError::Transport { url: url.into(), reason: describe(&error) },
            })?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let body = match cap {
                Cap::Truncate(limit) => match Limited::new(response.into_body(), limit).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => Bytes::new(),
                },
                Cap::Refuse(limit) => match Limited::new(response.into_body(), limit).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                        return Err(OutboundError::TooLarge { url: url.into(), limit })
                    }
                    Err(error) => return Err(OutboundError::Transport { url: url.into(), reason: error.to_string() }),
                },
            };
            Ok(OutboundResponse { status, body, location })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout { url: url.into(), timeout: self.timeout }),
        }
    }
}

/// The pool settings both pools share.
fn pool() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(30)).pool_max_idle_per_host(64);
    builder
}

/// What to do with a response body over a size.
#[derive(Debug, Clone, Copy)]
enum Cap {
    /// Read the body as empty when it is larger (the status still counts).
    Truncate(usize),
    /// Fail with [`OutboundError::TooLarge`].
    Refuse(usize),
}

fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
