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

/// The text of a caught handler panic (`CatchPanicLayer`), for the log line each role writes before its own
/// error answer.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}
