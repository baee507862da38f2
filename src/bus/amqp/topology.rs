//! The RabbitMQ topology FogFlow's bus needs, declared on every (re)connection, and the plain-language
//! explanation of what RabbitMQ refused. Declarations are idempotent: the same names with the same properties.
//!
//! - exchange `fogflow`: topic, durable, **not** auto-delete (FogFlow's Go and JS components declare it
//!   auto-delete; a broker still holding that one refuses our declaration with `PRECONDITION_FAILED`, which is
//!   explained as such: delete it first);
//! - dead letters: fanout exchange `fogflow.dlx` → classic durable queue `fogflow.dead`, capped at
//!   [`DEAD_LETTER_LIMIT`] messages (oldest dropped first);
//! - consumer queues: durable, not auto-delete, non-exclusive **quorum** queues (`x-queue-type: quorum`) with
//!   `x-delivery-limit` (RabbitMQ ≥ 3.8 counts deliveries of quorum-queue messages; Debian 12 ships 3.10) and
//!   `x-dead-letter-exchange: fogflow.dlx`. Quorum queues ignore AMQP's exclusive-consumer flag, so a queue
//!   that already has a consumer (in any process) is refused at declaration, from its consumer count;
//! - single-active queues ([`QueueSpec::single_active`]) are the same quorum queues with
//!   `x-single-active-consumer: true` (RabbitMQ ≥ 3.8): every consumer is accepted, RabbitMQ delivers to one at
//!   a time and hands over to the next (with the unacknowledged messages) when its channel closes.
//!
//! Must not: publish or consume (the supervisor and the bus do).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::AmqpOptions;
use crate::bus::QueueSpec;

/// FogFlow's topic exchange.
pub const EXCHANGE: &str = "fogflow";
/// Where rejected (poison) and over-delivered messages go.
pub const DEAD_LETTER_EXCHANGE: &str = "fogflow.dlx";
/// The queue that keeps dead letters for inspection.
pub const DEAD_LETTER_QUEUE: &str = "fogflow.dead";
/// Most messages `fogflow.dead` keeps; older ones are dropped first.
pub const DEAD_LETTER_LIMIT: i64 = 10_000;

/// Declares the exchange and the dead-letter exchange and queue.
pub async fn declare_exchanges(channel: &Channel) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions { durable: true, auto_delete: false, ..Default::default() };
    channel.exchange_declare(EXCHANGE, ExchangeKind::Topic, durable, FieldTable::default()).await?;
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout, durable, FieldTable::default()).await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(DEAD_LETTER_LIMIT));
    channel.queue_declare(DEAD_LETTER_QUEUE, queue_options(), arguments).await?;
    channel
        .queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, "", QueueBindOptions::default(), FieldTable::default())
        .await
}

/// Declares a consumer queue (quorum, durable, with its delivery limit and dead-letter exchange) and binds it;
/// refuses (`RESOURCE_LOCKED`) when the queue has a consumer already, unless it is single-active.
pub async fn declare_queue(channel: &Channel, spec: &QueueSpec, options: &AmqpOptions) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(options.delivery_limit)));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()));
    if spec.single_active {
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    let queue = channel.queue_declare(&spec.name, queue_options(), arguments).await?;
    // Quorum queues accept a second consumer even when the first asked for exclusivity: refuse it here
    // (RabbitMQ counts the consumers of every connection).
    if queue.consumer_count() > 0 && !spec.single_active {
        let text = format!("RESOURCE_LOCKED - queue '{}' already has a consumer", spec.name);
        return Err(lapin::Error::ProtocolError(AMQPError::new(
            AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED),
            text.as_str().into(),
        )));
    }
    for binding in &spec.bindings {
        channel.queue_bind(&spec.name, EXCHANGE, binding, QueueBindOptions::default(), FieldTable::default()).await?;
    }
    Ok(())
}

fn queue_options() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, auto_delete: false, exclusive: false, ..Default::default() }
}

/// What RabbitMQ's refusal means, in words an operator can act on (never contains the password).
pub fn explain(error: &lapin::Error, what: &str, options: &AmqpOptions) -> String {
    match error {
        lapin::Error::ProtocolError(amqp) => {
            let message = amqp.get_message().as_str();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) if what.starts_with("exchange") => format!(
                    "RabbitMQ holds {what} with other properties ({message}). fogflow declares it durable and not \
                     auto-delete; FogFlow's original components declare it auto-delete. Stop them and delete the \
                     exchange (management UI, or `rabbitmqadmin delete exchange name={EXCHANGE}`); fogflow declares \
                     it again on its next attempt"
                ),
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => format!(
                    "RabbitMQ holds {what} with other properties ({message}). fogflow declares durable quorum \
                     queues with a delivery limit; delete the old queue (`rabbitmqctl delete_queue <name>`) and \
                     fogflow declares it again"
                ),
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if what.starts_with("consumer") => {
                    format!("{what} refused: another process consumes this queue ({message})")
                }
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                    format!(
                        "RabbitMQ refused access for user `{}` ({message}): check rabbitmq.username and \
                         rabbitmq.password (FOGFLOW__RABBITMQ__PASSWORD) and the user's permissions",
                        options.username
                    )
                }
                _ => format!("{what}: RabbitMQ answered {message}"),
            }
        }
        lapin::Error::IOError(io) => format!("cannot reach RabbitMQ at {}: {io}", options.masked_url()),
        other => format!("{what}: {other}"),
    }
}

/// Whether the refusal is about this declaration or consumer (so retrying on the same connection cannot help
/// and the caller should hear about it) rather than about the connection.
pub fn is_refusal(error: &lapin::Error) -> bool {
    matches!(
        error,
        lapin::Error::ProtocolError(amqp) if matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(
                AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED | AMQPSoftError::RESOURCELOCKED
                    | AMQPSoftError::NOTFOUND
            )
        )
    )
}

/// Whether RabbitMQ refused a consumer because another one holds the queue (exclusive consumers).
pub fn is_consumer_conflict(error: &lapin::Error) -> bool {
    matches!(
        error,
        lapin::Error::ProtocolError(amqp) if matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED | AMQPSoftError::RESOURCELOCKED)
        )
    )
}
