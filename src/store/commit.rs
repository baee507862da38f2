//! Durability barriers. In `group` mode one flusher thread serves every writer: a writer takes a ticket after
//! its write and waits until a flush that started after the ticket has finished, so writers arriving during a
//! flush share the next one (group commit). Flushes start at most once per `group_commit_interval`, so under
//! load each fsync covers many writers while a lone writer is still flushed at once. In `flush` mode each writer
//! runs its own flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{StoreError, StoreOptions};

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Concurrent writers share flushes.
    Group,
    /// Each write gets its own flush.
    Flush,
}

#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Highest ticket known durable.
    durable: u64,
    /// Highest ticket whose flush failed, with the reason.
    failed: Option<(u64, String)>,
}

pub(super) struct GroupCommit {
    db: sled::Db,
    mode: Durability,
    tickets: AtomicU64,
    wake: Arc<(Mutex<bool>, Condvar)>,
    state: watch::Receiver<FlushState>,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db, options: StoreOptions) -> Arc<GroupCommit> {
        let (sender, state) = watch::channel(FlushState::default());
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let commits = Arc::new(GroupCommit {
            db,
            mode: options.durability,
            tickets: AtomicU64::new(0),
            wake: wake.clone(),
            state,
        });
        if options.durability == Durability::Group {
            let weak = Arc::downgrade(&commits);
            let interval = options.group_commit_interval;
            std::thread::Builder::new()
                .name("store-flusher".into())
                .spawn(move || flusher(weak, wake, sender, interval))
                .expect("the OS refused to start the store flusher thread");
        }
        commits
    }

    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        if self.mode == Durability::Flush {
            let db = self.db.clone();
            return tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|error| StoreError::Io(error.to_string()))?
                .map(drop)
                .map_err(StoreError::from);
        }
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let (pending, signal) = &*self.wake;
            *pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
            signal.notify_one();
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
            Err(StoreError::Io(format!("flush failed: {reason}")))
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let (pending, signal) = &*self.wake;
        *pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        signal.notify_one();
    }
}

fn flusher(
    commits: std::sync::Weak<GroupCommit>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    sender: watch::Sender<FlushState>,
    interval: Duration,
) {
    let (pending, signal) = &*wake;
    let mut last_flush_started = std::time::Instant::now() - interval;
    loop {
        {
            let mut flag = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            while !*flag {
                flag = signal.wait(flag).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            *flag = false;
        }
        let Some(owner) = commits.upgrade() else { return };
        // Rate-limit flushes rather than delaying each one: a lone writer after a quiet spell is flushed at
        // once, while under load flushes start at most once per interval and each covers every writer that
        // arrived meanwhile.
        let since_last = last_flush_started.elapsed();
        if since_last < interval {
            std::thread::sleep(interval - since_last);
        }
        last_flush_started = std::time::Instant::now();
        let target = owner.tickets.load(Ordering::SeqCst);
        let flushed = owner.db.flush();
        drop(owner);
        match flushed {
            Ok(_) => sender.send_modify(|state| state.durable = state.durable.max(target)),
            Err(error) => {
                tracing::error!(%error, "store flush failed; writes are not acknowledged");
                sender.send_modify(|state| state.failed = Some((target, error.to_string())));
            }
        }
    }
}
