//! Publishing an operator's results: `POST <brokerURL>/updateContext` with `Content-Type: application/json` and
//! `Fiware-Correlator: <correlatorID>` (when set), body `{"contextElements":[…],"updateAction":"UPDATE"}`.
//!
//! Results go through a bounded queue to one publishing task, so receiving a notification never waits for the
//! broker and results leave in the order they were produced. A full queue drops the batch with a warning. A
//! failed request (transport error, timeout, 5xx, 408, 429) is retried with exponential backoff; other 4xx
//! answers are not retried. Every failure is logged; nothing here panics.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clients::http_client::HttpClient;
use crate::model::admin::TaskSettings;
use crate::ngsi::v1::{ContextElement, UpdateContextRequest};

/// Batches waiting to be published, at most.
pub const QUEUE_CAPACITY: usize = 1024;

/// Timeouts and retries of the publishing requests.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout of one request.
    pub request_timeout: Duration,
    /// Attempts per batch (the first one included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Why a batch was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No `CONNECT_BROKER` yet.
    #[error("no broker configured (CONNECT_BROKER / brokerURL); dropping {0} result(s)")]
    NoBroker(usize),
    /// The queue is full.
    #[error("publish queue full ({QUEUE_CAPACITY} batches); dropping {0} result(s)")]
    QueueFull(usize),
    /// The publishing task has ended (shutting down).
    #[error("publisher stopped; dropping {0} result(s)")]
    Stopped(usize),
}

/// One `updateContext` to send.
#[derive(Debug, Clone)]
struct Batch {
    url: String,
    correlator: Option<String>,
    elements: Vec<ContextElement>,
}

/// The sending side of the publish queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    sender: mpsc::Sender<Batch>,
}

/// The publishing task; run it with [`PublishTask::run`].
#[derive(Debug)]
pub struct PublishTask {
    receiver: mpsc::Receiver<Batch>,
    client: HttpClient,
    policy: RetryPolicy,
}

/// A publisher and the task that drains its queue.
pub fn channel(policy: RetryPolicy) -> (Publisher, PublishTask) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let client = HttpClient::new(policy.connect_timeout, policy.request_timeout);
    (Publisher { sender }, PublishTask { receiver, client, policy })
}

/// `<brokerURL>/updateContext` (FogFlow's `CONNECT_BROKER` URL ends with `/ngsi10`).
pub fn update_url(broker_url: &str) -> String {
    format!("{}/updateContext", broker_url.trim_end_matches('/'))
}

impl Publisher {
    /// Queues `elements` for the broker and correlator in `settings` now; never waits. Nothing to publish is
    /// not an error.
    pub fn enqueue(&self, settings: &TaskSettings, elements: Vec<ContextElement>) -> Result<(), PublishError> {
        if elements.is_empty() {
            return Ok(());
        }
        let count = elements.len();
        let Some(broker_url) = settings.broker_url.as_deref().filter(|url| !url.is_empty()) else {
            return Err(PublishError::NoBroker(count));
        };
        let batch = Batch { url: update_url(broker_url), correlator: settings.correlator_id.clone(), elements };
        self.sender.try_send(batch).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => PublishError::QueueFull(count),
            mpsc::error::TrySendError::Closed(_) => PublishError::Stopped(count),
        })
    }
}

impl PublishTask {
    /// Publishes queued batches in order until `shutdown` fires; then sends what is still queued once each
    /// (no retries), returning when the queue is empty. The caller bounds that drain with a timeout.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                batch = self.receiver.recv() => batch,
                () = shutdown.cancelled() => break,
            };
            let Some(batch) = batch else { return };
            self.publish(&batch, &shutdown).await;
        }
        self.receiver.close();
        while let Ok(batch) = self.receiver.try_recv() {
            self.publish(&batch, &shutdown).await;
        }
    }

    /// Sends one batch with retries (only one attempt once `shutdown` has fired).
    async fn publish(&self, batch: &Batch, shutdown: &CancellationToken) {
        let request =
            UpdateContextRequest { context_elements: batch.elements.clone(), update_action: Some("UPDATE".into()) };
        let body = match serde_json::to_vec(&request) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::error!(%error, "cannot serialize the update; dropping it");
                return;
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(correlator) = batch.correlator.as_deref().filter(|c| !c.is_empty()) {
            match HeaderValue::from_str(correlator) {
                Ok(value) => {
                    headers.insert(HeaderName::from_static("fiware-correlator"), value);
                }
                Err(_) => tracing::warn!(correlator, "correlator is not a valid header value; sending without it"),
            }
        }
        let ids: Vec<&str> = batch.elements.iter().map(|element| element.entity_id.id.as_str()).collect();
        let mut backoff = self.policy.initial_backoff;
        let attempts = self.policy.attempts.max(1);
        for attempt in 1..=attempts {
            let outcome = self.client.post_json(&batch.url, headers.clone(), body.clone()).await;
            let (retryable, problem) = match outcome {
                Ok(response) if response.is_success() => {
                    tracing::debug!(url = %batch.url, ?ids, "published");
                    return;
                }
                Ok(response) => {
                    let retryable = response.status >= 500 || matches!(response.status, 408 | 429);
                    let text = String::from_utf8_lossy(&response.body).chars().take(300).collect::<String>();
                    (retryable, format!("HTTP {}: {text}", response.status))
                }
                Err(error) => (true, error.to_string()),
            };
            let last = attempt == attempts || !retryable || shutdown.is_cancelled();
            if last {
                tracing::error!(url = %batch.url, ?ids, attempt, %problem, "publishing failed; dropping the update");
                return;
            }
            tracing::warn!(url = %batch.url, ?ids, attempt, %problem, retry_in = ?backoff, "publishing failed");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => {}
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngsi::v1::EntityId;

    fn element(id: &str) -> ContextElement {
        ContextElement { entity_id: EntityId { id: id.into(), ..EntityId::default() }, ..ContextElement::default() }
    }

    #[test]
    fn update_url_appends_to_the_ngsi10_base() {
        assert_eq!(update_url("http://b:8070/ngsi10"), "http://b:8070/ngsi10/updateContext");
        assert_eq!(update_url("http://b:8070/ngsi10/"), "http://b:8070/ngsi10/updateContext");
    }

    #[tokio::test]
    async fn enqueue_needs_a_broker_and_a_free_slot() {
        let (publisher, task) = channel(RetryPolicy::default());
        let mut settings = TaskSettings::default();
        assert_eq!(publisher.enqueue(&settings, vec![]), Ok(()));
        assert_eq!(publisher.enqueue(&settings, vec![element("a")]), Err(PublishError::NoBroker(1)));
        settings.broker_url = Some("http://127.0.0.1:9/ngsi10".into());
        for _ in 0..QUEUE_CAPACITY {
            publisher.enqueue(&settings, vec![element("a")]).unwrap();
        }
        assert_eq!(publisher.enqueue(&settings, vec![element("a")]), Err(PublishError::QueueFull(1)));
        drop(task);
        assert_eq!(publisher.enqueue(&settings, vec![element("a")]), Err(PublishError::Stopped(1)));
    }
}
