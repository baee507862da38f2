//! Logging: tracing-subscriber with human text or JSON lines on stderr, filtered by `RUST_LOG` or the config.
//!
//! Installs the global subscriber once, and a panic hook that logs panics through tracing before the default
//! hook runs, so a panic is never only a backtrace on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber. `rust_log` is the `RUST_LOG` value, which wins over `logging.level`.
pub fn init(logging: &LoggingConfig, rust_log: Option<&str>) {
    let mut directive = logging.level.clone();
    if logging.debug.as_deref().is_some_and(|target| matches!(target, "stdout" | "stderr")) {
        directive = "debug".into();
    }
    let filter = rust_log
        .and_then(|text| EnvFilter::try_new(text).ok())
        .or_else(|| EnvFilter::try_new(&directive).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match logging.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_ok() {
        install_panic_hook();
    }
}

fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(panic = %info, %location, "panic");
        default_hook(info);
    }));
}
