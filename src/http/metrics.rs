//! Prometheus metrics for the whole process: one registry every role registers its own families in, plus the
//! per-route HTTP request counter and latency histogram recorded by [`track_requests`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

/// Labels of one HTTP request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    role: &'static str,
    method: String,
    route: String,
    status: u16,
}

/// Labels of one HTTP latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    role: &'static str,
    method: String,
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The process's metrics registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.5, 12))
}

impl Metrics {
    /// A registry with the HTTP families registered under the `fogflow` prefix.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("fogflow");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests by role, method, route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by role, method and route",
            latency.clone(),
        );
        Arc::new(Metrics { registry: Mutex::new(registry), requests, latency })
    }

    /// Registers a metric (name without the `fogflow_` prefix).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(name, help, metric);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }

    fn record(&self, role: &'static str, method: &str, route: &str, status: u16, seconds: f64) {
        let route_labels = RouteLabels { role, method: method.to_string(), route: route.to_string() };
        self.latency.get_or_create(&route_labels).observe(seconds);
        let request_labels = RequestLabels { role, method: route_labels.method, route: route_labels.route, status };
        self.requests.get_or_create(&request_labels).inc();
    }
}

/// What [`track_requests`] needs: the registry and the role name to label with.
#[derive(Debug, Clone)]
pub struct RequestTracking {
    /// The registry.
    pub metrics: Arc<Metrics>,
    /// Role label.
    pub role: &'static str,
}

/// Middleware recording every request's count and latency under its matched route (unmatched: `other`).
pub async fn track_requests(State(tracking): State<RequestTracking>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("other");
    tracking.metrics.record(
        tracking.role,
        method.as_str(),
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
