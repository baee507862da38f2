//! `fogflow`: FogFlow, the FIWARE fog-computing framework, as one binary.
//!
//! # Layout
//!
//! - [`cli`], [`config`], [`telemetry`], [`shutdown`]: the process shell (`main.rs` wires them).
//! - [`roles`]: one module per server role with the same `run(ctx, listener, shutdown)` entry; roles never
//!   import each other and talk over HTTP ([`clients`]) as they would in separate pods.
//! - [`ngsi`]: the NGSI data model, codecs, patterns and geo scopes — pure, no I/O.
//! - [`store`]: persistent state (the only module that imports sled).
//! - [`http`]: shared server plumbing, common routes, metrics.
//! - [`bench`]: the load generator behind `fogflow bench`.

pub mod bench;
pub mod bus;
pub mod cli;
pub mod clients;
pub mod config;
pub mod http;
pub mod model;
pub mod ngsi;
pub mod operators;
pub mod role;
pub mod roles;
pub mod runtime;
pub mod shutdown;
pub mod store;
pub mod sync;
pub mod telemetry;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::role::RoleSet;

pub use crate::roles::RunError;

/// Runs the given roles until `shutdown` fires (or a role fails), then drains within the grace period.
pub async fn run(config: Arc<Config>, roles: RoleSet, shutdown: CancellationToken) -> Result<(), RunError> {
    roles::run(config, roles, shutdown).await
}
