//! The sample storage grafts plugged into the real block cache
//! (`unikernel::storage::BlockCache` on the host doubles of
//! `unikernel::storage::testing`), each loaded from its `.wasm` module
//! through the graft runtime, each changing what the cache does,
//! measurably — and a graft that aborts changing nothing: the compiled-in
//! policy serves as if no graft had been there.
//!
//! The `.wasm` modules come from `graft_fixtures`, compiled from the
//! samples' current sources.
//! Each measuring test prints its figures (run with `--nocapture`).

use std::rc::Rc;

use graft_control::TrustedKeys;
use graft_host::storage::{
    CACHE_EVICT, CACHE_FILTER, CACHE_READAHEAD, GraftEviction, GraftFilter, GraftReadAhead,
};
use graft_host::{GraftHost, Shared};
use graft_runtime::testing::Ticks;
use graft_runtime::{AbortCause, Capabilities, FaultAction};
use unikernel::storage::testing::{CrashClock, DiskStats, MemDisk, MemMemory, block_on};
use unikernel::storage::{
    BLOCK_SIZE, Block, BlockCache, BlockFilter, CacheMemory, CacheStats, Durability,
    EvictionPolicy, Lru, NoReadAhead, Plain, Policies, ReadAhead, Sequential, Start,
};

/// A sample graft's module, compiled for this host.
fn module(name: &str) -> Vec<u8> {
    graft_runtime::compile(graft_fixtures::wasm(name), graft_runtime::Target::Native)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn host() -> Shared {
    GraftHost::new(Rc::new(Ticks::default()), TrustedKeys::from_hex("")).share()
}

/// Loads `bytes` on `point` straight through the runtime (the envelope
/// check is the management channel's business, tested with it).
fn load(host: &Shared, point: &str, bytes: &[u8], capabilities: &str) -> u32 {
    host.borrow_mut()
        .runtime()
        .load(point, bytes, Capabilities::parse(capabilities).unwrap())
        .unwrap_or_else(|e| panic!("loading on {point}: {e}"))
}

type Cache<'d, E, R, F> = BlockCache<MemMemory, &'d MemDisk, E, R, F>;

fn open<'d, E: EvictionPolicy, R: ReadAhead, F: BlockFilter>(
    slots: usize,
    disk: &'d MemDisk,
    policies: Policies<E, R, F>,
) -> Cache<'d, E, R, F> {
    let memory = MemMemory::for_slots(slots, CrashClock::new());
    let (cache, recovery) = block_on(BlockCache::open_with(
        memory,
        disk,
        Durability::Rio,
        policies,
    ))
    .expect("open");
    assert!(matches!(recovery.start, Start::Formatted(_)));
    assert_eq!(cache.slots() as usize, slots);
    cache
}

fn read<E: EvictionPolicy, R: ReadAhead, F: BlockFilter>(
    cache: &mut Cache<'_, E, R, F>,
    block: u64,
) -> Block {
    let mut out = [0u8; BLOCK_SIZE];
    block_on(cache.read(block, &mut out)).expect("read");
    out
}

/// A block that says which block it is, in every byte.
fn plaintext(block: u64) -> Block {
    let mut data = [0u8; BLOCK_SIZE];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = b"block #"[i % 7];
    }
    data[..8].copy_from_slice(&block.to_le_bytes());
    data
}

/// Reads `order` through a fresh cache of `slots` slots over a fresh disk;
/// the cache's and the disk's counts.
fn reads<E: EvictionPolicy, R: ReadAhead>(
    slots: usize,
    policies: Policies<E, R, Plain>,
    order: &[u64],
) -> (CacheStats, DiskStats) {
    let disk = MemDisk::new(1 << 16, CrashClock::new());
    let mut cache = open(slots, &disk, policies);
    for &block in order {
        let _ = read(&mut cache, block);
    }
    (cache.stats(), disk.stats())
}

const SLOTS: usize = 64;

/// A database's hot blocks (those below the sample's `HOT_BLOCKS`: its
/// metadata, say) read between table scans larger than the cache, for
/// `rounds` rounds: what LRU handles worst.
fn hot_set_and_scans(rounds: u64) -> Vec<u64> {
    let hot = graft_keep_hot::HOT_BLOCKS;
    let mut order = Vec::new();
    for round in 0..rounds {
        order.extend(0..hot);
        order.extend((0..3 * SLOTS as u64).map(|i| 1000 + round * 1000 + i));
        order.extend(0..hot);
    }
    order
}

