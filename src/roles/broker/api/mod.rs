//! The broker's HTTP handlers, one file per resource group, and what they share: NGSIv1 error rendering and
//! request metadata from headers. Handlers extract and validate, call [`BrokerState`], and map errors.
//!
//! [`BrokerState`]: super::state::BrokerState

pub mod context;
pub mod error;
pub mod federated;
pub mod headers;
pub mod ld;
pub mod resources;
pub mod v2;
