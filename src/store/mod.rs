//! Persistent state: typed trees over sled, a format-version check on open, and durability barriers (group
//! commit or a sync per write) that a role awaits before it acknowledges a write.
//!
//! A write goes to sled and to the store's redo [`journal`]; a barrier syncs the journal (one sequential write
//! and `fdatasync` for a whole group of writers) rather than flushing sled, and a background checkpoint flushes
//! sled every [`commit::CHECKPOINT_INTERVAL`] and retires the journal. Opening a store replays what a crash left
//! in the journal.
//!
//! The only module that imports sled. Callers see [`Store`], [`Tree`] and [`StoreError`]; swapping the engine
//! (sled is beta, see reliability §1.6) stays a change inside this module.

mod commit;
mod journal;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::commit::Durability;
use self::commit::GroupCommit;
use self::journal::Journal;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const META_TREE: &str = "meta";
const FORMAT_KEY: &str = "format_version";

/// A failure of the store; never a client's fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened (locked by another process, permissions, corruption …).
    #[error("cannot open store at {path}: {reason}")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store was written by another format version.
    #[error(
        "store at {path} has format version {found}, this build reads version {FORMAT_VERSION}; refusing to open it"
    )]
    UnsupportedFormat {
        /// The store directory.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// Reading or writing failed (disk full, I/O error).
    #[error("store i/o failed: {0}")]
    Io(String),
    /// A stored value could not be decoded.
    #[error("stored value under `{key}` cannot be decoded: {reason}")]
    Decode {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Io(error.to_string())
    }
}

/// Options of [`Store::open`].
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How writes become durable.
    pub durability: Durability,
    /// Shortest time between the starts of two group-commit flushes.
    pub group_commit_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durability: Durability::Group, group_commit_interval: Duration::ZERO }
    }
}

/// An open store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    journal: Arc<Journal>,
    commits: Arc<GroupCommit>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking its format version.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let open_error = |reason: String| StoreError::Open { path: dir.to_path_buf(), reason };
        std::fs::create_dir_all(dir).map_err(|error| open_error(error.to_string()))?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(32 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            // The journal makes writes durable and the checkpoint flushes sled; no timer flushes of its own.
            .flush_every_ms(None);
        // sled may panic on some damaged files instead of returning an error; turn that into a refusal.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| open_error("the store engine panicked while reading it (damaged files?)".into()))?;
        let db = opened.map_err(|error| open_error(describe_open_error(&error)))?;
        check_format(&db, dir)?;
        let journal = Journal::open(db.clone(), dir, None).map_err(|error| open_error(error.to_string()))?;
        Ok(Store::assemble(db, journal, options))
    }

    /// A store in a temporary directory that is deleted when the store is dropped (for tests).
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        check_format(&db, Path::new("<temporary>"))?;
        let dir = std::env::temp_dir().join(format!("fogflow-store-{}", uuid::Uuid::new_v4()));
        let journal = Journal::open(db.clone(), &dir, Some(dir.clone()))?;
        Ok(Store::assemble(db, journal, StoreOptions::default()))
    }

    fn assemble(db: sled::Db, journal: Journal, options: StoreOptions) -> Store {
        let journal = Arc::new(journal);
        Store { commits: GroupCommit::start(journal.clone(), options), journal, db }
    }

    /// A typed tree (created when missing).
    pub fn tree<V: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Tree<V>, StoreError> {
        Ok(Tree {
            tree: self.db.open_tree(name)?,
            name: name.into(),
            journal: self.journal.clone(),
            _value: PhantomData,
        })
    }

    /// Returns once every write made before the call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.commits.commit().await
    }

    /// Makes everything durable in sled now and retires the journal, blocking (for shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.journal.checkpoint()
    }
}

fn describe_open_error(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
            format!("{io} (is another fogflow process using the same data_dir?)")
        }
        sled::Error::Corruption { .. } => format!("{error}: the store is damaged; restore it from a backup"),
        other => other.to_string(),
    }
}

