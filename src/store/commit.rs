//! Durability barriers and checkpoints. In `group` mode one flusher thread serves every writer: a writer takes
//! the journal's latest sequence after its write and waits until a journal sync covers it, so writers arriving
//! during a sync share the next one (group commit). By default the next sync starts as soon as the last one
//! ends; a non-zero `group_commit_interval` spaces syncs out once the last one covered several writes, so that
//! under load each `fdatasync` covers more writers, while a lone writer (even a sequential one) is still synced
//! at once. In `flush` mode each writer runs its own sync. A checkpoint thread
//! flushes sled and retires the journal every [`CHECKPOINT_INTERVAL`] (sooner when a segment grows past its size
//! cap).

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::journal::Journal;
use super::{StoreError, StoreOptions};
use crate::sync::lock;

/// How often written records are checkpointed into sled.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the checkpoint thread looks whether a checkpoint is due.
const CHECKPOINT_POLL: Duration = Duration::from_millis(50);

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Concurrent writers share syncs.
    Group,
    /// Each write gets its own sync.
    Flush,
}

#[derive(Debug, Clone, Default)]
struct SyncState {
    /// Highest journal sequence known durable.
    durable: u64,
    /// Highest sequence whose sync failed, with the reason.
    failed: Option<(u64, String)>,
}

pub(super) struct GroupCommit {
    journal: Arc<Journal>,
    mode: Durability,
    wake: Arc<(Mutex<bool>, Condvar)>,
    state: watch::Receiver<SyncState>,
}

impl GroupCommit {
    pub(super) fn start(journal: Arc<Journal>, options: StoreOptions) -> Arc<GroupCommit> {
        let (sender, state) = watch::channel(SyncState::default());
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let commits = Arc::new(GroupCommit { journal, mode: options.durability, wake: wake.clone(), state });
        if options.durability == Durability::Group {
            let weak = Arc::downgrade(&commits);
            let interval = options.group_commit_interval;
            std::thread::Builder::new()
                .name("store-flusher".into())
                .spawn(move || flusher(weak, wake, sender, interval))
                .expect("the OS refused to start the store flusher thread");
        }
        let weak = Arc::downgrade(&commits);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpointer(weak))
            .expect("the OS refused to start the store checkpoint thread");
        commits
    }

    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        let ticket = self.journal.appended();
        if self.journal.synced() >= ticket {
            return Ok(());
        }
        if self.mode == Durability::Flush {
            let journal = self.journal.clone();
            return tokio::task::spawn_blocking(move || journal.sync())
                .await
                .map_err(|error| StoreError::Io(error.to_string()))?
                .map(drop)
                .map_err(|(_, error)| error);
        }
        {
            // Only the first writer since the flusher last looked needs to wake it (a notify is a syscall).
            let (pending, signal) = &*self.wake;
            let mut flag = lock(pending);
            if !*flag {
                *flag = true;
                signal.notify_one();
            }
        }
        let mut state = self.state.clone();
        let settled = state
            .wait_for(|state| {
                state.durable >= ticket || state.failed.as_ref().is_some_and(|(failed, _)| *failed >= ticket)
            })
            .await
            .map_err(|_| StoreError::Io("the store flusher stopped".into()))?;
        if settled.durable >= ticket {
            Ok(())
        } else {
            let reason = settled.failed.as_ref().map(|(_, reason)| reason.clone()).unwrap_or_default();
            Err(StoreError::Io(format!("sync failed: {reason}")))
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let (pending, signal) = &*self.wake;
        *lock(pending) = true;
        signal.notify_one();
    }
}

fn flusher(
    commits: Weak<GroupCommit>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    sender: watch::Sender<SyncState>,
    interval: Duration,
) {
    let (pending, signal) = &*wake;
    let mut last_sync_started = Instant::now() - interval;
    let (mut last_durable, mut last_group) = (0, 0);
    loop {
        {
            let mut flag = lock(pending);
            while !*flag {
                flag = signal.wait(flag).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            *flag = false;
        }
        let Some(owner) = commits.upgrade() else { return };
        // Rate-limit syncs rather than delaying each one: a lone writer (the last sync covered one write at
        // most, after a quiet spell or from a single sequential client) is synced at once, while under load
        // syncs start at most once per interval and each covers every writer that arrived meanwhile.
        let since_last = last_sync_started.elapsed();
        if last_group > 1 && since_last < interval {
            std::thread::sleep(interval - since_last);
        }
        last_sync_started = Instant::now();
        let synced = owner.journal.sync();
        drop(owner);
        match synced {
            Ok(durable) => {
                last_group = durable.saturating_sub(last_durable);
                last_durable = last_durable.max(durable);
                sender.send_modify(|state| state.durable = state.durable.max(durable));
            }
            Err((target, error)) => {
                tracing::error!(%error, "store journal sync failed; writes are not acknowledged");
                sender.send_modify(|state| state.failed = Some((target, error.to_string())));
            }
        }
    }
}

fn checkpointer(commits: Weak<GroupCommit>) {
    let mut last_checkpoint = Instant::now();
    let mut failing = false;
    loop {
        std::thread::sleep(CHECKPOINT_POLL);
        let Some(owner) = commits.upgrade() else { return };
        let due = (last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL && owner.journal.holds_records())
            || owner.journal.segment_is_large();
        if !due {
            continue;
        }
        last_checkpoint = Instant::now();
        match owner.journal.checkpoint() {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("store checkpoints work again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::error!(%error, "store checkpoint failed; the journal keeps every write until one succeeds");
            }
            Err(_) => {}
        }
    }
}
