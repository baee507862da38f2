//! The in-process bus for `--role all`: a topic exchange over durable in-memory queues with the delivery
//! semantics of the RabbitMQ bus — FIFO per queue, one consumer per queue, one unsettled delivery at a time,
//! ack after processing, and redelivery (at the head of the queue) of a delivery that is rejected with requeue
//! or dropped unsettled. Messages published before a consumer starts wait in the queue; a key no queue is bound
//! to is refused as unroutable, as a `mandatory` publish on RabbitMQ is. A single-active queue accepts more
//! consumers: the first gets the deliveries, the others wait in line and the next takes over once it is dropped
//! (its unsettled delivery comes back first), as RabbitMQ's `x-single-active-consumer` does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::{topic, BoxFuture, Bus, BusError, Consumer, Delivery, Envelope, QueueSpec, Settle};
use crate::sync::lock;

/// Messages one queue holds before publishers are told it is full.
pub const QUEUE_LIMIT: usize = 100_000;

/// The in-process bus. Clones share the same exchange.
#[derive(Clone, Default)]
pub struct MemoryBus {
    queues: Arc<Mutex<HashMap<String, Arc<Queue>>>>,
}

struct Queue {
    bindings: Mutex<Vec<String>>,
    items: Mutex<VecDeque<(Envelope, bool)>>,
    ready: Notify,
    /// One permit: held by the pump of the consumer that gets the deliveries.
    active: Arc<Semaphore>,
    /// Whether it was declared single-active (fixed by its first declaration, as on RabbitMQ).
    single_active: Mutex<Option<bool>>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            bindings: Mutex::default(),
            items: Mutex::default(),
            ready: Notify::new(),
            active: Arc::new(Semaphore::new(1)),
            single_active: Mutex::new(None),
        }
    }
}

impl Queue {
    fn push_back(&self, envelope: Envelope) -> bool {
        let mut items = lock(&self.items);
        if items.len() >= QUEUE_LIMIT {
            return false;
        }
        items.push_back((envelope, false));
        drop(items);
        self.ready.notify_one();
        true
    }

    fn requeue(&self, envelope: Envelope) {
        lock(&self.items).push_front((envelope, true));
        self.ready.notify_one();
    }
}

struct MemorySettle {
    queue: Arc<Queue>,
    envelope: Option<Envelope>,
    settled: Option<oneshot::Sender<()>>,
}

impl Settle for MemorySettle {
    fn ack(mut self: Box<Self>) {
        if let Some(settled) = self.settled.take() {
            let _ = settled.send(());
        }
    }

    fn reject(mut self: Box<Self>, requeue: bool) {
        if let Some(settled) = self.settled.take() {
            // Requeue before the pump moves on, so the message keeps its place at the head.
            if let Some(envelope) = self.envelope.take() {
                if requeue {
                    self.queue.requeue(envelope);
                } else {
                    tracing::warn!(message_type = %envelope.message_type, "bus message rejected without requeue; dropped");
                }
            }
            let _ = settled.send(());
        }
    }
}

impl MemoryBus {
    /// An empty exchange.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages wait in `queue` (tests, metrics).
    pub fn depth(&self, queue: &str) -> usize {
        lock(&self.queues).get(queue).map(|q| lock(&q.items).len()).unwrap_or(0)
    }

