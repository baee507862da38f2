//! The `notify` scenario end to end: start the sink, subscribe to every bench entity, preload, run the
//! update load, wait for notifications to drain, compare them with the updates acknowledged, and
//! cancel the subscription (also when a step fails).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use http::Method;
use tokio::time::Instant;

use super::client::{request_once, Target};
use super::payload::{parse_subscription_id, subscribe_context_body, unsubscribe_context_body};
use super::preload::preload_entities;
use super::report::NotificationFigures;
use super::runner::{run_load, LoadOutcome, Window};
use super::scenarios::{RequestPlan, Scenario};
use super::sink::{NotificationSink, SinkCounters, SinkSnapshot};
use super::Settings;

/// Longest wait after the load for the missing notifications.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// The drain wait also ends when nothing has arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(3);

/// Longest wait right after subscribing for the broker's initial notification to finish.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// The initial notification counts as finished after this long without new elements.
const SETTLE_QUIET: Duration = Duration::from_millis(500);

/// How often the sink counters are looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs the `notify` scenario; returns the timed load and the notification figures.
pub async fn run_notify(
    target: Arc<Target>,
    settings: &Settings,
) -> anyhow::Result<(LoadOutcome, NotificationFigures)> {
    let sink = NotificationSink::start().await?;
    let subscription_id = subscribe(&target, &sink.reference_url()).await?;
    eprintln!("subscribed {subscription_id} with reference {}", sink.reference_url());
    let result = measure(target.clone(), settings, &sink).await;
    if let Err(error) = unsubscribe(&target, &subscription_id).await {
        eprintln!("warning: {error:#}");
    }
    result
}

async fn measure(
    target: Arc<Target>,
    settings: &Settings,
    sink: &NotificationSink,
) -> anyhow::Result<(LoadOutcome, NotificationFigures)> {
    let baseline = wait_until_quiet(sink.counters(), SETTLE_QUIET, SETTLE_LIMIT, None).await.snapshot;
    let preloaded = preload_entities(target.clone(), settings.entities, settings.connections).await?;

    let plan = Arc::new(RequestPlan::new(Scenario::Notify, target.clone(), settings.entities)?);
    let window = Window::new(Instant::now(), settings.warmup, settings.duration);
    let sampler = tokio::spawn(sample_timed_window(sink.counters(), window));
    let load = run_load(target, plan, settings.connections, window, Some(sink.counters())).await?;
    let (at_measure_start, at_end) = sampler.await.context("the notification sampler failed")?;

    let updates_acknowledged = preloaded + load.acknowledged;
    eprintln!("waiting up to {} s for notifications to drain", DRAIN_LIMIT.as_secs());
    let drained =
        wait_until_quiet(sink.counters(), DRAIN_QUIET, DRAIN_LIMIT, Some(baseline.elements + updates_acknowledged))
            .await;
    let received = drained.snapshot.since(&baseline);
    let timed_elements = at_end.since(&at_measure_start).elements;
    let figures = NotificationFigures {
        posts: received.posts,
        elements: received.elements,
        initial_elements: baseline.elements,
        updates_acknowledged,
        elements_per_second: timed_elements as f64 / settings.duration.as_secs_f64().max(0.001),
        drain_seconds: drained.last_arrival_after_start.as_secs_f64(),
        malformed: drained.snapshot.malformed,
    };
    Ok((load, figures))
}

/// What a wait on the sink saw.
struct QuietWait {
    /// The counters when the wait ended.
    snapshot: SinkSnapshot,
    /// When the last new element arrived, counted from the start of the wait (zero if none did).
    last_arrival_after_start: Duration,
}

/// Waits until `target_elements` arrived, or nothing arrived for `quiet`, or `limit` passed.
async fn wait_until_quiet(
    counters: Arc<SinkCounters>,
    quiet: Duration,
    limit: Duration,
    target_elements: Option<u64>,
) -> QuietWait {
    let started = Instant::now();
    let mut snapshot = counters.snapshot();
    let mut last_arrival = started;
    loop {
        let now = Instant::now();
        let reached = target_elements.is_some_and(|target| snapshot.elements >= target);
        if reached || now - last_arrival >= quiet || now - started >= limit {
            return QuietWait { snapshot, last_arrival_after_start: last_arrival - started };
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        let latest = counters.snapshot();
        if latest.elements != snapshot.elements {
            last_arrival = Instant::now();
        }
        snapshot = latest;
    }
}

/// The sink counters at the start and at the end of the timed window.
async fn sample_timed_window(counters: Arc<SinkCounters>, window: Window) -> (SinkSnapshot, SinkSnapshot) {
    tokio::time::sleep_until(window.measure_start()).await;
    let at_measure_start = counters.snapshot();
    tokio::time::sleep_until(window.end()).await;
    (at_measure_start, counters.snapshot())
}

async fn subscribe(target: &Target, reference: &str) -> anyhow::Result<String> {
    let reply = request_once(target, Method::POST, "/ngsi10/subscribeContext", subscribe_context_body(reference))
        .await
        .context("subscribing failed")?;
    if !reply.status.is_success() {
        bail!("subscribing failed: the broker answered {}: {}", reply.status, reply.body_excerpt());
    }
    parse_subscription_id(&reply.body).with_context(|| format!("subscribing failed: {}", reply.body_excerpt()))
}

async fn unsubscribe(target: &Target, subscription_id: &str) -> anyhow::Result<()> {
    let body = unsubscribe_context_body(subscription_id);
    let reply = request_once(target, Method::POST, "/ngsi10/unsubscribeContext", body)
        .await
        .with_context(|| format!("cancelling subscription {subscription_id} failed"))?;
    if !reply.status.is_success() {
        bail!(
            "cancelling subscription {subscription_id} failed: the broker answered {}: {}",
            reply.status,
            reply.body_excerpt()
        );
    }
    Ok(())
}
