//! The RabbitMQ bus (lapin): FogFlow's wire format — topic exchange `fogflow`, routing keys ending in a dot,
//! the JSON envelope with `content-type: application/json` — with FogFlow's failures fixed:
//!
//! - durable, non-auto-delete quorum queues and persistent messages (`delivery_mode` 2), so a message waits
//!   for a consumer that is down or not started yet ([`topology`]);
//! - publisher confirms on one long-lived channel and `mandatory` publishing: a publish resolves once RabbitMQ
//!   took the message, and a key no queue is bound to is [`BusError::Unroutable`];
//! - manual ack after the handler ([`crate::bus::Delivery::ack`]); a reject without requeue, a body that is
//!   not an envelope, or a message delivered `rabbitmq.delivery_limit` times goes to the dead-letter exchange
//!   `fogflow.dlx` (queue `fogflow.dead`);
//! - one consumer per queue: consumers are AMQP-exclusive, so a second consumer of the same queue (in this
//!   process or another, e.g. two workers with the same id) is refused with [`BusError::Busy`]; a
//!   single-active queue (`x-single-active-consumer`) takes a consumer per process and delivers to one;
//! - `rabbitmq.prefetch` unacknowledged deliveries per consumer (default 1, the in-process bus's semantics);
//! - reconnection forever with capped, jittered backoff, re-declaring the topology and resuming every
//!   consumer: a [`Consumer`] keeps yielding across reconnections ([`supervisor`]); [`Bus::is_connected`] is
//!   false meanwhile, and publishing fails fast with [`BusError::Disconnected`] (callers retry);
//! - credentials from the config (or `FOGFLOW__RABBITMQ__PASSWORD`), never logged: logs show
//!   [`AmqpOptions::masked_url`].
//!
//! Owns: the AMQP connection, its channels and the topology declarations. Must not: interpret payloads beyond
//! the envelope, or be imported by anything but `bus/` (this is the only module that imports lapin).

mod supervisor;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::Confirmation;
use lapin::BasicProperties;
use tokio_util::sync::CancellationToken;

use self::supervisor::Shared;
use super::{BoxFuture, Bus, BusError, Consumer, Envelope, QueueSpec};
use crate::config::Config;

/// How to reach RabbitMQ and how to use it.
#[derive(Clone)]
pub struct AmqpOptions {
    /// Host.
    pub host: String,
    /// AMQP port.
    pub port: u16,
    /// User.
    pub username: String,
    /// Password (never logged or printed).
    pub password: String,
    /// Unacknowledged deliveries per consumer.
    pub prefetch: u16,
    /// Deliveries of one message before it is dead-lettered.
    pub delivery_limit: u32,
    /// How long a publish waits for the confirm.
    pub publish_timeout: Duration,
    /// First pause between reconnection attempts.
    pub reconnect_min: Duration,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Name shown in RabbitMQ's connection list.
    pub connection_name: String,
}

impl std::fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("url", &self.masked_url())
            .field("prefetch", &self.prefetch)
            .field("delivery_limit", &self.delivery_limit)
            .finish_non_exhaustive()
    }
}

impl AmqpOptions {
    /// Options for RabbitMQ on `host:port` with FogFlow's defaults otherwise.
    pub fn new(host: impl Into<String>, port: u16, username: impl Into<String>, password: impl Into<String>) -> Self {
        AmqpOptions {
            host: host.into(),
            port,
            username: username.into(),
            password: password.into(),
            prefetch: 1,
            delivery_limit: 5,
            publish_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            connection_name: "fogflow".into(),
        }
    }

    /// The options of the `rabbitmq` section (host per spec §1.7: `rabbitmq.host_ip`, else `coreservice_ip`,
    /// else `my_hostip`).
    pub fn from_config(config: &Config, connection_name: impl Into<String>) -> Self {
        let rabbitmq = &config.rabbitmq;
        AmqpOptions {
            prefetch: rabbitmq.prefetch,
            delivery_limit: rabbitmq.delivery_limit,
            publish_timeout: Duration::from_secs(rabbitmq.publish_timeout_secs),
            reconnect_max: Duration::from_secs(rabbitmq.reconnect_max_secs),
            connection_name: connection_name.into(),
            ..AmqpOptions::new(config.rabbitmq_host(), rabbitmq.port, &rabbitmq.username, &rabbitmq.password)
        }
    }

