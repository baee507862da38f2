//! The store's redo journal: what makes a write durable without flushing sled.
//!
//! Every [`super::Tree`] write is applied to sled and appended, as one checksummed record, to an in-memory
//! buffer, both under one lock so that the journal holds the writes of a key in the order sled saw them. A
//! sync writes the buffer to the current segment file and `fdatasync`s it: one small sequential write per group
//! of writers instead of a sled flush. A checkpoint starts a new segment, flushes sled (which then holds every
//! record of the older segments) and deletes the older segments. Opening the store replays whatever segments a
//! crash left on top of sled, flushes sled and starts afresh, so sled alone is the store of record between runs.
//!
//! Segment files are `journal/<sequence>.log` under the store directory. A record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`, the payload `op: u8 | tree length: u16 LE | tree |
//! key length: u32 LE | key | value` (op 1 inserts the value, op 2 removes the key). A record that is cut short
//! or fails its checksum ends the replay of its segment: it was never acknowledged (a sync that failed moves to
//! a new segment and writes its records again there, so nothing acknowledged follows a damaged record).
//!
//! Owns the journal files and nothing else; it knows nothing of what the values mean.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::StoreError;
use crate::sync::lock;

/// Subdirectory of the store directory holding the segments.
pub(super) const JOURNAL_DIR: &str = "journal";
/// A segment this large is retired by the next checkpoint check even before the checkpoint interval passed.
pub(super) const SEGMENT_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

const HEADER_BYTES: usize = 8;
const OP_INSERT: u8 = 1;
const OP_REMOVE: u8 = 2;
/// Longest record payload replay accepts (a longer length field is damage, not a record).
const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// One write, encoded as a journal record.
pub(super) struct Record(Vec<u8>);

impl Record {
    /// An insert of `value` under `key` in `tree`.
    pub(super) fn insert(tree: &str, key: &[u8], value: &[u8]) -> Record {
        Record::encode(OP_INSERT, tree, key, value)
    }

    /// A removal of `key` from `tree`.
    pub(super) fn remove(tree: &str, key: &[u8]) -> Record {
        Record::encode(OP_REMOVE, tree, key, &[])
    }

    fn encode(op: u8, tree: &str, key: &[u8], value: &[u8]) -> Record {
        let payload_len = 1 + 2 + tree.len() + 4 + key.len() + value.len();
        let mut bytes = Vec::with_capacity(HEADER_BYTES + payload_len);
        bytes.extend_from_slice(&(payload_len as u32).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.push(op);
        bytes.extend_from_slice(&(tree.len() as u16).to_le_bytes());
        bytes.extend_from_slice(tree.as_bytes());
        bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        Record(bytes)
    }
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Replayed<'a> {
    /// Insert `value` under `key` in `tree`.
    Insert { tree: &'a str, key: &'a [u8], value: &'a [u8] },
    /// Remove `key` from `tree`.
    Remove { tree: &'a str, key: &'a [u8] },
}

/// Decodes the records of a segment, in order, up to the first damaged or cut-short one; also answers how
/// many bytes the good records take.
pub(super) fn decode_segment(bytes: &[u8]) -> (Vec<Replayed<'_>>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while let Some((record, next)) = decode_one(bytes, offset) {
        records.push(record);
        offset = next;
    }
    (records, offset)
}

fn decode_one(bytes: &[u8], offset: usize) -> Option<(Replayed<'_>, usize)> {
    let header = bytes.get(offset..offset + HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len > MAX_PAYLOAD_BYTES {
        return None;
    }
    let start = offset + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let (&op, rest) = payload.split_first()?;
    let tree_len = u16::from_le_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
    let tree = std::str::from_utf8(rest.get(2..2 + tree_len)?).ok()?;
    let rest = &rest[2 + tree_len..];
    let key_len = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + key_len)?;
    let value = &rest[4 + key_len..];
    let record = match op {
        OP_INSERT => Replayed::Insert { tree, key, value },
        OP_REMOVE if value.is_empty() => Replayed::Remove { tree, key },
        _ => return None,
    };
    Some((record, start + len))
}

/// Records appended but not yet written.
struct Pending {
    buffer: Vec<u8>,
    /// Records appended since the journal opened; a record's sequence is this count right after its append.
    appended: u64,
}

/// The segment file writes go to.
struct Segment {
    file: File,
    sequence: u64,
    len: u64,
}

/// The journal of one store.
pub(super) struct Journal {
    dir: PathBuf,
    pending: Mutex<Pending>,
    segment: Mutex<Segment>,
    /// Highest record sequence known durable.
    synced: AtomicU64,
    /// Remove the whole directory when dropped (temporary stores).
    remove_on_drop: Option<PathBuf>,
}

impl Journal {
    /// Replays the segments left in `store_dir`'s journal into `db`, flushes `db`, deletes them and starts a new
    /// segment. `remove_on_drop` names a directory to delete with the journal (temporary stores).
    pub(super) fn open(db: &sled::Db, store_dir: &Path, remove_on_drop: Option<PathBuf>) -> Result<Journal, StoreError> {
        let dir = store_dir.join(JOURNAL_DIR);
        std::fs::create_dir_all(&dir).map_err(|error| io_error("create the journal directory", &dir, &error))?;
        let segments = list_segments(&dir)?;
        let mut replayed = 0usize;
        for (_, path) in &segments {
            replayed += replay_segment(db, path)?;
        }
        if !segments.is_empty() {
            db.flush()?;
            for (_, path) in &segments {
                std::fs::remove_file(path).map_err(|error| io_error("remove journal segment", path, &error))?;
            }
            tracing::info!(segments = segments.len(), records = replayed, "store journal replayed into the store");
        }
        let next = segments.last().map_or(1, |(sequence, _)| sequence + 1);
        let segment = create_segment(&dir, next)?;
        Ok(Journal {
            dir,
            pending: Mutex::new(Pending { buffer: Vec::with_capacity(64 * 1024), appended: 0 }),
            segment: Mutex::new(segment),
            synced: AtomicU64::new(0),
            remove_on_drop,
        })
    }

