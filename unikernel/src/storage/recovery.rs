//! Opening the cache: format cold memory, or recover what a crashed boot
//! left — verify every cached block against its checksum, write the dirty
//! ones to the disk, and only then let anyone read or write.
//!
//! Every step is idempotent (freeing an entry, writing a block back,
//! marking it clean), so a crash during recovery is recovered by the next
//! boot the same way.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::cache::{BlockCache, CacheError, CacheStats, Durability, Slot};
use super::device::{CacheMemory, DeviceError, Disk};
use super::eviction::EvictionPolicy;
use super::filter::BlockFilter;
use super::readahead::ReadAhead;
use super::registry::{
    ENTRY_LEN, EntryRead, FREE, Geometry, HEADER_LEN, Header, HeaderError, SlotState, checksum,
    decode_entry,
};

/// Why the memory was formatted instead of recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatReason {
    /// No registry header was there (first boot of this VM).
    Cold,
    /// A header whose checksum or version is wrong.
    DamagedHeader(HeaderError),
    /// A registry for another geometry or another disk.
    OtherCache,
}

/// How the cache came up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Formatted(FormatReason),
    /// A registry was found: its blocks were verified and recovered.
    Recovered,
}

/// What opening the cache found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub start: Start,
    /// Slots holding a block after recovery.
    pub blocks: u32,
    /// Dirty blocks found and written to the disk.
    pub written_back: u32,
    /// Older versions of a block, superseded by a newer entry, freed.
    pub superseded: u32,
    /// Entries that failed their own checksum (treated as free).
    pub invalid_entries: u32,
    /// Clean blocks whose data failed its checksum (dropped: the disk has
    /// them).
    pub dropped_clean: u32,
    /// Dirty blocks whose data failed its checksum: acknowledged writes
    /// that are lost. Zero unless something wrote the memory behind the
    /// cache's back.
    pub lost_dirty: u32,
}

/// The three policies a cache is opened with (each a policy point).
#[derive(Default)]
pub struct Policies<E, R, F> {
    pub eviction: E,
    pub readahead: R,
    pub filter: F,
}

/// Why the cache could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The memory cannot hold even one slot (the image's configuration).
    TooSmall,
    /// Writing recovered blocks back failed (the device's fault).
    Device(DeviceError),
}

impl From<CacheError> for OpenError {
    fn from(error: CacheError) -> Self {
        match error {
            CacheError::Device(e) => OpenError::Device(e),
            CacheError::OutOfRange => OpenError::Device(DeviceError::OutOfRange),
        }
    }
}

