//! The timed load: [`run_load`] runs one task per connection sending a [`RequestPlan`]'s requests
//! back-to-back over keep-alive for warmup + duration ([`Window`]), prints a progress line every second
//! and merges the per-connection [`LoadStats`] at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use super::client::{ClientConnection, Target};
use super::scenarios::RequestPlan;
use super::sink::SinkCounters;
use super::stats::LoadStats;

/// Longest wait for one response (or one connect) before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight at the end of the window may still finish (they are not measured).
const FINISH_GRACE: Duration = Duration::from_secs(3);

/// Pause after a failed connect before the next try.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The phases of a run, as instants.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    started: Instant,
    measure_start: Instant,
    end: Instant,
    finish_deadline: Instant,
}

/// Where in the [`Window`] a request finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the timed part: sent but not measured.
    Warmup,
    /// Measured.
    Timed,
    /// After the timed part (requests that were in flight at its end).
    Late,
}

impl Window {
    /// A window starting at `started`: `warmup`, then `duration` timed.
    pub fn new(started: Instant, warmup: Duration, duration: Duration) -> Self {
        let measure_start = started + warmup;
        let end = measure_start + duration;
        Self { started, measure_start, end, finish_deadline: end + FINISH_GRACE }
    }

    /// Start of the timed part.
    pub fn measure_start(&self) -> Instant {
        self.measure_start
    }

    /// End of the timed part; no request is sent after it.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// The phase an instant falls in.
    pub fn phase(&self, at: Instant) -> Phase {
        if at < self.measure_start {
            Phase::Warmup
        } else if at < self.end {
            Phase::Timed
        } else {
            Phase::Late
        }
    }
}

/// What a timed run produced.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Merged over all connections, timed window only.
    pub stats: LoadStats,
    /// 2xx responses in every phase (for comparing with notifications).
    pub acknowledged: u64,
}

/// Running totals over all connections and phases, for the progress line.
#[derive(Debug, Default)]
struct ProgressCounters {
    ok: AtomicU64,
    errors: AtomicU64,
}

struct WorkerShared {
    plan: Arc<RequestPlan>,
    target: Arc<Target>,
    window: Window,
    progress: Arc<ProgressCounters>,
}

struct WorkerOutcome {
    stats: LoadStats,
    acknowledged: u64,
}

/// Runs `plan` over `connections` connections through `window`; `notifications` adds the sink's rate
/// to the progress line.
pub async fn run_load(
    target: Arc<Target>,
    plan: Arc<RequestPlan>,
    connections: usize,
    window: Window,
    notifications: Option<Arc<SinkCounters>>,
) -> anyhow::Result<LoadOutcome> {
    let progress = Arc::new(ProgressCounters::default());
    let shared = Arc::new(WorkerShared { plan, target, window, progress: progress.clone() });
    let mut workers = JoinSet::new();
    for connection_index in 0..connections {
        workers.spawn(run_connection(shared.clone(), connection_index));
    }
    let progress_task = tokio::spawn(print_progress(window, progress, notifications));

    let mut outcome = LoadOutcome { stats: LoadStats::new()?, acknowledged: 0 };
    let collect = async {
        while let Some(joined) = workers.join_next().await {
            let worker = joined.context("a connection task failed")??;
            outcome.stats.merge(&worker.stats)?;
            outcome.acknowledged += worker.acknowledged;
        }
        Ok::<_, anyhow::Error>(())
    };
    // Every worker stops by the finish deadline on its own; the extra second only guards against surprises.
    let collected = timeout_at(window.finish_deadline + Duration::from_secs(1), collect).await;
    progress_task.abort();
    match collected {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("{} connection tasks did not stop after the run", workers.len()),
    }
    Ok(outcome)
}

/// One connection: send, wait, record, repeat until the window ends; reconnect after transport errors.
async fn run_connection(shared: Arc<WorkerShared>, connection_index: usize) -> anyhow::Result<WorkerOutcome> {
    let window = shared.window;
    let progress = &shared.progress;
    let mut generator = shared.plan.generator(connection_index);
    let mut stats = LoadStats::new()?;
    let mut acknowledged = 0;
    let mut connection: Option<ClientConnection> = None;
    while Instant::now() < window.end {
        let live = match connection.as_mut() {
            Some(live) => live,
            None => {
                let deadline = (Instant::now() + REQUEST_TIMEOUT).min(window.end);
                match timeout_at(deadline, ClientConnection::connect(&shared.target)).await {
                    Ok(Ok(fresh)) => connection.insert(fresh),
                    failed => {
                        let finished = Instant::now();
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        if window.phase(finished) == Phase::Timed {
                            match failed {
                                Ok(Err(error)) => stats.record_transport_error(&error, false),
                                _ => stats.record_transport_error(&"connect timed out", true),
                            }
                        }
                        tokio::time::sleep_until((finished + RECONNECT_PAUSE).min(window.end)).await;
                        continue;
                    }
                }
            }
        };
        let request = generator.next_request()?;
        let started = Instant::now();
        let deadline = (started + REQUEST_TIMEOUT).min(window.finish_deadline);
        let outcome = timeout_at(deadline, live.exchange(request)).await;
        let finished = Instant::now();
        let timed = window.phase(finished) == Phase::Timed;
        match outcome {
            Ok(Ok(reply)) => {
                let accepted = shared.plan.accepts(reply.status);
                if accepted {
                    acknowledged += 1;
                    progress.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                }
                if timed {
                    stats.record_judged_response(reply.status, accepted, finished - started);
                }
            }
            Ok(Err(error)) => {
                connection = None;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if timed {
                    stats.record_transport_error(&error, false);
                }
            }
            Err(_elapsed) => {
                // The answer may still come on this connection, so it cannot carry another request.
                connection = None;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if timed {
                    stats.record_transport_error(&"no response within the request timeout", true);
                }
            }
        }
    }
    Ok(WorkerOutcome { stats, acknowledged })
}

