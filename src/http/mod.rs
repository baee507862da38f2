//! Shared HTTP plumbing for every role: the server loop with limits and graceful drain, the common routes
//! (`/health`, `/ready`, `/metrics`, `/version`), request metrics, readiness and bounded body reading.
//!
//! Knows nothing of NGSI: each API renders its own errors from the typed errors here.

pub mod body;
pub mod common;
pub mod metrics;
pub mod readiness;
pub mod serve;

pub use body::{read_json, BodyError};
pub use metrics::Metrics;
pub use readiness::Readiness;
pub use serve::{serve, ServerLimits};
