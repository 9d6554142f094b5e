//! The cache's behaviour on the host doubles: round trips, durability
//! modes, eviction with write-back, checksums catching damage, and each
//! policy point changing what the cache does, measurably.

use super::testing::{CrashClock, MemDisk, MemMemory, block_on};
use super::*;

/// Memory for `slots` slots (plus registry and alignment).
pub(super) fn memory_for(slots: usize, clock: &CrashClock) -> MemMemory {
    let len = (registry::HEADER_LEN + slots * 32).next_multiple_of(4096) + slots * BLOCK_SIZE;
    MemMemory::new(len, clock.clone())
}

/// A block whose every byte says which block and which version it is.
pub(super) fn pattern(block: u64, version: u32) -> Block {
    let mut data = [0u8; BLOCK_SIZE];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (block as u32)
            .wrapping_mul(31)
            .wrapping_add(version.wrapping_mul(7))
            .wrapping_add(i as u32) as u8;
    }
    data[..8].copy_from_slice(&block.to_le_bytes());
    data[8..12].copy_from_slice(&version.to_le_bytes());
    data
}

type Cache<'d, E = Lru, R = Sequential, F = Plain> = BlockCache<MemMemory, &'d MemDisk, E, R, F>;

fn open<'d, E: EvictionPolicy, R: ReadAhead, F: BlockFilter>(
    memory: MemMemory,
    disk: &'d MemDisk,
    mode: Durability,
) -> (Cache<'d, E, R, F>, Recovery) {
    block_on(BlockCache::open(memory, disk, mode)).expect("open")
}

fn read<M: CacheMemory, D: Disk, E: EvictionPolicy, R: ReadAhead, F: BlockFilter>(
    cache: &mut BlockCache<M, D, E, R, F>,
    block: u64,
) -> Block {
    let mut out = [0u8; BLOCK_SIZE];
    block_on(cache.read(block, &mut out)).expect("read");
    out
}

#[test]
fn cold_memory_is_formatted_and_round_trips() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(256, clock.clone());
    let (mut cache, recovery): (Cache, _) = open(memory_for(16, &clock), &disk, Durability::Rio);
    assert_eq!(recovery.start, Start::Formatted(FormatReason::Cold));
    assert_eq!(cache.slots(), 16);
    block_on(cache.write(3, &pattern(3, 1))).unwrap();
    assert_eq!(read(&mut cache, 3), pattern(3, 1));
    assert_eq!(cache.stats().hits, 1);
    // Rio: acknowledged in the cache, not yet on the disk.
    assert_eq!(disk.raw(3), [0; BLOCK_SIZE]);
    assert_eq!(cache.dirty_blocks(), 1);
    assert_eq!(block_on(cache.flush()), Ok(1));
    assert_eq!(disk.raw(3), pattern(3, 1));
    assert_eq!(cache.dirty_blocks(), 0);
    assert_eq!(
        block_on(cache.write(256, &pattern(0, 0))),
        Err(CacheError::OutOfRange)
    );
}

#[test]
fn write_through_reaches_the_disk_before_the_ack() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::WriteThrough);
    block_on(cache.write(5, &pattern(5, 2))).unwrap();
    assert_eq!(disk.raw(5), pattern(5, 2));
    assert_eq!(disk.stats().flushes, 1);
    assert_eq!(cache.dirty_blocks(), 0);
    assert_eq!(read(&mut cache, 5), pattern(5, 2));
}

#[test]
fn eviction_writes_dirty_blocks_back_and_bytes_span_blocks() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(512, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::Rio);
    for block in 0..40 {
        block_on(cache.write(block, &pattern(block, 1))).unwrap();
    }
    assert!(cache.stats().evictions >= 32);
    // Evicting the oldest block writes back its dirty successors with it.
    assert!(disk.stats().blocks_written >= 32);
    assert!(disk.stats().write_requests <= 5, "{:?}", disk.stats());
    for block in 0..40 {
        assert_eq!(read(&mut cache, block), pattern(block, 1), "block {block}");
    }
    // A byte range across three blocks, written and read back.
    let text: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
    block_on(cache.write_bytes(100 * 512 + 300, &text)).unwrap();
    let mut back = vec![0u8; text.len()];
    block_on(cache.read_bytes(100 * 512 + 300, &mut back)).unwrap();
    assert_eq!(back, text);
    assert_eq!(read(&mut cache, 100)[..300], [0u8; 300]);
}

