//! The designer's router: FogFlow's designer REST (spec §6.3), the proxies, `/config.js`, `/`, the common
//! routes, request metrics, permissive CORS as FogFlow's designer (`*`; GET, POST, OPTIONS, PUT, DELETE) and
//! JSON answers for unknown paths, wrong methods and panics.

use std::any::Any;
use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as AnyOrigin, CorsLayer};

use super::api::{devices, info, intents, registry};
use super::proxy;
use super::state::DesignerState;
use crate::http::metrics::RequestMetricsLayer;
use crate::http::{common, Metrics};

/// The whole designer router.
pub fn router(state: DesignerState, metrics: Arc<Metrics>) -> Router {
    let api = Router::new()
        .route("/", get(info::index))
        .route("/config.js", get(info::config_js))
        .route("/operator", get(registry::list_operators).post(registry::post_operators))
        .route("/operator/{name}", get(registry::get_operator).delete(registry::delete_operator))
        .route(
            "/dockerimage/{operator}",
            get(registry::list_images).post(registry::post_image).delete(registry::delete_image),
        )
        .route("/topology", get(registry::list_topologies))
        .route("/topology/{name}", get(registry::get_topology))
        .route("/service", get(registry::list_services).post(registry::post_services))
        .route("/service/{name}", get(registry::get_service).delete(registry::delete_service))
        .route("/intent", get(intents::list_intents).post(intents::post_intent))
        .route("/intent/{id}", get(intents::get_intent).delete(intents::delete_intent))
        .route("/intent/topology/{topology}", get(intents::intents_of_topology))
        .route("/fogfunction", get(intents::list_fogfunctions).post(intents::post_fogfunctions))
        .route("/fogfunction/{name}", get(intents::get_fogfunction).delete(intents::delete_fogfunction))
        .route("/fogfunction/{name}/enable", get(intents::enable_fogfunction))
        .route("/fogfunction/{name}/disable", get(intents::disable_fogfunction))
        .route("/device", get(devices::list_devices).post(devices::post_device))
        .route("/device/{id}", delete(devices::delete_device))
        .route("/subscription", get(devices::list_subscriptions).post(devices::post_subscription))
        .route("/subscription/{id}", delete(devices::delete_subscription))
        .route("/info/master", get(info::master))
        .route("/info/worker", get(info::workers))
        .route("/info/broker", get(info::brokers))
        .route("/info/type", get(info::entity_types))
        .route("/info/task", get(info::tasks))
        .route("/info/task/{intent}", get(info::tasks_of_intent))
        .route("/ngsi10/{*rest}", any(proxy::to_broker))
        .route("/ngsi-ld/{*rest}", any(proxy::to_broker))
        .route("/ngsi9/{*rest}", any(proxy::to_discovery))
        .method_not_allowed_fallback(wrong_method)
        .with_state(state.clone());
    api.merge(common::routes("designer", state.readiness.clone(), metrics.clone()))
        .fallback(unknown_path)
        .layer(RequestMetricsLayer::new(metrics, "designer"))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AnyOrigin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS, Method::PUT, Method::DELETE])
        .allow_headers(AnyOrigin)
}

fn error(status: StatusCode, kind: &str, description: String) -> Response {
    (status, Json(json!({ "error": kind, "description": description }))).into_response()
}

async fn unknown_path(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, "NotFound", format!("no resource at {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not allowed on {}", uri.path()))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = crate::http::panic_message(panic.as_ref());
    tracing::error!(panic = message, "designer handler panicked");
    error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "internal error".into())
}