/// Prints `[3s] 61234 req/s, errors 0` to stderr every second until the window ends.
async fn print_progress(window: Window, progress: Arc<ProgressCounters>, notifications: Option<Arc<SinkCounters>>) {
    let mut ticker = tokio::time::interval_at(window.started + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous_ok = 0;
    let mut previous_elements = notifications.as_ref().map_or(0, |counters| counters.snapshot().elements);
    let mut previous_tick = window.started;
    loop {
        let tick = ticker.tick().await;
        if tick > window.end + Duration::from_millis(100) {
            return;
        }
        let seconds = (tick - previous_tick).as_secs_f64().max(0.001);
        previous_tick = tick;
        let ok = progress.ok.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let rate = (ok - previous_ok) as f64 / seconds;
        previous_ok = ok;
        let mut line = format!("[{}s] {rate:.0} req/s, errors {errors}", (tick - window.started).as_secs_f64().round());
        if let Some(counters) = &notifications {
            let elements = counters.snapshot().elements;
            let notified_rate = elements.saturating_sub(previous_elements) as f64 / seconds;
            previous_elements = elements;
            line.push_str(&format!(", notified {notified_rate:.0} elements/s"));
        }
        if tick <= window.measure_start {
            line.push_str(" (warmup)");
        }
        eprintln!("{line}");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn window_phases_follow_warmup_and_duration() {
        let started = Instant::now();
        let window = Window::new(started, Duration::from_secs(2), Duration::from_secs(5));
        assert_eq!(window.phase(started), Phase::Warmup);
        assert_eq!(window.phase(started + Duration::from_millis(1999)), Phase::Warmup);
        assert_eq!(window.phase(started + Duration::from_secs(2)), Phase::Timed);
        assert_eq!(window.phase(started + Duration::from_millis(6999)), Phase::Timed);
        assert_eq!(window.phase(started + Duration::from_secs(7)), Phase::Late);
        assert_eq!(window.end() - window.measure_start(), Duration::from_secs(5));
    }

    /// A server on 127.0.0.1 answering every request with `status`; returns its URL.
    pub(crate) async fn constant_server(status: http::StatusCode) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(move |_request| async move {
                    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")));
                    *response.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(response)
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        url
    }

    async fn run_against(url: &str, connections: usize) -> (LoadOutcome, Duration) {
        let target = Arc::new(Target::parse(url).unwrap());
        let plan = Arc::new(RequestPlan::new(super::super::Scenario::Update, target.clone(), 10).unwrap());
        let started = Instant::now();
        let window = Window::new(started, Duration::from_millis(200), Duration::from_millis(500));
        let outcome = run_load(target, plan, connections, window, None).await.unwrap();
        (outcome, started.elapsed())
    }

    #[tokio::test]
    async fn load_runs_for_the_window_and_counts_successes() {
        let url = constant_server(http::StatusCode::OK).await;
        let (outcome, elapsed) = run_against(&url, 4).await;
        assert!(outcome.stats.ok > 10, "{outcome:?}");
        assert_eq!(outcome.stats.http_errors + outcome.stats.transport_errors, 0);
        assert!(outcome.acknowledged > outcome.stats.ok, "warmup answers are acknowledged but not timed");
        assert!(outcome.stats.latency().max_micros > 0);
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    #[tokio::test]
    async fn non_success_statuses_are_http_errors() {
        let url = constant_server(http::StatusCode::SERVICE_UNAVAILABLE).await;
        let (outcome, _) = run_against(&url, 2).await;
        assert_eq!(outcome.stats.ok, 0);
        assert!(outcome.stats.http_errors > 0);
        assert_eq!(outcome.stats.error_statuses.keys().copied().collect::<Vec<_>>(), vec![503]);
        assert_eq!(outcome.acknowledged, 0);
    }

    #[tokio::test]
    async fn an_absent_server_gives_transport_errors_and_still_stops() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (outcome, elapsed) = run_against(&url, 2).await;
        assert_eq!(outcome.stats.ok, 0);
        assert!(outcome.stats.transport_errors > 0);
        assert!(outcome.stats.first_transport_error.is_some());
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn no_warmup_measures_from_the_start() {
        let started = Instant::now();
        let window = Window::new(started, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(window.phase(started), Phase::Timed);
    }
}
