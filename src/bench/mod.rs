//! `fogflow bench`: the load generator. This module owns the command-line arguments and the dispatch:
//! check the broker is up, preload when the scenario needs it, run the timed load, print the report.
//!
//! - [`client`]: the broker target and raw hyper HTTP/1.1 keep-alive connections.
//! - [`payload`]: the NGSI10 and NGSI-LD bodies sent and read.
//! - [`scenarios`]: `--scenario` and the request stream of each.
//! - [`preload`]: creating the entities before a run.
//! - [`runner`]: the timed run over N connections with progress lines.
//! - [`sink`] and [`notify`]: the notification receiver and the `notify` scenario.
//! - [`stats`]: per-connection HDR latency histograms and counters, merged.
//! - [`report`]: the printed report (text and JSON).
//! - [`task_latency`]: `fogflow bench task-latency`, the orchestration's reaction time.
//! - [`bus`]: `fogflow bench bus`, the RabbitMQ control bus's throughput with confirms.

pub mod bus;
pub mod client;
pub mod notify;
pub mod payload;
pub mod preload;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod sink;
pub mod stats;
pub mod task_latency;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Method;
use tokio::time::Instant;

use self::client::{request_once, Target};
use self::report::Report;
use self::runner::{run_load, Window};
use self::scenarios::RequestPlan;
pub use self::scenarios::Scenario;

/// Arguments of `fogflow bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Broker base URL (the NGSI10 API is under `<url>/ngsi10`, NGSI-LD under `<url>/ngsi-ld/v1`).
    #[arg(long, default_value = "http://127.0.0.1:8070")]
    pub url: String,

    /// What each request does.
    #[arg(long, value_enum, default_value_t = Scenario::Update)]
    pub scenario: Scenario,

    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Timed seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,

    /// Seconds of load before the timed part (not counted).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub warmup: u64,

    /// Entities created before the run (every scenario but create) and picked from at random.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub entities: u64,

    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,

    /// A benchmark that is not a broker load (`task-latency`).
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
}

/// Benchmarks of other parts than the broker.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Entity appears → task configured → first output, over sequential launches (any runtime).
    TaskLatency(task_latency::TaskLatencyArgs),
    /// Messages per second through RabbitMQ with persistence and publisher confirms, as the roles use it.
    Bus(bus::BusArgs),
}

/// The run parameters, in the types the modules use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connections of the timed run (and of the preload).
    pub connections: usize,
    /// Untimed seconds before the timed part.
    pub warmup: Duration,
    /// Timed part.
    pub duration: Duration,
    /// Entities to preload.
    pub entities: u64,
}

impl From<&BenchArgs> for Settings {
    fn from(args: &BenchArgs) -> Self {
        Self {
            connections: usize::try_from(args.connections).unwrap_or(usize::MAX),
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration),
            entities: args.entities,
        }
    }
}

/// Runs the benchmark and prints the report on stdout (progress goes to stderr).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::TaskLatency(latency)) => return task_latency::run(latency).await,
        Some(BenchCommand::Bus(bus)) => return bus::run(bus).await,
        None => {}
    }
    let target = Arc::new(Target::parse(&args.url)?);
    let settings = Settings::from(&args);
    check_health(&target).await?;
    eprintln!(
        "bench {} against {}: {} connections, {} s warmup + {} s timed",
        args.scenario,
        target.url(),
        settings.connections,
        args.warmup,
        args.duration
    );

    let preloaded_entities = if args.scenario.needs_preload() { settings.entities } else { 0 };
    let (load, notifications) = match args.scenario {
        Scenario::Notify => {
            let (load, figures) = notify::run_notify(target.clone(), &settings).await?;
            (load, Some(figures))
        }
        scenario => {
            if scenario.is_ld() {
                preload::preload_ld_entities(target.clone(), settings.entities, settings.connections).await?;
            } else if scenario.needs_preload() {
                preload::preload_entities(target.clone(), settings.entities, settings.connections).await?;
            }
            let plan = Arc::new(RequestPlan::new(scenario, target.clone(), settings.entities)?);
            let window = Window::new(Instant::now(), settings.warmup, settings.duration);
            (run_load(target.clone(), plan, settings.connections, window, None).await?, None)
        }
    };

    let report = Report {
        scenario: args.scenario.name().to_owned(),
        connections: settings.connections,
        duration_seconds: args.duration,
        warmup_seconds: args.warmup,
        entities: preloaded_entities,
        stats: load.stats,
        notifications,
    };
    print!("{}", report.to_text());
    if args.json {
        println!("{}", report.to_json());
    }
    Ok(())
}

/// Fails with a clear message unless `GET <url>/health` answers 2xx.
async fn check_health(target: &Target) -> anyhow::Result<()> {
    let reply = request_once(target, Method::GET, "/health", Bytes::new())
        .await
        .with_context(|| format!("the broker at {} is unreachable", target.url()))?;
    if !reply.status.is_success() {
        bail!(
            "the broker at {} is not healthy: GET /health answered {}: {}",
            target.url(),
            reply.status,
            reply.body_excerpt()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = TestCli::parse_from(["bench"]).bench;
        assert_eq!(args.url, "http://127.0.0.1:8070");
        assert_eq!(args.scenario, Scenario::Update);
        assert_eq!((args.connections, args.duration, args.warmup, args.entities), (64, 10, 2, 1000));
        assert!(!args.json);
    }

    #[test]
    fn parses_every_option() {
        let args = TestCli::parse_from([
            "bench",
            "--url",
            "http://h:1",
            "--scenario",
            "notify",
            "--connections",
            "8",
            "--duration",
            "3",
            "--warmup",
            "0",
            "--entities",
            "100000",
            "--json",
        ])
        .bench;
        assert_eq!(args.scenario, Scenario::Notify);
        let settings = Settings::from(&args);
        assert_eq!(settings.connections, 8);
        assert_eq!(settings.warmup, Duration::ZERO);
        assert_eq!(settings.entities, 100_000);
        assert!(args.json);
    }

    #[test]
    fn rejects_zero_connections_or_duration() {
        assert!(TestCli::try_parse_from(["bench", "--connections", "0"]).is_err());
        assert!(TestCli::try_parse_from(["bench", "--duration", "0"]).is_err());
        assert!(TestCli::try_parse_from(["bench", "--scenario", "delete"]).is_err());
    }

    #[test]
    fn parses_the_ld_scenarios() {
        for (name, scenario) in
            [("ld-upsert", Scenario::LdUpsert), ("ld-query", Scenario::LdQuery), ("ld-get", Scenario::LdGet)]
        {
            let args = TestCli::parse_from(["bench", "--scenario", name]).bench;
            assert_eq!(args.scenario, scenario);
            assert_eq!(scenario.name(), name);
            assert!(scenario.is_ld() && scenario.needs_preload());
        }
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let args = TestCli::parse_from(["bench", "--url", &format!("http://127.0.0.1:{port}")]).bench;
        let error = run(args).await.unwrap_err();
        assert!(format!("{error:#}").contains("is unreachable"), "{error:#}");
    }
}
