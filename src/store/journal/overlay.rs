//! The writes the journal holds that sled has not seen yet: the latest value (or removal) of each key, served to
//! readers ahead of sled. A checkpoint moves the whole live map into an "applying" snapshot (still served to
//! readers) while it writes the snapshot to sled, then drops it. No I/O of its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A tree name and a key.
type Slot = (Arc<str>, Vec<u8>);
/// The latest write of each slot: `Some(value)` inserted, `None` removed.
pub(super) type Writes = HashMap<Slot, Option<Vec<u8>>>;

/// What a reader learns from the overlay.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Known {
    /// The key's latest write: its value, or `None` when it was removed.
    Written(Option<Vec<u8>>),
    /// No pending write: sled has the answer.
    Unknown,
}

/// The live writes (kept by the journal under its append lock) and the snapshot being applied.
#[derive(Default)]
pub(super) struct Overlay {
    applying: RwLock<Arc<Writes>>,
}

impl Overlay {
    /// The latest write of `key` in `tree`, looking at `live` (the journal's, locked by the caller) first.
    pub(super) fn lookup(&self, live: &Writes, tree: &str, key: &[u8]) -> Known {
        let slot = (Arc::<str>::from(tree), key.to_vec());
        if let Some(value) = live.get(&slot) {
            return Known::Written(value.clone());
        }
        match self.applying.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&slot) {
            Some(value) => Known::Written(value.clone()),
            None => Known::Unknown,
        }
    }

    /// Moves `live` into the applying snapshot (call with the journal's append lock held, so no reader sees the
    /// writes in neither place) and answers it. A snapshot whose application failed is still there: it is kept,
    /// under the newer live writes.
    pub(super) fn start_applying(&self, live: &mut Writes) -> Arc<Writes> {
        let mut applying = self.applying.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut snapshot = std::mem::take(live);
        if !applying.is_empty() {
            let mut merged = Writes::clone(&applying);
            merged.extend(snapshot);
            snapshot = merged;
        }
        let snapshot = Arc::new(snapshot);
        *applying = snapshot.clone();
        snapshot
    }

    /// Forgets the applying snapshot once sled holds it (not after a failed application: the next one retries it).
    pub(super) fn finish_applying(&self) {
        *self.applying.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::default();
    }
}

/// Writes `writes` into `db`.
pub(super) fn apply(db: &sled::Db, writes: &Writes) -> Result<(), sled::Error> {
    let mut trees: HashMap<&str, sled::Tree> = HashMap::new();
    for ((tree, key), value) in writes {
        let handle = match trees.get(&**tree) {
            Some(handle) => handle,
            None => trees.entry(&**tree).or_insert(db.open_tree(&**tree)?),
        };
        match value {
            Some(value) => handle.insert(key.as_slice(), value.as_slice()).map(drop)?,
            None => handle.remove(key.as_slice()).map(drop)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(tree: &str, key: &str) -> Slot {
        (tree.into(), key.as_bytes().to_vec())
    }

    #[test]
    fn live_writes_win_over_the_applying_snapshot_which_wins_over_sled() {
        let overlay = Overlay::default();
        let mut live = Writes::new();
        live.insert(slot("t", "a"), Some(b"1".to_vec()));
        live.insert(slot("t", "gone"), None);
        let snapshot = overlay.start_applying(&mut live);
        assert!(live.is_empty());
        assert_eq!(snapshot.len(), 2);
        drop(snapshot);
        live.insert(slot("t", "a"), Some(b"2".to_vec()));
        assert_eq!(overlay.lookup(&live, "t", b"a"), Known::Written(Some(b"2".to_vec())));
        assert_eq!(overlay.lookup(&live, "t", b"gone"), Known::Written(None));
        assert_eq!(overlay.lookup(&live, "other", b"a"), Known::Unknown);
        // An application that failed leaves its snapshot; the next one takes it, under newer writes.
        let retried = overlay.start_applying(&mut live);
        assert_eq!(retried.len(), 2);
        assert_eq!(retried.get(&slot("t", "a")), Some(&Some(b"2".to_vec())), "the newer write wins");
        assert_eq!(retried.get(&slot("t", "gone")), Some(&None), "the older snapshot's writes are kept");
        let db = sled::Config::new().temporary(true).open().unwrap();
        apply(&db, &retried).unwrap();
        overlay.finish_applying();
        assert_eq!(overlay.lookup(&live, "t", b"gone"), Known::Unknown);
        assert_eq!(db.open_tree("t").unwrap().get("a").unwrap().as_deref(), Some(&b"2"[..]));
    }
}
