//! The log's record format: what a change to the data looks like on the
//! disk. Encoding and checked decoding, nothing else.
//!
//! ```text
//! record  = epoch u32 | length u32 | crc u32 | payload (length bytes)
//!           crc = CRC-32 of epoch, length and payload
//! payload = time_ms u64 | count u32 | op × count
//! op      = 1 SET     key value expires_at u64 (0: never)
//!         | 2 DEL     key
//!         | 3 EXPIRE  key expires_at u64 (0: persist)
//!         | 4 FLUSHALL
//! key, value = length u32 | bytes
//! ```
//!
//! Little-endian throughout. `epoch` ties a record to one use of a log
//! area (see `log`), so records left from an earlier use are never
//! mistaken for new ones. Times are the database's clock (milliseconds,
//! see `db`). One record holds every change of one command (`MSET` is
//! atomic), or every record of a snapshot chunk.

use alloc::vec::Vec;

/// Bytes before a record's payload.
pub const HEADER: usize = 12;
/// The largest payload a reader believes.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        expires_at: Option<u64>,
    },
    Del(Vec<u8>),
    Expire(Vec<u8>, Option<u64>),
    FlushAll,
}

impl Op {
    /// Bytes this op takes in a payload.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Op::Set { key, value, .. } => 4 + key.len() + 4 + value.len() + 8,
            Op::Del(key) => 4 + key.len(),
            Op::Expire(key, _) => 4 + key.len() + 8,
            Op::FlushAll => 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Op::Set {
                key,
                value,
                expires_at,
            } => {
                out.push(1);
                bytes(out, key);
                bytes(out, value);
                out.extend_from_slice(&expires_at.unwrap_or(0).to_le_bytes());
            }
            Op::Del(key) => {
                out.push(2);
                bytes(out, key);
            }
            Op::Expire(key, at) => {
                out.push(3);
                bytes(out, key);
                out.extend_from_slice(&at.unwrap_or(0).to_le_bytes());
            }
            Op::FlushAll => out.push(4),
        }
    }
}

/// Appends one record holding `ops` to `out`.
pub fn encode(out: &mut Vec<u8>, epoch: u32, time_ms: u64, ops: &[Op]) {
    let start = out.len();
    let payload_len = 12 + ops.iter().map(Op::encoded_len).sum::<usize>();
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        op.encode(out);
    }
    let crc = crc(&out[start..start + 8], &out[start + HEADER..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn crc(head: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(payload);
    hasher.finalize()
}

/// A record header that may start a valid record: the payload's length.
pub fn header(bytes: &[u8; HEADER], epoch: u32) -> Option<usize> {
    let got = u32::from_le_bytes(bytes[0..4].try_into().ok()?);
    let len = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as usize;
    (got == epoch && (12..=MAX_PAYLOAD).contains(&len)).then_some(len)
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub time_ms: u64,
    pub ops: Vec<Op>,
}

/// Checks and decodes a record (`head` from [`header`], then its payload).
/// `None` for anything that does not check out: the end of the log.
pub fn decode(head: &[u8; HEADER], payload: &[u8]) -> Option<Record> {
    let stored = u32::from_le_bytes(head[8..12].try_into().ok()?);
    if crc(&head[..8], payload) != stored {
        return None;
    }
    let mut reader = Reader(payload);
    let time_ms = reader.u64()?;
    let count = reader.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        ops.push(match reader.u8()? {
            1 => Op::Set {
                key: reader.bytes()?,
                value: reader.bytes()?,
                expires_at: reader.time()?,
            },
            2 => Op::Del(reader.bytes()?),
            3 => Op::Expire(reader.bytes()?, reader.time()?),
            4 => Op::FlushAll,
            _ => return None,
        });
    }
    reader.0.is_empty().then_some(Record { time_ms, ops })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn time(&mut self) -> Option<Option<u64>> {
        Some(Some(self.u64()?).filter(|&t| t != 0))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        Some(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn split(bytes: &[u8]) -> (&[u8; HEADER], &[u8]) {
        let (head, payload) = bytes.split_at(HEADER);
        (head.try_into().unwrap(), payload)
    }

    #[test]
    fn a_record_round_trips_and_its_bytes_are_fixed() {
        let ops = vec![
            Op::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expires_at: Some(9),
            },
            Op::Del(b"old".to_vec()),
            Op::Expire(b"k".to_vec(), None),
            Op::FlushAll,
        ];
        let mut out = Vec::new();
        encode(&mut out, 7, 1000, &ops);
        assert_eq!(&out[0..4], &[7, 0, 0, 0]);
        let (head, payload) = split(&out);
        assert_eq!(header(head, 7), Some(payload.len()));
        assert_eq!(header(head, 8), None, "another epoch");
        assert_eq!(&payload[..12], &[0xe8, 3, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&payload[12..18], &[1, 1, 0, 0, 0, b'k']);
        assert_eq!(decode(head, payload), Some(Record { time_ms: 1000, ops }));
    }

    #[test]
    fn any_damage_ends_the_log() {
        let mut out = Vec::new();
        encode(&mut out, 1, 5, &[Op::Del(b"key".to_vec())]);
        for i in 0..out.len() {
            let mut damaged = out.clone();
            damaged[i] ^= 0x10;
            let (head, payload) = split(&damaged);
            let accepted = header(head, 1).is_some_and(|len| len == payload.len())
                && decode(head, payload).is_some();
            assert!(!accepted, "byte {i}");
        }
        // A truncated payload is refused as well.
        let (head, payload) = split(&out);
        assert_eq!(decode(head, &payload[..payload.len() - 1]), None);
        assert_eq!(header(&[0; HEADER], 0), None, "zeros are no record");
    }
}
