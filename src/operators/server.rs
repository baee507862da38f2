//! The operator's HTTP side: `POST /notifyContext` (NGSIv1 notifications in), `POST /admin` (admin commands),
//! `GET /health`; plus the periodic tick and the orderly stop on shutdown.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::publisher::{self, Publisher, RetryPolicy};
use super::{Context, Operator, OperatorName};
use crate::http::body::{read_bytes, read_json};
use crate::http::serve::{serve, ServerLimits};
use crate::model::admin::{parse_commands, TaskSettings};
use crate::ngsi::v1::{error_body, ContextElement, NotifyContextRequest};

/// Largest `/notifyContext` body accepted.
const MAX_NOTIFY_BYTES: usize = 4 * 1024 * 1024;
/// Largest `/admin` body accepted.
const MAX_ADMIN_BYTES: usize = 256 * 1024;
/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// How long queued results may take to leave after SIGTERM.
const PUBLISH_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

struct Shared {
    name: OperatorName,
    operator: Mutex<Box<dyn Operator>>,
    settings: RwLock<TaskSettings>,
    publisher: Publisher,
}

impl Shared {
    fn operator(&self) -> MutexGuard<'_, Box<dyn Operator>> {
        self.operator.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settings(&self) -> TaskSettings {
        self.settings.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Runs every element through the operator, then queues the results.
    fn handle(&self, elements: &[ContextElement]) {
        let settings = self.settings();
        let context = Context { outputs: &settings.outputs, now: Utc::now() };
        let mut results = Vec::new();
        {
            let mut operator = self.operator();
            for element in elements {
                match operator.on_entity(element, &context) {
                    Ok(outputs) => results.extend(outputs),
                    Err(error) => tracing::warn!(operator = %self.name, %error, "input skipped"),
                }
            }
        }
        self.publish(&settings, results);
    }

    fn tick(&self) {
        let settings = self.settings();
        let context = Context { outputs: &settings.outputs, now: Utc::now() };
        let results = self.operator().on_tick(&context);
        self.publish(&settings, results);
    }

    fn publish(&self, settings: &TaskSettings, results: Vec<ContextElement>) {
        if let Err(error) = self.publisher.enqueue(settings, results) {
            tracing::warn!(operator = %self.name, %error, "result not published");
        }
    }
}

/// Serves the operator on `listener` until `shutdown` fires, then stops within about a second.
pub(super) async fn run(
    name: OperatorName,
    operator: Box<dyn Operator>,
    settings: TaskSettings,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let tick_interval = operator.tick_interval();
    let (publisher, publish_task) = publisher::channel(RetryPolicy::default());
    let shared = Arc::new(Shared { name, operator: Mutex::new(operator), settings: RwLock::new(settings), publisher });
    let publishing = tokio::spawn(publish_task.run(shutdown.clone()));
    let ticking = tick_interval.map(|period| tokio::spawn(tick_loop(shared.clone(), period, shutdown.clone())));
    let limits = ServerLimits { max_connections: 256, ..ServerLimits::default() };
    let serving = tokio::spawn(serve(listener, router(shared), shutdown.clone(), limits));

    shutdown.cancelled().await;
    if let Some(ticking) = ticking {
        ticking.abort();
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, serving).await.is_err() {
        tracing::warn!(operator = %name, "requests still in flight at shutdown; leaving them");
    }
    if tokio::time::timeout(PUBLISH_DRAIN_TIMEOUT, publishing).await.is_err() {
        tracing::warn!(operator = %name, "results still queued at shutdown; dropping them");
    }
}

async fn tick_loop(shared: Arc<Shared>, period: Duration, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => shared.tick(),
            () = shutdown.cancelled() => return,
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/notifyContext", post(notify_context))
        .route("/admin", post(admin))
        .route("/health", get(health))
        .with_state(shared)
}

fn bad_request(details: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(error_body(400, "Bad Request", details))).into_response()
}

async fn notify_context(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let request: NotifyContextRequest = match read_json(&headers, body, MAX_NOTIFY_BYTES).await {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(operator = %shared.name, %error, "bad notification");
            return bad_request(&format!("not an NGSIv1 notification: {error}"));
        }
    };
    let elements: Vec<ContextElement> = request
        .context_responses
        .into_iter()
        .filter(|response| response.status_code.code == 200)
        .map(|response| response.context_element)
        .collect();
    tracing::debug!(operator = %shared.name, subscription = %request.subscription_id, count = elements.len(), "notified");
    shared.handle(&elements);
    Json(json!({"responseCode": {"code": 200, "reasonPhrase": "OK"}})).into_response()
}

async fn admin(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_bytes(&headers, body, MAX_ADMIN_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => return bad_request(&error.to_string()),
    };
    let commands = match parse_commands(&bytes) {
        Ok(commands) => commands,
        Err(error) => return bad_request(&format!("expected a JSON array of admin commands: {error}")),
    };
    let mut settings = shared.settings.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    settings.apply(&commands);
    tracing::info!(
        operator = %shared.name,
        commands = commands.len(),
        broker = settings.broker_url.as_deref().unwrap_or(""),
        outputs = settings.outputs.len(),
        "admin commands applied"
    );
    Json(json!({})).into_response()
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "operator": shared.name.as_str()}))
}
