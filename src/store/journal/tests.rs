//! Unit tests of the journal: replay, checkpoints, failed syncs and reused segment files.

use super::*;

/// A journal over a sled database (without timer flushes) in a new temporary directory.
fn journal_in_temporary_dir() -> (tempfile::TempDir, sled::Db, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
    let journal = Journal::open(db.clone(), dir.path(), None).unwrap();
    (dir, db, journal)
}

#[test]
fn replay_applies_records_in_order_and_checkpoint_retires_segments() {
    let (dir, db, journal) = journal_in_temporary_dir();
    let name: Arc<str> = "t".into();
    let tree = db.open_tree("t").unwrap();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        journal.insert(&name, key, value.as_bytes().to_vec()).unwrap();
    }
    assert!(journal.remove(&name, &tree, "b").unwrap());
    assert!(!journal.remove(&name, &tree, "never").unwrap());
    assert_eq!(journal.lookup("t", "a"), Some(Some(b"3".to_vec())));
    assert_eq!(journal.lookup("t", "b"), Some(None));
    assert_eq!(tree.get("a").unwrap(), None, "sled sees nothing before a checkpoint");
    assert_eq!(journal.sync().unwrap(), 4);
    assert_eq!(journal.synced(), 4);
    // Replaying the segments onto an empty database gives the same state.
    let replica_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(replica_dir.path().join(JOURNAL_DIR)).unwrap();
    for (_, path) in list_segments(&dir.path().join(JOURNAL_DIR)).unwrap() {
        std::fs::copy(&path, replica_dir.path().join(JOURNAL_DIR).join(path.file_name().unwrap())).unwrap();
    }
    let replica = sled::Config::new().path(replica_dir.path()).open().unwrap();
    let reopened = Journal::open(replica.clone(), replica_dir.path(), None).unwrap();
    let replayed = replica.open_tree("t").unwrap();
    assert_eq!(replayed.get("a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(replayed.get("b").unwrap(), None);
    assert_eq!(list_segments(&replica_dir.path().join(JOURNAL_DIR)).unwrap().len(), 1, "replayed segments go");
    assert!(!reopened.holds_records());
    // A checkpoint writes the values into sled and leaves only the fresh, empty segment.
    assert!(journal.holds_records());
    journal.checkpoint().unwrap();
    assert_eq!(tree.get("a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(journal.lookup("t", "a"), None, "sled answers after the checkpoint");
    let left = list_segments(&dir.path().join(JOURNAL_DIR)).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(std::fs::metadata(&left[0].1).unwrap().len(), SEGMENT_HEADER_BYTES as u64);
    assert!(dir.path().join(JOURNAL_DIR).join(SPARE_SEGMENT).exists(), "the retired segment is kept for reuse");
    assert!(!journal.holds_records());
}

#[test]
fn a_failed_sync_is_not_acknowledged_and_the_next_one_writes_its_records_to_a_new_segment() {
    let (_dir, _db, journal) = journal_in_temporary_dir();
    let name: Arc<str> = "t".into();
    journal.insert(&name, "a", b"1".to_vec()).unwrap();
    // Make the current segment refuse writes, as a full or failing disk would.
    let failing = {
        let mut segment = lock(&journal.segment);
        let path = segment_path(&journal.dir, segment.sequence);
        segment.file = File::open(&path).unwrap();
        segment.sequence
    };
    let (unsynced, error) = journal.sync().unwrap_err();
    assert_eq!(unsynced, 1);
    // While syncs fail the unwritten records pile up; past the cap writes are refused, not buffered.
    let mut journal = journal;
    journal.max_unwritten = lock(&journal.pending).buffer.len();
    let refused = journal.insert(&name, "c", b"3".to_vec()).unwrap_err();
    assert!(refused.to_string().contains("refusing writes"), "{refused}");
    assert_eq!(journal.lookup("t", "c"), None, "a refused write leaves no trace");
    journal.max_unwritten = MAX_UNWRITTEN_BYTES;
    assert!(error.to_string().contains("cannot write the journal"), "{error}");
    assert_eq!(journal.synced(), 0, "nothing acknowledged");
    journal.insert(&name, "b", b"2".to_vec()).unwrap();
    assert_eq!(journal.sync().unwrap(), 2, "the retry covers the failed record and the new one");
    let segments = list_segments(&journal.dir).unwrap();
    assert_eq!(segments.last().unwrap().0, failing + 1, "the retry went to a new segment");
    let bytes = std::fs::read(&segments.last().unwrap().1).unwrap();
    let (decoded, _) = decode_segment(&bytes);
    assert_eq!(
        decoded,
        [
            Replayed::Insert { tree: "t", key: b"a", value: b"1" },
            Replayed::Insert { tree: "t", key: b"b", value: b"2" },
        ]
    );
}

#[test]
fn a_reused_segment_file_replays_only_its_new_records() {
    let (dir, db, journal) = journal_in_temporary_dir();
    let name: Arc<str> = "t".into();
    let tree = db.open_tree("t").unwrap();
    // Segment 1: two records of the same size as the one segment 3 will get.
    journal.insert(&name, "a", b"old-1".to_vec()).unwrap();
    journal.insert(&name, "a", b"old-2".to_vec()).unwrap();
    journal.sync().unwrap();
    journal.checkpoint().unwrap(); // 1 becomes the spare, 2 is new
    journal.insert(&name, "a", b"new-0".to_vec()).unwrap();
    journal.sync().unwrap();
    journal.checkpoint().unwrap(); // 3 reuses 1's file, 2 becomes the spare
    assert_eq!(tree.get("a").unwrap().as_deref(), Some(&b"new-0"[..]));
    journal.insert(&name, "b", b"new-1".to_vec()).unwrap();
    journal.sync().unwrap();
    let current = segment_path(&journal.dir, 3);
    assert!(std::fs::metadata(&current).unwrap().len() > (SEGMENT_HEADER_BYTES as u64) + 20, "1's old records follow");
    // A crash now: the next open replays segment 3 onto sled.
    drop(journal);
    let reopened = Journal::open(db.clone(), dir.path(), None).unwrap();
    assert_eq!(tree.get("b").unwrap().as_deref(), Some(&b"new-1"[..]), "the new record is replayed");
    assert_eq!(tree.get("a").unwrap().as_deref(), Some(&b"new-0"[..]), "segment 1's old records are not");
    drop(reopened);
}

#[test]
fn a_segment_from_before_headers_is_replayed_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join(JOURNAL_DIR);
    std::fs::create_dir_all(&journal_dir).unwrap();
    // An older build's segment 5: records whose crc covers the payload alone, no header.
    let mut legacy = Vec::new();
    for (key, value) in [("a", "legacy-1"), ("b", "legacy-2")] {
        let mut record = Record::insert("t", key.as_bytes(), value.as_bytes()).0;
        record::seal_unsalted(&mut record);
        legacy.extend_from_slice(&record);
    }
    std::fs::write(segment_path(&journal_dir, 5), &legacy).unwrap();
    let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
    let journal = Journal::open(db.clone(), dir.path(), None).unwrap();
    let tree = db.open_tree("t").unwrap();
    assert_eq!(tree.get("b").unwrap().as_deref(), Some(&b"legacy-2"[..]), "the old format is replayed");
    // Its file became segment 6 (the number follows the old segment's, not garbage read from its bytes).
    assert_eq!(lock(&journal.segment).sequence, 6);
    assert!(segment_path(&journal_dir, 6).exists());
    journal.insert(&"t".into(), "c", b"new".to_vec()).unwrap();
    journal.sync().unwrap();
    drop(journal);
    let reopened = Journal::open(db.clone(), dir.path(), None).unwrap();
    assert_eq!(tree.get("c").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(tree.get("b").unwrap().as_deref(), Some(&b"legacy-2"[..]));
    assert_eq!(lock(&reopened.segment).sequence, 7);
}
