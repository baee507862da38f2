//! Journal records: the byte format of one write (`len: u32 LE | crc32(payload): u32 LE | payload`, the payload
//! `op: u8 | tree length: u16 LE | tree | key length: u32 LE | key | value`; op 1 inserts the value, op 2 removes
//! the key) and the decoding of a segment up to its first cut-short or damaged record. No I/O.

const HEADER_BYTES: usize = 8;
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
        let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        Record(bytes)
    }
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) enum Replayed<'a> {
    /// Insert `value` under `key` in `tree`.
    Insert { tree: &'a str, key: &'a [u8], value: &'a [u8] },
    /// Remove `key` from `tree`.
    Remove { tree: &'a str, key: &'a [u8] },
}

/// Decodes the records of a segment, in order, up to the first damaged or cut-short one; also answers how
/// many bytes the good records take.
pub(in crate::store) fn decode_segment(bytes: &[u8]) -> (Vec<Replayed<'_>>, usize) {
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
}