#[test]
fn a_failing_disk_is_an_error_and_keeps_dirty_data() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(4, &clock), &disk, Durability::Rio);
    for block in 0..4 {
        block_on(cache.write(block, &pattern(block, 1))).unwrap();
    }
    disk.set_failing(true);
    // The cache is full of dirty blocks: a fifth needs a write-back.
    assert_eq!(
        block_on(cache.write(9, &pattern(9, 1))),
        Err(CacheError::Device(DeviceError::Failed))
    );
    disk.set_failing(false);
    for block in 0..4 {
        assert_eq!(read(&mut cache, block), pattern(block, 1));
    }
}

#[test]
fn recovery_writes_dirty_blocks_back_and_keeps_clean_ones() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(16, &clock), &disk, Durability::Rio);
    block_on(cache.write(1, &pattern(1, 1))).unwrap();
    block_on(cache.flush()).unwrap();
    block_on(cache.write(1, &pattern(1, 2))).unwrap();
    block_on(cache.write(2, &pattern(2, 1))).unwrap();
    let _ = read(&mut cache, 7);
    // "Crash": the memory survives, the cache object does not.
    let bytes = cache.memory().bytes().to_vec();
    drop(cache);
    let memory = MemMemory::from_bytes(bytes, clock.clone());
    let (mut cache, recovery): (Cache, _) = open(memory, &disk, Durability::Rio);
    assert_eq!(recovery.start, Start::Recovered);
    assert_eq!(recovery.blocks, 3);
    assert_eq!(recovery.written_back, 2);
    assert_eq!(recovery.lost_dirty, 0);
    assert_eq!(disk.raw(1), pattern(1, 2));
    assert_eq!(disk.raw(2), pattern(2, 1));
    assert_eq!(read(&mut cache, 1), pattern(1, 2));
    assert_eq!(cache.stats().hits, 1, "recovered blocks stay cached");
}

#[test]
fn checksums_catch_what_protection_would_have_stopped() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::Rio);
    block_on(cache.write(1, &pattern(1, 1))).unwrap(); // slot 0, dirty
    block_on(cache.write(2, &pattern(2, 1))).unwrap(); // slot 1, made clean
    block_on(cache.write(3, &pattern(3, 1))).unwrap(); // slot 2
    block_on(cache.flush()).unwrap();
    block_on(cache.write(1, &pattern(1, 2))).unwrap(); // slot 3, dirty again
    let geometry = registry::Geometry::for_len(cache.memory().len()).unwrap();
    let mut memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
    drop(cache);
    memory.corrupt(geometry.data_offset(3) + 10); // block 1's new data
    memory.corrupt(geometry.data_offset(1)); // block 2's clean data
    memory.corrupt(geometry.entry_offset(2) + 3); // block 3's entry
    let (mut cache, recovery): (Cache, _) = open(memory, &disk, Durability::Rio);
    assert_eq!(recovery.lost_dirty, 1);
    assert_eq!(recovery.dropped_clean, 1);
    assert_eq!(recovery.invalid_entries, 1);
    // Clean damage costs nothing: the disk has the block.
    assert_eq!(read(&mut cache, 2), pattern(2, 1));
    assert_eq!(read(&mut cache, 3), pattern(3, 1));
}

#[test]
fn a_registry_for_another_disk_is_not_trusted() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::Rio);
    block_on(cache.write(1, &pattern(1, 1))).unwrap();
    let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
    let other = MemDisk::new(128, clock.clone());
    let (mut cache, recovery): (Cache, _) = open(memory, &other, Durability::Rio);
    assert_eq!(recovery.start, Start::Formatted(FormatReason::OtherCache));
    assert_eq!(read(&mut cache, 1), [0; BLOCK_SIZE]);
}

