//! Readiness of one role: false until the role can do its job, false again once it starts shutting down,
//! with a reason that `/ready` reports.

use std::sync::{Arc, RwLock};

/// Shared readiness flag of one role.
#[derive(Debug, Clone)]
pub struct Readiness {
    state: Arc<RwLock<Result<(), String>>>,
}

impl Readiness {
    /// Not ready, for the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Readiness { state: Arc::new(RwLock::new(Err(reason.into()))) }
    }

    /// Marks the role ready.
    pub fn set_ready(&self) {
        *self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Ok(());
    }

    /// Marks the role not ready, for the given reason.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Err(reason.into());
    }

    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> Result<(), String> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether the role is ready.
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}
