//! The RabbitMQ bus (`fogflow::bus::amqp::AmqpBus`) against a private RabbitMQ node: the behaviour the
//! in-process bus's unit tests pin down (topic routing with FogFlow's keys, FIFO, unroutable refused, durable
//! queues, requeue, dead letters, one consumer per queue), plus the capped delivery count, a RabbitMQ
//! restart under a live consumer, wrong credentials, and FogFlow's auto-delete exchange in the way. Each test
//! uses queue names and keys of its own on the shared node; the restart and exchange tests have a node of their
//! own.

use std::time::Duration;

use fogflow::bus::amqp::{AmqpBus, AmqpOptions};
use fogflow::bus::{Bus, BusError, Consumer, Delivery, Envelope, MessageType, QueueSpec};
use serde_json::json;

use crate::common::rabbitmq::{self, RabbitMq};

const WAIT: Duration = Duration::from_secs(15);

async fn shared_node() -> Option<&'static RabbitMq> {
    tokio::task::spawn_blocking(rabbitmq::shared).await.expect("start RabbitMQ")
}

fn options(node: &RabbitMq) -> AmqpOptions {
    let mut options = AmqpOptions::new("127.0.0.1", node.amqp_port, rabbitmq::USER, rabbitmq::PASSWORD);
    options.reconnect_max = Duration::from_secs(1);
    options
}

async fn connect(options: AmqpOptions) -> AmqpBus {
    let bus = AmqpBus::start(options);
    assert!(bus.wait_connected(WAIT).await, "not connected: {}", bus.status());
    bus
}

fn message(n: u32, key: &str) -> Envelope {
    Envelope::new(MessageType::WorkerHeartbeat, key, "Worker.test", &json!({ "n": n }))
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next()).await.expect("a delivery in time").expect("consumer open")
}

async fn nothing_within(consumer: &mut Consumer, window: Duration) -> bool {
    tokio::time::timeout(window, consumer.next()).await.is_err()
}

