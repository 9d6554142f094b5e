//! The log: where the data lives on the disk, log-structured, with
//! compaction.
//!
//! ```text
//! block 0, 1     superblocks, written alternately (the valid one with the
//!                higher seq wins): magic "RSTKVSB1" | seq u64 | area u32 |
//!                epoch u32 | area_blocks u64 | CRC-32 of the 32 bytes before
//! blocks 8..     two log areas of equal size; the superblock names the
//!                active one and its epoch
//! ```
//!
//! The active area holds records (see `record`) from its start; the log
//! ends at the first record that does not check out (wrong epoch, bad
//! checksum, torn): whatever an earlier use of the area left after it
//! carries an older epoch. Writes append at the end. Compaction writes a
//! snapshot of the live data into the other area under the next epoch,
//! makes it durable, and only then switches the superblock, so a crash at
//! any point leaves one complete log; the old area's blocks are then
//! dropped from the cache without being written back. Every block goes
//! through the block cache, so appends are acknowledged by the cache's
//! durability mode.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use unikernel::storage::{
    BLOCK_SIZE, Block, BlockCache, BlockFilter, CacheError, CacheMemory, Disk, EvictionPolicy,
    ReadAhead,
};

use crate::record::{self, HEADER, Op, Record};

const MAGIC: [u8; 8] = *b"RSTKVSB1";
/// First block of the first area.
const AREAS_START: u64 = 8;
/// Log size from which compaction starts (if most of the log is dead).
pub const COMPACT_AFTER: u64 = 1 << 20;

/// What the log needs below it: whole blocks (the block cache).
#[allow(async_fn_in_trait)] // One CPU: futures never cross threads.
pub trait Blocks {
    fn capacity_blocks(&self) -> u64;
    async fn read(&mut self, block: u64, out: &mut Block) -> Result<(), CacheError>;
    async fn write(&mut self, block: u64, data: &Block) -> Result<(), CacheError>;
    /// Writes several blocks, acknowledged together.
    async fn write_many(&mut self, blocks: &[(u64, &Block)]) -> Result<(), CacheError> {
        for &(block, data) in blocks {
            self.write(block, data).await?;
        }
        Ok(())
    }
    /// Makes everything written so far durable on the disk.
    async fn flush(&mut self) -> Result<(), CacheError>;
    /// Makes what was written to `blocks` durable on the disk.
    async fn flush_range(&mut self, blocks: Range<u64>) -> Result<(), CacheError> {
        let _ = blocks;
        self.flush().await
    }
    /// Forgets `blocks`: their contents are garbage from now on.
    fn discard(&mut self, blocks: Range<u64>) {
        let _ = blocks;
    }
}

impl<M, D, E, R, F> Blocks for BlockCache<M, D, E, R, F>
where
    M: CacheMemory,
    D: Disk,
    E: EvictionPolicy,
    R: ReadAhead,
    F: BlockFilter,
{
    fn capacity_blocks(&self) -> u64 {
        BlockCache::capacity_blocks(self)
    }
    async fn read(&mut self, block: u64, out: &mut Block) -> Result<(), CacheError> {
        BlockCache::read(self, block, out).await
    }
    async fn write(&mut self, block: u64, data: &Block) -> Result<(), CacheError> {
        BlockCache::write(self, block, data).await
    }
    async fn write_many(&mut self, blocks: &[(u64, &Block)]) -> Result<(), CacheError> {
        BlockCache::write_many(self, blocks).await
    }
    async fn flush(&mut self) -> Result<(), CacheError> {
        BlockCache::flush(self).await.map(|_| ())
    }
    async fn flush_range(&mut self, blocks: Range<u64>) -> Result<(), CacheError> {
        BlockCache::flush_range(self, blocks).await.map(|_| ())
    }
    fn discard(&mut self, blocks: Range<u64>) {
        BlockCache::discard(self, blocks);
    }
}

/// Why the log failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    /// The disk is too small for two log areas.
    DiskTooSmall,
    /// The live data does not fit in a log area (the data's size).
    Full,
    /// The storage below failed.
    Storage(CacheError),
}

