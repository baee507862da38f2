//! Small helpers for state kept behind std mutexes (no I/O, no policy).

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking over the data of a poisoned one: a holder that panicked cannot have left the data
/// half-updated where this is used (each critical section is a single map or queue operation), and the
/// alternative — propagating the panic — would take a whole role down for one failed request.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