async fn depth(node: &'static RabbitMq, queue: &'static str) -> Option<u64> {
    tokio::task::spawn_blocking(move || node.queue_depth(queue)).await.expect("rabbitmqctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_fogflow_keys_in_order_and_refuses_unroutable_keys() {
    let Some(node) = shared_node().await else { return };
    eprintln!("RabbitMQ {}", node.version());
    let bus = connect(options(node)).await;
    assert_eq!(bus.kind(), "rabbitmq");
    let unbound = bus.publish(message(0, "Worker.amqp-route.")).await;
    assert!(matches!(unbound, Err(BusError::Unroutable(ref key)) if key == "Worker.amqp-route."), "{unbound:?}");

    let master_keys = ["Master.amqp-route.", "heartbeat.*", "task.", "orchestration.*"];
    let mut master = bus.consume(QueueSpec::new("Master.amqp-route", master_keys)).await.unwrap();
    let mut designer = bus.consume(QueueSpec::new("designer-amqp-route", ["designer.*", "task."])).await.unwrap();
    let mut worker = bus.consume(QueueSpec::new("Worker.amqp-route", ["Worker.amqp-route.*"])).await.unwrap();
    for n in 1..=5 {
        bus.publish(message(n, "heartbeat.")).await.unwrap();
    }
    bus.publish(message(6, "task.")).await.unwrap();
    bus.publish(message(7, "orchestration.")).await.unwrap();
    bus.publish(message(8, "Master.amqp-route.")).await.unwrap();
    bus.publish(message(9, "designer.")).await.unwrap();
    bus.publish(message(10, "Worker.amqp-route.")).await.unwrap();
    // `Worker.amqp-route.*` matches `Worker.amqp-route.` only, not a longer id sharing its prefix.
    assert!(matches!(bus.publish(message(0, "Worker.amqp-route.2.")).await, Err(BusError::Unroutable(_))));

    for n in 1..=8 {
        let delivery = next(&mut master).await;
        assert_eq!(delivery.envelope.payload["n"], n, "master order");
        assert_eq!(delivery.envelope.from, "Worker.test");
        assert!(!delivery.redelivered);
        delivery.ack();
    }
    for n in [6, 9] {
        let delivery = next(&mut designer).await;
        assert_eq!(delivery.envelope.payload["n"], n, "designer gets task. and designer.");
        delivery.ack();
    }
    let delivery = next(&mut worker).await;
    assert_eq!(delivery.envelope.payload["n"], 10);
    assert_eq!(delivery.envelope.routing_key, "Worker.amqp-route.");
    delivery.ack();
    assert!(nothing_within(&mut master, Duration::from_millis(300)).await);
    bus.close().await;
    assert!(matches!(bus.publish(message(0, "task.")).await, Err(BusError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queue_keeps_messages_for_a_later_consumer_of_another_connection() {
    let Some(node) = shared_node().await else { return };
    let first = connect(options(node)).await;
    let consumer = first.consume(QueueSpec::new("Worker.amqp-durable", ["Worker.amqp-durable.*"])).await.unwrap();
    drop(consumer);
    for n in 1..=3 {
        first.publish(message(n, "Worker.amqp-durable.")).await.unwrap();
    }
    first.close().await;
    // RabbitMQ refreshes quorum-queue counters every few seconds.
    let deadline = tokio::time::Instant::now() + WAIT;
    while depth(node, "Worker.amqp-durable").await != Some(3) {
        assert!(tokio::time::Instant::now() < deadline, "messages wait in the queue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let second = connect(options(node)).await;
    let mut consumer = second.consume(QueueSpec::new("Worker.amqp-durable", ["Worker.amqp-durable.*"])).await.unwrap();
    for n in 1..=3 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.envelope.payload["n"], n);
        delivery.ack();
    }
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_deliveries_come_back_first_and_rejected_ones_are_dead_lettered() {
    let Some(node) = shared_node().await else { return };
    let bus = connect(options(node)).await;
    let mut consumer = bus.consume(QueueSpec::new("Worker.amqp-requeue", ["Worker.amqp-requeue.*"])).await.unwrap();
    let dead_before = depth(node, "fogflow.dead").await.unwrap_or(0);
    bus.publish(message(1, "Worker.amqp-requeue.")).await.unwrap();
    bus.publish(message(2, "Worker.amqp-requeue.")).await.unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.envelope.payload["n"], 1);
    assert!(!first.redelivered);
    // Prefetch 1: nothing else is handed over while `first` is unsettled.
    assert!(nothing_within(&mut consumer, Duration::from_millis(300)).await);
    first.reject(true);
    let again = next(&mut consumer).await;
    assert_eq!(again.envelope.payload["n"], 1);
    assert!(again.redelivered);
    drop(again); // unsettled → back
    let third = next(&mut consumer).await;
    assert_eq!(third.envelope.payload["n"], 1);
    third.reject(false); // poison → dead letters
    let fourth = next(&mut consumer).await;
    assert_eq!(fourth.envelope.payload["n"], 2);
    fourth.ack();
    assert!(nothing_within(&mut consumer, Duration::from_millis(300)).await);
    let dead_after = depth(node, "fogflow.dead").await.unwrap_or(0);
    assert!(dead_after > dead_before, "fogflow.dead {dead_before} → {dead_after}");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_too_often_is_dead_lettered() {
    let Some(node) = shared_node().await else { return };
    let mut capped = options(node);
    capped.delivery_limit = 2;
    let bus = connect(capped).await;
    let mut consumer = bus.consume(QueueSpec::new("Worker.amqp-limit", ["Worker.amqp-limit.*"])).await.unwrap();
    bus.publish(message(1, "Worker.amqp-limit.")).await.unwrap();
    let mut deliveries = 0;
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
        deliveries += 1;
        assert!(deliveries <= 4, "still redelivered after {deliveries} deliveries");
        delivery.reject(true);
    }
    assert!((2..=3).contains(&deliveries), "{deliveries} deliveries with x-delivery-limit 2");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consumer_per_queue_across_connections() {
    let Some(node) = shared_node().await else { return };
    let first = connect(options(node)).await;
    let second = connect(options(node)).await;
    let spec = QueueSpec::new("Worker.amqp-single", ["Worker.amqp-single.*"]);
    let consumer = first.consume(spec.clone()).await.unwrap();
    assert!(matches!(first.consume(spec.clone()).await, Err(BusError::Busy(_))), "same connection");
    let other = second.consume(spec.clone()).await.map(|_| ());
    assert!(matches!(other, Err(BusError::Busy(_))), "another process: {other:?}");
    drop(consumer);
    // Once the first consumer is gone the queue is free again (the broker may need a moment).
    let mut taken = None;
    for _ in 0..50 {
        match second.consume(spec.clone()).await {
            Ok(consumer) => {
                taken = Some(consumer);
                break;
            }
            Err(BusError::Busy(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    let mut consumer = taken.expect("queue free again");
    first.publish(message(1, "Worker.amqp-single.")).await.unwrap();
    next(&mut consumer).await.ack();
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_publishers_survive_a_rabbitmq_restart() {
    let Some(node) = tokio::task::spawn_blocking(RabbitMq::start).await.expect("start RabbitMQ") else { return };
    let node = std::sync::Arc::new(node);
    let bus = connect(options(&node)).await;
    assert!(bus.is_connected());
    let mut consumer = bus.consume(QueueSpec::new("Worker.amqp-restart", ["Worker.amqp-restart.*"])).await.unwrap();
    bus.publish(message(1, "Worker.amqp-restart.")).await.unwrap();
    next(&mut consumer).await.ack();
    bus.publish(message(2, "Worker.amqp-restart.")).await.unwrap();
    let held = next(&mut consumer).await; // taken, not acknowledged when RabbitMQ goes away
    assert_eq!(held.envelope.payload["n"], 2);

    let stopping = node.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.is_connected() {
        assert!(tokio::time::Instant::now() < deadline, "still connected with RabbitMQ stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(bus.publish(message(0, "Worker.amqp-restart.")).await, Err(BusError::Disconnected(_))));
    assert!(!bus.status().is_empty());
    drop(held); // its channel is gone: RabbitMQ keeps the message

    let starting = node.clone();
    tokio::task::spawn_blocking(move || starting.start_again()).await.unwrap();
    assert!(bus.wait_connected(Duration::from_secs(30)).await, "reconnected: {}", bus.status());
    let again = next(&mut consumer).await;
    assert_eq!(again.envelope.payload["n"], 2, "the unacknowledged message survived the restart");
    assert!(again.redelivered);
    again.ack();
    // Published after the restart, consumed by the same consumer (never recreated).
    let mut published = false;
    for _ in 0..100 {
        match bus.publish(message(3, "Worker.amqp-restart.")).await {
            Ok(()) => {
                published = true;
                break;
            }
            Err(BusError::Unroutable(_) | BusError::Disconnected(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(published, "publish after the restart");
    let after = next(&mut consumer).await;
    assert_eq!(after.envelope.payload["n"], 3);
    after.ack();
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_as_such_and_never_connect() {
    let Some(node) = shared_node().await else { return };
    let mut wrong = options(node);
    wrong.password = "not-the-password".into();
    let bus = AmqpBus::start(wrong);
    assert!(!bus.wait_connected(Duration::from_secs(3)).await);
    assert!(!bus.is_connected());
    let status = bus.status();
    assert!(status.contains("refused access for user `guest`"), "{status}");
    assert!(!status.contains("not-the-password"), "{status}");
    assert!(matches!(bus.publish(message(1, "task.")).await, Err(BusError::Disconnected(_))));
    bus.close().await;
}

/// FogFlow's Go components declare `fogflow` auto-delete; ours is durable. The clash is explained, and once the
/// old exchange is deleted the bus connects by itself. (lapin plays the Go component here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fogflows_auto_delete_exchange_is_explained_and_the_bus_connects_once_it_is_gone() {
    use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let Some(node) = tokio::task::spawn_blocking(RabbitMq::start).await.expect("start RabbitMQ") else { return };
    let url = format!("amqp://{}:{}@127.0.0.1:{}/%2f", rabbitmq::USER, rabbitmq::PASSWORD, node.amqp_port);
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let go = lapin::Connection::connect(&url, properties).await.expect("connect like FogFlow's Go worker");
    let channel = go.create_channel().await.unwrap();
    let auto_delete = ExchangeDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
    channel.exchange_declare("fogflow", lapin::ExchangeKind::Topic, auto_delete, FieldTable::default()).await.unwrap();
    let queue = QueueDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
    channel.queue_declare("Worker.go", queue, FieldTable::default()).await.unwrap();
    channel
        .queue_bind("Worker.go", "fogflow", "Worker.go.*", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();

    let bus = AmqpBus::start(options(&node));
    assert!(!bus.wait_connected(Duration::from_secs(3)).await);
    let status = bus.status();
    assert!(status.contains("auto-delete") && status.contains("delete the exchange"), "{status}");

    channel.exchange_delete("fogflow", ExchangeDeleteOptions::default()).await.unwrap();
    assert!(bus.wait_connected(WAIT).await, "connected once the old exchange is gone: {}", bus.status());
    let mut consumer = bus.consume(QueueSpec::new("Worker.amqp-clash", ["Worker.amqp-clash.*"])).await.unwrap();
    bus.publish(message(1, "Worker.amqp-clash.")).await.unwrap();
    next(&mut consumer).await.ack();
    bus.close().await;
    let _ = go.close(200, "done").await;
}

/// `fogflow bench bus` publishes with confirms, consumes every message, reports both rates, and deletes its
/// queue (the figures themselves go to docs/performance.md; only the behaviour is asserted here).
#[test]
fn bench_bus_counts_confirmed_and_delivered_messages_and_cleans_up() {
    let Some(node) = rabbitmq::shared() else { return };
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fogflow"))
        .args(["bench", "bus", "--host", "127.0.0.1", "--port", &node.amqp_port.to_string()])
        .args(["--username", rabbitmq::USER, "--password", rabbitmq::PASSWORD])
        .args(["--messages", "500", "--publishers", "4", "--json"])
        .output()
        .expect("run fogflow bench bus");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bench bus failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("published+confirmed") && stdout.contains("delivered+acked"), "{stdout}");
    let figures: serde_json::Value =
        stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()).expect("a JSON line");
    assert_eq!(figures["messages"], 500);
    assert!(figures["publish_per_s"].as_f64().is_some_and(|rate| rate > 0.0), "{figures}");
    assert!(figures["deliver_per_s"].as_f64().is_some_and(|rate| rate > 0.0), "{figures}");
    let queues = node.ctl(&["list_queues", "-q", "--no-table-headers", "name"]);
    let queues = String::from_utf8_lossy(&queues.stdout);
    assert!(!queues.contains("fogflow.bench."), "the bench queue is deleted: {queues}");
}

/// A single-active queue (the masters' election): a consumer per connection is accepted, one gets the
/// deliveries, and when its connection is closed by RabbitMQ the next one takes over with the unacknowledged
/// message; the bus that lost its consumer reconnects but ends that consumer's stream instead of resuming it
/// silently (its owner may no longer be the active one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_active_queue_delivers_to_one_consumer_and_hands_over_when_it_goes() {
    let Some(node) = shared_node().await else { return };
    let mut named = options(node);
    named.connection_name = "amqp-sac-first".into();
    let first = connect(named).await;
    let second = connect(options(node)).await;
    let spec = QueueSpec::single_active("fogflow.amqp-sac", ["amqp-sac.*"]);
    let mut active = first.consume(spec.clone()).await.unwrap();
    let mut standby = second.consume(spec.clone()).await.unwrap();
    for n in 1..=2 {
        first.publish(message(n, "amqp-sac.")).await.unwrap();
    }
    let one = next(&mut active).await;
    assert_eq!(one.envelope.payload["n"], 1);
    one.ack();
    let held = next(&mut active).await;
    assert_eq!(held.envelope.payload["n"], 2);
    assert!(nothing_within(&mut standby, Duration::from_millis(500)).await, "the standby got a delivery");

    // RabbitMQ closes the active one's connection with message 2 unacknowledged: the standby takes over with it.
    tokio::task::spawn_blocking(move || {
        let listed = node.ctl(&["list_connections", "-q", "--no-table-headers", "pid", "client_properties"]);
        let text = String::from_utf8_lossy(&listed.stdout).to_string();
        let line = text.lines().find(|line| line.contains("amqp-sac-first")).expect("the first connection listed");
        let pid = line.split_whitespace().next().expect("its pid");
        let closed = node.ctl(&["close_connection", pid, "test: the active consumer goes"]);
        assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    })
    .await
    .unwrap();
    drop(held);
    let again = next(&mut standby).await;
    assert_eq!(again.envelope.payload["n"], 2);
    assert!(again.redelivered);
    again.ack();
    // The first bus reconnects, but its lost single-active consumer's stream ends instead of resuming.
    assert!(tokio::time::timeout(WAIT, active.next()).await.expect("the lost consumer's stream ends").is_none());
    assert!(first.wait_connected(WAIT).await, "the first bus reconnected: {}", first.status());
    first.publish(message(3, "amqp-sac.")).await.unwrap();
    let three = next(&mut standby).await;
    assert_eq!(three.envelope.payload["n"], 3);
    three.ack();
    first.close().await;
    second.close().await;
}
