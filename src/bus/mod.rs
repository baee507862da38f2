//! The control bus between master, workers and designer: FogFlow's envelope
//! (`{"Type","RoutingKey","From","PayLoad"}`), its message types and routing keys, and the [`Bus`] trait the
//! roles use. Implementations: [`memory::MemoryBus`] (in-process, for `--role all`) and [`amqp::AmqpBus`]
//! (RabbitMQ, for roles in separate processes; the only module that imports lapin). Delivery semantics are the
//! same for all: a topic exchange with AMQP's matching rules, durable queues (messages wait for a consumer),
//! at-least-once delivery with an explicit ack after processing (a delivery dropped or rejected with requeue
//! comes back), FIFO order per queue, and one consumer per queue — except a *single-active* queue
//! ([`QueueSpec::single_active`]), which accepts more consumers but delivers to one of them at a time: the
//! others wait, and the next takes over (with the messages the previous one left unacknowledged) once it is
//! gone. That is how masters elect the active one (RabbitMQ's `x-single-active-consumer`).
//!
//! Owns: message transport. Must not: interpret payloads (roles do), or import another role.

pub mod amqp;
pub mod envelope;
pub mod memory;
pub mod topic;

use std::future::Future;
use std::pin::Pin;

pub use envelope::{Envelope, MessageType};

/// A boxed future (the trait is object safe so roles hold an `Arc<dyn Bus>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a bus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// No queue is bound to the routing key (the message was not taken).
    #[error("no queue is bound to routing key {0:?}")]
    Unroutable(String),
    /// The bus is not connected.
    #[error("bus disconnected: {0}")]
    Disconnected(String),
    /// The queue has a consumer already (for a process-owned queue, another process uses the same id).
    #[error("queue {0} already has a consumer")]
    Busy(String),
    /// The bus refused the operation for a reason retrying will not fix (e.g. a queue declared with other
    /// properties); the text says what to do.
    #[error("bus refused: {0}")]
    Refused(String),
    /// The bus is closed for good.
    #[error("bus closed")]
    Closed,
}

/// A queue to consume: its name and the routing-key patterns bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name (FogFlow: the component's id, e.g. `Master.001`, `Worker.001`, `fogflow-designer`).
    pub name: String,
    /// Binding patterns (`heartbeat.*`, `task.`, `Worker.001.*` …).
    pub bindings: Vec<String>,
    /// Several consumers allowed, one active at a time (the others wait to take over). A consumer of such a
    /// queue ends (its stream yields `None`) when the bus loses it, e.g. on a reconnection, instead of being
    /// resumed silently: its owner may no longer be the active one.
    pub single_active: bool,
}

impl QueueSpec {
    /// A queue with its bindings and one consumer.
    pub fn new(name: impl Into<String>, bindings: impl IntoIterator<Item = impl Into<String>>) -> Self {
        QueueSpec { name: name.into(), bindings: bindings.into_iter().map(Into::into).collect(), single_active: false }
    }

    /// A single-active-consumer queue with its bindings.
    pub fn single_active(name: impl Into<String>, bindings: impl IntoIterator<Item = impl Into<String>>) -> Self {
        QueueSpec { single_active: true, ..QueueSpec::new(name, bindings) }
    }
}

/// How a delivery is settled.
pub trait Settle: Send {
    /// Processed: forget it.
    fn ack(self: Box<Self>);
    /// Not processed: put it back (`requeue`) or drop it (poison).
    fn reject(self: Box<Self>, requeue: bool);
}

/// One delivered message; settle it with [`Delivery::ack`] or [`Delivery::reject`]. Dropping it unsettled
/// puts it back, as a closed AMQP channel does.
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// Whether it was delivered before and not acknowledged.
    pub redelivered: bool,
    settle: Option<Box<dyn Settle>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("envelope", &self.envelope).field("redelivered", &self.redelivered).finish()
    }
}

impl Delivery {
    /// A delivery settled through `settle`.
    pub fn new(envelope: Envelope, redelivered: bool, settle: Box<dyn Settle>) -> Self {
        Delivery { envelope, redelivered, settle: Some(settle) }
    }

    /// Processed.
    pub fn ack(mut self) {
        if let Some(settle) = self.settle.take() {
            settle.ack();
        }
    }

    /// Not processed; `requeue` false drops it for good (a poison message).
    pub fn reject(mut self, requeue: bool) {
        if let Some(settle) = self.settle.take() {
            settle.reject(requeue);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            settle.reject(true);
        }
    }
}

/// A stream of deliveries from one queue.
pub struct Consumer {
    receiver: tokio::sync::mpsc::Receiver<Delivery>,
}

impl Consumer {
    /// A consumer fed by `receiver`.
    pub fn new(receiver: tokio::sync::mpsc::Receiver<Delivery>) -> Self {
        Consumer { receiver }
    }

    /// The next delivery; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.receiver.recv().await
    }
}

/// The bus as the roles see it.
pub trait Bus: Send + Sync + 'static {
    /// Publishes to the exchange; resolves once the bus has taken the message (confirmed), or fails with
    /// [`BusError::Unroutable`] when no queue is bound to its key.
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>>;

    /// Declares `queue` (durable) with its bindings and starts consuming it; [`BusError::Busy`] when it has a
    /// consumer already (unless it is single-active).
    fn consume(&self, queue: QueueSpec) -> BoxFuture<'_, Result<Consumer, BusError>>;

    /// Whether the bus is usable now (readiness).
    fn is_connected(&self) -> bool;

    /// What it is, for logs and `/ready` (`memory`, `rabbitmq`).
    fn kind(&self) -> &'static str;
}

/// A readiness check for a role that needs `bus`: `Err` while it is disconnected.
pub fn readiness_check(bus: &std::sync::Arc<dyn Bus>) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
    let bus = bus.clone();
    move || if bus.is_connected() { Ok(()) } else { Err(format!("the control bus ({}) is disconnected", bus.kind())) }
}
