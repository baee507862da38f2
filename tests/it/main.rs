//! The integration test binary: runs the real `fogflow` executable as child processes and talks to it over
//! HTTP on 127.0.0.1. Shared harness in `common`; one module per area of behaviour.

mod amqp_bus;
mod bad_input;
mod body_limits;
mod cli;
mod common;
mod common_routes;
mod count_limits;
mod csource_registrations;
mod delivery;
mod designer;
mod discovery;
mod discovery_registration;
mod docker_image;
mod durability;
mod federation;
mod federation_reads;
mod ngsi10_query;
mod ngsi10_subscribe;
mod ngsi10_update;
mod ngsi_ld_entities;
mod ngsi_ld_queries;
mod ngsi_ld_subscriptions;
mod ngsi_mapping;
mod ngsiv2_entities;
mod ngsiv2_ops;
mod ngsiv2_queries;
mod ngsiv2_registration;
mod ngsiv2_subscriptions;
mod notification_formats;
mod notifications;
mod operators;
mod orchestration;
mod relay;
mod shutdown;
mod subscription_lifetime;
