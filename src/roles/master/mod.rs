//! Master role (being built).

pub mod flow;
pub mod scheduler;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{RoleContext, RoleError};
use crate::http::{common, serve, Readiness, ServerLimits};

/// Runs the master until `shutdown` fires.
pub async fn run(ctx: RoleContext, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RoleError> {
    let readiness = Readiness::new("starting");
    readiness.set_ready();
    serve(listener, common::routes("master", readiness, ctx.metrics.clone()), shutdown, ServerLimits::default()).await;
    Ok(())
}
