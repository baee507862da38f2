//! Notification delivery: one task and one bounded FIFO per subscription, so a slow or dead subscriber never
//! delays another (no head-of-line blocking). A backlog is sent in batches (in order); each request has
//! connect and total timeouts; failed batches are retried with capped, jittered backoff (`max_attempts` times,
//! or until they succeed for `Require-Reliability` subscriptions). Overflow drops the oldest element, counted
//! and logged — never an unbounded buffer. Throttled subscriptions keep only the latest state per entity.
//!
//! Knows the notification formats (NGSIv1, and NGSIv2 / NGSI-LD for the `Destination` header) but nothing of
//! how subscriptions match changes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::subscriptions::SubscriptionRecord;
use crate::clients::http_client::HttpClient;
use crate::config::NotificationConfig;
use crate::http::Metrics;
use crate::ngsi::convert::{to_ngsi_ld, to_ngsiv2};
use crate::ngsi::v1::{ContextElement, ContextElementResponse, NotifyContextRequest, StatusCode};

/// The core @context FogFlow links on NGSI-LD notifications.
const LD_CORE_CONTEXT_LINK: &str = "<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Delivery counters shown with a subscription (Orion's names).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryStatus {
    /// Notifications delivered.
    #[serde(rename = "timesSent")]
    pub times_sent: u64,
    /// Consecutive failed attempts (reset by a success).
    #[serde(rename = "failsCounter")]
    pub fails_counter: u64,
    /// Elements dropped because the queue was full.
    #[serde(rename = "dropped")]
    pub dropped: u64,
    /// Elements waiting.
    #[serde(rename = "pending")]
    pub pending: usize,
    /// Last attempt (RFC 3339).
    #[serde(rename = "lastNotification", skip_serializing_if = "Option::is_none")]
    pub last_notification: Option<String>,
    /// Last success.
    #[serde(rename = "lastSuccess", skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// Last failure.
    #[serde(rename = "lastFailure", skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// Why the last failure happened.
    #[serde(rename = "lastFailureReason", skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
}

/// Process-wide notification metrics.
#[derive(Debug, Clone, Default)]
pub struct NotifierMetrics {
    sent: Counter,
    failed: Counter,
    dropped: Counter,
    queued: Gauge,
}

impl NotifierMetrics {
    /// Registers the families.
    pub fn register(metrics: &Metrics) -> Self {
        let own = NotifierMetrics::default();
        metrics.register("broker_notifications_sent", "Notification requests delivered", own.sent.clone());
        metrics.register("broker_notifications_failed", "Notification attempts that failed", own.failed.clone());
        metrics.register(
            "broker_notifications_dropped",
            "Notified elements dropped because a queue was full",
            own.dropped.clone(),
        );
        metrics.register(
            "broker_notification_queue_depth",
            "Elements waiting in notification queues",
            own.queued.clone(),
        );
        own
    }
}

struct Pending {
    element: ContextElement,
    correlator: Option<String>,
}

/// The delivery queue and task of one subscription.
pub struct Delivery {
    subscription_id: String,
    queue: Mutex<VecDeque<Pending>>,
    status: Mutex<DeliveryStatus>,
    wake: Notify,
    cancel: CancellationToken,
    coalesce: bool,
    capacity: usize,
    metrics: NotifierMetrics,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("subscription_id", &self.subscription_id).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Queues one element; drops the oldest when full (throttled subscriptions replace a queued element of the
    /// same entity instead).
    pub fn push(&self, element: ContextElement, correlator: Option<String>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if self.coalesce {
            if let Some(queued) = queue.iter_mut().find(|p| p.element.entity_id.id == element.entity_id.id) {
                *queued = Pending { element, correlator };
                return;
            }
        }
        if queue.len() >= self.capacity {
            queue.pop_front();
            self.metrics.dropped.inc();
            self.metrics.queued.dec();
            let dropped = {
                let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
                status.dropped += 1;
                status.dropped
            };
            if dropped == 1 || dropped % 1000 == 0 {
                tracing::warn!(subscription = %self.subscription_id, dropped, capacity = self.capacity, "notification queue full, dropping the oldest element");
            }
        }
        queue.push_back(Pending { element, correlator });
        self.metrics.queued.inc();
        drop(queue);
        self.wake.notify_one();
    }

    /// Queues the current state of every entity a new subscription selects. Not subject to the queue bound
    /// (it is one copy of entities the broker already holds) so a subscription over many entities still gets
    /// all of them; later changes are bounded as usual.
    pub fn push_initial(&self, elements: Vec<ContextElement>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.queued.inc_by(elements.len() as i64);
        queue.extend(elements.into_iter().map(|element| Pending { element, correlator: None }));
        drop(queue);
        self.wake.notify_one();
    }

    /// The delivery counters.
    pub fn status(&self) -> DeliveryStatus {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        status.pending = self.queue.lock().unwrap_or_else(|p| p.into_inner()).len();
        status
    }

    /// Stops the task; pending elements are discarded.
    pub fn cancel(&self) {
        self.cancel.cancel();
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.queued.dec_by(queue.len() as i64);
        queue.clear();
    }

    fn take_batch(&self, max: usize) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let count = queue.len().min(max);
        self.metrics.queued.dec_by(count as i64);
        queue.drain(..count).collect()
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    fn record(&self, outcome: Result<(), &str>) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_notification = Some(now.clone());
        match outcome {
            Ok(()) => {
                status.times_sent += 1;
                status.fails_counter = 0;
                status.last_success = Some(now);
                self.metrics.sent.inc();
            }
            Err(reason) => {
                status.fails_counter += 1;
                status.last_failure = Some(now);
                status.last_failure_reason = Some(reason.to_string());
                self.metrics.failed.inc();
            }
        }
    }
}

