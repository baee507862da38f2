//! Notification delivery: one task and one bounded FIFO per subscription, so a slow or dead subscriber never
//! delays another (no head-of-line blocking). A backlog is sent in batches (in order); each request has
//! connect and total timeouts; failed batches are retried with capped, jittered backoff (`max_attempts` times,
//! or until they succeed for `Require-Reliability` subscriptions). Overflow drops the oldest element, counted
//! and logged — never an unbounded buffer. Throttled and periodic subscriptions keep only the latest state per
//! entity; a periodic subscription's queue is fed by a timer ([`periodic`]).
//! Subscriber URLs may be `http://` or `https://`: the shared [`HttpClient`] verifies certificates (system CAs plus
//! `tls.ca_file`) and keeps plain `http://` on its own pool, so TLS costs nothing to plain subscribers.
//!
//! Knows the notification formats (NGSIv1, and NGSIv2 / NGSI-LD for the `Destination` header, and Orion's
//! `attrsFormat`s for NGSIv2 subscriptions, with `Fiware-Service`, `Fiware-Correlator` and `Ngsiv2-AttrsFormat`
//! headers, and the NGSI-LD Notification of NGSI-LD subscriptions with `Link` or body `@context` and
//! `NGSILD-Tenant`) but nothing of how subscriptions match changes. An NGSIv2 subscription with `maxFailsLimit` stops
//! delivering (drops its queue) after that many consecutive failed attempts; the broker then marks it inactive.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::request::build_request;
use super::entities::StoredEntity;
use super::subscriptions::SubscriptionRecord;
use crate::clients::http_client::HttpClient;
use crate::config::NotificationConfig;
use crate::http::Metrics;
use crate::ngsi::ld::subscription::{LdNotice, LdSubscription};
use crate::ngsi::v1::ContextElement;
use crate::ngsi::v2::subscription::AttrsFormat;

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
    /// Failed attempts in all (NGSI-LD `timesFailed`; not in the NGSI10/NGSIv2 shapes).
    #[serde(skip_serializing)]
    pub times_failed: u64,
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
    /// What an NGSI-LD notification adds to the element (times, deletions, previous values), when anything.
    notice: Option<Box<LdNotice>>,
    correlator: Option<String>,
    /// The entity's NGSIv2 service path (sent as `Fiware-ServicePath` to NGSIv2 subscribers).
    service_path: String,
    /// The stored entity `element` was projected from, for the system times of its attributes (kept for NGSI-LD
    /// subscriptions only).
    entity: Option<Arc<StoredEntity>>,
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
    /// Consecutive failed attempts after which delivery stops (NGSIv2 `maxFailsLimit`).
    max_fails: Option<u64>,
    /// Set once `max_fails` was reached: nothing more is queued or sent.
    disabled: AtomicBool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("subscription_id", &self.subscription_id).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Queues one element (of an entity living in `service_path`, projected from the stored `entity` when given,
    /// with what its NGSI-LD notification adds); drops the oldest when full (throttled and periodic subscriptions
    /// replace a queued element of the same entity instead).
    pub fn push(
        &self,
        element: ContextElement,
        entity: Option<Arc<StoredEntity>>,
        notice: Option<Box<LdNotice>>,
        correlator: Option<String>,
        service_path: &str,
    ) {
        if self.is_disabled() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let service_path = service_path.to_string();
        self.enqueue(&mut queue, Pending { element, notice, correlator, service_path, entity });
        drop(queue);
        self.wake.notify_one();
    }

    /// Adds one element to the locked queue: coalesced with a queued element of the same entity, or appended
    /// (dropping the oldest when full).
    fn enqueue(&self, queue: &mut VecDeque<Pending>, pending: Pending) {
        if self.coalesce {
            if let Some(queued) = queue.iter_mut().find(|p| p.element.entity_id.id == pending.element.entity_id.id) {
                *queued = pending;
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
        queue.push_back(pending);
        self.metrics.queued.inc();
    }

    /// Queues the current state of every entity a new subscription selects. Not subject to the queue bound
    /// (it is one copy of entities the broker already holds) so a subscription over many entities still gets
    /// all of them; later changes are bounded as usual. Each element comes with its entity's service path.
    pub fn push_initial(&self, elements: Vec<(ContextElement, String)>) {
        if self.is_disabled() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.queued.inc_by(elements.len() as i64);
        queue.extend(elements.into_iter().map(|(element, service_path)| Pending {
            element,
            notice: None,
            correlator: None,
            service_path,
            entity: None,
        }));
        drop(queue);
        self.wake.notify_one();
    }

    /// The delivery counters.
    pub fn status(&self) -> DeliveryStatus {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        status.pending = self.queue.lock().unwrap_or_else(|p| p.into_inner()).len();
        status
    }

    /// Whether delivery stopped because `maxFailsLimit` consecutive attempts failed.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::SeqCst)
    }

    /// Takes over the counters of the delivery this one replaces (an updated subscription), with the consecutive
    /// failures reset when `reset_fails`.
    pub fn inherit(&self, previous: &DeliveryStatus, reset_fails: bool) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        *status = DeliveryStatus { pending: 0, ..previous.clone() };
        if reset_fails {
            status.fails_counter = 0;
        }
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
                status.times_failed += 1;
                status.last_failure = Some(now);
                status.last_failure_reason = Some(reason.to_string());
                self.metrics.failed.inc();
                if self.max_fails.is_some_and(|max| status.fails_counter >= max) {
                    drop(status);
                    self.disabled.store(true, Ordering::SeqCst);
                    let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                    self.metrics.queued.dec_by(queue.len() as i64);
                    queue.clear();
                    tracing::warn!(subscription = %self.subscription_id, "maxFailsLimit reached, notifications stopped");
                }
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
    tenant: String,
    reliable: bool,
    throttling: Option<Duration>,
    /// An NGSI-LD subscription's notification parameters (with [`Destination::LdSubscription`]).
    ld: Option<Arc<LdSubscription>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    NgsiV1,
    NgsiV2,
    NgsiLd,
    /// An NGSIv2 subscription: Orion's notification in its `attrsFormat`, POSTed to the URL as given.
    Orion(AttrsFormat),
    /// An NGSI-LD subscription: the spec's Notification, POSTed to the endpoint URI as given.
    LdSubscription,
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
        let destination = match (&record.v2, record.subscriber.destination_type.to_ascii_lowercase().as_str()) {
            _ if record.ld.is_some() => Destination::LdSubscription,
            (Some(v2), _) => Destination::Orion(v2.attrs_format),
            (None, "ngsiv2") => Destination::NgsiV2,
            (None, "ngsi-ld") => Destination::NgsiLd,
            (None, _) => Destination::NgsiV1,
        };
        let reference = match destination {
            Destination::Orion(_) | Destination::LdSubscription => record.request.reference.clone(),
            _ => record.request.reference.trim_end_matches('/').to_string(),
        };
        let target = Target {
            subscription_id: record.id.clone(),
            reference,
            destination,
            ld_tenant: record.subscriber.tenant.clone(),
            tenant: record.tenant.clone(),
            reliable: record.subscriber.require_reliability,
            throttling,
            ld: record.ld.clone().map(Arc::new),
        };
        let delivery = Arc::new(Delivery {
            subscription_id: record.id.clone(),
            queue: Mutex::new(VecDeque::new()),
            status: Mutex::new(DeliveryStatus::default()),
            wake: Notify::new(),
            cancel: self.shutdown.child_token(),
            coalesce: throttling.is_some() || record.ld.as_ref().is_some_and(|ld| ld.time_interval_ms.is_some()),
            capacity: self.config.queue_capacity,
            metrics: self.metrics.clone(),
            max_fails: record.v2.as_ref().and_then(|v2| v2.max_fails_limit),
            disabled: AtomicBool::new(false),
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
                        let giving_up =
                            (!target.reliable && attempt >= self.config.max_attempts) || delivery.is_disabled();
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

mod periodic;
mod request;
#[cfg(test)]
mod tests;

pub use self::periodic::Tick;