fn lru_policies<R: ReadAhead>() -> Policies<Lru, R, Plain> {
    Policies::default()
}

#[test]
fn keep_hot_graft_raises_the_hit_rate_on_a_hot_set() {
    let order = hot_set_and_scans(20);
    let (lru, lru_disk) = reads(SLOTS, lru_policies::<NoReadAhead>(), &order);

    let host = host();
    let eviction = GraftEviction::new(&host, Lru::default()).unwrap();
    let policies = |eviction| Policies {
        eviction,
        readahead: NoReadAhead,
        filter: Plain,
    };
    // Declared, nothing loaded: exactly LRU.
    let (idle, _) = reads(SLOTS, policies(eviction), &order);
    assert_eq!(idle, lru, "an empty graft point changes nothing");

    let id = load(&host, CACHE_EVICT, &module("keep-hot"), "context");
    let eviction = GraftEviction::new(&host, Lru::default()).unwrap();
    let (hot, hot_disk) = reads(SLOTS, policies(eviction), &order);
    println!(
        "keep-hot, {} reads through {SLOTS} slots: hit rate LRU {:.1}% ({} blocks read) -> \
         graft {:.1}% ({} blocks read)",
        order.len(),
        lru.hit_rate(),
        lru_disk.blocks_read,
        hot.hit_rate(),
        hot_disk.blocks_read
    );
    assert!(hot.hits > lru.hits * 3 / 2, "{hot:?} vs {lru:?}");
    // Under the graft each hot block is read from the disk once only.
    let distinct = {
        let mut blocks = order.clone();
        blocks.sort_unstable();
        blocks.dedup();
        blocks.len() as u64
    };
    assert_eq!(hot_disk.blocks_read, distinct, "{hot:?}");
    assert!(lru_disk.blocks_read > distinct, "{lru:?}");
    let stats = host.borrow_mut().runtime().stats(id).unwrap();
    assert_eq!(stats.calls, hot.evictions, "one graft call per eviction");
    assert_eq!(stats.commits, stats.calls, "{stats:?}");
}

/// Every `stride`-th block from `start`, `count` of them (a column of a
/// table stored row by row).
fn column(start: u64, stride: u64, count: u64) -> Vec<u64> {
    (0..count).map(|i| start + i * stride).collect()
}

#[test]
fn strided_readahead_graft_turns_strided_misses_into_hits() {
    let order = column(5, 7, 500);
    let (sequential, sequential_disk) = reads(256, lru_policies::<Sequential>(), &order);

    let host = host();
    let readahead = GraftReadAhead::new(&host, Sequential::default()).unwrap();
    load(&host, CACHE_READAHEAD, &module("strided-readahead"), "maps");
    let policies = Policies {
        eviction: Lru::default(),
        readahead,
        filter: Plain,
    };
    let (strided, strided_disk) = reads(256, policies, &order);
    println!(
        "strided read-ahead, {} reads 7 blocks apart: Sequential {} hits / {} misses ({} blocks \
         read in {} requests) -> graft {} hits / {} misses ({} blocks read in {} requests)",
        order.len(),
        sequential.hits,
        sequential.misses,
        sequential_disk.blocks_read,
        sequential_disk.read_requests,
        strided.hits,
        strided.misses,
        strided_disk.blocks_read,
        strided_disk.read_requests
    );
    // Sequential read-ahead sees no run: every read waits for the disk.
    assert_eq!(sequential.misses, order.len() as u64, "{sequential:?}");
    // The graft learns the stride from the first reads, then keeps ahead.
    assert!(strided.misses * 10 < sequential.misses, "{strided:?}");
    assert!(strided.hit_rate() > 90.0, "{strided:?}");
    // And it fetches nothing the reader does not use, but the one block
    // past the end of the column.
    assert!(
        strided_disk.blocks_read <= sequential_disk.blocks_read + 1,
        "{strided_disk:?}"
    );
}