/// Where and how a subscription's notifications go.
#[derive(Debug, Clone)]
struct Target {
    subscription_id: String,
    reference: String,
    destination: Destination,
    ld_tenant: String,
    reliable: bool,
    throttling: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    NgsiV1,
    NgsiV2,
    NgsiLd,
}

/// Starts and owns delivery tasks.
#[derive(Clone)]
pub struct Notifier {
    http: HttpClient,
    config: NotificationConfig,
    metrics: NotifierMetrics,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Notifier {
    /// A notifier whose tasks stop when `shutdown` fires.
    pub fn new(
        config: &NotificationConfig,
        metrics: NotifierMetrics,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let http =
            HttpClient::new(Duration::from_millis(config.connect_timeout_ms), Duration::from_millis(config.timeout_ms));
        Notifier { http, config: config.clone(), metrics, tasks, shutdown }
    }

    /// Starts the delivery task of a subscription.
    pub fn start(&self, record: &SubscriptionRecord, throttling: Option<Duration>) -> Arc<Delivery> {
        let destination = match record.subscriber.destination_type.to_ascii_lowercase().as_str() {
            "ngsiv2" => Destination::NgsiV2,
            "ngsi-ld" => Destination::NgsiLd,
            _ => Destination::NgsiV1,
        };
        let target = Target {
            subscription_id: record.id.clone(),
            reference: record.request.reference.trim_end_matches('/').to_string(),
            destination,
            ld_tenant: record.subscriber.tenant.clone(),
            reliable: record.subscriber.require_reliability,
            throttling,
        };
        let delivery = Arc::new(Delivery {
            subscription_id: record.id.clone(),
            queue: Mutex::new(VecDeque::new()),
            status: Mutex::new(DeliveryStatus::default()),
            wake: Notify::new(),
            cancel: self.shutdown.child_token(),
            coalesce: throttling.is_some(),
            capacity: self.config.queue_capacity,
            metrics: self.metrics.clone(),
        });
        let notifier = self.clone();
        let task_delivery = delivery.clone();
        self.tasks.spawn(async move { notifier.deliver(target, task_delivery).await });
        delivery
    }

    async fn deliver(self, target: Target, delivery: Arc<Delivery>) {
        let mut last_sent: Option<Instant> = None;
        loop {
            while delivery.is_empty() {
                tokio::select! {
                    () = delivery.wake.notified() => {}
                    () = delivery.cancel.cancelled() => return,
                }
            }
            if let (Some(interval), Some(last)) = (target.throttling, last_sent) {
                tokio::select! {
                    () = tokio::time::sleep_until((last + interval).into()) => {}
                    () = delivery.cancel.cancelled() => return,
                }
            }
            let batch = delivery.take_batch(self.config.max_batch);
            if batch.is_empty() {
                continue;
            }
            let (url, headers, body) = build_request(&target, &batch);
            let mut attempt: u32 = 0;
            loop {
                attempt += 1;
                let sent = tokio::select! {
                    sent = self.http.post_json(&url, headers.clone(), body.clone()) => sent,
                    () = delivery.cancel.cancelled() => return,
                };
                let outcome = match sent {
                    Ok(response) if response.is_success() => Ok(()),
                    Ok(response) => Err(format!("subscriber answered HTTP {}", response.status)),
                    Err(error) => Err(error.to_string()),
                };
                match outcome {
                    Ok(()) => {
                        delivery.record(Ok(()));
                        break;
                    }
                    Err(reason) => {
                        delivery.record(Err(&reason));
                        let giving_up = !target.reliable && attempt >= self.config.max_attempts;
                        tracing::warn!(subscription = %target.subscription_id, %url, attempt, giving_up, %reason, "notification failed");
                        if giving_up {
                            break;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(retry_backoff(attempt)) => {}
                            () = delivery.cancel.cancelled() => return,
                        }
                    }
                }
            }
            last_sent = Some(Instant::now());
        }
    }
}

fn retry_backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(10));
    let capped = base.min(MAX_RETRY_BACKOFF);
    let jitter = rand::thread_rng().gen_range(0..=capped.as_millis() as u64 / 4);
    capped + Duration::from_millis(jitter)
}

