//! The block cache: disk blocks held in crash-surviving memory, every slot
//! described by a checksummed registry entry (see [`super::registry`]).
//!
//! The write protocol is what makes a crash at any instant harmless:
//! - a block is never overwritten in place: a write goes to an empty slot
//!   (data first, then its entry, which is the commit point), and only then
//!   is the slot holding the older version freed; of two entries for one
//!   block the higher `seq` wins;
//! - a dirty slot is written to the disk and its entry marked clean before
//!   the slot can be reused;
//! - a slot leaving the cache gets a free entry before new data enters it.
//!
//! So the registry always names, for every block, either nothing or the
//! newest acknowledged data (or data newer still, from a write in flight),
//! and a dirty entry's data always matches its checksum. This file holds
//! the state and the read path; [`super::write`] the write path.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::device::{BLOCK_SIZE, Block, CacheMemory, DeviceError, Disk};
use super::eviction::EvictionPolicy;
use super::filter::BlockFilter;
use super::readahead::{ReadAhead, Window};
use super::registry::{Geometry, SlotState};

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Once it is in the protected cache (Rio's promise: the cache survives
    /// kernel crashes by warm reboot). Dirty blocks reach the disk when
    /// evicted, on [`BlockCache::flush`], and at recovery.
    #[default]
    Rio,
    /// Once it is on the disk and the disk has flushed (for comparison).
    WriteThrough,
}

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Rio => "rio",
            Durability::WriteThrough => "write-through",
        }
    }
}

/// Why a cache operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The block is past the end of the disk (the caller's mistake).
    OutOfRange,
    /// The disk failed (the device's fault); the cache is unchanged.
    Device(DeviceError),
}

impl From<DeviceError> for CacheError {
    fn from(error: DeviceError) -> Self {
        match error {
            DeviceError::OutOfRange => CacheError::OutOfRange,
            other => CacheError::Device(other),
        }
    }
}

/// What the cache has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Blocks fetched from the disk (asked for and read ahead).
    pub blocks_read: u64,
    pub read_requests: u64,
    /// Blocks fetched by read-ahead only.
    pub prefetched: u64,
    pub writes: u64,
    /// Blocks written to the disk (write-back or write-through).
    pub blocks_written: u64,
    pub evictions: u64,
}

impl CacheStats {
    /// Hits per read, in percent.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / reads as f64
        }
    }
}

/// What the cache knows about one slot (a mirror of its registry entry).
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub block: u64,
    pub seq: u64,
    pub crc: u32,
    pub state: Option<SlotState>,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        block: 0,
        seq: 0,
        crc: 0,
        state: None,
    };
}

/// A write-back block cache over disk `D` in memory `M`, with eviction
/// policy `E`, read-ahead policy `R` and block filter `F`.
pub struct BlockCache<M, D, E, R, F> {
    pub(super) memory: M,
    pub(super) disk: D,
    pub(super) eviction: E,
    pub(super) readahead: R,
    pub(super) filter: F,
    pub(super) geometry: Geometry,
    pub(super) mode: Durability,
    pub(super) slots: Vec<Slot>,
    pub(super) index: BTreeMap<u64, u32>,
    pub(super) free: Vec<u32>,
    pub(super) next_seq: u64,
    pub(super) stats: CacheStats,
}