impl From<CacheError> for LogError {
    fn from(error: CacheError) -> Self {
        LogError::Storage(error)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Superblock {
    seq: u64,
    area: u32,
    epoch: u32,
    area_blocks: u64,
}

impl Superblock {
    fn encode(&self) -> Block {
        let mut out = [0; BLOCK_SIZE];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..20].copy_from_slice(&self.area.to_le_bytes());
        out[20..24].copy_from_slice(&self.epoch.to_le_bytes());
        out[24..32].copy_from_slice(&self.area_blocks.to_le_bytes());
        let crc = crc32fast::hash(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &Block) -> Option<Superblock> {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        if bytes[..8] != MAGIC || crc32fast::hash(&bytes[..32]) != u32_at(32) || u32_at(16) > 1 {
            return None;
        }
        Some(Superblock {
            seq: u64_at(8),
            area: u32_at(16),
            epoch: u32_at(20),
            area_blocks: u64_at(24),
        })
    }

    fn first_block(&self) -> u64 {
        AREAS_START + u64::from(self.area) * self.area_blocks
    }
}

/// Appends bytes to an area through whole-block writes, keeping the last,
/// partly filled block in memory (so an append never reads the disk).
struct Appender {
    first_block: u64,
    /// Bytes used in the area.
    end: u64,
    tail: Block,
}

impl Appender {
    /// Appends `bytes`: every block they touch, written as one batch.
    async fn append<S: Blocks>(&mut self, storage: &mut S, bytes: &[u8]) -> Result<(), LogError> {
        let mut blocks: Vec<(u64, Block)> = Vec::new();
        let mut done = 0;
        while done < bytes.len() {
            let within = (self.end % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(bytes.len() - done);
            self.tail[within..within + n].copy_from_slice(&bytes[done..done + n]);
            blocks.push((self.first_block + self.end / BLOCK_SIZE as u64, self.tail));
            self.end += n as u64;
            done += n;
            if self.end.is_multiple_of(BLOCK_SIZE as u64) {
                self.tail = [0; BLOCK_SIZE];
            }
        }
        let batch: Vec<(u64, &Block)> = blocks.iter().map(|(b, d)| (*b, d)).collect();
        storage.write_many(&batch).await?;
        Ok(())
    }
}

/// What opening the log found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// No superblock was found: the disk was formatted.
    pub formatted: bool,
    pub records: u64,
    pub bytes: u64,
    /// The latest time any record carries.
    pub last_time_ms: u64,
}

/// The log over storage `S`.
pub struct Log<S> {
    storage: S,
    superblock: Superblock,
    appender: Appender,
    pending: Vec<u8>,
    compactions: u64,
}

impl<S: Blocks> Log<S> {
    /// Opens the log on `storage` (formatting a disk without one) and
    /// passes every record, in order, to `apply`.
    pub async fn open(
        mut storage: S,
        mut apply: impl FnMut(Record),
    ) -> Result<(Log<S>, Replay), LogError> {
        let capacity = storage.capacity_blocks();
        let area_blocks = capacity.saturating_sub(AREAS_START) / 2;
        if area_blocks < 16 {
            return Err(LogError::DiskTooSmall);
        }
        let mut found: Option<Superblock> = None;
        for block in 0..2 {
            let mut bytes = [0; BLOCK_SIZE];
            storage.read(block, &mut bytes).await?;
            if let Some(sb) = Superblock::decode(&bytes).filter(|sb| sb.area_blocks == area_blocks)
                && found.is_none_or(|f| sb.seq > f.seq)
            {
                found = Some(sb);
            }
        }
        let mut replay = Replay::default();
        let superblock = match found {
            Some(sb) => sb,
            None => {
                let sb = Superblock {
                    seq: 1,
                    area: 0,
                    epoch: 1,
                    area_blocks,
                };
                // An empty log: a zero block where the first record goes.
                storage.write(sb.first_block(), &[0; BLOCK_SIZE]).await?;
                storage.write(1, &sb.encode()).await?;
                storage.flush().await?;
                replay.formatted = true;
                sb
            }
        };
        let mut reader = Reader::new(superblock.first_block(), area_blocks * BLOCK_SIZE as u64);
        let mut end = 0;
        loop {
            let mut head = [0u8; HEADER];
            if !reader.read(&mut storage, end, &mut head).await? {
                break;
            }
            let Some(len) = record::header(&head, superblock.epoch) else {
                break;
            };
            let mut payload = vec![0; len];
            if !reader
                .read(&mut storage, end + HEADER as u64, &mut payload)
                .await?
            {
                break;
            }
            let Some(record) = record::decode(&head, &payload) else {
                break;
            };
            replay.records += 1;
            replay.last_time_ms = replay.last_time_ms.max(record.time_ms);
            apply(record);
            end += (HEADER + len) as u64;
        }
        replay.bytes = end;
        let mut tail = [0; BLOCK_SIZE];
        let within = (end % BLOCK_SIZE as u64) as usize;
        if within > 0 {
            storage
                .read(
                    superblock.first_block() + end / BLOCK_SIZE as u64,
                    &mut tail,
                )
                .await?;
            tail[within..].fill(0);
        }
        let appender = Appender {
            first_block: superblock.first_block(),
            end,
            tail,
        };
        let log = Log {
            storage,
            superblock,
            appender,
            pending: Vec::new(),
            compactions: 0,
        };
        Ok((log, replay))
    }

    fn area_bytes(&self) -> u64 {
        self.superblock.area_blocks * BLOCK_SIZE as u64
    }

    /// Bytes a record of `ops` takes.
    pub fn record_len(ops: &[Op]) -> u64 {
        (HEADER + 12 + ops.iter().map(Op::encoded_len).sum::<usize>()) as u64
    }

    /// Bytes left in the active area after what is staged.
    pub fn room(&self) -> u64 {
        self.area_bytes() - self.appender.end - self.pending.len() as u64
    }

    /// Bytes of log in the active area, staged records included.
    pub fn len(&self) -> u64 {
        self.appender.end + self.pending.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Stages one record (the caller checked [`Log::room`]).
    pub fn stage(&mut self, time_ms: u64, ops: &[Op]) {
        record::encode(&mut self.pending, self.superblock.epoch, time_ms, ops);
    }

    /// Writes the staged records: when this returns, they are as durable
    /// as the cache's mode promises.
    pub async fn commit(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = core::mem::take(&mut self.pending);
        let result = self.appender.append(&mut self.storage, &pending).await;
        self.pending = pending;
        self.pending.clear();
        result
    }

    /// Whether a compaction would pay: the log is four times the live
    /// data and past [`COMPACT_AFTER`] (which bounds replay time), or the
    /// area is three-quarters full and at most half of it is live.
    pub fn should_compact(&self, live_bytes: u64) -> bool {
        let end = self.appender.end;
        (end > COMPACT_AFTER.min(self.area_bytes() / 2) && live_bytes.saturating_mul(4) < end)
            || (end > self.area_bytes() / 4 * 3 && live_bytes < end / 2)
    }

    /// Writes `live` (the whole data, as `SET`s) into the other area and
    /// switches to it. Staged records must have been committed.
    pub async fn compact(
        &mut self,
        time_ms: u64,
        live: impl Iterator<Item = Op>,
    ) -> Result<(), LogError> {
        assert!(self.pending.is_empty(), "compaction with staged records");
        let next = Superblock {
            seq: self.superblock.seq + 1,
            area: 1 - self.superblock.area,
            epoch: self.superblock.epoch.wrapping_add(1).max(1),
            area_blocks: self.superblock.area_blocks,
        };
        let mut appender = Appender {
            first_block: next.first_block(),
            end: 0,
            tail: [0; BLOCK_SIZE],
        };
        let mut chunk = Vec::new();
        let mut ops = Vec::new();
        let mut batch = 0;
        let mut live = live.peekable();
        while let Some(op) = live.next() {
            batch += op.encoded_len();
            ops.push(op);
            if batch >= 32 * 1024 || live.peek().is_none() {
                record::encode(&mut chunk, next.epoch, time_ms, &ops);
                if appender.end + chunk.len() as u64 >= self.area_bytes() {
                    return Err(LogError::Full);
                }
                appender.append(&mut self.storage, &chunk).await?;
                chunk.clear();
                ops.clear();
                batch = 0;
            }
        }
        // The snapshot reaches the disk before the superblock can name it
        // (so the disk stays consistent even if the VM is switched off);
        // then the old area is garbage: dropped from the cache unwritten.
        let written = appender.end.div_ceil(BLOCK_SIZE as u64);
        self.storage
            .flush_range(next.first_block()..next.first_block() + written)
            .await?;
        self.storage.write(next.seq % 2, &next.encode()).await?;
        self.storage.flush_range(0..2).await?;
        let old = self.superblock.first_block();
        self.storage.discard(old..old + self.superblock.area_blocks);
        self.superblock = next;
        self.appender = appender;
        self.compactions += 1;
        Ok(())
    }

    /// Makes everything durable on the disk (`SAVE`, `SHUTDOWN`).
    pub async fn sync(&mut self) -> Result<(), LogError> {
        self.commit().await?;
        self.storage.flush().await?;
        Ok(())
    }
}

/// Reads byte ranges of an area, one block at a time.
struct Reader {
    first_block: u64,
    area_bytes: u64,
    block: Option<(u64, Block)>,
}

impl Reader {
    fn new(first_block: u64, area_bytes: u64) -> Reader {
        Reader {
            first_block,
            area_bytes,
            block: None,
        }
    }

    /// Fills `out` from byte `at` of the area; false if that passes its end.
    async fn read<S: Blocks>(
        &mut self,
        storage: &mut S,
        at: u64,
        out: &mut [u8],
    ) -> Result<bool, LogError> {
        if at + out.len() as u64 > self.area_bytes {
            return Ok(false);
        }
        let mut done = 0;
        while done < out.len() {
            let offset = at + done as u64;
            let index = offset / BLOCK_SIZE as u64;
            let within = (offset % BLOCK_SIZE as u64) as usize;
            if self.block.as_ref().is_none_or(|(i, _)| *i != index) {
                let mut data = [0; BLOCK_SIZE];
                storage.read(self.first_block + index, &mut data).await?;
                self.block = Some((index, data));
            }
            let (_, data) = self.block.as_ref().expect("just read");
            let n = (BLOCK_SIZE - within).min(out.len() - done);
            out[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Ok(true)
    }
}