fn build_request(target: &Target, batch: &[Pending]) -> (String, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let first = batch.first().and_then(|p| p.correlator.as_deref());
    if let Some(correlator) = first.filter(|c| batch.iter().all(|p| p.correlator.as_deref() == Some(*c))) {
        if let Ok(value) = HeaderValue::from_str(correlator) {
            headers.insert(HeaderName::from_static("fiware-correlator"), value);
        }
    }
    let elements = batch.iter().map(|p| &p.element);
    let (url, body) = match target.destination {
        Destination::NgsiV1 => {
            let request = NotifyContextRequest {
                subscription_id: target.subscription_id.clone(),
                originator: String::new(),
                context_responses: elements
                    .map(|element| ContextElementResponse {
                        context_element: element.clone(),
                        status_code: StatusCode::ok(),
                    })
                    .collect(),
            };
            (format!("{}/notifyContext", target.reference), serde_json::to_vec(&request))
        }
        Destination::NgsiV2 => {
            let data: Vec<_> = elements.map(to_ngsiv2).collect();
            (
                target.reference.clone(),
                serde_json::to_vec(&json!({ "subscriptionId": target.subscription_id, "data": data })),
            )
        }
        Destination::NgsiLd => {
            headers.insert(http::header::LINK, HeaderValue::from_static(LD_CORE_CONTEXT_LINK));
            if let Ok(tenant) = HeaderValue::from_str(&target.ld_tenant) {
                headers.insert(HeaderName::from_static("ngsild-tenant"), tenant);
            }
            let data: Vec<_> = elements.map(to_ngsi_ld).collect();
            (format!("{}/ngsi-ld/v1/entityOperations/upsert", target.reference), serde_json::to_vec(&data))
        }
    };
    (url, headers, Bytes::from(body.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngsi::v1::EntityId;

    fn pending(id: &str, correlator: Option<&str>) -> Pending {
        Pending {
            element: ContextElement {
                entity_id: EntityId { id: id.into(), ..EntityId::default() },
                ..ContextElement::default()
            },
            correlator: correlator.map(str::to_string),
        }
    }

    fn target(destination: Destination) -> Target {
        Target {
            subscription_id: "s1".into(),
            reference: "http://127.0.0.1:9/sink".into(),
            destination,
            ld_tenant: "t".into(),
            reliable: false,
            throttling: None,
        }
    }

    #[test]
    fn v1_batches_go_to_notify_context_with_a_shared_correlator() {
        let (url, headers, body) =
            build_request(&target(Destination::NgsiV1), &[pending("a", Some("c")), pending("b", Some("c"))]);
        assert_eq!(url, "http://127.0.0.1:9/sink/notifyContext");
        assert_eq!(headers.get("fiware-correlator").unwrap(), "c");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["subscriptionId"], "s1");
        assert_eq!(body["contextResponses"][1]["contextElement"]["entityId"]["id"], "b");
        let (_, headers, _) =
            build_request(&target(Destination::NgsiV1), &[pending("a", Some("c")), pending("b", None)]);
        assert!(headers.get("fiware-correlator").is_none());
    }

    #[test]
    fn v2_and_ld_destinations_use_their_shapes() {
        let (url, _, body) = build_request(&target(Destination::NgsiV2), &[pending("a", None)]);
        assert_eq!(url, "http://127.0.0.1:9/sink");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["data"][0]["id"], "a");
        let (url, headers, body) = build_request(&target(Destination::NgsiLd), &[pending("a", None)]);
        assert!(url.ends_with("/ngsi-ld/v1/entityOperations/upsert"));
        assert_eq!(headers.get("ngsild-tenant").unwrap(), "t");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()[0]["id"], "urn:a");
    }

    #[test]
    fn backoff_is_capped() {
        assert!(retry_backoff(1) < Duration::from_secs(1));
        assert!(retry_backoff(30) <= MAX_RETRY_BACKOFF + MAX_RETRY_BACKOFF / 4);
    }
}