fn check_format(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree(META_TREE)?;
    match meta.get(FORMAT_KEY)? {
        Some(raw) => {
            let text = String::from_utf8_lossy(&raw).to_string();
            if text.parse::<u32>().ok() == Some(FORMAT_VERSION) {
                Ok(())
            } else {
                Err(StoreError::UnsupportedFormat { path: dir.to_path_buf(), found: text })
            }
        }
        None => {
            let has_data = db
                .tree_names()
                .iter()
                .filter(|name| name.as_ref() != META_TREE.as_bytes() && name.as_ref() != b"__sled__default")
                .any(|name| db.open_tree(name).map(|tree| !tree.is_empty()).unwrap_or(true));
            if has_data || !db.is_empty() {
                return Err(StoreError::UnsupportedFormat {
                    path: dir.to_path_buf(),
                    found: "none (data without a format version)".into(),
                });
            }
            meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
            db.flush()?;
            Ok(())
        }
    }
}

/// A tree of JSON-encoded values of one type under string keys.
#[derive(Clone)]
pub struct Tree<V> {
    tree: sled::Tree,
    name: Arc<str>,
    journal: Arc<Journal>,
    _value: PhantomData<fn() -> V>,
}

impl<V: Serialize + DeserializeOwned> Tree<V> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<V>, StoreError> {
        match self.journal.lookup(&self.name, key) {
            Some(Some(raw)) => decode(key, &raw).map(Some),
            Some(None) => Ok(None),
            None => match self.tree.get(key)? {
                Some(raw) => decode(key, &raw).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Stores `value` under `key` (durable after the next [`Store::commit`]).
    pub fn insert(&self, key: &str, value: &V) -> Result<(), StoreError> {
        let encoded = serde_json::to_vec(value).map_err(|error| StoreError::Io(error.to_string()))?;
        self.journal.insert(&self.name, key, encoded).map(drop)
    }

    /// Removes `key`; whether it existed.
    pub fn remove(&self, key: &str) -> Result<bool, StoreError> {
        self.journal.remove(&self.name, &self.tree, key)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(String, V), StoreError>> + '_ {
        let applied = self.journal.apply_pending();
        applied.err().map(Err).into_iter().chain(self.tree.iter().map(|entry| {
            let (key, raw) = entry?;
            let key = String::from_utf8_lossy(&key).to_string();
            let value = decode(&key, &raw)?;
            Ok((key, value))
        }))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.apply_before_counting();
        self.tree.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.apply_before_counting();
        self.tree.is_empty()
    }

    fn apply_before_counting(&self) {
        if let Err(error) = self.journal.apply_pending() {
            tracing::error!(%error, "cannot write pending writes into the store; the count may be stale");
        }
    }
}

fn decode<V: DeserializeOwned>(key: &str, raw: &[u8]) -> Result<V, StoreError> {
    serde_json::from_slice(raw).map_err(|error| StoreError::Decode { key: key.to_string(), reason: error.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_survive_reopen_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let tree = store.tree::<Vec<u32>>("numbers").unwrap();
            tree.insert("a", &vec![1, 2]).unwrap();
            store.commit().await.unwrap();
        }
        let store =
            Store::open(dir.path(), StoreOptions { durability: Durability::Flush, ..StoreOptions::default() }).unwrap();
        let tree = store.tree::<Vec<u32>>("numbers").unwrap();
        assert_eq!(tree.get("a").unwrap(), Some(vec![1, 2]));
        assert_eq!(tree.iter().count(), 1);
        assert!(tree.remove("a").unwrap());
        store.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_crash_leaves_a_journal_that_the_next_open_replays_up_to_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let journal_dir = dir.path().join(journal::JOURNAL_DIR);
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let tree = store.tree::<u32>("numbers").unwrap();
            tree.insert("a", &1).unwrap();
            tree.insert("b", &2).unwrap();
            assert!(tree.remove("a").unwrap());
            assert!(!tree.remove("never").unwrap());
            store.commit().await.unwrap();
            // What a crash leaves: the journal as synced, and half a record written after it.
            let segments: Vec<_> = std::fs::read_dir(&journal_dir).unwrap().map(|e| e.unwrap().path()).collect();
            let copy = tempfile::tempdir().unwrap();
            for path in &segments {
                std::fs::copy(path, copy.path().join(path.file_name().unwrap())).unwrap();
            }
            drop(tree);
            drop(store);
            std::fs::remove_dir_all(dir.path()).unwrap();
            // A fresh, empty store directory with the crashed journal in it.
            let fresh = Store::open(dir.path(), StoreOptions::default()).unwrap();
            drop(fresh);
            for entry in std::fs::read_dir(&journal_dir).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
            for path in &segments {
                let target = journal_dir.join(path.file_name().unwrap());
                let mut bytes = std::fs::read(copy.path().join(path.file_name().unwrap())).unwrap();
                bytes.extend_from_slice(&[42, 0, 0, 0, 1, 2]);
                std::fs::write(target, bytes).unwrap();
            }
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let tree = store.tree::<u32>("numbers").unwrap();
        assert_eq!(tree.get("a").unwrap(), None, "the removal was replayed");
        assert_eq!(tree.get("b").unwrap(), Some(2), "the insert was replayed");
        let names: Vec<String> = std::fs::read_dir(&journal_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        // The replayed segment 1 is retired and its file reused as the new segment 2.
        assert_eq!(names, ["00000000000000000002.log"], "replayed segments are retired");
    }

    #[tokio::test]
    async fn a_commit_without_writes_returns_at_once_and_checkpoints_retire_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.commit().await.unwrap();
        let tree = store.tree::<u32>("numbers").unwrap();
        tree.insert("a", &1).unwrap();
        store.commit().await.unwrap();
        // Record bytes in the live segments (each starts with a header; the spare is a retired file kept for reuse).
        let journal_bytes = || {
            std::fs::read_dir(dir.path().join(journal::JOURNAL_DIR))
                .unwrap()
                .map(Result::unwrap)
                .filter(|entry| entry.file_name() != journal::SPARE_SEGMENT)
                .map(|entry| entry.metadata().unwrap().len().saturating_sub(journal::SEGMENT_HEADER_BYTES as u64))
                .sum::<u64>()
        };
        assert!(journal_bytes() > 0);
        let deadline = std::time::Instant::now() + commit::CHECKPOINT_INTERVAL * 5;
        while journal_bytes() > 0 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint retired the journal");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.flush_blocking().unwrap();
        assert_eq!(tree.get("a").unwrap(), Some(1));
    }

    #[test]
    fn reads_see_writes_that_sled_has_not_taken_yet() {
        let store = Store::temporary().unwrap();
        let tree = store.tree::<u32>("numbers").unwrap();
        tree.insert("a", &1).unwrap();
        tree.insert("b", &2).unwrap();
        tree.insert("a", &3).unwrap();
        assert_eq!(tree.get("a").unwrap(), Some(3));
        assert!(tree.remove("b").unwrap());
        assert!(!tree.remove("b").unwrap(), "a removed key is gone");
        assert_eq!(tree.get("b").unwrap(), None);
        tree.insert("c", &4).unwrap();
        let all: Vec<(String, u32)> = tree.iter().map(Result::unwrap).collect();
        assert_eq!(all, [("a".to_string(), 3), ("c".to_string(), 4)]);
        assert_eq!(tree.len(), 2);
        assert!(tree.remove("c").unwrap(), "a key sled holds is removed");
        assert_eq!(tree.iter().count(), 1);
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree(META_TREE).unwrap().insert(FORMAT_KEY, "99").unwrap();
            db.flush().unwrap();
        }
        let error = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(matches!(error, StoreError::UnsupportedFormat { .. }), "{error}");
        assert!(error.to_string().contains("format version 99"), "{error}");
    }

    #[test]
    fn data_without_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("entities").unwrap().insert("x", "y").unwrap();
            db.flush().unwrap();
        }
        assert!(Store::open(dir.path(), StoreOptions::default()).is_err());
    }
}