#[test]
fn cipher_graft_keeps_plaintext_off_the_disk_and_reads_round_trip() {
    let host = host();
    let filter = GraftFilter::new(&host, Plain).unwrap();
    let id = load(
        &host,
        CACHE_FILTER,
        &module("stream-cipher"),
        "context,context-write",
    );
    let disk = MemDisk::new(256, CrashClock::new());
    let policies = |filter| Policies {
        eviction: Lru::default(),
        readahead: Sequential::default(),
        filter,
    };
    // 16 slots, 40 blocks: most are written back on eviction, the rest on flush.
    let mut cache = open(16, &disk, policies(filter));
    for block in 0..40 {
        block_on(cache.write(block, &plaintext(block))).unwrap();
    }
    block_on(cache.flush()).unwrap();
    let mut differing = 0;
    for block in 0..40 {
        let on_disk = disk.raw(block);
        // Exactly the sample's keystream applied to the block.
        let mut expected = plaintext(block);
        graft_stream_cipher::apply(block, 0, &mut expected);
        assert_eq!(on_disk, expected, "block {block}");
        differing += on_disk
            .iter()
            .zip(plaintext(block))
            .filter(|(a, b)| **a != *b)
            .count();
    }
    let stats = host.borrow_mut().runtime().stats(id).unwrap();
    assert_eq!(
        stats.commits, 40,
        "one call per block written back: {stats:?}"
    );
    println!(
        "stream cipher: {differing} of {} bytes on the disk differ from the plaintext \
         ({} fuel per block)",
        40 * BLOCK_SIZE,
        stats.fuel_used / stats.calls
    );
    assert!(differing > 40 * BLOCK_SIZE * 9 / 10, "{differing}");

    // A cold cache with the graft reads the plaintext back...
    let filter = GraftFilter::new(&host, Plain).unwrap();
    let mut cold = open(16, &disk, policies(filter));
    for block in 0..40 {
        assert_eq!(read(&mut cold, block), plaintext(block), "block {block}");
    }
    // ...one without it, only the ciphertext.
    let mut plain = open(16, &disk, policies(GraftFilter::<Plain>::default()));
    assert_eq!(read(&mut plain, 3), disk.raw(3));
    assert_ne!(read(&mut plain, 3), plaintext(3));
}

#[test]
fn cipher_graft_encrypts_what_recovery_writes_back() {
    let host = host();
    load_cipher_point(&host);
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let mut cache = open(16, &disk, cipher_policies(&host));
    for block in 0..8 {
        block_on(cache.write(block, &plaintext(block))).unwrap();
    }
    assert_eq!(cache.dirty_blocks(), 8);
    assert_eq!(disk.stats().blocks_written, 0, "Rio: only in the cache");
    // A crash: the cache memory survives, the cache object does not.
    let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock);
    drop(cache);
    let (mut cache, recovery) = block_on(BlockCache::open_with(
        memory,
        &disk,
        Durability::Rio,
        cipher_policies(&host),
    ))
    .unwrap();
    assert_eq!(
        (recovery.start, recovery.written_back),
        (Start::Recovered, 8)
    );
    for block in 0..8 {
        let mut expected = plaintext(block);
        graft_stream_cipher::apply(block, 0, &mut expected);
        assert_eq!(disk.raw(block), expected, "block {block}");
        assert_eq!(read(&mut cache, block), plaintext(block));
    }
}

fn load_cipher_point(host: &Shared) {
    let _ = GraftFilter::new(host, Plain).unwrap();
    load(
        host,
        CACHE_FILTER,
        &module("stream-cipher"),
        "context,context-write",
    );
}

fn cipher_policies(host: &Shared) -> Policies<Lru, Sequential, GraftFilter<Plain>> {
    Policies {
        eviction: Lru::default(),
        readahead: Sequential::default(),
        filter: GraftFilter::new(host, Plain).unwrap(),
    }
}

fn compiled(text: &str) -> Vec<u8> {
    let module = wat::parse_str(text).expect("test module is valid WAT");
    graft_runtime::compile(&module, graft_runtime::Target::Native).expect("test module compiles")
}

/// The host state a graft could have changed, and the fault log.
fn host_state(host: &Shared) -> (Vec<Option<i64>>, usize, Vec<(AbortCause, FaultAction)>) {
    let mut host = host.borrow_mut();
    let runtime = host.runtime();
    let counters = (0..4).map(|i| runtime.state().counter(i)).collect();
    let maps = runtime
        .list()
        .iter()
        .map(|g| runtime.state().map_entries(g.id))
        .sum();
    let faults = runtime
        .faults()
        .entries()
        .map(|f| (f.cause, f.action))
        .collect();
    (counters, maps, faults)
}

