//! The notification receiver of the `notify` scenario: a small hyper HTTP/1.1 server on a random
//! 127.0.0.1 port that answers `POST …/notifyContext` with 200 and counts the POSTs and the context
//! elements they carry. It stops when dropped.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::payload::{count_notified_elements, NOTIFY_OK_BODY};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Live counters of the sink, shared with whoever reports progress.
#[derive(Debug, Default)]
pub struct SinkCounters {
    posts: AtomicU64,
    elements: AtomicU64,
    malformed: AtomicU64,
}

impl SinkCounters {
    /// The counters at this moment.
    pub fn snapshot(&self) -> SinkSnapshot {
        SinkSnapshot {
            posts: self.posts.load(Ordering::Relaxed),
            elements: self.elements.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }

    fn record(&self, elements: usize) {
        self.elements.fetch_add(elements as u64, Ordering::Relaxed);
        self.posts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The sink counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkSnapshot {
    /// Well-formed `notifyContext` POSTs.
    pub posts: u64,
    /// Context elements in them.
    pub elements: u64,
    /// POSTs whose body was not a `notifyContext` request.
    pub malformed: u64,
}

impl SinkSnapshot {
    /// What arrived between `earlier` and this snapshot.
    pub fn since(&self, earlier: &SinkSnapshot) -> SinkSnapshot {
        SinkSnapshot {
            posts: self.posts.saturating_sub(earlier.posts),
            elements: self.elements.saturating_sub(earlier.elements),
            malformed: self.malformed.saturating_sub(earlier.malformed),
        }
    }
}

/// A running notification receiver.
pub struct NotificationSink {
    address: SocketAddr,
    counters: Arc<SinkCounters>,
    accept_task: JoinHandle<()>,
}

impl NotificationSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot bind the notification sink on 127.0.0.1")?;
        let address = listener.local_addr().context("cannot read the notification sink address")?;
        let counters = Arc::new(SinkCounters::default());
        let accept_task = tokio::spawn(accept_connections(listener, counters.clone()));
        Ok(Self { address, counters, accept_task })
    }

    /// The URL to give the broker as subscription `reference`.
    pub fn reference_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<SinkCounters> {
        self.counters.clone()
    }

    /// The counters at this moment.
    pub fn snapshot(&self) -> SinkSnapshot {
        self.counters.snapshot()
    }
}

impl Drop for NotificationSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.accept_task.abort();
    }
}

async fn accept_connections(listener: TcpListener, counters: Arc<SinkCounters>) {
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                connections.spawn(serve_connection(stream, counters.clone()));
            }
            Err(_) => tokio::time::sleep(ACCEPT_RETRY_PAUSE).await,
        }
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_connection(stream: TcpStream, counters: Arc<SinkCounters>) {
    // Without NODELAY the small answers could wait for delayed ACKs; failure only costs latency.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle_notification(request, counters.clone()));
    // A connection the broker drops mid-request ends here; nothing to report.
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

async fn handle_notification(
    request: Request<Incoming>,
    counters: Arc<SinkCounters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST || !request.uri().path().ends_with("/notifyContext") {
        return Ok(plain_response(StatusCode::NOT_FOUND, Bytes::from_static(b"not found")));
    }
    let counted = match request.into_body().collect().await {
        Ok(body) => count_notified_elements(&body.to_bytes()).ok(),
        Err(_) => None,
    };
    Ok(match counted {
        Some(elements) => {
            counters.record(elements);
            let mut response = plain_response(StatusCode::OK, Bytes::from_static(NOTIFY_OK_BODY));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        None => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            plain_response(StatusCode::BAD_REQUEST, Bytes::from_static(b"not a notifyContext request"))
        }
    })
}

fn plain_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::super::client::{request_once, Target};
    use super::*;

    #[tokio::test]
    async fn counts_notifications_and_answers_ok() {
        let sink = NotificationSink::start().await.unwrap();
        let target = Target::parse(&sink.reference_url()).unwrap();
        let body = Bytes::from_static(
            br#"{"subscriptionId":"s","originator":"","contextResponses":[{"contextElement":{},"statusCode":{}},{"contextElement":{},"statusCode":{}}]}"#,
        );
        let reply = request_once(&target, Method::POST, "/notifyContext", body.clone()).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], NOTIFY_OK_BODY);
        request_once(&target, Method::POST, "/notifyContext", body).await.unwrap();

        let bad = request_once(&target, Method::POST, "/notifyContext", Bytes::from_static(b"[")).await.unwrap();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let elsewhere = request_once(&target, Method::GET, "/notifyContext", Bytes::new()).await.unwrap();
        assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

        let snapshot = sink.snapshot();
        assert_eq!(snapshot, SinkSnapshot { posts: 2, elements: 4, malformed: 1 });
        assert_eq!(snapshot.since(&SinkSnapshot { posts: 1, elements: 1, malformed: 0 }).elements, 3);
    }
}
