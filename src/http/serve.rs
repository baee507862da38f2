//! The HTTP server loop shared by every role: HTTP/1.1 on hyper with TCP_NODELAY, a connection cap, a
//! header-read timeout, and a graceful drain when the shutdown token fires (stop accepting, let in-flight
//! requests finish). The caller bounds the drain with its grace period.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connection-level limits (reliability catalogue B15, B16).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Most concurrent connections; more are closed at accept.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits { max_connections: 4096, header_read_timeout: Duration::from_secs(10), max_headers: 100 }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then waits for open connections to finish their
/// in-flight requests (idle keep-alive connections are closed).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken, limits: ServerLimits) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                accept_backoff = Duration::from_millis(5);
                stream
            }
            Err(error) => {
                tracing::warn!(%error, "failed to accept a connection");
                tokio::time::sleep(accept_backoff).await;
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = limits.max_connections, "connection limit reached, closing a new connection");
            drop(stream);
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .keep_alive(true)
            .writev(false);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