/// Reads blocks in `order` through a 256-slot cache and returns its stats.
fn run_reads<E: EvictionPolicy, R: ReadAhead>(order: &[u64]) -> CacheStats {
    let clock = CrashClock::new();
    let disk = MemDisk::new(32_768, clock.clone());
    let (mut cache, _): (Cache<E, R>, _) = open(memory_for(256, &clock), &disk, Durability::Rio);
    for &block in order {
        let _ = read(&mut cache, block);
    }
    cache.stats()
}

#[test]
fn sequential_read_ahead_cuts_misses_on_a_scan() {
    let scan: Vec<u64> = (0..2000).collect();
    let none = run_reads::<Lru, NoReadAhead>(&scan);
    let sequential = run_reads::<Lru, Sequential>(&scan);
    assert_eq!(none.misses, 2000);
    assert_eq!(none.read_requests, 2000);
    assert!(sequential.misses < 50, "{sequential:?}");
    assert!(sequential.hit_rate() > 95.0);
    assert!(sequential.blocks_read >= 2000 && sequential.blocks_read < 2100);
}

#[test]
fn strided_read_ahead_turns_a_strided_scan_into_hits() {
    let column: Vec<u64> = (0..500).map(|i| i * 8).collect();
    let sequential = run_reads::<Lru, Sequential>(&column);
    let strided = run_reads::<Lru, Strided>(&column);
    assert_eq!(sequential.hits, 0, "{sequential:?}");
    assert!(strided.hit_rate() > 85.0, "{strided:?}");
    // Strided fetches only blocks it will use; sequential would not help.
    assert!(strided.blocks_read <= 500 + 16);
}

#[test]
fn keep_hot_eviction_keeps_a_working_set_through_scans() {
    let mut order = Vec::new();
    for round in 0..20u64 {
        for _ in 0..3 {
            order.extend(0..32);
        }
        order.extend((0..1000).map(|i| 5000 + round * 1000 + i));
    }
    let lru = run_reads::<Lru, NoReadAhead>(&order);
    let hot = run_reads::<KeepHot, NoReadAhead>(&order);
    // LRU loses the working set to every scan: only the repeats hit.
    assert_eq!(lru.hits, 2 * 32 * 20, "{lru:?}");
    assert_eq!(hot.hits, 2 * 32 + 3 * 32 * 19, "{hot:?}");
    assert_eq!(lru.blocks_read - hot.blocks_read, 32 * 19);
}

/// A stand-in for the encryption sample graft: XOR with a keystream that
/// depends on the block number (not cryptography; it shows the point).
#[derive(Default)]
struct XorFilter;

impl BlockFilter for XorFilter {
    const NAME: &'static str = "xor";
    fn encode(&mut self, block: u64, data: &mut Block) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= (block as u8).wrapping_mul(17) ^ (i as u8).wrapping_mul(29) ^ 0x5a;
        }
    }
    fn decode(&mut self, block: u64, data: &mut Block) {
        self.encode(block, data);
    }
}

#[test]
fn a_filter_changes_what_reaches_the_disk_not_what_the_user_sees() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache<Lru, Sequential, XorFilter>, _) =
        open(memory_for(8, &clock), &disk, Durability::Rio);
    for block in 0..20 {
        block_on(cache.write(block, &pattern(block, 1))).unwrap();
    }
    block_on(cache.flush()).unwrap();
    for block in 0..20 {
        assert_ne!(disk.raw(block), pattern(block, 1), "plaintext on disk");
    }
    // A cold cache over the same disk reads the plaintext back.
    let (mut cold, _): (Cache<Lru, Sequential, XorFilter>, _) =
        open(memory_for(8, &clock), &disk, Durability::Rio);
    for block in 0..20 {
        assert_eq!(read(&mut cold, block), pattern(block, 1));
    }
    // Without the filter, the same writes land as plaintext.
    let plain_disk = MemDisk::new(64, clock.clone());
    let (mut plain, _): (Cache, _) = open(memory_for(8, &clock), &plain_disk, Durability::Rio);
    block_on(plain.write(4, &pattern(4, 1))).unwrap();
    block_on(plain.flush()).unwrap();
    assert_eq!(plain_disk.raw(4), pattern(4, 1));
}

