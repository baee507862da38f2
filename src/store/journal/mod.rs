//! The store's redo journal: what makes a write durable without touching sled.
//!
//! A [`super::Tree`] write is appended, as one checksummed [`record`], to an in-memory buffer and kept as the
//! key's latest value in the [`overlay`], which readers consult ahead of sled. A sync writes the buffer to the
//! current segment file and `fdatasync`s it: one small sequential write per group of writers. A checkpoint
//! starts a new segment, writes the overlay's values into sled, flushes sled (which then holds every record of
//! the older segments) and deletes the older segments; sled sees each key once per checkpoint, however often it
//! was written. Opening the store replays whatever segments a crash left on top of sled, flushes sled and starts
//! afresh, so sled alone is the store of record between runs.
//!
//! Segment files are `journal/<sequence>.log` under the store directory. A record that is cut short or fails its
//! checksum ends the replay of its segment: it was never acknowledged (a sync that failed moves to a new segment
//! and writes its records again there, so nothing acknowledged follows a damaged record).
//!
//! A retired segment's file is kept as `journal/spare.log` and becomes the next segment: its blocks are already
//! allocated and written, so a sync overwrites data in place and `fdatasync` need not write file-size or
//! block-allocation metadata (on this project's VM disk about half the time of a sync that appends). The
//! previous use's records left after the new ones carry the old segment sequence in their checksum, so replay
//! stops at them ([`record`]). One spare at most is kept; it is no larger than the largest segment.
//!
//! Owns the journal files and the overlay; it knows nothing of what the values mean.

mod overlay;
mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use self::overlay::{Known, Overlay, Writes};
pub(super) use self::record::Record;
pub(super) use self::record::SEGMENT_HEADER_BYTES;
use self::record::{decode_segment, seal, segment_header, segment_sequence, Replayed};
use super::StoreError;
use crate::sync::lock;

