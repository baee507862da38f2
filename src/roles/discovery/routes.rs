//! Discovery's router: FogFlow's NGSI9 routes (spec §7.1) plus the named-registration routes the brokers' NGSI-LD
//! context source registrations use, the common routes, request metrics, and NGSI-shaped answers for unknown
//! paths and wrong methods.

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use super::api;
use super::state::DiscoveryState;
use crate::http::metrics::RequestMetricsLayer;
use crate::http::{common, Metrics};

/// The whole discovery router.
pub fn router(state: DiscoveryState, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/ngsi9/registerContext", post(api::register_context))
        .route("/ngsi9/discoverContextAvailability", post(api::discover_context_availability))
        .route("/ngsi9/subscribeContextAvailability", post(api::subscribe_context_availability))
        .route("/ngsi9/unsubscribeContextAvailability", post(api::unsubscribe_context_availability))
        .route("/ngsi9/UpdateLDContextAvailability/{sid}", post(api::update_ld_context_availability))
        .route("/ngsi9/registration/{eid}", get(api::get_registration).delete(api::delete_registration))
        .route("/ngsi9/ngsi-ld/registration/{eid}", get(api::get_registration))
        .route("/ngsi9/registrations/query", post(api::query_registrations))
        .route("/ngsi9/registrations/{rid}", delete(api::delete_named_registration))
        .route("/ngsi9/subscription", get(api::list_subscriptions))
        .route("/ngsi9/subscription/{sid}", get(api::get_subscription))
        .route("/ngsi9/broker", get(api::list_brokers))
        .route("/ngsi9/broker/heartbeat", post(api::heartbeat))
        .route("/ngsi9/status", get(api::status))
        .route("/etype", get(api::entity_types))
        .method_not_allowed_fallback(api::wrong_method)
        .with_state(state.clone())
        .merge(common::routes("discovery", state.readiness.clone(), metrics.clone()))
        .fallback(api::unknown_path)
        .layer(RequestMetricsLayer::new(metrics, "discovery"))
        .layer(CatchPanicLayer::new())
}
