//! `fogflow bench bus`: the control bus's throughput on a real RabbitMQ. It publishes `--messages` envelopes
//! the size of an `ADD_TASK` to a queue of its own (durable quorum queue, persistent messages, publisher
//! confirms, `mandatory` — exactly the path the roles use), from `--publishers` concurrent publishers each
//! waiting for its confirm, while one consumer acknowledges each delivery after it arrives (prefetch as
//! configured). Prints confirmed publishes per second with the confirm latency (p50/p99), and end-to-end
//! deliveries per second; deletes its queue at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::bus::amqp::{AmqpBus, AmqpOptions};
use crate::bus::{Bus, Envelope, MessageType, QueueSpec};

/// Arguments of `fogflow bench bus`.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// RabbitMQ host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// RabbitMQ AMQP port.
    #[arg(long, default_value_t = 5672)]
    pub port: u16,
    /// RabbitMQ user.
    #[arg(long, default_value = "guest")]
    pub username: String,
    /// RabbitMQ password (also from `FOGFLOW_BENCH_RABBITMQ_PASSWORD`).
    #[arg(long, env = "FOGFLOW_BENCH_RABBITMQ_PASSWORD", default_value = "guest", hide_env_values = true)]
    pub password: String,
    /// Messages published.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub messages: u64,
    /// Concurrent publishers, each with one unconfirmed message at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub publishers: u32,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub prefetch: u16,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A payload shaped like an `ADD_TASK` (about 700 bytes on the wire).
fn add_task_like(n: u64) -> serde_json::Value {
    json!({"ID": format!("Task.Bench.Main.{n:010}"), "TopologyName": "Bench", "TaskName": "Main",
        "ServiceName": "Bench", "DockerImage": "fogflow/converter:latest", "WorkerID": "Worker.bench",
        "IsExclusive": false, "PriorityLevel": 0, "Status": "scheduled", "Epoch": 1,
        "Parameters": [{"name": "threshold", "value": "30"}],
        "Inputs": [{"Type": "Temperature", "ID": format!("Device.Temp{n:06}"), "AttributeList": []}],
        "Outputs": [{"Type": "Fahrenheit", "StreamID": format!("Stream.Fahrenheit.{n:06}")}]})
}

/// Runs the measurement and prints the report.
pub async fn run(args: BusArgs) -> anyhow::Result<()> {
    let mut options = AmqpOptions::new(&args.host, args.port, &args.username, &args.password);
    options.prefetch = args.prefetch;
    options.connection_name = "fogflow bench bus".into();
    let bus = Arc::new(AmqpBus::start(options));
    if !bus.wait_connected(Duration::from_secs(30)).await {
        bail!("RabbitMQ not reachable: {}", bus.status());
    }
    let queue = format!("fogflow.bench.{}", std::process::id());
    let key = format!("{queue}.");
    let mut consumer =
        bus.consume(QueueSpec::new(queue.clone(), [key.clone()])).await.with_context(|| format!("consume {queue}"))?;
    let total = args.messages;
    let consuming = tokio::spawn(async move {
        let mut received = 0u64;
        let mut last = Instant::now();
        while received < total {
            match tokio::time::timeout(Duration::from_secs(60), consumer.next()).await {
                Ok(Some(delivery)) => {
                    delivery.ack();
                    received += 1;
                    last = Instant::now();
                }
                Ok(None) | Err(_) => break,
            }
        }
        (received, last)
    });

    eprintln!("bench bus: {total} messages, {} publishers, prefetch {}", args.publishers, args.prefetch);
    let started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for publisher in 0..u64::from(args.publishers) {
        let (bus, key) = (bus.clone(), key.clone());
        let count = total / u64::from(args.publishers) + u64::from(publisher < total % u64::from(args.publishers));
        publishers.spawn(async move {
            let mut latencies = Vec::with_capacity(count as usize);
            for n in 0..count {
                let envelope = Envelope::new(MessageType::AddTask, key.as_str(), "bench", &add_task_like(n));
                let sent = Instant::now();
                bus.publish(envelope).await.map_err(|error| anyhow::anyhow!("publish: {error}"))?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    while let Some(joined) = publishers.join_next().await {
        latencies.extend(joined.context("publisher task")??);
    }
    let published_in = started.elapsed();
    let (received, last) = consuming.await.context("consumer task")?;
    let delivered_in = last.duration_since(started);
    let deleted = bus.delete_queue(&queue).await;
    bus.close().await;
    if received < total {
        bail!("only {received} of {total} messages were delivered within 60 s of the last one");
    }
    latencies.sort_unstable();
    let publish_rate = total as f64 / published_in.as_secs_f64();
    let delivery_rate = total as f64 / delivered_in.as_secs_f64();
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    println!("bus: {total} messages, {} publishers (persistent, confirmed, mandatory; quorum queue)", args.publishers);
    println!("  published+confirmed  {publish_rate:>10.0} msg/s   confirm p50 {p50:?}  p99 {p99:?}");
    println!("  delivered+acked      {delivery_rate:>10.0} msg/s");
    if let Err(error) = deleted {
        eprintln!("could not delete queue {queue}: {error} (delete it with `rabbitmqctl delete_queue {queue}`)");
    }
    if args.json {
        let figures = json!({"messages": total, "publishers": args.publishers, "prefetch": args.prefetch,
            "publish_per_s": publish_rate, "deliver_per_s": delivery_rate,
            "confirm_p50_ms": p50.as_secs_f64() * 1e3, "confirm_p99_ms": p99.as_secs_f64() * 1e3});
        println!("{figures}");
    }
    Ok(())
}