impl<M, D, E, R, F> BlockCache<M, D, E, R, F>
where
    M: CacheMemory,
    D: Disk,
    E: EvictionPolicy,
    R: ReadAhead,
    F: BlockFilter,
{
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
    pub fn durability(&self) -> Durability {
        self.mode
    }
    pub fn slots(&self) -> u32 {
        self.geometry.slots
    }
    pub fn disk(&self) -> &D {
        &self.disk
    }
    pub fn memory(&self) -> &M {
        &self.memory
    }
    /// The eviction policy (to configure it, or read what it counts).
    pub fn eviction_mut(&mut self) -> &mut E {
        &mut self.eviction
    }
    pub fn eviction(&self) -> &E {
        &self.eviction
    }
    /// The read-ahead policy.
    pub fn readahead_mut(&mut self) -> &mut R {
        &mut self.readahead
    }
    /// The block filter. Changing what it does changes the meaning of
    /// what is on the disk: a filter is chosen before the cache opens
    /// ([`BlockCache::open_with`]), so recovery writes back through it.
    pub fn filter_mut(&mut self) -> &mut F {
        &mut self.filter
    }
    pub fn capacity_blocks(&self) -> u64 {
        self.disk.capacity_blocks()
    }
    /// Blocks the cache holds that the disk does not have yet.
    pub fn dirty_blocks(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == Some(SlotState::Dirty))
            .count()
    }
    /// Whether `block` is in the cache.
    pub fn contains(&self, block: u64) -> bool {
        self.index.contains_key(&block)
    }

    pub(super) fn check(&self, block: u64) -> Result<(), CacheError> {
        if block < self.disk.capacity_blocks() {
            Ok(())
        } else {
            Err(CacheError::OutOfRange)
        }
    }

    pub(super) fn data(&self, slot: u32) -> &Block {
        let offset = self.geometry.data_offset(slot);
        self.memory.bytes()[offset..offset + BLOCK_SIZE]
            .try_into()
            .expect("one block")
    }

    /// Reads `block` into `out`.
    pub async fn read(&mut self, block: u64, out: &mut Block) -> Result<(), CacheError> {
        self.check(block)?;
        if let Some(&slot) = self.index.get(&block) {
            self.stats.hits += 1;
            out.copy_from_slice(self.data(slot));
            self.eviction.touched(slot, block);
            if let Some(window) = self.readahead.on_hit(block) {
                self.prefetch(window).await;
            }
            return Ok(());
        }
        self.stats.misses += 1;
        let mut window = self.readahead.on_miss(block);
        // The policy proposes; the cache bounds it.
        let end = self.disk.capacity_blocks();
        let most = self.most_ahead();
        window.start = block;
        window.stride = window.stride.max(1);
        let fits = (end - block - 1) / u64::from(window.stride) + 1;
        let count = u64::from(window.count).clamp(1, most).min(fits) as usize;
        if window.stride == 1 {
            let mut buffer = vec![0u8; count * BLOCK_SIZE];
            self.disk.read(block, &mut buffer).await?;
            self.stats.read_requests += 1;
            for (i, chunk) in buffer.chunks_exact(BLOCK_SIZE).enumerate() {
                let mut data: Block = chunk.try_into().expect("one block");
                let at = block + i as u64;
                self.filter.decode(at, &mut data);
                if i == 0 {
                    out.copy_from_slice(&data);
                }
                self.fetched(at, &data, i > 0).await?;
            }
        } else {
            for i in 0..count as u64 {
                let at = block + i * u64::from(window.stride);
                let mut data = [0u8; BLOCK_SIZE];
                match self.disk.read(at, &mut data).await {
                    Ok(()) => {}
                    // Read-ahead is a guess: its failure is no error.
                    Err(_) if i > 0 => break,
                    Err(error) => return Err(error.into()),
                }
                self.stats.read_requests += 1;
                self.filter.decode(at, &mut data);
                if i == 0 {
                    out.copy_from_slice(&data);
                }
                self.fetched(at, &data, i > 0).await?;
            }
        }
        Ok(())
    }

    /// The most blocks one read-ahead window may fetch: a request's worth,
    /// and at most a quarter of the cache (read-ahead must not flush it).
    fn most_ahead(&self) -> u64 {
        (D::MAX_BLOCKS as u64).min(u64::from(self.geometry.slots / 4).max(1))
    }

    /// Fetches the blocks of `window` the cache does not hold: what a
    /// read-ahead policy proposed on a hit. A guess, so its failure is no
    /// error (and the hit it follows has already been served).
    async fn prefetch(&mut self, window: Window) {
        let end = self.disk.capacity_blocks();
        let stride = u64::from(window.stride.max(1));
        for i in 0..u64::from(window.count).min(self.most_ahead()) {
            let Some(at) = i
                .checked_mul(stride)
                .and_then(|offset| window.start.checked_add(offset))
                .filter(|&at| at < end)
            else {
                break;
            };
            if self.index.contains_key(&at) {
                continue;
            }
            let mut data = [0u8; BLOCK_SIZE];
            if self.disk.read(at, &mut data).await.is_err() {
                break;
            }
            self.stats.read_requests += 1;
            self.filter.decode(at, &mut data);
            if self.fetched(at, &data, true).await.is_err() {
                break;
            }
        }
    }

    /// Enters a block just read from the disk (unless it is cached: the
    /// cached copy may be newer).
    async fn fetched(&mut self, block: u64, data: &Block, ahead: bool) -> Result<(), CacheError> {
        self.stats.blocks_read += 1;
        if ahead {
            self.stats.prefetched += 1;
        }
        if self.index.contains_key(&block) {
            return Ok(());
        }
        let slot = self.take_slot().await?;
        self.store_all(&[slot], &[(block, data)], SlotState::Clean);
        Ok(())
    }

    /// Reads `buf.len()` bytes from byte `offset` of the disk.
    pub async fn read_bytes(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), CacheError> {
        let mut done = 0;
        let mut block = [0u8; BLOCK_SIZE];
        while done < buf.len() {
            let at = offset + done as u64;
            let within = (at % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - done);
            self.read(at / BLOCK_SIZE as u64, &mut block).await?;
            buf[done..done + n].copy_from_slice(&block[within..within + n]);
            done += n;
        }
        Ok(())
    }
}