    fn route(&self, envelope: Envelope) -> Result<(), BusError> {
        let targets: Vec<Arc<Queue>> = lock(&self.queues)
            .values()
            .filter(|q| lock(&q.bindings).iter().any(|b| topic::matches(b, &envelope.routing_key)))
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(BusError::Unroutable(envelope.routing_key));
        }
        for queue in targets {
            if !queue.push_back(envelope.clone()) {
                return Err(BusError::Disconnected(format!("queue full ({QUEUE_LIMIT} messages)")));
            }
        }
        Ok(())
    }

    fn start_consumer(&self, spec: QueueSpec) -> Result<Consumer, BusError> {
        let queue = {
            let mut queues = lock(&self.queues);
            let queue = queues.entry(spec.name.clone()).or_default().clone();
            let mut bindings = lock(&queue.bindings);
            for binding in spec.bindings {
                if !bindings.contains(&binding) {
                    bindings.push(binding);
                }
            }
            drop(bindings);
            queue
        };
        {
            let mut kind = lock(&queue.single_active);
            match *kind {
                None => *kind = Some(spec.single_active),
                Some(declared) if declared != spec.single_active => {
                    return Err(BusError::Refused(format!(
                        "queue {} was declared {}single-active; declare it the same way",
                        spec.name,
                        if declared { "" } else { "not " }
                    )))
                }
                Some(_) => {}
            }
        }
        let permit = if spec.single_active {
            None
        } else {
            Some(queue.active.clone().try_acquire_owned().map_err(|_| BusError::Busy(spec.name))?)
        };
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(pump(queue, sender, permit));
        Ok(Consumer::new(receiver))
    }
}

/// Moves messages from the queue to its consumer, one unsettled delivery at a time; a consumer of a
/// single-active queue first waits for its turn (`permit` is `None` then).
async fn pump(queue: Arc<Queue>, sender: mpsc::Sender<Delivery>, permit: Option<OwnedSemaphorePermit>) {
    let _active = match permit {
        Some(permit) => permit,
        None => tokio::select! {
            permit = queue.active.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = sender.closed() => return,
        },
    };
    loop {
        let next = lock(&queue.items).pop_front();
        let Some((envelope, redelivered)) = next else {
            tokio::select! {
                _ = queue.ready.notified() => continue,
                _ = sender.closed() => break,
            }
        };
        let Ok(permit) = sender.reserve().await else {
            queue.requeue(envelope);
            break;
        };
        let (settled, settlement) = oneshot::channel();
        let settle = MemorySettle { queue: queue.clone(), envelope: Some(envelope.clone()), settled: Some(settled) };
        permit.send(Delivery::new(envelope, redelivered, Box::new(settle)));
        // One unsettled delivery at a time (prefetch 1): the next waits until this one is acked or rejected
        // (a dropped delivery counts as rejected with requeue, also when the consumer goes away).
        let _ = settlement.await;
        if sender.is_closed() {
            break;
        }
    }
}