    /// Runs `apply` (the sled write) and appends `record` under one lock; answers the record's sequence. A
    /// failed `apply` appends nothing.
    pub(super) fn append<T>(
        &self,
        record: Record,
        apply: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pending = lock(&self.pending);
        let applied = apply()?;
        pending.buffer.extend_from_slice(&record.0);
        pending.appended += 1;
        Ok(applied)
    }

    /// Like [`Journal::append`] for a write that may turn out to change nothing: `apply` says whether to journal.
    pub(super) fn append_if<T>(
        &self,
        record: Record,
        apply: impl FnOnce() -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut pending = lock(&self.pending);
        let (applied, changed) = apply()?;
        if changed {
            pending.buffer.extend_from_slice(&record.0);
            pending.appended += 1;
        }
        Ok(applied)
    }

    /// The sequence of the latest appended record.
    pub(super) fn appended(&self) -> u64 {
        lock(&self.pending).appended
    }

    /// The highest sequence known durable.
    pub(super) fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Writes every appended record to the current segment and syncs it; answers the sequence now durable. On
    /// failure the error carries the sequence that was not made durable, and the journal moves to a new segment
    /// (the failed one may end in a partial record).
    pub(super) fn sync(&self) -> Result<u64, (u64, StoreError)> {
        let mut segment = lock(&self.segment);
        self.sync_locked(&mut segment)
    }

    fn sync_locked(&self, segment: &mut Segment) -> Result<u64, (u64, StoreError)> {
        let (buffer, target) = {
            let mut pending = lock(&self.pending);
            let replacement = Vec::with_capacity(pending.buffer.capacity().min(1 << 20));
            (std::mem::replace(&mut pending.buffer, replacement), pending.appended)
        };
        if target <= self.synced() {
            return Ok(target);
        }
        let written = segment.file.write_all(&buffer).and_then(|()| segment.file.sync_data());
        match written {
            Ok(()) => {
                segment.len += buffer.len() as u64;
                self.synced.fetch_max(target, Ordering::AcqRel);
                Ok(target)
            }
            Err(error) => {
                let error = io_error("write the journal", &self.segment_path(segment.sequence), &error);
                tracing::error!(%error, "store journal write failed; its writes are not acknowledged until a retry succeeds");
                // Keep the records for the next sync, ahead of those appended since: a later success must cover
                // them, because it acknowledges every sequence up to its own.
                {
                    let mut pending = lock(&self.pending);
                    let mut restored = buffer;
                    restored.extend_from_slice(&pending.buffer);
                    pending.buffer = restored;
                }
                match create_segment(&self.dir, segment.sequence + 1) {
                    Ok(fresh) => *segment = fresh,
                    Err(rotate) => tracing::error!(error = %rotate, "cannot start a new journal segment"),
                }
                Err((target, error))
            }
        }
    }

    /// Whether a checkpoint is due by size.
    pub(super) fn segment_is_large(&self) -> bool {
        lock(&self.segment).len >= SEGMENT_CHECKPOINT_BYTES
    }

    /// Whether records were appended since the journal's segments were last retired.
    pub(super) fn holds_records(&self) -> bool {
        lock(&self.segment).len > 0 || !lock(&self.pending).buffer.is_empty()
    }

    /// Moves sled's durable state past every journaled record so far: syncs and closes the current segment,
    /// starts a new one, flushes `db` and deletes the older segments. Writers keep appending meanwhile.
    pub(super) fn checkpoint(&self, db: &sled::Db) -> Result<(), StoreError> {
        let retired = {
            let mut segment = lock(&self.segment);
            self.sync_locked(&mut segment).map_err(|(_, error)| error)?;
            let fresh = create_segment(&self.dir, segment.sequence + 1)?;
            std::mem::replace(&mut *segment, fresh).sequence
        };
        // Every record of the retired segments was applied to sled before it was appended, so this flush makes
        // all of them durable in sled.
        db.flush()?;
        for (sequence, path) in list_segments(&self.dir)? {
            if sequence <= retired {
                std::fs::remove_file(&path).map_err(|error| io_error("remove journal segment", &path, &error))?;
            }
        }
        Ok(())
    }

