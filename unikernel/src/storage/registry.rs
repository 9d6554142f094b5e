//! The registry: how the cache lays out its memory, and the byte format of
//! what it records there, so that a warm reboot can find every cached block
//! and prove it intact.
//!
//! ```text
//! offset 0           header (64 bytes)
//!   0  magic "RSTCACH1"      8  version u32 = 1   12 block size u32 = 512
//!   16 slots u32             20 zero u32          24 disk size in blocks u64
//!   32 formats u64 (times this memory was formatted)  40..60 zero
//!   60 CRC-32 of bytes 0..60 (the registry checksum)
//! offset 64          one entry per slot (32 bytes each)
//!   0  block u64   8  seq u64 (write order)   16 CRC-32 of the slot's data
//!   20 state u8 (1 clean, 2 dirty)   21..24 zero   24 slot index u32
//!   28 CRC-32 of bytes 0..28 (the entry's checksum)
//!   An all-zero entry is a free slot; any other entry whose checksum or
//!   slot index is wrong is invalid and its slot is treated as free.
//! offset 64 + 32·slots, rounded up to 4 KiB: the slots' data, 512 bytes each
//! ```
//!
//! All integers are little-endian. The format is the contract between one
//! boot and the next; [`Header::decode`] and [`decode_entry`] are the only
//! ways to read it, and they believe nothing they cannot check.

use super::device::BLOCK_SIZE;

const MAGIC: [u8; 8] = *b"RSTCACH1";
const VERSION: u32 = 1;
/// Bytes of the registry header.
pub const HEADER_LEN: usize = 64;
/// Bytes of one registry entry.
pub const ENTRY_LEN: usize = 32;
const DATA_ALIGN: usize = 4096;

/// CRC-32 (IEEE), the checksum used throughout the registry.
pub fn checksum(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Where things are in cache memory of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub slots: u32,
    data_start: usize,
}

impl Geometry {
    /// The most slots that fit in `len` bytes (`None` if not even one).
    pub fn for_len(len: usize) -> Option<Geometry> {
        let per_slot = ENTRY_LEN + BLOCK_SIZE;
        let mut slots = len.saturating_sub(HEADER_LEN) / per_slot;
        while slots > 0 && Self::with_slots(slots).end() > len {
            slots -= 1;
        }
        let slots = u32::try_from(slots).ok().filter(|&s| s > 0)?;
        Some(Self::with_slots(slots as usize))
    }

    fn with_slots(slots: usize) -> Geometry {
        Geometry {
            slots: slots as u32,
            data_start: (HEADER_LEN + slots * ENTRY_LEN).next_multiple_of(DATA_ALIGN),
        }
    }

    /// Offset of `slot`'s registry entry.
    pub fn entry_offset(&self, slot: u32) -> usize {
        HEADER_LEN + slot as usize * ENTRY_LEN
    }

    /// Offset of `slot`'s data.
    pub fn data_offset(&self, slot: u32) -> usize {
        self.data_start + slot as usize * BLOCK_SIZE
    }

    /// The registry's entries as one range (to clear them at format time).
    pub fn entries(&self) -> core::ops::Range<usize> {
        HEADER_LEN..HEADER_LEN + self.slots as usize * ENTRY_LEN
    }

    /// End of the last slot's data.
    pub fn end(&self) -> usize {
        self.data_offset(self.slots)
    }
}

/// The registry header: which disk and geometry the registry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub slots: u32,
    pub disk_blocks: u64,
    pub formats: u64,
}

/// Why a registry header was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No registry was ever written here (cold memory).
    NoMagic,
    /// A registry header whose checksum does not match.
    BadChecksum,
    /// A registry from another version of this format.
    Version(u32),
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        out[16..20].copy_from_slice(&self.slots.to_le_bytes());
        out[24..32].copy_from_slice(&self.disk_blocks.to_le_bytes());
        out[32..40].copy_from_slice(&self.formats.to_le_bytes());
        let crc = checksum(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        if bytes[0..8] != MAGIC {
            return Err(HeaderError::NoMagic);
        }
        if checksum(&bytes[..60]) != u32_at(bytes, 60) {
            return Err(HeaderError::BadChecksum);
        }
        let version = u32_at(bytes, 8);
        if version != VERSION || u32_at(bytes, 12) != BLOCK_SIZE as u32 {
            return Err(HeaderError::Version(version));
        }
        Ok(Header {
            slots: u32_at(bytes, 16),
            disk_blocks: u64_at(bytes, 24),
            formats: u64_at(bytes, 32),
        })
    }
}