/// Subdirectory of the store directory holding the segments.
pub(super) const JOURNAL_DIR: &str = "journal";
/// File name of the retired segment kept for reuse.
pub(super) const SPARE_SEGMENT: &str = "spare.log";
/// A segment this large is retired by the next checkpoint check even before the checkpoint interval passed.
pub(super) const SEGMENT_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes of records held in memory, not yet written (only reached when syncs keep failing: a full or
/// failing disk); writes are refused beyond it until a sync drains the backlog.
pub(super) const MAX_UNWRITTEN_BYTES: usize = 256 * 1024 * 1024;

/// Records appended but not yet written, and writes not yet in sled.
struct Pending {
    buffer: Vec<u8>,
    /// Records appended since the journal opened; a record's sequence is this count right after its append.
    appended: u64,
    /// The latest write of every key written since the last checkpoint.
    live: Writes,
}

/// The segment file writes go to.
struct Segment {
    file: File,
    sequence: u64,
    /// Bytes of records written after the header.
    len: u64,
}

/// The journal of one store.
pub(super) struct Journal {
    db: sled::Db,
    dir: PathBuf,
    pending: Mutex<Pending>,
    segment: Mutex<Segment>,
    overlay: Overlay,
    /// Held while an overlay snapshot is written into sled, so snapshots reach sled in order.
    applying: Mutex<()>,
    /// Highest record sequence known durable.
    synced: AtomicU64,
    /// `Pending::appended`, readable without the lock (for durability barriers).
    latest: AtomicU64,
    /// Remove the whole directory when dropped (temporary stores).
    remove_on_drop: Option<PathBuf>,
    /// [`MAX_UNWRITTEN_BYTES`] (smaller in tests).
    max_unwritten: usize,
}

impl Journal {
    /// Replays the segments left in `store_dir`'s journal into `db`, flushes `db`, deletes them and starts a new
    /// segment. `remove_on_drop` names a directory to delete with the journal (temporary stores).
    pub(super) fn open(db: sled::Db, store_dir: &Path, remove_on_drop: Option<PathBuf>) -> Result<Journal, StoreError> {
        let dir = store_dir.join(JOURNAL_DIR);
        std::fs::create_dir_all(&dir).map_err(|error| io_error("create the journal directory", &dir, &error))?;
        let segments = list_segments(&dir)?;
        let mut replayed = 0usize;
        for (_, path) in &segments {
            replayed += replay_segment(&db, path)?;
        }
        if !segments.is_empty() {
            db.flush()?;
            retire_segments(&dir, &segments)?;
            tracing::info!(segments = segments.len(), records = replayed, "store journal replayed into the store");
        }
        // The next sequence must differ from the one the spare's old records were sealed with.
        let last = segments.last().map(|(sequence, _)| *sequence).max(spare_sequence(&dir));
        let next = last.map_or(1, |sequence| sequence.saturating_add(1));
        let segment = create_segment(&dir, next)?;
        Ok(Journal {
            db,
            dir,
            pending: Mutex::new(Pending { buffer: Vec::with_capacity(64 * 1024), appended: 0, live: Writes::new() }),
            segment: Mutex::new(segment),
            overlay: Overlay::default(),
            applying: Mutex::new(()),
            synced: AtomicU64::new(0),
            latest: AtomicU64::new(0),
            remove_on_drop,
            max_unwritten: MAX_UNWRITTEN_BYTES,
        })
    }

    /// Appends the insert of `value` under `key` in `tree`; answers its sequence.
    pub(super) fn insert(&self, tree: &Arc<str>, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        let record = Record::insert(tree, key.as_bytes(), &value);
        let mut pending = lock(&self.pending);
        self.check_backlog(&pending)?;
        pending.buffer.extend_from_slice(&record.0);
        pending.appended += 1;
        pending.live.insert((tree.clone(), key.as_bytes().to_vec()), Some(value));
        self.latest.store(pending.appended, Ordering::Release);
        Ok(pending.appended)
    }

    /// Removes `key` from `tree` if it is there (in the overlay or in sled); answers whether it was.
    pub(super) fn remove(&self, tree: &Arc<str>, handle: &sled::Tree, key: &str) -> Result<bool, StoreError> {
        let mut pending = lock(&self.pending);
        let existed = match self.overlay.lookup(&pending.live, tree, key.as_bytes()) {
            Known::Written(value) => value.is_some(),
            Known::Unknown => handle.contains_key(key)?,
        };
        if existed {
            self.check_backlog(&pending)?;
            pending.buffer.extend_from_slice(&Record::remove(tree, key.as_bytes()).0);
            pending.appended += 1;
            pending.live.insert((tree.clone(), key.as_bytes().to_vec()), None);
            self.latest.store(pending.appended, Ordering::Release);
        }
        Ok(existed)
    }

    /// Refuses a write while the records not yet written exceed the cap (syncs failing).
    fn check_backlog(&self, pending: &Pending) -> Result<(), StoreError> {
        if pending.buffer.len() >= self.max_unwritten {
            return Err(StoreError::Io(format!(
                "the store journal holds {} bytes that could not be written to disk (disk full or failing); \
                 refusing writes until it drains",
                pending.buffer.len()
            )));
        }
        Ok(())
    }

    /// The value of `key` in `tree` as written last, when the overlay knows it; `Some(None)` means removed.
    pub(super) fn lookup(&self, tree: &str, key: &str) -> Option<Option<Vec<u8>>> {
        let pending = lock(&self.pending);
        match self.overlay.lookup(&pending.live, tree, key.as_bytes()) {
            Known::Written(value) => Some(value),
            Known::Unknown => None,
        }
    }

    /// Writes every pending write into sled (not flushed), so that sled can be iterated.
    pub(super) fn apply_pending(&self) -> Result<(), StoreError> {
        let _applying = lock(&self.applying);
        let snapshot = self.overlay.start_applying(&mut lock(&self.pending).live);
        self.apply_snapshot(&snapshot)
    }

    /// Writes `snapshot` into sled and takes it out of the overlay; after a failure it stays in the overlay
    /// (readers still see it) and the next application retries it.
    fn apply_snapshot(&self, snapshot: &Writes) -> Result<(), StoreError> {
        overlay::apply(&self.db, snapshot)?;
        self.overlay.finish_applying();
        Ok(())
    }

    /// The sequence of the latest appended record.
    pub(super) fn appended(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
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
        let (buffer, target) = self.take_buffer(|_| {});
        self.write_segment(&mut segment, buffer, target)
    }

    /// Takes the buffered records (and runs `also` on the pending state under the same lock).
    fn take_buffer(&self, also: impl FnOnce(&mut Pending)) -> (Vec<u8>, u64) {
        let mut pending = lock(&self.pending);
        let replacement = Vec::with_capacity(pending.buffer.capacity().min(1 << 20));
        let taken = (std::mem::replace(&mut pending.buffer, replacement), pending.appended);
        also(&mut pending);
        taken
    }

    fn write_segment(&self, segment: &mut Segment, mut buffer: Vec<u8>, target: u64) -> Result<u64, (u64, StoreError)> {
        if target <= self.synced() {
            return Ok(target);
        }
        seal(&mut buffer, segment.sequence);
        let written = segment.file.write_all(&buffer).and_then(|()| segment.file.sync_data());
        match written {
            Ok(()) => {
                segment.len += buffer.len() as u64;
                self.synced.fetch_max(target, Ordering::AcqRel);
                Ok(target)
            }
            Err(error) => {
                let error = io_error("write the journal", &segment_path(&self.dir, segment.sequence), &error);
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
    /// starts a new one, writes the overlay into sled, flushes sled and deletes the older segments. Writers keep
    /// appending meanwhile.
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        let applying = lock(&self.applying);
        let (rotated, snapshot) = {
            let mut segment = lock(&self.segment);
            let mut snapshot = None;
            let (buffer, target) =
                self.take_buffer(|pending| snapshot = Some(self.overlay.start_applying(&mut pending.live)));
            let rotated = match self.write_segment(&mut segment, buffer, target) {
                // The records stay buffered for the next sync (which moved to a new segment).
                Err((_, error)) => Err(error),
                Ok(_) => create_segment(&self.dir, segment.sequence + 1)
                    .map(|fresh| std::mem::replace(&mut *segment, fresh).sequence),
            };
            (rotated, snapshot.unwrap_or_default())
        };
        // Whatever happened to the segments, the snapshot must reach sled before it leaves the overlay.
        self.apply_snapshot(&snapshot)?;
        drop(applying);
        let retired = rotated?;
        // Every record of the retired segments is in sled now (this snapshot or an earlier one), so this flush
        // makes all of them durable there.
        self.db.flush()?;
        let mut segments = list_segments(&self.dir)?;
        segments.retain(|(sequence, _)| *sequence <= retired);
        retire_segments(&self.dir, &segments)
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

/// Starts segment `sequence`, in the spare file when there is one, and makes its header and directory entry
/// durable.
fn create_segment(dir: &Path, sequence: u64) -> Result<Segment, StoreError> {
    let path = segment_path(dir, sequence);
    let spare = dir.join(SPARE_SEGMENT);
    let recycled = match std::fs::rename(&spare, &path) {
        Ok(()) => true,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(io_error("reuse journal segment", &spare, &error)),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(!recycled)
        .write(true)
        .open(&path)
        .map_err(|error| io_error("create journal segment", &path, &error))?;
    file.write_all(&segment_header(sequence))
        .and_then(|()| file.sync_data())
        .map_err(|error| io_error("write the header of journal segment", &path, &error))?;
    // The new file's directory entry must be durable before records in it are acknowledged.
    sync_dir(dir)?;
    Ok(Segment { file, sequence, len: 0 })
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(|error| io_error("sync", dir, &error))
}

/// Removes `segments` (oldest first, all applied to sled and flushed there), keeping the newest as the spare,
/// and makes that durable: a retired segment that came back after a crash would replay old values over newer
/// ones.
fn retire_segments(dir: &Path, segments: &[(u64, PathBuf)]) -> Result<(), StoreError> {
    let Some(((_, newest), older)) = segments.split_last() else { return Ok(()) };
    for (_, path) in older {
        std::fs::remove_file(path).map_err(|error| io_error("remove journal segment", path, &error))?;
    }
    let spare = dir.join(SPARE_SEGMENT);
    std::fs::rename(newest, &spare).map_err(|error| io_error("keep journal segment for reuse", newest, &error))?;
    sync_dir(dir)
}

/// The sequence the spare segment was last used as, read from its header (None for a spare without one: its
/// records' checksums are not salted, so no new sequence can validate them).
fn spare_sequence(dir: &Path) -> Option<u64> {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    let mut file = File::open(dir.join(SPARE_SEGMENT)).ok()?;
    std::io::Read::read_exact(&mut file, &mut header).ok()?;
    segment_sequence(&header)
}

/// Applies one segment's records to `db`; answers how many.
fn replay_segment(db: &sled::Db, path: &Path) -> Result<usize, StoreError> {
    let bytes = std::fs::read(path).map_err(|error| io_error("read journal segment", path, &error))?;
    let (records, good) = decode_segment(&bytes);
    if good < bytes.len() {
        tracing::info!(
            segment = %path.display(),
            offset = good,
            bytes_after = bytes.len() - good,
            "journal segment replayed up to its last whole record (what follows is a reused file's old content or a \
             write that was never acknowledged)"
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
mod tests;
