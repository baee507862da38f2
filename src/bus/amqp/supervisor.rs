//! Keeps the AMQP connection alive: connects with capped, jittered backoff (forever), declares the topology
//! and opens the confirm-mode publishing channel, resumes every registered consumer on each new connection,
//! and watches the link (lapin's error callback, plus a one-second check of the connection, the publishing
//! channel and the consumers). Each consumer runs on its own channel with its prefetch; a pump task turns
//! lapin deliveries into [`Delivery`]s on the consumer's stream, which outlives connections — except the stream
//! of a single-active queue's consumer, which ends when its AMQP consumer is lost (RabbitMQ may have made
//! another process's consumer the active one meanwhile; the owner decides what to do).
//!
//! Must not: decide what a message means (a body that is not an envelope is dead-lettered, nothing more).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::acker::Acker;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use rand::Rng;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{topology, AmqpOptions, CONNECT_TIMEOUT};
use crate::bus::{BusError, Consumer, Delivery, Envelope, QueueSpec, Settle};
use crate::sync::lock;

/// One live connection with its publishing channel.
#[derive(Clone)]
pub(super) struct Link {
    generation: u64,
    connection: Arc<Connection>,
    pub(super) publisher: Channel,
}

/// What the bus handles and the supervisor share.
pub(super) struct Shared {
    pub(super) options: AmqpOptions,
    /// The live link, `None` while disconnected.
    pub(super) link: watch::Sender<Option<Link>>,
    /// Set once the supervisor has closed the connection for good.
    pub(super) closed: watch::Sender<bool>,
    pub(super) stop: CancellationToken,
    /// Pokes the supervisor to check the link now (a publish or a consumer saw an error).
    pub(super) wake: Notify,
    status: Mutex<String>,
    registry: Mutex<Registry>,
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    queues: HashMap<String, Registration>,
}

/// A consumer the bus keeps running across connections.
struct Registration {
    id: u64,
    spec: QueueSpec,
    sender: mpsc::Sender<Delivery>,
    /// Generation of the link its AMQP consumer runs on; 0 when none runs.
    running_on: u64,
    /// Becomes true when its pump has finished (channel closed).
    pump_done: Option<watch::Receiver<bool>>,
    last_error: Option<String>,
}

