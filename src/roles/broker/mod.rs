//! Broker role (placeholder while being written).

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{RoleContext, RoleError};

/// Runs the broker.
pub async fn run(_ctx: RoleContext, _listener: TcpListener, _shutdown: CancellationToken) -> Result<(), RoleError> {
    Err(RoleError::Other("broker not ready".into()))
}
