//! Typed HTTP clients one role uses to reach another (discovery's NGSI9 API) and to deliver notifications.
//! Roles talk to each other only through these, exactly as they would across pods.

pub mod broker;
pub mod discovery;
pub mod http_client;
pub mod tls;