impl Shared {
    pub(super) fn new(options: AmqpOptions) -> Arc<Shared> {
        Arc::new(Shared {
            options,
            link: watch::channel(None).0,
            closed: watch::channel(false).0,
            stop: CancellationToken::new(),
            wake: Notify::new(),
            status: Mutex::new("connecting to RabbitMQ".into()),
            registry: Mutex::new(Registry::default()),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub(super) fn current_link(&self) -> Option<Link> {
        self.link.borrow().clone().filter(|link| link.connection.status().connected())
    }

    pub(super) fn status(&self) -> String {
        lock(&self.status).clone()
    }

    fn set_status(&self, status: impl Into<String>) {
        *lock(&self.status) = status.into();
    }
}

/// Registers `spec` and starts consuming it now when connected (else on connection).
pub(super) async fn consume(shared: &Arc<Shared>, spec: QueueSpec) -> Result<Consumer, BusError> {
    if shared.stop.is_cancelled() {
        return Err(BusError::Closed);
    }
    // A consumer dropped a moment ago may still hold the queue: wait until its pump has let go.
    let previous = {
        let registry = lock(&shared.registry);
        match registry.queues.get(&spec.name) {
            Some(registration) if !registration.sender.is_closed() => return Err(BusError::Busy(spec.name)),
            Some(registration) => registration.pump_done.clone(),
            None => None,
        }
    };
    if let Some(mut done) = previous {
        let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|done| *done)).await;
    }
    let (sender, receiver) = mpsc::channel(usize::from(shared.options.prefetch.max(1)));
    let id = {
        let mut registry = lock(&shared.registry);
        if registry.queues.get(&spec.name).is_some_and(|r| !r.sender.is_closed()) {
            return Err(BusError::Busy(spec.name));
        }
        registry.next_id += 1;
        let id = registry.next_id;
        let registration =
            Registration { id, spec: spec.clone(), sender, running_on: 0, pump_done: None, last_error: None };
        registry.queues.insert(spec.name.clone(), registration);
        id
    };
    if let Some(link) = shared.current_link() {
        if let Err(error) = start_consumer(shared, &link, &spec.name).await {
            let text = topology::explain(&error, &format!("consumer of queue `{}`", spec.name), &shared.options);
            if topology::is_refusal(&error) {
                let mut registry = lock(&shared.registry);
                if registry.queues.get(&spec.name).is_some_and(|r| r.id == id) {
                    registry.queues.remove(&spec.name);
                }
                return Err(if topology::is_consumer_conflict(&error) {
                    BusError::Busy(spec.name)
                } else {
                    BusError::Refused(text)
                });
            }
            let queue = &spec.name;
            tracing::warn!(%queue, error = %text, "bus: consumer not started yet; it starts on reconnection");
            shared.wake.notify_one();
        }
    }
    Ok(Consumer::new(receiver))
}

/// Starts the AMQP consumer of registration `name` on `link` unless it already runs there.
async fn start_consumer(shared: &Arc<Shared>, link: &Link, name: &str) -> Result<(), lapin::Error> {
    let (spec, sender, id) = {
        let mut registry = lock(&shared.registry);
        let Some(registration) = registry.queues.get_mut(name) else { return Ok(()) };
        if registration.running_on == link.generation || registration.sender.is_closed() {
            return Ok(());
        }
        if registration.spec.single_active && registration.running_on != 0 {
            // It ran on a connection that is gone: not resumed silently (its stream ends).
            registry.queues.remove(name);
            return Ok(());
        }
        registration.running_on = link.generation;
        (registration.spec.clone(), registration.sender.clone(), registration.id)
    };
    let opened = open_consumer(shared, link, &spec).await;
    let mut registry = lock(&shared.registry);
    let registration = registry.queues.get_mut(name).filter(|r| r.id == id);
    match opened {
        Ok((channel, consumer)) => {
            let (done, pump_done) = watch::channel(false);
            if let Some(registration) = registration {
                registration.pump_done = Some(pump_done);
                if registration.last_error.take().is_some() {
                    tracing::info!(queue = %spec.name, "bus: consumer started");
                }
            }
            let pump = Pump { shared: shared.clone(), generation: link.generation, id, queue: spec.name, sender };
            tokio::spawn(pump.run(channel, consumer, done));
            Ok(())
        }
        Err(error) => {
            if let Some(registration) = registration {
                registration.running_on = 0;
            }
            Err(error)
        }
    }
}

async fn open_consumer(
    shared: &Shared,
    link: &Link,
    spec: &QueueSpec,
) -> Result<(Channel, lapin::Consumer), lapin::Error> {
    let channel = link.connection.create_channel().await?;
    let consumed = async {
        channel.basic_qos(shared.options.prefetch, BasicQosOptions::default()).await?;
        topology::declare_queue(&channel, spec, &shared.options).await?;
        let options = BasicConsumeOptions { exclusive: !spec.single_active, no_ack: false, ..Default::default() };
        channel.basic_consume(&spec.name, &format!("fogflow:{}", spec.name), options, FieldTable::default()).await
    }
    .await;
    match consumed {
        Ok(consumer) => Ok((channel, consumer)),
        Err(error) => {
            if channel.status().connected() {
                let _ = channel.close(200, "consumer not started").await;
            }
            Err(error)
        }
    }
}

/// Moves deliveries of one AMQP consumer to the bus consumer's stream.
struct Pump {
    shared: Arc<Shared>,
    generation: u64,
    id: u64,
    queue: String,
    sender: mpsc::Sender<Delivery>,
}

impl Pump {
    async fn run(self, channel: Channel, mut consumer: lapin::Consumer, done: watch::Sender<bool>) {
        let dropped = loop {
            tokio::select! {
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => self.forward(delivery).await,
                    Some(Err(error)) => {
                        tracing::debug!(queue = %self.queue, %error, "bus: consumer channel failed");
                        break false;
                    }
                    None => {
                        tracing::warn!(queue = %self.queue, "bus: RabbitMQ cancelled the consumer; restarting it");
                        break false;
                    }
                },
                () = self.sender.closed() => break true,
                () = self.shared.stop.cancelled() => break false,
            }
        };
        // Closing the channel returns its unacknowledged deliveries to the queue.
        if channel.status().connected() {
            let _ = tokio::time::timeout(Duration::from_secs(3), channel.close(200, "consumer stopped")).await;
        }
        {
            let mut registry = lock(&self.shared.registry);
            if let Some(registration) = registry.queues.get_mut(&self.queue).filter(|r| r.id == self.id) {
                if dropped || registration.spec.single_active {
                    // A single-active consumer that lost its channel is not resumed: its stream ends.
                    registry.queues.remove(&self.queue);
                } else if registration.running_on == self.generation {
                    registration.running_on = 0;
                }
            }
        }
        if !dropped {
            self.shared.wake.notify_one();
        }
        let _ = done.send(true);
    }

