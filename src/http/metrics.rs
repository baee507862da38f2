//! Prometheus metrics for the whole process: one registry every role registers its own families in, plus the
//! per-route HTTP request counter and latency histogram recorded by [`RequestMetricsLayer`].
//!
//! The request path is hot, so each (route, method) resolves its metric handles once and caches them; a
//! request then costs one read-locked map lookup and two atomic updates, with no allocation.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use tower::{Layer, Service};

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

/// The cached handles of one (role, route, method).
#[derive(Debug)]
struct RouteHandles {
    labels: RouteLabels,
    latency: Histogram,
    by_status: RwLock<Vec<(u16, Counter)>>,
}

/// The process's metrics registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
}

/// Cached handles of one role, by route and method.
type RouteCache = RwLock<HashMap<String, Vec<(Method, Arc<RouteHandles>)>>>;

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

    fn handles(&self, cache: &RouteCache, role: &'static str, method: &Method, route: &str) -> Arc<RouteHandles> {
        if let Some(found) = cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
            .and_then(|methods| methods.iter().find(|(m, _)| m == method).map(|(_, handles)| handles.clone()))
        {
            return found;
        }
        let labels = RouteLabels { role, method: method.as_str().to_string(), route: route.to_string() };
        let handles = Arc::new(RouteHandles {
            latency: self.latency.get_or_create(&labels).clone(),
            labels,
            by_status: RwLock::new(Vec::new()),
        });
        let mut routes = cache.write().unwrap_or_else(|p| p.into_inner());
        let methods = routes.entry(route.to_string()).or_default();
        if let Some((_, existing)) = methods.iter().find(|(m, _)| m == method) {
            return existing.clone();
        }
        methods.push((method.clone(), handles.clone()));
        handles
    }

    fn record(&self, handles: &RouteHandles, status: u16, seconds: f64) {
        handles.latency.observe(seconds);
        let counter = handles
            .by_status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, counter)| counter.clone());
        let counter = counter.unwrap_or_else(|| {
            let labels = RequestLabels {
                role: handles.labels.role,
                method: handles.labels.method.clone(),
                route: handles.labels.route.clone(),
                status,
            };
            let counter = self.requests.get_or_create(&labels).clone();
            handles.by_status.write().unwrap_or_else(|p| p.into_inner()).push((status, counter.clone()));
            counter
        });
        counter.inc();
    }
}

/// The matched route of a request; requests matching no route share the `other` label.
fn matched_route(request: &Request) -> &str {
    request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("other")
}

/// Records every request's count and latency under its matched route.
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
    role: &'static str,
    cache: Arc<RouteCache>,
}

impl RequestMetricsLayer {
    /// A layer labelling requests with `role`.
    pub fn new(metrics: Arc<Metrics>, role: &'static str) -> Self {
        RequestMetricsLayer { metrics, role, cache: Arc::default() }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService { inner, metrics: self.metrics.clone(), role: self.role, cache: self.cache.clone() }
    }
}

/// The service of [`RequestMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    role: &'static str,
    cache: Arc<RouteCache>,
}

impl<S> Service<Request> for RequestMetricsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RecordedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let handles = self.metrics.handles(&self.cache, self.role, request.method(), matched_route(&request));
        RecordedFuture {
            inner: self.inner.call(request),
            metrics: self.metrics.clone(),
            handles,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestMetricsService`].
    pub struct RecordedFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
        handles: Arc<RouteHandles>,
        started: Instant,
    }
}

impl<F, E> Future for RecordedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            this.metrics.record(this.handles, response.status().as_u16(), this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_appear_in_the_exposition() {
        let metrics = Metrics::new();
        let cache = RouteCache::default();
        let handles = metrics.handles(&cache, "broker", &Method::GET, "/ngsi10/entity/{eid}");
        metrics.record(&handles, 200, 0.001);
        metrics.record(&metrics.handles(&cache, "broker", &Method::GET, "/ngsi10/entity/{eid}"), 404, 0.002);
        let text = metrics.encode();
        assert!(text.contains("fogflow_http_requests_total{role=\"broker\",method=\"GET\",route=\"/ngsi10/entity/{eid}\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("status=\"404\"} 1"), "{text}");
        assert!(text.contains("fogflow_http_request_duration_seconds_count{role=\"broker\",method=\"GET\",route=\"/ngsi10/entity/{eid}\"} 2"), "{text}");
    }
}
