//! The worker's outgoing bus messages, published in order by one task that retries with capped backoff while
//! the bus refuses them (e.g. unroutable before the master's queue is bound): a `TASK_UPDATE` is never dropped.
//! A queued heartbeat is replaced by a newer one, so a long outage does not pile them up.
//!
//! Must not: decide what to send (the executor and the role do).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::bus::{Bus, Envelope, MessageType};
use crate::sync::lock;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

struct Inner {
    queue: Mutex<VecDeque<Envelope>>,
    changed: Notify,
    closed: AtomicBool,
}

/// The publishing queue. Clones share it.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

fn is_heartbeat(envelope: &Envelope) -> bool {
    envelope.kind() == Some(MessageType::WorkerHeartbeat)
}

impl Outbox {
    /// An outbox publishing to `bus` from a task of its own (ends once closed and empty).
    pub fn start(bus: Arc<dyn Bus>) -> (Outbox, JoinHandle<()>) {
        let outbox = Outbox {
            inner: Arc::new(Inner { queue: Mutex::default(), changed: Notify::new(), closed: AtomicBool::new(false) }),
        };
        let publisher = tokio::spawn(outbox.clone().publish_loop(bus));
        (outbox, publisher)
    }

    /// Queues a message.
    pub fn send(&self, envelope: Envelope) {
        let mut queue = lock(&self.inner.queue);
        if is_heartbeat(&envelope) {
            queue.retain(|queued| !is_heartbeat(queued));
        }
        queue.push_back(envelope);
        drop(queue);
        self.inner.changed.notify_waiters();
        self.inner.changed.notify_one();
    }

    /// Messages not yet published.
    pub fn pending(&self) -> usize {
        lock(&self.inner.queue).len()
    }

    /// No more messages: the publisher ends once the queue is empty.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
        self.inner.changed.notify_one();
    }

    async fn publish_loop(self, bus: Arc<dyn Bus>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = lock(&self.inner.queue).pop_front();
            let Some(envelope) = next else {
                if self.inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                self.inner.changed.notified().await;
                continue;
            };
            match bus.publish(envelope.clone()).await {
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(error) => {
                    {
                        let mut queue = lock(&self.inner.queue);
                        if !(is_heartbeat(&envelope) && queue.iter().any(is_heartbeat)) {
                            queue.push_front(envelope.clone());
                        }
                    }
                    if backoff >= MAX_BACKOFF {
                        tracing::warn!(%error, message_type = %envelope.message_type, "bus refuses a message; retrying");
                    } else {
                        tracing::debug!(%error, message_type = %envelope.message_type, "bus refuses a message; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::envelope::keys;
    use crate::bus::memory::MemoryBus;
    use crate::bus::QueueSpec;

    #[tokio::test]
    async fn retries_until_routable_in_order_and_coalesces_heartbeats() {
        let bus = MemoryBus::new();
        let (outbox, publisher) = Outbox::start(Arc::new(bus.clone()));
        outbox.send(Envelope::new(MessageType::TaskUpdate, keys::TASK, "W", &1));
        outbox.send(Envelope::new(MessageType::WorkerHeartbeat, keys::HEARTBEAT, "W", &2));
        outbox.send(Envelope::new(MessageType::WorkerHeartbeat, keys::HEARTBEAT, "W", &3));
        outbox.send(Envelope::new(MessageType::TaskUpdate, keys::TASK, "W", &4));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let mut consumer = bus.consume(QueueSpec::new("M", ["task.", "heartbeat.*"])).await.unwrap();
        outbox.close();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let delivery = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await.unwrap().unwrap();
            seen.push(delivery.envelope.payload.clone());
            delivery.ack();
        }
        assert_eq!(seen, vec![serde_json::json!(1), serde_json::json!(3), serde_json::json!(4)]);
        tokio::time::timeout(Duration::from_secs(3), publisher).await.unwrap().unwrap();
        assert_eq!(outbox.pending(), 0);
    }
}