    async fn forward(&self, delivery: lapin::message::Delivery) {
        let settle = AmqpSettle { acker: delivery.acker, runtime: self.shared.runtime.clone() };
        match serde_json::from_slice::<Envelope>(&delivery.data) {
            Ok(envelope) => {
                // A receiver gone meanwhile drops the delivery, which rejects it with requeue.
                let _ = self.sender.send(Delivery::new(envelope, delivery.redelivered, Box::new(settle))).await;
            }
            Err(error) => {
                tracing::warn!(queue = %self.queue, %error, bytes = delivery.data.len(),
                    "bus: message is not a FogFlow envelope; dead-lettered to {}", topology::DEAD_LETTER_QUEUE);
                Box::new(settle).reject(false);
            }
        }
    }
}

/// Settles one AMQP delivery (on the channel it came from; if that channel is gone, RabbitMQ has requeued it).
struct AmqpSettle {
    acker: Acker,
    runtime: tokio::runtime::Handle,
}

impl Settle for AmqpSettle {
    fn ack(self: Box<Self>) {
        let acker = self.acker;
        self.runtime.spawn(async move {
            if let Err(error) = acker.ack(Default::default()).await {
                tracing::debug!(%error, "bus: ack not delivered; RabbitMQ will redeliver the message");
            }
        });
    }

    fn reject(self: Box<Self>, requeue: bool) {
        let acker = self.acker;
        self.runtime.spawn(async move {
            if let Err(error) = acker.reject(BasicRejectOptions { requeue }).await {
                tracing::debug!(%error, "bus: reject not delivered; RabbitMQ will redeliver the message");
            }
        });
    }
}

/// Connects, serves and reconnects until the bus is stopped.
pub(super) async fn supervise(shared: Arc<Shared>) {
    let options = shared.options.clone();
    let mut delay = options.reconnect_min;
    let mut generation = 0;
    let mut attempts = 0u32;
    while !shared.stop.is_cancelled() {
        match connect(&shared, generation + 1).await {
            Ok((link, mut errors)) => {
                generation += 1;
                attempts = 0;
                delay = options.reconnect_min;
                tracing::info!(url = %options.masked_url(), "bus: connected to RabbitMQ");
                shared.set_status("connected");
                shared.link.send_replace(Some(link.clone()));
                resume_consumers(&shared, &link).await;
                let lost = watch_link(&shared, &link, &mut errors).await;
                shared.link.send_replace(None);
                let closing = link.connection.close(200, "fogflow reconnecting or stopping");
                let _ = tokio::time::timeout(Duration::from_secs(3), closing).await;
                let Some(reason) = lost else { break };
                tracing::warn!(%reason, "bus: lost the connection to RabbitMQ; reconnecting");
                shared.set_status(format!("disconnected from RabbitMQ: {reason}"));
            }
            Err(reason) => {
                attempts += 1;
                tracing::warn!(url = %options.masked_url(), attempts, retry_in = ?delay, "bus: {reason}");
                shared.set_status(format!("not connected to RabbitMQ: {reason}"));
            }
        }
        let jittered = delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tokio::select! {
            () = tokio::time::sleep(jittered) => {}
            () = shared.stop.cancelled() => break,
        }
        delay = (delay * 2).min(options.reconnect_max);
    }
    shared.set_status("bus closed");
    // Dropping the senders ends every consumer's stream.
    lock(&shared.registry).queues.clear();
    shared.closed.send_replace(true);
}