/// Whether a slot's data is also on the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// The disk holds the same data.
    Clean = 1,
    /// Newer than the disk: acknowledged, not yet written back.
    Dirty = 2,
}

/// One slot's registry entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub block: u64,
    /// Write order: of two entries for one block, the higher seq is newer.
    pub seq: u64,
    pub data_crc: u32,
    pub state: SlotState,
}

/// What a slot's registry entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRead {
    Free,
    Valid(Entry),
    /// Not free and not checksummed correctly (treated as free).
    Invalid,
}

/// The bytes of a free entry.
pub const FREE: [u8; ENTRY_LEN] = [0; ENTRY_LEN];

pub fn encode_entry(slot: u32, entry: &Entry) -> [u8; ENTRY_LEN] {
    let mut out = [0; ENTRY_LEN];
    out[0..8].copy_from_slice(&entry.block.to_le_bytes());
    out[8..16].copy_from_slice(&entry.seq.to_le_bytes());
    out[16..20].copy_from_slice(&entry.data_crc.to_le_bytes());
    out[20] = entry.state as u8;
    out[24..28].copy_from_slice(&slot.to_le_bytes());
    let crc = checksum(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_entry(slot: u32, bytes: &[u8; ENTRY_LEN]) -> EntryRead {
    if *bytes == FREE {
        return EntryRead::Free;
    }
    let state = match bytes[20] {
        1 => SlotState::Clean,
        2 => SlotState::Dirty,
        _ => return EntryRead::Invalid,
    };
    if checksum(&bytes[..28]) != u32_at(bytes, 28)
        || u32_at(bytes, 24) != slot
        || bytes[21..24] != [0; 3]
    {
        return EntryRead::Invalid;
    }
    EntryRead::Valid(Entry {
        block: u64_at(bytes, 0),
        seq: u64_at(bytes, 8),
        data_crc: u32_at(bytes, 16),
        state,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_and_is_maximal() {
        for len in [8 << 20, (2 << 20) - 4096, 5000, 100_000, 1 << 20] {
            let g = Geometry::for_len(len).unwrap();
            assert!(g.end() <= len, "{len}");
            assert!(
                Geometry::with_slots(g.slots as usize + 1).end() > len,
                "{len}"
            );
            assert!(g.entries().end <= g.data_offset(0));
            assert_eq!(g.data_offset(0) % 4096, 0);
        }
        assert_eq!(Geometry::for_len(4000), None);
        // 8 MiB less the kernel's 4 KiB header: 15,4xx slots.
        let g = Geometry::for_len((8 << 20) - 4096).unwrap();
        assert!((15_000..15_500).contains(&g.slots), "{}", g.slots);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = Header {
            slots: 1234,
            disk_blocks: 131_072,
            formats: 3,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], b"RSTCACH1");
        assert_eq!(Header::decode(&bytes), Ok(header));
        for i in 0..HEADER_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x01;
            assert!(Header::decode(&damaged).is_err(), "byte {i}");
        }
        assert_eq!(Header::decode(&[0; HEADER_LEN]), Err(HeaderError::NoMagic));
    }

    #[test]
    fn entry_fixture_and_damage() {
        let entry = Entry {
            block: 0x0102,
            seq: 7,
            data_crc: 0xdead_beef,
            state: SlotState::Dirty,
        };
        let bytes = encode_entry(5, &entry);
        assert_eq!(bytes[0..8], [0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[8], 7);
        assert_eq!(bytes[16..20], [0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(bytes[20], 2);
        assert_eq!(bytes[24], 5);
        assert_eq!(decode_entry(5, &bytes), EntryRead::Valid(entry));
        // The same entry found in another slot is not believed.
        assert_eq!(decode_entry(6, &bytes), EntryRead::Invalid);
        for i in 0..ENTRY_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x80;
            assert_eq!(decode_entry(5, &damaged), EntryRead::Invalid, "byte {i}");
        }
        assert_eq!(decode_entry(5, &FREE), EntryRead::Free);
    }

    #[test]
    fn checksum_is_crc32_ieee() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(checksum(b"123456789"), 0xcbf4_3926);
    }
}
