//! Raw HTTP/1.1 client side of the load generator: the broker [`Target`] parsed from `--url`, and
//! [`ClientConnection`], one keep-alive hyper connection that its owner drives inside its own task (no
//! extra task per connection), plus [`request_once`] for the few untimed setup calls.

use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body type of every request the bench sends.
pub type RequestBody = Full<Bytes>;

/// How long a setup call ([`request_once`]) may take, connecting included.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker the bench drives, parsed once from `--url`.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    host: String,
    port: u16,
    host_header: HeaderValue,
    base_path: String,
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:8070` (a path prefix is kept; only `http` is supported).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("invalid broker url {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                bail!("unsupported scheme {other:?} in broker url {url:?}: only http is supported")
            }
            None => bail!("broker url {url:?} needs a scheme, e.g. http://127.0.0.1:8070"),
        }
        if uri.query().is_some() {
            bail!("broker url {url:?} must not have a query string");
        }
        let authority = uri.authority().with_context(|| format!("broker url {url:?} has no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let host_header = HeaderValue::from_str(authority.as_str())
            .with_context(|| format!("broker url {url:?} has an invalid host"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port: authority.port_u16().unwrap_or(80),
            host_header,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL as given (without a trailing slash), for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The origin-form URI of `path` (which starts with `/`) below the base URL.
    pub fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        let full = format!("{}{path}", self.base_path);
        Uri::try_from(full.as_str()).with_context(|| format!("invalid request path {full:?}"))
    }

    /// A request to `uri` with the `Host` header set and, when `body` is not empty, a JSON content type.
    pub fn request(&self, method: Method, uri: Uri, body: Bytes) -> Request<RequestBody> {
        let has_body = !body.is_empty();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host_header.clone());
        if has_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }
}

/// The status and full body of one response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text for error messages, cut to a readable length.
    pub fn body_excerpt(&self) -> String {
        const LIMIT: usize = 300;
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(LIMIT) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.into_owned(),
        }
    }
}

type ConnectionDriver = http1::Connection<TokioIo<TcpStream>, RequestBody>;

/// One HTTP/1.1 keep-alive connection; requests go back-to-back, one at a time.
///
/// The hyper connection future is polled by [`ClientConnection::exchange`] itself, so a worker task
/// drives its own socket without a second task and the wake-ups between the two.
pub struct ClientConnection {
    sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended; dropping it lets the sender see the close.
    driver: Option<Pin<Box<ConnectionDriver>>>,
}

impl ClientConnection {
    /// Opens a TCP connection (with `TCP_NODELAY`) to the target and does the HTTP/1.1 handshake.
    pub async fn connect(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("cannot connect to {}", target.url))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let (sender, driver) =
            http1::Builder::new().handshake(TokioIo::new(stream)).await.context("http/1.1 handshake failed")?;
        Ok(Self { sender, driver: Some(Box::pin(driver)) })
    }

    /// Sends one request and reads the whole response. After an error the connection is unusable.
    pub async fn exchange(&mut self, request: Request<RequestBody>) -> anyhow::Result<Reply> {
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await.context("connection closed")?;
            let response = sender.send_request(request).await.context("request failed")?;
            let status = response.status();
            let body = response.into_body().collect().await.context("reading the response body failed")?;
            Ok::<_, anyhow::Error>(Reply { status, body: body.to_bytes() })
        };
        tokio::pin!(exchange);
        let Some(driver) = self.driver.as_mut() else {
            return exchange.await;
        };
        let driver_result = tokio::select! {
            biased;
            reply = &mut exchange => return reply,
            driven = driver => driven,
        };
        // The connection ended; a response it delivered on the way out is still waiting in `exchange`.
        self.driver = None;
        exchange.await.map_err(|error| match driver_result {
            Err(driver_error) => anyhow!(driver_error).context("connection failed"),
            Ok(()) => error.context("the server closed the connection"),
        })
    }
}

/// Sends one request on a fresh connection (for setup calls), within [`SETUP_TIMEOUT`].
pub async fn request_once(target: &Target, method: Method, path: &str, body: Bytes) -> anyhow::Result<Reply> {
    let request = target.request(method, target.uri(path)?, body);
    let call = async {
        let mut connection = ClientConnection::connect(target).await?;
        connection.exchange(request).await
    };
    tokio::time::timeout(SETUP_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("no answer from {}{path} within {} s", target.url, SETUP_TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_base_url() {
        let target = Target::parse("http://127.0.0.1:8070/").unwrap();
        assert_eq!(target.host, "127.0.0.1");
        assert_eq!(target.port, 8070);
        assert_eq!(target.url(), "http://127.0.0.1:8070");
        assert_eq!(target.uri("/ngsi10/updateContext").unwrap(), "/ngsi10/updateContext");
    }

    #[test]
    fn keeps_a_path_prefix_and_defaults_the_port() {
        let target = Target::parse("http://broker.local/fogflow").unwrap();
        assert_eq!(target.port, 80);
        assert_eq!(target.uri("/health").unwrap(), "/fogflow/health");
        let request = target.request(Method::GET, target.uri("/health").unwrap(), Bytes::new());
        assert_eq!(request.headers()[HOST], "broker.local");
        assert!(request.headers().get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn rejects_urls_it_cannot_drive() {
        assert!(Target::parse("https://127.0.0.1:8070").is_err());
        assert!(Target::parse("127.0.0.1:8070").is_err());
        assert!(Target::parse("http://127.0.0.1:8070/?x=1").is_err());
    }

    #[test]
    fn cuts_long_bodies_in_messages() {
        let reply = Reply { status: StatusCode::OK, body: Bytes::from("é".repeat(400)) };
        assert_eq!(reply.body_excerpt().chars().count(), 301);
    }
}
