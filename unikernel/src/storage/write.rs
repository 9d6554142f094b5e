//! The cache's write path: writes and their acknowledgement, eviction,
//! write-back — every change of cache memory goes through here, in the
//! order the protocol in [`super::cache`] requires.

use alloc::vec::Vec;
use core::ops::Range;

use super::cache::{BlockCache, CacheError, Durability, Slot};
use super::device::{BLOCK_SIZE, Block, CacheMemory, Disk};
use super::eviction::EvictionPolicy;
use super::filter::BlockFilter;
use super::readahead::ReadAhead;
use super::registry::{ENTRY_LEN, Entry, FREE, SlotState, checksum, encode_entry};

impl<M, D, E, R, F> BlockCache<M, D, E, R, F>
where
    M: CacheMemory,
    D: Disk,
    E: EvictionPolicy,
    R: ReadAhead,
    F: BlockFilter,
{
    /// Writes `block`. Acknowledged (returns) per the durability mode.
    pub async fn write(&mut self, block: u64, data: &Block) -> Result<(), CacheError> {
        self.write_many(&[(block, data)]).await
    }

    /// Writes several blocks, acknowledged together, with one batch of
    /// memory writes (in the Rio region: one change of protection for all)
    /// per quarter of the cache's slots. If a block appears more than once,
    /// its last data wins. Each block is written atomically; a crash in the
    /// middle of a batch may leave some blocks of it new and some old.
    pub async fn write_many(&mut self, blocks: &[(u64, &Block)]) -> Result<(), CacheError> {
        for &(block, _) in blocks {
            self.check(block)?;
        }
        let mut batch: Vec<(u64, &Block)> = Vec::with_capacity(blocks.len());
        for &(block, data) in blocks.iter().rev() {
            if !batch.iter().any(|&(b, _)| b == block) {
                batch.push((block, data));
            }
        }
        batch.reverse();
        let most = (self.geometry.slots as usize / 4).max(1);
        for part in batch.chunks(most) {
            self.write_part(part).await?;
        }
        Ok(())
    }

    async fn write_part(&mut self, batch: &[(u64, &Block)]) -> Result<(), CacheError> {
        let mut slots = Vec::with_capacity(batch.len());
        for _ in batch {
            match self.take_slot().await {
                Ok(slot) => slots.push(slot),
                Err(error) => {
                    self.free.extend(slots);
                    return Err(error);
                }
            }
        }
        let state = match self.mode {
            Durability::Rio => SlotState::Dirty,
            Durability::WriteThrough => {
                if let Err(error) = self.write_through(batch).await {
                    self.free.extend(slots);
                    return Err(error);
                }
                SlotState::Clean
            }
        };
        self.store_all(&slots, batch, state);
        self.stats.writes += batch.len() as u64;
        Ok(())
    }

    /// Write-through: the blocks to the disk (runs of neighbours in one
    /// request each), then one flush.
    async fn write_through(&mut self, batch: &[(u64, &Block)]) -> Result<(), CacheError> {
        // Forget the cached copies first (clean, in this mode): from the
        // disk write on, the disk may hold either version.
        for &(block, _) in batch {
            if let Some(&old) = self.index.get(&block) {
                self.release(old);
                self.free.push(old);
            }
        }
        let mut sorted: Vec<(u64, Block)> = batch
            .iter()
            .map(|&(block, data)| {
                let mut on_disk = *data;
                self.filter.encode(block, &mut on_disk);
                (block, on_disk)
            })
            .collect();
        sorted.sort_by_key(|&(block, _)| block);
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start + 1;
            while end < sorted.len()
                && sorted[end].0 == sorted[end - 1].0 + 1
                && end - start < D::MAX_BLOCKS
            {
                end += 1;
            }
            let buffer: Vec<u8> = sorted[start..end].iter().flat_map(|(_, d)| *d).collect();
            self.disk.write(sorted[start].0, &buffer).await?;
            start = end;
        }
        self.disk.flush().await?;
        self.stats.blocks_written += sorted.len() as u64;
        Ok(())
    }

    /// Writes `data` at byte `offset` of the disk (partial blocks are read
    /// first).
    pub async fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<(), CacheError> {
        let mut done = 0;
        let mut block = [0u8; BLOCK_SIZE];
        while done < data.len() {
            let at = offset + done as u64;
            let within = (at % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(data.len() - done);
            if n < BLOCK_SIZE {
                self.read(at / BLOCK_SIZE as u64, &mut block).await?;
            }
            block[within..within + n].copy_from_slice(&data[done..done + n]);
            self.write(at / BLOCK_SIZE as u64, &block).await?;
            done += n;
        }
        Ok(())
    }

    /// Writes every dirty block to the disk and flushes the disk.
    pub async fn flush(&mut self) -> Result<usize, CacheError> {
        let written = self.write_back_all().await?;
        self.disk.flush().await?;
        Ok(written)
    }

    /// Writes the dirty blocks among `blocks` to the disk and flushes the
    /// disk (to order writes: these before whatever follows).
    pub async fn flush_range(&mut self, blocks: Range<u64>) -> Result<usize, CacheError> {
        let written = self.write_back(blocks).await?;
        self.disk.flush().await?;
        Ok(written)
    }

    /// Drops the cached blocks among `blocks`, dirty or not, without
    /// writing them back: for data that became garbage (a log area after
    /// compaction). Reading them later reads the disk.
    pub fn discard(&mut self, blocks: Range<u64>) -> usize {
        let slots: Vec<u32> = self.index.range(blocks).map(|(_, &slot)| slot).collect();
        let frees: Vec<(usize, &[u8])> = slots
            .iter()
            .map(|&slot| (self.geometry.entry_offset(slot), &FREE[..]))
            .collect();
        self.memory.write_many(&frees);
        for &slot in &slots {
            let block = self.slots[slot as usize].block;
            self.slots[slot as usize] = Slot::EMPTY;
            self.index.remove(&block);
            self.eviction.removed(slot);
            self.free.push(slot);
        }
        slots.len()
    }

    /// Writes the dirty blocks back in block order, runs of neighbours in
    /// one request each, and marks them clean.
    pub(super) async fn write_back_all(&mut self) -> Result<usize, CacheError> {
        self.write_back(0..u64::MAX).await
    }

    async fn write_back(&mut self, blocks: Range<u64>) -> Result<usize, CacheError> {
        let dirty: Vec<u64> = self
            .index
            .range(blocks.clone())
            .filter(|&(_, &slot)| self.slots[slot as usize].state == Some(SlotState::Dirty))
            .map(|(&block, _)| block)
            .collect();
        let mut written = 0;
        for &block in &dirty {
            // Blocks already written as part of an earlier run are clean.
            let slot = self.index[&block];
            if self.slots[slot as usize].state == Some(SlotState::Dirty) {
                written += self.write_back_run(block, blocks.end).await?;
            }
        }
        Ok(written)
    }

    /// Writes back dirty `block` together with the dirty blocks that
    /// follow it (one request, up to the device's limit), and marks them
    /// clean: an evicted log block is usually followed by more of the log,
    /// which would otherwise cost one request each as they are evicted.
    async fn write_back_run(&mut self, block: u64, end: u64) -> Result<usize, CacheError> {
        let mut run = Vec::new();
        let mut buffer = Vec::new();
        let mut next = block;
        while run.len() < D::MAX_BLOCKS && next < end {
            let Some(&slot) = self.index.get(&next) else {
                break;
            };
            if self.slots[slot as usize].state != Some(SlotState::Dirty) {
                break;
            }
            let mut data = *self.data(slot);
            self.filter.encode(next, &mut data);
            buffer.extend_from_slice(&data);
            run.push(slot);
            next += 1;
        }
        self.disk.write(block, &buffer).await?;
        self.stats.blocks_written += run.len() as u64;
        self.mark_clean(&run);
        Ok(run.len())
    }

    /// Records `slots` as clean (their data is on the disk now).
    fn mark_clean(&mut self, slots: &[u32]) {
        let entries: Vec<(usize, [u8; ENTRY_LEN])> = slots
            .iter()
            .map(|&slot| {
                let info = &mut self.slots[slot as usize];
                info.state = Some(SlotState::Clean);
                let entry = Entry {
                    block: info.block,
                    seq: info.seq,
                    data_crc: info.crc,
                    state: SlotState::Clean,
                };
                (self.geometry.entry_offset(slot), encode_entry(slot, &entry))
            })
            .collect();
        let pieces: Vec<(usize, &[u8])> = entries.iter().map(|(o, e)| (*o, &e[..])).collect();
        self.memory.write_many(&pieces);
    }

    /// An empty slot: a free one, or one emptied by eviction.
    pub(super) async fn take_slot(&mut self) -> Result<u32, CacheError> {
        if let Some(slot) = self.free.pop() {
            return Ok(slot);
        }
        let proposed = self.eviction.victim();
        let occupied = |s: &u32| {
            self.slots
                .get(*s as usize)
                .is_some_and(|s| s.state.is_some())
        };
        let slot = match proposed.filter(occupied) {
            Some(slot) => slot,
            // The policy named no occupied slot: take the oldest write.
            None => self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state.is_some())
                .min_by_key(|(_, s)| s.seq)
                .map(|(i, _)| i as u32)
                .expect("a full cache has an occupied slot"),
        };
        let info = self.slots[slot as usize];
        if info.state == Some(SlotState::Dirty) {
            self.write_back_run(info.block, u64::MAX).await?;
        }
        self.release(slot);
        self.stats.evictions += 1;
        Ok(slot)
    }

    /// Empties an occupied slot (its entry first).
    pub(super) fn release(&mut self, slot: u32) {
        let block = self.slots[slot as usize].block;
        self.memory.write(self.geometry.entry_offset(slot), &FREE);
        self.slots[slot as usize] = Slot::EMPTY;
        if self.index.get(&block) == Some(&slot) {
            self.index.remove(&block);
        }
        self.eviction.removed(slot);
    }

    /// Puts each block of `batch` into its empty slot from `slots` — its
    /// data, then its entry (the commit point), then a free entry for the
    /// slot that held the older version — as one batch of memory writes,
    /// then updates the in-memory view. `batch` holds each block once.
    pub(super) fn store_all(&mut self, slots: &[u32], batch: &[(u64, &Block)], state: SlotState) {
        let mut entries = Vec::with_capacity(batch.len());
        for (&slot, &(block, data)) in slots.iter().zip(batch) {
            let entry = Entry {
                block,
                seq: self.next_seq,
                data_crc: checksum(data),
                state,
            };
            self.next_seq += 1;
            let old = self.index.get(&block).copied();
            entries.push((encode_entry(slot, &entry), entry, old));
        }
        let mut pieces: Vec<(usize, &[u8])> = Vec::with_capacity(batch.len() * 3);
        for ((&slot, &(_, data)), (bytes, _, old)) in slots.iter().zip(batch).zip(&entries) {
            pieces.push((self.geometry.data_offset(slot), &data[..]));
            pieces.push((self.geometry.entry_offset(slot), &bytes[..]));
            if let Some(old) = *old {
                pieces.push((self.geometry.entry_offset(old), &FREE[..]));
            }
        }
        self.memory.write_many(&pieces);
        for (&slot, (_, entry, old)) in slots.iter().zip(&entries) {
            self.slots[slot as usize] = Slot {
                block: entry.block,
                seq: entry.seq,
                crc: entry.data_crc,
                state: Some(state),
            };
            self.index.insert(entry.block, slot);
            match *old {
                Some(old) => {
                    self.slots[old as usize] = Slot::EMPTY;
                    self.free.push(old);
                    self.eviction.moved(old, slot, entry.block);
                }
                None => self.eviction.inserted(slot, entry.block),
            }
        }
    }
}