impl<M, D, E, R, F> BlockCache<M, D, E, R, F>
where
    M: CacheMemory,
    D: Disk,
    E: EvictionPolicy,
    R: ReadAhead,
    F: BlockFilter,
{
    /// Opens the cache that lives in `memory` for `disk`: recovers it if
    /// `memory` holds a registry for this disk, formats it otherwise. The
    /// policies are their defaults.
    pub async fn open(memory: M, disk: D, mode: Durability) -> Result<(Self, Recovery), OpenError> {
        Self::open_with(memory, disk, mode, Policies::default()).await
    }

    /// [`BlockCache::open`] with the policies given (for policies that need
    /// more than their `Default`, such as graft-backed ones holding their
    /// graft host): recovery already runs with them — in particular, dirty
    /// blocks are written back through `policies.filter`.
    pub async fn open_with(
        memory: M,
        disk: D,
        mode: Durability,
        policies: Policies<E, R, F>,
    ) -> Result<(Self, Recovery), OpenError> {
        let mut cache = Self::new(memory, disk, mode, policies)?;
        let header_bytes: &[u8; HEADER_LEN] = cache.memory.bytes()[..HEADER_LEN]
            .try_into()
            .expect("header");
        let slots = cache.geometry.slots;
        let disk_blocks = cache.disk.capacity_blocks();
        let reason = match Header::decode(header_bytes) {
            Ok(h) if h.slots == slots && h.disk_blocks == disk_blocks => None,
            Ok(h) => Some((FormatReason::OtherCache, h.formats)),
            Err(HeaderError::NoMagic) => Some((FormatReason::Cold, 0)),
            Err(error) => Some((FormatReason::DamagedHeader(error), 0)),
        };
        let recovery = match reason {
            Some((reason, formats)) => {
                cache.format(formats + 1);
                Recovery {
                    start: Start::Formatted(reason),
                    ..Recovery::nothing()
                }
            }
            None => cache.recover().await?,
        };
        Ok((cache, recovery))
    }

    /// A cache in `memory` for `disk`, formatted whatever `memory` holds:
    /// for a disk that does not outlive the boot (nothing to recover).
    pub fn create(memory: M, disk: D, mode: Durability) -> Result<Self, OpenError> {
        Self::create_with(memory, disk, mode, Policies::default())
    }

    /// [`BlockCache::create`] with the policies given.
    pub fn create_with(
        memory: M,
        disk: D,
        mode: Durability,
        policies: Policies<E, R, F>,
    ) -> Result<Self, OpenError> {
        let mut cache = Self::new(memory, disk, mode, policies)?;
        let header: &[u8; HEADER_LEN] = cache.memory.bytes()[..HEADER_LEN]
            .try_into()
            .expect("header");
        let formats = Header::decode(header).map_or(0, |h| h.formats);
        cache.format(formats + 1);
        Ok(cache)
    }

    fn new(
        memory: M,
        disk: D,
        mode: Durability,
        policies: Policies<E, R, F>,
    ) -> Result<Self, OpenError> {
        let geometry = Geometry::for_len(memory.len()).ok_or(OpenError::TooSmall)?;
        let Policies {
            mut eviction,
            readahead,
            filter,
        } = policies;
        eviction.reset(geometry.slots);
        Ok(BlockCache {
            memory,
            disk,
            eviction,
            readahead,
            filter,
            geometry,
            mode,
            slots: vec![Slot::EMPTY; geometry.slots as usize],
            index: BTreeMap::new(),
            free: Vec::new(),
            next_seq: 1,
            stats: CacheStats::default(),
        })
    }

    /// Clears every entry, then writes the header (a crash before the
    /// header lands just formats again).
    fn format(&mut self, formats: u64) {
        const ZEROS: [u8; 4096] = [0; 4096];
        let entries = self.geometry.entries();
        let mut at = entries.start;
        while at < entries.end {
            let n = ZEROS.len().min(entries.end - at);
            self.memory.write(at, &ZEROS[..n]);
            at += n;
        }
        let header = Header {
            slots: self.geometry.slots,
            disk_blocks: self.disk.capacity_blocks(),
            formats,
        };
        self.memory.write(0, &header.encode());
        self.free = (0..self.geometry.slots).rev().collect();
    }

    async fn recover(&mut self) -> Result<Recovery, OpenError> {
        let mut report = Recovery {
            start: Start::Recovered,
            ..Recovery::nothing()
        };
        let disk_blocks = self.disk.capacity_blocks();
        // 1. Read every entry; keep the newest per block.
        let mut newest: BTreeMap<u64, (u32, super::registry::Entry)> = BTreeMap::new();
        let mut to_free = Vec::new();
        let mut max_seq = 0;
        for slot in 0..self.geometry.slots {
            let offset = self.geometry.entry_offset(slot);
            let bytes: &[u8; ENTRY_LEN] = self.memory.bytes()[offset..offset + ENTRY_LEN]
                .try_into()
                .expect("entry");
            match decode_entry(slot, bytes) {
                EntryRead::Free => {}
                EntryRead::Invalid => {
                    report.invalid_entries += 1;
                    to_free.push(slot);
                }
                EntryRead::Valid(entry) if entry.block >= disk_blocks => {
                    report.invalid_entries += 1;
                    to_free.push(slot);
                }
                EntryRead::Valid(entry) => {
                    max_seq = max_seq.max(entry.seq);
                    match newest.get(&entry.block) {
                        Some(&(_, seen)) if seen.seq >= entry.seq => {
                            report.superseded += 1;
                            to_free.push(slot);
                        }
                        Some(&(other, _)) => {
                            report.superseded += 1;
                            to_free.push(other);
                            newest.insert(entry.block, (slot, entry));
                        }
                        None => {
                            newest.insert(entry.block, (slot, entry));
                        }
                    }
                }
            }
        }
        // 2. Verify every surviving block's data against its checksum.
        let mut kept = Vec::with_capacity(newest.len());
        for (_, (slot, entry)) in newest {
            if checksum(self.data(slot)) == entry.data_crc {
                kept.push((slot, entry));
                continue;
            }
            match entry.state {
                SlotState::Clean => report.dropped_clean += 1,
                SlotState::Dirty => report.lost_dirty += 1,
            }
            to_free.push(slot);
        }
        let frees: Vec<(usize, &[u8])> = to_free
            .iter()
            .map(|&slot| (self.geometry.entry_offset(slot), &FREE[..]))
            .collect();
        self.memory.write_many(&frees);
        // 3. Rebuild the in-memory view; the policy learns the blocks in
        // the order they were written.
        kept.sort_by_key(|(_, entry)| entry.seq);
        for &(slot, entry) in &kept {
            self.slots[slot as usize] = Slot {
                block: entry.block,
                seq: entry.seq,
                crc: entry.data_crc,
                state: Some(entry.state),
            };
            self.index.insert(entry.block, slot);
            self.eviction.inserted(slot, entry.block);
        }
        self.free = (0..self.geometry.slots)
            .rev()
            .filter(|&s| self.slots[s as usize].state.is_none())
            .collect();
        self.next_seq = max_seq + 1;
        report.blocks = kept.len() as u32;
        // 4. Write back everything dirty, then make it durable.
        report.written_back = self.write_back_all().await? as u32;
        self.disk.flush().await.map_err(OpenError::Device)?;
        Ok(report)
    }
}

impl Default for Recovery {
    /// Nothing found: a formatted cache.
    fn default() -> Recovery {
        Recovery {
            start: Start::Formatted(FormatReason::Cold),
            ..Recovery::nothing()
        }
    }
}

impl Recovery {
    const fn nothing() -> Recovery {
        Recovery {
            start: Start::Recovered,
            blocks: 0,
            written_back: 0,
            superseded: 0,
            invalid_entries: 0,
            dropped_clean: 0,
            lost_dirty: 0,
        }
    }
}