#[test]
fn a_batch_of_writes_is_one_ack_and_one_flush() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::WriteThrough);
    let (a, b, c) = (pattern(10, 1), pattern(11, 1), pattern(10, 2));
    block_on(cache.write_many(&[(10, &a), (11, &b), (10, &c)])).unwrap();
    // Block 10's last data wins; both blocks went out as one request.
    assert_eq!(read(&mut cache, 10), c);
    assert_eq!(disk.raw(10), c);
    assert_eq!(disk.raw(11), b);
    assert_eq!(disk.stats().write_requests, 1);
    assert_eq!(disk.stats().flushes, 1);
    assert_eq!(cache.stats().writes, 2);
    assert_eq!(
        block_on(cache.write_many(&[(1, &a), (64, &b)])),
        Err(CacheError::OutOfRange)
    );
    assert_eq!(
        read(&mut cache, 1),
        [0; BLOCK_SIZE],
        "nothing of a refused batch"
    );
}

#[test]
fn flush_range_and_discard_touch_only_their_blocks() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(16, &clock), &disk, Durability::Rio);
    for block in 0..8 {
        block_on(cache.write(block, &pattern(block, 1))).unwrap();
    }
    assert_eq!(block_on(cache.flush_range(2..4)), Ok(2));
    assert_eq!(disk.raw(2), pattern(2, 1));
    assert_eq!(
        disk.raw(4),
        [0; BLOCK_SIZE],
        "outside the range: still only cached"
    );
    assert_eq!(disk.stats().flushes, 1);
    // Blocks 4..8 become garbage: dropped, dirty as they are.
    assert_eq!(cache.discard(4..8), 4);
    assert_eq!(cache.dirty_blocks(), 2);
    assert_eq!(read(&mut cache, 5), [0; BLOCK_SIZE], "the disk's version");
    // A crash now must not bring them back either.
    let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
    drop(cache);
    let (mut cache, recovery): (Cache, _) = open(memory, &disk, Durability::Rio);
    assert_eq!(recovery.written_back, 2, "blocks 0 and 1 only");
    assert_eq!(disk.raw(6), [0; BLOCK_SIZE]);
    assert_eq!(read(&mut cache, 1), pattern(1, 1));
}

#[test]
fn create_formats_whatever_the_memory_holds() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) = open(memory_for(8, &clock), &disk, Durability::Rio);
    block_on(cache.write(1, &pattern(1, 1))).unwrap();
    let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
    let mut fresh: Cache = BlockCache::create(memory, &disk, Durability::Rio).unwrap();
    assert_eq!(fresh.dirty_blocks(), 0);
    assert_eq!(read(&mut fresh, 1), [0; BLOCK_SIZE]);
}

/// Proposes the next block on every hit (a policy that keeps ahead of a
/// reader while it hits).
#[derive(Default)]
struct NextOnHit;

impl ReadAhead for NextOnHit {
    const NAME: &'static str = "next-on-hit";
    fn on_miss(&mut self, block: u64) -> Window {
        Window {
            start: block,
            count: 2,
            stride: 1,
        }
    }
    fn on_hit(&mut self, block: u64) -> Option<Window> {
        Some(Window::single(block + 1))
    }
}

#[test]
fn read_ahead_proposed_on_a_hit_is_fetched_and_its_failure_is_no_error() {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache<Lru, NextOnHit>, _) =
        open(memory_for(16, &clock), &disk, Durability::Rio);
    for block in 0..10 {
        let _ = read(&mut cache, block);
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (1, 9), "{stats:?}");
    assert_eq!(stats.blocks_read, 11);
    assert_eq!(stats.prefetched, 10);
    // Past the end of the disk, or with the disk failing: the hit is served.
    let _ = read(&mut cache, 63);
    assert_eq!(read(&mut cache, 63), [0; BLOCK_SIZE]);
    assert!(!cache.contains(11));
    disk.set_failing(true);
    let _ = read(&mut cache, 10);
    assert_eq!(cache.stats().hits, 11);
    assert!(
        !cache.contains(11),
        "the failed prefetch left nothing behind"
    );
}