type ConnectionErrors = mpsc::UnboundedReceiver<lapin::Error>;

/// Opens a connection, declares the exchanges and opens the confirm-mode publishing channel.
async fn connect(shared: &Shared, generation: u64) -> Result<(Link, ConnectionErrors), String> {
    let options = &shared.options;
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name(options.connection_name.clone().into());
    let connected = tokio::time::timeout(CONNECT_TIMEOUT * 2, Connection::connect_uri(options.uri(), properties)).await;
    let connection = match connected {
        Err(_) => {
            return Err(format!("no answer from RabbitMQ at {} within {:?}", options.masked_url(), CONNECT_TIMEOUT))
        }
        Ok(Err(error)) => return Err(topology::explain(&error, "connection", options)),
        Ok(Ok(connection)) => connection,
    };
    let (errors, errors_seen) = mpsc::unbounded_channel();
    connection.on_error(move |error| {
        let _ = errors.send(error);
    });
    let prepared = async {
        let channel = connection.create_channel().await.map_err(|e| (e, "channel"))?;
        topology::declare_exchanges(&channel).await.map_err(|e| (e, "exchange `fogflow` or `fogflow.dlx`"))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| (e, "confirm mode"))?;
        Ok::<_, (lapin::Error, &str)>(channel)
    }
    .await;
    match prepared {
        Ok(publisher) => Ok((Link { generation, connection: Arc::new(connection), publisher }, errors_seen)),
        Err((error, what)) => {
            let _ = tokio::time::timeout(Duration::from_secs(3), connection.close(200, "topology refused")).await;
            Err(topology::explain(&error, what, options))
        }
    }
}

/// Waits until the link fails (`Some(reason)`) or the bus stops (`None`), restarting consumers whose channel
/// ended meanwhile.
async fn watch_link(shared: &Arc<Shared>, link: &Link, errors: &mut ConnectionErrors) -> Option<String> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return None,
            error = errors.recv() => {
                let reason = error.map(|e| topology::explain(&e, "connection", &shared.options));
                return Some(reason.unwrap_or_else(|| "connection closed".into()));
            }
            () = shared.wake.notified() => {}
            _ = tick.tick() => {}
        }
        if !link.connection.status().connected() {
            return Some(format!("connection {:?}", link.connection.status().state()));
        }
        if !link.publisher.status().connected() {
            return Some("the publishing channel was closed".into());
        }
        resume_consumers(shared, link).await;
    }
}

/// Starts every registered consumer that does not run on `link`; logs each distinct failure once.
async fn resume_consumers(shared: &Arc<Shared>, link: &Link) {
    let names: Vec<String> = lock(&shared.registry)
        .queues
        .iter()
        .filter(|(_, r)| r.running_on != link.generation && !r.sender.is_closed())
        .map(|(name, _)| name.clone())
        .collect();
    for name in names {
        if let Err(error) = start_consumer(shared, link, &name).await {
            let text = topology::explain(&error, &format!("consumer of queue `{name}`"), &shared.options);
            let mut registry = lock(&shared.registry);
            if let Some(registration) = registry.queues.get_mut(&name) {
                if registration.last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(queue = %name, error = %text, "bus: cannot consume; retrying every second");
                    registration.last_error = Some(text);
                }
            }
        }
    }
}