    fn segment_path(&self, sequence: u64) -> PathBuf {
        segment_path(&self.dir, sequence)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(dir) = &self.remove_on_drop {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.log"))
}

fn io_error(action: &str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Io(format!("cannot {action} {}: {error}", path.display()))
}

/// The segments in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|error| io_error("list the journal", dir, &error))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| io_error("list the journal", dir, &error))?;
        let name = entry.file_name();
        let Some(sequence) = name.to_str().and_then(|name| name.strip_suffix(".log")).and_then(|s| s.parse().ok())
        else {
            continue;
        };
        segments.push((sequence, entry.path()));
    }
    segments.sort_unstable();
    Ok(segments)
}

fn create_segment(dir: &Path, sequence: u64) -> Result<Segment, StoreError> {
    let path = segment_path(dir, sequence);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|error| io_error("create journal segment", &path, &error))?;
    // The new file's directory entry must be durable before records in it are acknowledged.
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(|error| io_error("sync", dir, &error))?;
    Ok(Segment { file, sequence, len: 0 })
}

/// Applies one segment's records to `db`; answers how many.
fn replay_segment(db: &sled::Db, path: &Path) -> Result<usize, StoreError> {
    let bytes = std::fs::read(path).map_err(|error| io_error("read journal segment", path, &error))?;
    let (records, good) = decode_segment(&bytes);
    if good < bytes.len() {
        tracing::warn!(
            segment = %path.display(),
            offset = good,
            dropped_bytes = bytes.len() - good,
            "journal segment ends in a cut-short or damaged record (a write that was never acknowledged); replaying up to it"
        );
    }
    for record in &records {
        match record {
            Replayed::Insert { tree, key, value } => {
                db.open_tree(tree)?.insert(*key, *value)?;
            }
            Replayed::Remove { tree, key } => {
                db.open_tree(tree)?.remove(*key)?;
            }
        }
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_segment() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&Record::insert("entities", b"a\0x", br#"{"v":1}"#).0);
        bytes.extend_from_slice(&Record::remove("entities", b"a\0y").0);
        let whole = bytes.len();
        let torn = Record::insert("entities", b"a\0z", b"12345678");
        bytes.extend_from_slice(&torn.0[..torn.0.len() - 3]);
        let (records, good) = decode_segment(&bytes);
        assert_eq!(good, whole);
        assert_eq!(
            records,
            [
                Replayed::Insert { tree: "entities", key: b"a\0x", value: br#"{"v":1}"# },
                Replayed::Remove { tree: "entities", key: b"a\0y" },
            ]
        );
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut bytes = Record::insert("t", b"k", b"value").0;
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_eq!(decode_segment(&bytes), (vec![], 0));
        assert_eq!(decode_segment(&[0xff; 7]), (vec![], 0));
        assert_eq!(decode_segment(&[0xff; 64]), (vec![], 0));
    }

    #[test]
    fn replay_applies_records_in_order_and_checkpoint_retires_segments() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        let journal = Journal::open(&db, dir.path(), None).unwrap();
        let tree = db.open_tree("t").unwrap();
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
            journal
                .append(Record::insert("t", key.as_bytes(), value.as_bytes()), || Ok(tree.insert(key, value)?))
                .unwrap();
        }
        journal.append(Record::remove("t", b"b"), || Ok(tree.remove("b")?)).unwrap();
        assert_eq!(journal.sync().unwrap(), 4);
        assert_eq!(journal.synced(), 4);
        // Replaying onto an empty database gives the same state.
        let replica_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(replica_dir.path().join(JOURNAL_DIR)).unwrap();
        for (_, path) in list_segments(&dir.path().join(JOURNAL_DIR)).unwrap() {
            std::fs::copy(&path, replica_dir.path().join(JOURNAL_DIR).join(path.file_name().unwrap())).unwrap();
        }
        let replica = sled::Config::new().path(replica_dir.path()).open().unwrap();
        let reopened = Journal::open(&replica, replica_dir.path(), None).unwrap();
        let replayed = replica.open_tree("t").unwrap();
        assert_eq!(replayed.get("a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(replayed.get("b").unwrap(), None);
        assert_eq!(list_segments(&replica_dir.path().join(JOURNAL_DIR)).unwrap().len(), 1, "replayed segments go");
        assert!(!reopened.holds_records());
        // A checkpoint leaves only the fresh segment.
        assert!(journal.holds_records());
        journal.checkpoint(&db).unwrap();
        let left = list_segments(&dir.path().join(JOURNAL_DIR)).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(std::fs::metadata(&left[0].1).unwrap().len(), 0);
        assert!(!journal.holds_records());
    }
}