#[test]
fn an_aborting_eviction_graft_falls_back_to_lru_and_changes_nothing() {
    let order = hot_set_and_scans(5);
    let (lru, lru_disk) = reads(SLOTS, lru_policies::<NoReadAhead>(), &order);
    let host = host();
    let eviction = GraftEviction::new(&host, Lru::default()).unwrap();
    // Changes two counters and a map entry, then panics (a trap).
    load(
        &host,
        CACHE_EVICT,
        &module("hostile-partial"),
        "counters,maps",
    );
    host.borrow_mut().runtime().state().set_counter(0, 11);
    let policies = Policies {
        eviction,
        readahead: NoReadAhead,
        filter: Plain,
    };
    let (grafted, grafted_disk) = reads(SLOTS, policies, &order);
    assert_eq!(
        (grafted, grafted_disk),
        (lru, lru_disk),
        "LRU served throughout"
    );
    let (counters, maps, faults) = host_state(&host);
    assert_eq!(counters[..2], [Some(11), Some(0)], "every change undone");
    assert_eq!(maps, 0);
    // It failed every call until the runtime unloaded it.
    assert!(faults.len() >= 2, "{faults:?}");
    assert!(
        faults
            .iter()
            .all(|(cause, _)| *cause == AbortCause::Unreachable)
    );
    assert_eq!(
        faults.last().unwrap().1,
        FaultAction::Unloaded,
        "{faults:?}"
    );
    assert!(!host.borrow_mut().runtime().is_grafted(CACHE_EVICT));
}

#[test]
fn an_aborting_readahead_graft_falls_back_to_sequential() {
    let scan: Vec<u64> = (0..1000).collect();
    let (sequential, sequential_disk) = reads(256, lru_policies::<Sequential>(), &scan);
    let host = host();
    let readahead = GraftReadAhead::new(&host, Sequential::default()).unwrap();
    // Records a map entry, then loops until its fuel runs out.
    let spin = compiled(
        r#"(module
             (import "rootstock" "map_put" (func $put (param i32 i64 i64)))
             (func (export "graft_main") (param i64) (result i64)
               (call $put (i32.const 0) (local.get 0) (i64.const 1))
               (loop $forever (br $forever))
               (i64.const -1)))"#,
    );
    load(&host, CACHE_READAHEAD, &spin, "maps");
    let policies = Policies {
        eviction: Lru::default(),
        readahead,
        filter: Plain,
    };
    let (grafted, grafted_disk) = reads(256, policies, &scan);
    assert_eq!((grafted, grafted_disk), (sequential, sequential_disk));
    let (_, maps, faults) = host_state(&host);
    assert_eq!(maps, 0, "the map entry was undone");
    assert!(
        faults
            .iter()
            .all(|(cause, _)| *cause == AbortCause::FuelExhausted)
    );
    assert_eq!(
        faults.last().unwrap().1,
        FaultAction::Unloaded,
        "{faults:?}"
    );
}

#[test]
fn an_aborting_filter_graft_leaves_the_block_as_it_was() {
    let host = host();
    let filter = GraftFilter::new(&host, Plain).unwrap();
    // Scribbles over the whole block, then traps: the runtime must undo
    // the scribble, and the block go to the disk as Plain leaves it.
    let scribble = compiled(
        r#"(module
             (import "rootstock" "ctx_write" (func $w (param i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "graft_main") (param i64) (result i32)
               (drop (call $w (i32.const 0) (i32.const 0) (i32.const 512)))
               unreachable))"#,
    );
    load(&host, CACHE_FILTER, &scribble, "context,context-write");
    let disk = MemDisk::new(64, CrashClock::new());
    let policies = Policies {
        eviction: Lru::default(),
        readahead: Sequential::default(),
        filter,
    };
    let mut cache = open(8, &disk, policies);
    for block in 0..4 {
        block_on(cache.write(block, &plaintext(block))).unwrap();
    }
    block_on(cache.flush()).unwrap();
    for block in 0..4 {
        assert_eq!(disk.raw(block), plaintext(block), "block {block}");
    }
    let (_, _, faults) = host_state(&host);
    assert!(!faults.is_empty());
    assert!(
        faults
            .iter()
            .all(|(cause, _)| *cause == AbortCause::Unreachable)
    );
}
