//! Process signals: the first SIGINT or SIGTERM cancels the root shutdown token (Kubernetes sends SIGTERM to
//! start a graceful shutdown); a second one exits at once with code 130, for an impatient operator.
//!
//! The only module that touches `tokio::signal`.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit code after a second signal.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Spawns the signal watcher and returns the root token it cancels.
pub fn install() -> std::io::Result<CancellationToken> {
    let root = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let token = root.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = first, "shutting down gracefully; send the signal again to exit at once");
        token.cancel();
        let second = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::warn!(signal = second, "second signal, exiting now");
        std::process::exit(FORCED_EXIT_CODE);
    });
    Ok(root)
}
