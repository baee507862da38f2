//! Master role (being built): serves the common routes only.

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