impl Bus for MemoryBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move { self.route(envelope) })
    }

    fn consume(&self, queue: QueueSpec) -> BoxFuture<'_, Result<Consumer, BusError>> {
        Box::pin(async move { self.start_consumer(queue) })
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::envelope::{keys, MessageType};
    use serde_json::json;

    fn message(n: u32, key: &str) -> Envelope {
        Envelope::new(MessageType::WorkerHeartbeat, key, "Worker.001", &json!({ "n": n }))
    }

    #[tokio::test]
    async fn routes_by_topic_in_order_and_keeps_messages_until_consumed() {
        let bus = MemoryBus::new();
        assert!(matches!(bus.publish(message(0, keys::HEARTBEAT)).await, Err(BusError::Unroutable(_))));
        let mut master = bus.consume(QueueSpec::new("Master.001", ["heartbeat.*", "task."])).await.unwrap();
        drop(master);
        // The queue is durable: messages wait without a consumer.
        for n in 1..=3 {
            bus.publish(message(n, keys::HEARTBEAT)).await.unwrap();
        }
        assert_eq!(bus.depth("Master.001"), 3);
        tokio::task::yield_now().await;
        master = bus.consume(QueueSpec::new("Master.001", ["heartbeat.*"])).await.unwrap();
        for n in 1..=3 {
            let delivery = master.next().await.unwrap();
            assert_eq!(delivery.envelope.payload["n"], n);
            delivery.ack();
        }
        assert!(matches!(bus.publish(message(9, "Worker.002.")).await, Err(BusError::Unroutable(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsettled_or_requeued_deliveries_come_back_first() {
        let bus = MemoryBus::new();
        let mut consumer = bus.consume(QueueSpec::new("Worker.001", ["Worker.001.*"])).await.unwrap();
        bus.publish(message(1, "Worker.001.")).await.unwrap();
        bus.publish(message(2, "Worker.001.")).await.unwrap();
        let first = consumer.next().await.unwrap();
        assert!(!first.redelivered);
        // Prefetch 1: nothing else is handed over while `first` is unsettled.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(bus.depth("Worker.001"), 1);
        first.reject(true);
        let again = consumer.next().await.unwrap();
        assert_eq!(again.envelope.payload["n"], 1);
        assert!(again.redelivered);
        drop(again); // unsettled → back
        let third = consumer.next().await.unwrap();
        assert_eq!(third.envelope.payload["n"], 1);
        third.reject(false); // poison → gone
        let fourth = consumer.next().await.unwrap();
        assert_eq!(fourth.envelope.payload["n"], 2);
        fourth.ack();
        assert_eq!(bus.depth("Worker.001"), 0);
    }

    #[tokio::test]
    async fn one_consumer_per_queue_and_fanout_to_every_bound_queue() {
        let bus = MemoryBus::new();
        let mut master = bus.consume(QueueSpec::new("Master.001", ["task."])).await.unwrap();
        assert!(matches!(bus.consume(QueueSpec::new("Master.001", ["task."])).await, Err(BusError::Busy(_))));
        let mut designer = bus.consume(QueueSpec::new("fogflow-designer", ["designer.*", "task."])).await.unwrap();
        bus.publish(message(7, keys::TASK)).await.unwrap();
        master.next().await.unwrap().ack();
        designer.next().await.unwrap().ack();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_active_queue_hands_over_to_the_next_consumer_with_unsettled_messages() {
        let bus = MemoryBus::new();
        let spec = QueueSpec::single_active("fogflow.master", ["heartbeat.*"]);
        let mut first = bus.consume(spec.clone()).await.unwrap();
        let mut second = bus.consume(spec.clone()).await.unwrap();
        // Declared single-active: a plain consumer of the same queue is refused.
        let plain = bus.consume(QueueSpec::new("fogflow.master", ["heartbeat.*"])).await.map(|_| ());
        assert!(matches!(plain, Err(BusError::Refused(_))), "{plain:?}");
        bus.publish(message(1, keys::HEARTBEAT)).await.unwrap();
        bus.publish(message(2, keys::HEARTBEAT)).await.unwrap();
        let one = first.next().await.unwrap();
        assert_eq!(one.envelope.payload["n"], 1);
        one.ack();
        let held = first.next().await.unwrap();
        assert_eq!(held.envelope.payload["n"], 2);
        // The standby receives nothing while the active one lives.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), second.next()).await;
        assert!(waited.is_err(), "the standby got a delivery");
        // The active one goes with a delivery unsettled: the standby takes over and gets it first.
        drop(held);
        drop(first);
        let again = tokio::time::timeout(std::time::Duration::from_secs(2), second.next()).await.unwrap().unwrap();
        assert_eq!(again.envelope.payload["n"], 2);
        assert!(again.redelivered);
        again.ack();
        bus.publish(message(3, keys::HEARTBEAT)).await.unwrap();
        let three = second.next().await.unwrap();
        assert_eq!(three.envelope.payload["n"], 3);
        three.ack();
        // A third consumer waits behind the second.
        let mut third = bus.consume(spec).await.unwrap();
        bus.publish(message(4, keys::HEARTBEAT)).await.unwrap();
        let four = second.next().await.unwrap();
        assert_eq!(four.envelope.payload["n"], 4);
        four.ack();
        drop(second);
        bus.publish(message(5, keys::HEARTBEAT)).await.unwrap();
        let five = tokio::time::timeout(std::time::Duration::from_secs(2), third.next()).await.unwrap().unwrap();
        assert_eq!(five.envelope.payload["n"], 5);
    }
}
