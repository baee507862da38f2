//! FogFlow's worker-local admission and priority preemption (spec §4.3), as pure functions over the tasks a
//! worker holds: whether a new task may run, which running tasks it overtakes, and which held tasks resume
//! once a task is removed. Fixed quirks: resumption compares levels with `>=` (level-0 exclusive tasks
//! resume), and tasks that already run are never "relaunched" again.
//!
//! Must not: do I/O or know about processes and the bus.

/// What admission needs to know about a held task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held<'a> {
    /// Task id.
    pub id: &'a str,
    /// Exclusive tasks preempt inclusive ones.
    pub exclusive: bool,
    /// Priority among exclusive tasks.
    pub level: i32,
    /// Whether it runs (or is being launched) now.
    pub running: bool,
}

/// The outcome of admitting a new task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admission {
    /// Whether the new task may run now (else it is held paused).
    pub runnable: bool,
    /// Running tasks it preempts (to pause).
    pub overtaken: Vec<String>,
}

/// Admits a new task (`exclusive`, `level`) against the tasks already held, whatever their status (FogFlow).
pub fn admit<'a>(exclusive: bool, level: i32, held: impl IntoIterator<Item = Held<'a>>) -> Admission {
    let mut admission = Admission { runnable: true, overtaken: Vec::new() };
    for existing in held {
        // FogFlow: N is not runnable if (!N.ex && E.ex) || (N.ex && E.ex && E.level > N.level).
        let blocked = existing.exclusive && (!exclusive || existing.level > level);
        if blocked {
            admission.runnable = false;
        }
        // FogFlow: E is overtaken if (N.ex && !E.ex) || (N.ex && E.ex && E.level < N.level).
        let overtaken = exclusive && (!existing.exclusive || existing.level < level);
        if overtaken && existing.running {
            admission.overtaken.push(existing.id.to_string());
        }
    }
    admission
}

/// The held tasks to resume after a task was removed: nothing while an exclusive task runs; else every held
/// exclusive task of the highest level among the non-running exclusive ones (`>=`, so level 0 counts); else,
/// when no exclusive task waits, every non-running task.
pub fn to_resume<'a>(held: &[Held<'a>]) -> Vec<&'a str> {
    if held.iter().any(|t| t.exclusive && t.running) {
        return Vec::new();
    }
    let best = held.iter().filter(|t| t.exclusive && !t.running && t.level >= 0).map(|t| t.level).max();
    match best {
        Some(level) => held.iter().filter(|t| t.exclusive && t.level == level && !t.running).map(|t| t.id).collect(),
        None => held.iter().filter(|t| !t.running).map(|t| t.id).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: &str, exclusive: bool, level: i32, running: bool) -> Held<'_> {
        Held { id, exclusive, level, running }
    }

    #[test]
    fn inclusive_tasks_share_the_worker() {
        let admission = admit(false, 0, [held("A", false, 0, true)]);
        assert!(admission.runnable);
        assert!(admission.overtaken.is_empty());
    }

    #[test]
    fn exclusive_preempts_by_level() {
        // AT-10: A inclusive running; B exclusive 50 pauses A.
        let b = admit(true, 50, [held("A", false, 0, true)]);
        assert_eq!(b, Admission { runnable: true, overtaken: vec!["A".into()] });
        // C exclusive 100 pauses B (A already paused).
        let c = admit(true, 100, [held("A", false, 0, false), held("B", true, 50, true)]);
        assert_eq!(c, Admission { runnable: true, overtaken: vec!["B".into()] });
        // A new inclusive task waits while an exclusive one is held.
        assert!(!admit(false, 0, [held("C", true, 100, true)]).runnable);
        // A lower exclusive task waits; an equal one runs beside (same intent, several tasks).
        assert!(!admit(true, 50, [held("C", true, 100, true)]).runnable);
        let same = admit(true, 100, [held("C", true, 100, true)]);
        assert!(same.runnable && same.overtaken.is_empty());
    }

    #[test]
    fn resumption_after_removal() {
        // C removed: B (exclusive 50) resumes, A stays paused.
        let after_c = [held("A", false, 0, false), held("B", true, 50, false)];
        assert_eq!(to_resume(&after_c), vec!["B"]);
        // B removed too: A resumes.
        assert_eq!(to_resume(&[held("A", false, 0, false)]), vec!["A"]);
        // While an exclusive task runs nothing resumes.
        assert!(to_resume(&[held("A", false, 0, false), held("B", true, 50, true)]).is_empty());
        // Fixed quirk: level-0 exclusive tasks resume.
        assert_eq!(to_resume(&[held("A", false, 0, false), held("Z", true, 0, false)]), vec!["Z"]);
        // Running tasks are not relaunched.
        assert_eq!(to_resume(&[held("X", false, 0, true), held("Y", false, 0, false)]), vec!["Y"]);
    }
}
