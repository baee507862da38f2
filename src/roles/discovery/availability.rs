//! Availability subscriptions and their notifications (spec §7.6, with FogFlow's bugs fixed): one delivery
//! task and queue per subscription; the queue keeps only the newest action per (provider, entity), so a retry
//! never sends a stale copy (FogFlow re-sent its whole global cache forever, §12.20); failures are retried with
//! capped backoff until the subscription is cancelled; the queue is bounded (oldest dropped, counted, logged).
//! A notification is acknowledged by any 2xx answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::matching::{group_by_provider, AvailabilityQuery};
use super::registry::Registration;
use crate::clients::http_client::HttpClient;
use crate::ngsi::v1::StatusCode;
use crate::ngsi::v9::{AvailabilityAction, NotifyContextAvailabilityRequest, SubscribeContextAvailabilityRequest};

/// Most pending registrations per subscription.
pub const QUEUE_CAPACITY: usize = 100_000;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A live availability subscription.
#[derive(Debug)]
pub struct AvailabilitySubscription {
    /// The request as stored (with its id).
    pub request: SubscribeContextAvailabilityRequest,
    /// What it selects.
    pub query: AvailabilityQuery,
    queue: Mutex<VecDeque<(AvailabilityAction, Registration)>>,
    wake: Notify,
    cancel: CancellationToken,
}

impl AvailabilitySubscription {
    /// Queues a notification about `registration`, replacing any queued one for the same provider and entity.
    pub fn push(&self, action: AvailabilityAction, registration: Registration) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.retain(|(_, queued)| {
            !(queued.provider == registration.provider && queued.entity.id == registration.entity.id)
        });
        if queue.len() >= QUEUE_CAPACITY {
            queue.pop_front();
            tracing::warn!(subscription = %self.request.subscription_id, "availability queue full, dropping the oldest");
        }
        queue.push_back((action, registration));
        drop(queue);
        self.wake.notify_one();
    }

    /// Stops delivery.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Takes the leading run of queued items that share one action.
    fn take_run(&self) -> Option<(AvailabilityAction, Vec<Registration>)> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let action = queue.front()?.0;
        let mut run = Vec::new();
        while queue.front().is_some_and(|(queued, _)| *queued == action) && run.len() < 1000 {
            if let Some((_, registration)) = queue.pop_front() {
                run.push(registration);
            }
        }
        Some((action, run))
    }

    /// Puts back a run that failed, except items superseded meanwhile.
    fn put_back(&self, action: AvailabilityAction, run: Vec<Registration>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for registration in run.into_iter().rev() {
            let superseded = queue.iter().any(|(_, queued)| {
                queued.provider == registration.provider && queued.entity.id == registration.entity.id
            });
            if !superseded {
                queue.push_front((action, registration));
            }
        }
    }
}

/// Counters of availability notifications.
#[derive(Debug, Clone, Default)]
pub struct AvailabilityCounters {
    /// Notifications delivered.
    pub sent: Counter,
    /// Attempts that failed.
    pub failed: Counter,
}

/// Starts delivery tasks.
#[derive(Clone)]
pub struct AvailabilityNotifier {
    http: HttpClient,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    counters: AvailabilityCounters,
}

impl AvailabilityNotifier {
    /// A notifier whose tasks stop when `shutdown` fires.
    pub fn new(
        http: HttpClient,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        counters: AvailabilityCounters,
    ) -> Self {
        AvailabilityNotifier { http, tasks, shutdown, counters }
    }

    /// Creates a subscription and starts its delivery task.
    pub fn start(
        &self,
        request: SubscribeContextAvailabilityRequest,
        query: AvailabilityQuery,
    ) -> Arc<AvailabilitySubscription> {
        let subscription = Arc::new(AvailabilitySubscription {
            request,
            query,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            cancel: self.shutdown.child_token(),
        });
        let http = self.http.clone();
        let counters = self.counters.clone();
        let task_subscription = subscription.clone();
        self.tasks.spawn(async move { deliver(http, counters, task_subscription).await });
        subscription
    }
}

async fn deliver(http: HttpClient, counters: AvailabilityCounters, subscription: Arc<AvailabilitySubscription>) {
    let mut failures: u32 = 0;
    loop {
        let Some((action, run)) = subscription.take_run() else {
            tokio::select! {
                () = subscription.wake.notified() => continue,
                () = subscription.cancel.cancelled() => return,
            }
        };
        let body = NotifyContextAvailabilityRequest {
            subscribe_id: subscription.request.subscription_id.clone(),
            context_registration_responses: group_by_provider(&run),
            error_code: StatusCode::new(action.code(), "OK", ""),
        };
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let reference = &subscription.request.reference;
        let sent = tokio::select! {
            sent = http.post_json(reference, HeaderMap::new(), bytes) => sent,
            () = subscription.cancel.cancelled() => return,
        };
        let outcome = match sent {
            Ok(response) if response.is_success() => Ok(()),
            Ok(response) => Err(format!("subscriber answered HTTP {}", response.status)),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(()) => {
                failures = 0;
                counters.sent.inc();
            }
            Err(reason) => {
                failures += 1;
                counters.failed.inc();
                subscription.put_back(action, run);
                let backoff = Duration::from_millis(200).saturating_mul(1 << failures.min(8)).min(MAX_BACKOFF);
                tracing::warn!(subscription = %subscription.request.subscription_id, %reference, failures, %reason, retry_in = ?backoff, "availability notification failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = subscription.cancel.cancelled() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngsi::v1::EntityId;

    fn registration(id: &str, provider: &str) -> Registration {
        Registration {
            entity: EntityId { id: id.into(), entity_type: "T".into(), is_pattern: false },
            attributes: vec![],
            metadata: vec![],
            provider: provider.into(),
            ..Registration::default()
        }
    }

    #[tokio::test]
    async fn queue_keeps_the_newest_action_per_entity_and_provider() {
        let notifier = AvailabilityNotifier::new(
            HttpClient::new(Duration::from_millis(10), Duration::from_millis(10)),
            TaskTracker::new(),
            CancellationToken::new(),
            AvailabilityCounters::default(),
        );
        let query = AvailabilityQuery::compile(
            &[EntityId { id: "e.*".into(), entity_type: String::new(), is_pattern: true }],
            &[],
            None,
        )
        .unwrap();
        let subscription = notifier.start(SubscribeContextAvailabilityRequest::default(), query);
        subscription.cancel();
        subscription.push(AvailabilityAction::Update, registration("e1", "a"));
        subscription.push(AvailabilityAction::Update, registration("e2", "a"));
        subscription.push(AvailabilityAction::Delete, registration("e1", "a"));
        let (action, run) = subscription.take_run().unwrap();
        assert_eq!((action, run.len()), (AvailabilityAction::Update, 1));
        subscription.put_back(action, run);
        subscription.push(AvailabilityAction::Update, registration("e2", "a"));
        let (action, run) = subscription.take_run().unwrap();
        assert_eq!((action, run[0].entity.id.as_str()), (AvailabilityAction::Delete, "e1"));
    }
}
