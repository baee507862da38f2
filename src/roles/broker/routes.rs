//! The broker's router: FogFlow's NGSI10 routes (spec §4.1 rows 1–14, plus `/v1/updateContext`), the NGSIv2
//! entity routes under `/v2`, the NGSI-LD routes under `/ngsi-ld/v1`, the common routes, request metrics, CORS as
//! FogFlow allowed it (plus `PATCH` for v2 and LD, `Link` and `NGSILD-Tenant`), and answers for unknown paths and
//! wrong methods in the shape of the API asked (NGSIv2 under `/v2`, ProblemDetails under `/ngsi-ld`, NGSIv1
//! elsewhere) and for panics.

use std::any::Any;
use std::sync::Arc;

use axum::http::{HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::api::{context, error, ld, resources, v2};
use super::state::BrokerState;
use crate::http::metrics::RequestMetricsLayer;
use crate::http::{common, Metrics};

/// The whole broker router.
pub fn router(state: BrokerState, metrics: Arc<Metrics>) -> Router {
    let ngsi10 = Router::new()
        .route("/ngsi10/updateContext", post(context::update_context))
        .route("/v1/updateContext", post(context::update_context))
        .route("/ngsi10/queryContext", post(context::query_context))
        .route("/ngsi10/subscribeContext", post(context::subscribe_context))
        .route("/ngsi10/unsubscribeContext", post(context::unsubscribe_context))
        .route("/ngsi10/notifyContext", post(context::notify_context))
        .route("/ngsi10/notifyContextAvailability", post(context::notify_context_availability))
        .route("/ngsi10/entity", get(resources::list_entities))
        .route("/ngsi10/entity/{eid}", get(resources::get_entity).delete(resources::delete_entity))
        .route("/ngsi10/entity/{eid}/{attr}", get(resources::get_attribute))
        .route("/ngsi10/subscription", get(resources::list_subscriptions))
        .route("/ngsi10/subscription/{sid}", get(resources::get_subscription).delete(resources::delete_subscription))
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state.clone());
    ngsi10
        .merge(v2::routes(state.clone()))
        .merge(ld::routes(state.clone()))
        .merge(common::routes("broker", state.readiness.clone(), metrics.clone()))
        .fallback(unknown_path)
        .layer(RequestMetricsLayer::new(metrics, "broker"))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
}

/// Unknown paths: an NGSIv2 400 under `/v2` (as Orion answers), an NGSIv1 404 elsewhere.
async fn unknown_path(uri: Uri) -> Response {
    if v2::is_v2_path(uri.path()) {
        v2::error::unknown_path(uri).await.into_response()
    } else if ld::is_ld_path(uri.path()) {
        ld::error::unknown_path(uri).await.into_response()
    } else {
        error::unknown_path(uri).await.into_response()
    }
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("accept"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-custom-header"),
            HeaderName::from_static("origin"),
            HeaderName::from_static("destination"),
            HeaderName::from_static("link"),
            HeaderName::from_static("ngsild-tenant"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = crate::http::panic_message(panic.as_ref());
    tracing::error!(panic = message, "handler panicked");
    error::V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
