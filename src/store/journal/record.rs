//! Journal records and segments: the byte format of one write and the decoding of a segment up to its first
//! cut-short, damaged or stale record. No I/O.
//!
//! A segment starts with a header, `"FFJRNL02" | segment sequence: u64 LE`, followed by records
//! `len: u32 LE | crc: u32 LE | payload`, the payload `op: u8 | tree length: u16 LE | tree | key length: u32 LE |
//! key | value` (op 1 inserts the value, op 2 removes the key). The crc is CRC-32 of the segment sequence
//! (u64 LE) followed by the payload, so the records a recycled segment file still holds from its previous use
//! fail their checksum under the new sequence and end the replay exactly like a torn write. Records are encoded
//! when written to the journal's buffer and sealed (their crc filled in) when the buffer goes to a segment.
//! Segments written before the header existed (no `FFJRNL02`) hold records whose crc covers the payload alone;
//! they are still decoded, so a store written by an older build replays.

const HEADER_BYTES: usize = 8;
/// The first bytes of a segment that carries a header.
const SEGMENT_MAGIC: &[u8; 8] = b"FFJRNL02";
/// Bytes of the segment header.
pub(in crate::store) const SEGMENT_HEADER_BYTES: usize = 16;
const OP_INSERT: u8 = 1;
const OP_REMOVE: u8 = 2;
/// Longest record payload replay accepts (a longer length field is damage, not a record).
const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// One write, encoded as a journal record.
pub(in crate::store) struct Record(pub(super) Vec<u8>);

impl Record {
    /// An insert of `value` under `key` in `tree`.
    pub(in crate::store) fn insert(tree: &str, key: &[u8], value: &[u8]) -> Record {
        Record::encode(OP_INSERT, tree, key, value)
    }

    /// A removal of `key` from `tree`.
    pub(in crate::store) fn remove(tree: &str, key: &[u8]) -> Record {
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
        Record(bytes)
    }
}

/// The header that starts the segment numbered `sequence`.
pub(in crate::store) fn segment_header(sequence: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&sequence.to_le_bytes());
    header
}

/// The sequence in the header that starts `bytes`, or None for a segment without a header (older format).
pub(in crate::store) fn segment_sequence(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..SEGMENT_HEADER_BYTES)?;
    if !header.starts_with(SEGMENT_MAGIC) {
        return None;
    }
    let mut sequence = [0; 8];
    sequence.copy_from_slice(&header[8..]);
    Some(u64::from_le_bytes(sequence))
}

/// Fills in the crc of every record in `records` (whole records, as the journal buffers them) for the segment
/// numbered `sequence`. Sealing again for another segment overwrites the crcs.
pub(in crate::store) fn seal(records: &mut [u8], sequence: u64) {
    let mut offset = 0;
    while offset + HEADER_BYTES <= records.len() {
        let len = u32::from_le_bytes([records[offset], records[offset + 1], records[offset + 2], records[offset + 3]]);
        let start = offset + HEADER_BYTES;
        let end = (start + len as usize).min(records.len());
        let crc = salted_crc(Some(sequence), &records[start..end]);
        records[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
        offset = end;
    }
}

/// `record` as segments without a header hold it: its crc over the payload alone.
#[cfg(test)]
pub(in crate::store) fn seal_unsalted(record: &mut [u8]) {
    let crc = salted_crc(None, &record[HEADER_BYTES..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn salted_crc(sequence: Option<u64>, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    if let Some(sequence) = sequence {
        hasher.update(&sequence.to_le_bytes());
    }
    hasher.update(payload);
    hasher.finalize()
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) enum Replayed<'a> {
    /// Insert `value` under `key` in `tree`.
    Insert { tree: &'a str, key: &'a [u8], value: &'a [u8] },
    /// Remove `key` from `tree`.
    Remove { tree: &'a str, key: &'a [u8] },
}

/// Decodes the records of a segment, in order, up to the first damaged, cut-short or stale one; also answers
/// the offset where the good records end (the header included).
pub(in crate::store) fn decode_segment(bytes: &[u8]) -> (Vec<Replayed<'_>>, usize) {
    let mut records = Vec::new();
    let salt = segment_sequence(bytes);
    let mut offset = if salt.is_some() { SEGMENT_HEADER_BYTES } else { 0 };
    while let Some((record, next)) = decode_one(bytes, offset, salt) {
        records.push(record);
        offset = next;
    }
    (records, offset)
}

fn decode_one(bytes: &[u8], offset: usize, salt: Option<u64>) -> Option<(Replayed<'_>, usize)> {
    let header = bytes.get(offset..offset + HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len > MAX_PAYLOAD_BYTES {
        return None;
    }
    let start = offset + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if salted_crc(salt, payload) != crc {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Segment `sequence` holding `records`, sealed.
    fn segment(sequence: u64, records: &[Record]) -> Vec<u8> {
        let mut body: Vec<u8> = records.iter().flat_map(|record| record.0.iter().copied()).collect();
        seal(&mut body, sequence);
        let mut bytes = segment_header(sequence).to_vec();
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_segment() {
        let mut bytes =
            segment(7, &[Record::insert("entities", b"a\0x", br#"{"v":1}"#), Record::remove("entities", b"a\0y")]);
        let whole = bytes.len();
        let torn = segment(7, &[Record::insert("entities", b"a\0z", b"12345678")]);
        bytes.extend_from_slice(&torn[SEGMENT_HEADER_BYTES..torn.len() - 3]);
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
        let mut bytes = segment(1, &[Record::insert("t", b"k", b"value")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_eq!(decode_segment(&bytes), (vec![], SEGMENT_HEADER_BYTES));
        assert_eq!(decode_segment(&[0xff; 7]), (vec![], 0));
        assert_eq!(decode_segment(&[0xff; 64]), (vec![], 0));
    }

    #[test]
    fn records_left_from_a_recycled_segments_previous_use_end_the_replay() {
        // Segment 3's file is reused as segment 9: the new header and one new record overwrite its start, the
        // old records after them are intact bytes but were sealed for sequence 3.
        let old = segment(3, &[Record::insert("t", b"a", b"old-1"), Record::insert("t", b"b", b"old-2")]);
        let new = segment(9, &[Record::insert("t", b"c", b"new-1")]);
        let mut recycled = old.clone();
        recycled[..new.len()].copy_from_slice(&new);
        // Line the new record up so that an old record starts right where it ends.
        let old_second = SEGMENT_HEADER_BYTES + Record::insert("t", b"a", b"old-1").0.len();
        assert_eq!(new.len(), old_second, "the fixture needs records of the same size");
        let (records, good) = decode_segment(&recycled);
        assert_eq!(records, [Replayed::Insert { tree: "t", key: b"c", value: b"new-1" }]);
        assert_eq!(good, new.len());
        // Zeros (a file extended but never written) end it too.
        let mut zeros = new.clone();
        zeros.extend_from_slice(&[0; 64]);
        assert_eq!(decode_segment(&zeros).0.len(), 1);
    }

    #[test]
    fn segments_without_a_header_decode_with_unsalted_checksums() {
        // The format before segment headers: crc over the payload alone.
        let mut legacy = Record::insert("t", b"k", b"v").0;
        seal_unsalted(&mut legacy);
        assert_eq!(
            decode_segment(&legacy),
            (vec![Replayed::Insert { tree: "t", key: b"k", value: b"v" }], legacy.len())
        );
    }
}
