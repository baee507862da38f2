//! Readiness of one role: false until the role can do its job, false again once it starts shutting down,
//! with a reason that `/ready` reports; also false while a dependency the role registered (e.g. its bus
//! connection) reports itself down.

use std::sync::{Arc, RwLock};

/// A dependency's own readiness: `Err(reason)` while it is down.
type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Shared readiness flag of one role.
#[derive(Clone)]
pub struct Readiness {
    state: Arc<RwLock<Result<(), String>>>,
    checks: Arc<RwLock<Vec<Check>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").field("state", &self.check()).finish()
    }
}

impl Readiness {
    /// Not ready, for the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Readiness { state: Arc::new(RwLock::new(Err(reason.into()))), checks: Arc::default() }
    }

    /// Makes readiness also depend on `check` (asked at every [`Readiness::check`]; keep it cheap).
    pub fn require(&self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        self.checks.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::new(check));
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
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()?;
        self.checks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().try_for_each(|check| check())
    }

    /// Whether the role is ready.
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}