    /// `amqp://user:***@host:port/`, for logs.
    pub fn masked_url(&self) -> String {
        format!("amqp://{}:***@{}:{}/", self.username, self.host, self.port)
    }

    fn uri(&self) -> lapin::uri::AMQPUri {
        use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPUri, AMQPUserInfo};
        AMQPUri {
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo { username: self.username.clone(), password: self.password.clone() },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: "/".into(),
            query: AMQPQueryString {
                heartbeat: Some(10),
                connection_timeout: Some(CONNECT_TIMEOUT.as_millis() as u64),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// Longest wait for the TCP connection and the AMQP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The RabbitMQ bus. Clones share one connection; the connection closes when the last clone is dropped or
/// [`AmqpBus::close`] is called.
#[derive(Clone)]
pub struct AmqpBus {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Stops the supervisor when the last [`AmqpBus`] clone goes.
struct Owner(CancellationToken);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl AmqpBus {
    /// Starts connecting in the background (call inside a Tokio runtime) and returns at once: a RabbitMQ that
    /// is down is waited for, forever, with backoff.
    pub fn start(options: AmqpOptions) -> AmqpBus {
        tracing::info!(url = %options.masked_url(), prefetch = options.prefetch, "bus: connecting to RabbitMQ");
        let shared = Shared::new(options);
        tokio::spawn(supervisor::supervise(shared.clone()));
        AmqpBus { _owner: Arc::new(Owner(shared.stop.clone())), shared }
    }

    /// Waits until the bus is connected, at most `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut link = self.shared.link.subscribe();
        tokio::time::timeout(timeout, link.wait_for(Option::is_some)).await.is_ok_and(|seen| seen.is_ok())
    }

    /// Why the bus is not connected (or `connected`).
    pub fn status(&self) -> String {
        self.shared.status()
    }

    /// Stops: consumers end, unacknowledged deliveries return to their queues, the connection closes.
    pub async fn close(&self) {
        self.shared.stop.cancel();
        let mut link = self.shared.link.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(3), link.wait_for(Option::is_none)).await;
        let mut closed = self.shared.closed.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(3), closed.wait_for(|closed| *closed)).await;
    }

    /// Deletes a queue (and its messages); how many messages it held. For tools (`fogflow bench bus`), not roles.
    pub async fn delete_queue(&self, name: &str) -> Result<u32, BusError> {
        let Some(link) = self.shared.current_link() else {
            return Err(BusError::Disconnected(self.shared.status()));
        };
        link.publisher
            .queue_delete(name, lapin::options::QueueDeleteOptions::default())
            .await
            .map_err(|error| BusError::Refused(topology::explain(&error, "queue delete", &self.shared.options)))
    }

    async fn publish_envelope(&self, envelope: Envelope) -> Result<(), BusError> {
        if self.shared.stop.is_cancelled() {
            return Err(BusError::Closed);
        }
        let Some(link) = self.shared.current_link() else {
            return Err(BusError::Disconnected(self.shared.status()));
        };
        let body = serde_json::to_vec(&envelope).map_err(|error| BusError::Refused(error.to_string()))?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_type(envelope.message_type.as_str().into())
            .with_app_id("fogflow".into());
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let key = envelope.routing_key.as_str();
        let confirmed = tokio::time::timeout(self.shared.options.publish_timeout, async {
            link.publisher.basic_publish(topology::EXCHANGE, key, options, &body, properties).await?.await
        })
        .await;
        match confirmed {
            Err(_) => Err(BusError::Disconnected(format!(
                "RabbitMQ did not confirm within {:?}",
                self.shared.options.publish_timeout
            ))),
            Ok(Err(error)) => {
                self.shared.wake.notify_one();
                Err(BusError::Disconnected(topology::explain(&error, "publish", &self.shared.options)))
            }
            Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)))) => {
                Err(BusError::Unroutable(envelope.routing_key))
            }
            Ok(Ok(Confirmation::Nack(None))) => {
                Err(BusError::Disconnected("RabbitMQ refused the message (nack); retry later".into()))
            }
        }
    }
}

impl Bus for AmqpBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_envelope(envelope))
    }

    fn consume(&self, queue: QueueSpec) -> BoxFuture<'_, Result<Consumer, BusError>> {
        Box::pin(supervisor::consume(&self.shared, queue))
    }

    fn is_connected(&self) -> bool {
        self.shared.current_link().is_some()
    }

    fn kind(&self) -> &'static str {
        "rabbitmq"
    }
}
