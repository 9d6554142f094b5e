//! Crash at every step: a workload of writes (single and batched), reads
//! and flushes on a small cache (so that evictions and write-backs happen)
//! is stopped after its n-th mutation of memory or disk — for every n, with
//! the n-th mutation dropped or torn (after one byte, mid-block, after one
//! block of a multi-block disk write; disks write whole sectors) — and the
//! cache is then reopened on what survived. Every block must read back as
//! its last acknowledged write (or the write in flight), on the disk as
//! well as through the cache, and no dirty block may be reported lost. The
//! same again with a second crash at every step of the recovery.

use alloc::collections::BTreeMap;

use super::testing::{CrashClock, MemDisk, MemMemory, block_on};
use super::tests::{memory_for, pattern};
use super::*;

const BLOCKS: u64 = 12;
const SLOTS: usize = 7;

#[derive(Clone, Copy, Debug)]
enum Op {
    Write(u64, u32),
    /// Two neighbouring blocks in one `write_many`.
    Pair(u64, u32),
    Read(u64),
    Flush,
}

/// 60 operations over 12 blocks, with two flushes (a fixed pseudo-random
/// sequence: reproducible).
fn workload() -> Vec<Op> {
    let mut state = 0x2545_f491_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    (0..60u32)
        .map(|i| match (i, next() % 4) {
            (25 | 45, _) => Op::Flush,
            (_, 0) => Op::Read(u64::from(next()) % BLOCKS),
            (_, 1) => Op::Pair(u64::from(next()) % (BLOCKS - 1), i + 1),
            _ => Op::Write(u64::from(next()) % BLOCKS, i + 1),
        })
        .collect()
}

type Cache<'d> = BlockCache<MemMemory, &'d MemDisk, Lru, Sequential, Plain>;

/// What a run established before the crash.
#[derive(Default)]
struct Outcome {
    acked: BTreeMap<u64, u32>,
    in_flight: Vec<(u64, u32)>,
}

fn expected(block: u64, version: Option<u32>) -> Block {
    version.map_or([0; BLOCK_SIZE], |v| pattern(block, v))
}

/// Runs the workload until the clock has crashed.
fn run(cache: &mut Cache, clock: &CrashClock) -> Outcome {
    let mut outcome = Outcome::default();
    for op in workload() {
        match op {
            Op::Write(block, version) => {
                block_on(cache.write(block, &pattern(block, version))).unwrap();
                if clock.crashed() {
                    outcome.in_flight = vec![(block, version)];
                    break;
                }
                outcome.acked.insert(block, version);
            }
            Op::Pair(block, version) => {
                let (a, b) = (pattern(block, version), pattern(block + 1, version));
                block_on(cache.write_many(&[(block, &a), (block + 1, &b)])).unwrap();
                let written = [(block, version), (block + 1, version)];
                if clock.crashed() {
                    outcome.in_flight = written.to_vec();
                    break;
                }
                outcome.acked.extend(written);
            }
            Op::Read(block) => {
                let mut data = [0; BLOCK_SIZE];
                block_on(cache.read(block, &mut data)).unwrap();
                if !clock.crashed() {
                    let version = outcome.acked.get(&block).copied();
                    assert_eq!(data, expected(block, version), "read {block}");
                }
            }
            Op::Flush => {
                block_on(cache.flush()).unwrap();
            }
        }
        if clock.crashed() {
            break;
        }
    }
    outcome
}

/// Reopens the cache on what the crash left and checks every block.
fn verify(memory: MemMemory, disk: &MemDisk, mode: Durability, outcome: &Outcome, what: &str) {
    let (mut cache, recovery): (Cache, _) = block_on(BlockCache::open(memory, disk, mode)).unwrap();
    assert_eq!(recovery.lost_dirty, 0, "{what}: {recovery:?}");
    for block in 0..BLOCKS {
        let acked = expected(block, outcome.acked.get(&block).copied());
        let in_flight = outcome
            .in_flight
            .iter()
            .find(|&&(b, _)| b == block)
            .map(|&(b, version)| pattern(b, version));
        let mut data = [0; BLOCK_SIZE];
        block_on(cache.read(block, &mut data)).unwrap();
        assert!(
            data == acked || Some(data) == in_flight,
            "{what}: block {block} reads version {:?}, acknowledged {:?}",
            u32::from_le_bytes(data[8..12].try_into().unwrap()),
            outcome.acked.get(&block)
        );
        assert_eq!(disk.raw(block), data, "{what}: block {block} on the disk");
    }
}

/// The workload from a freshly formatted cache, crashing after `limit`
/// mutations (the last one torn to `torn` bytes).
fn crash_run(
    mode: Durability,
    limit: u64,
    torn: usize,
) -> (MemMemory, MemDisk, CrashClock, Outcome) {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) =
        block_on(BlockCache::open(memory_for(SLOTS, &clock), &disk, mode)).unwrap();
    clock.crash_after(clock.ticks() + limit, torn);
    let outcome = run(&mut cache, &clock);
    let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
    drop(cache);
    clock.reset();
    (memory, disk, clock, outcome)
}

/// Mutations the whole workload makes.
fn total_mutations(mode: Durability) -> u64 {
    let clock = CrashClock::new();
    let disk = MemDisk::new(64, clock.clone());
    let (mut cache, _): (Cache, _) =
        block_on(BlockCache::open(memory_for(SLOTS, &clock), &disk, mode)).unwrap();
    let start = clock.ticks();
    let outcome = run(&mut cache, &clock);
    assert!(outcome.in_flight.is_empty());
    clock.ticks() - start
}

fn crash_everywhere(mode: Durability) {
    let total = total_mutations(mode);
    assert!(total > 150, "the workload must exercise the cache: {total}");
    for limit in 0..=total {
        for torn in [0, 1, 300, 700] {
            let (memory, disk, _, outcome) = crash_run(mode, limit, torn);
            let what = format!("{mode:?} crash after {limit}/{total} torn {torn}");
            verify(memory, &disk, mode, &outcome, &what);
        }
    }
}

#[test]
fn rio_mode_loses_nothing_acknowledged_at_any_crash_point() {
    crash_everywhere(Durability::Rio);
}

#[test]
fn write_through_mode_loses_nothing_at_any_crash_point() {
    crash_everywhere(Durability::WriteThrough);
}

#[test]
fn a_crash_during_recovery_is_recovered_too() {
    let total = total_mutations(Durability::Rio);
    for limit in (0..=total).step_by(7) {
        // How many mutations a full recovery makes from this point.
        let (memory, disk, clock, _) = crash_run(Durability::Rio, limit, 0);
        let _ = block_on(Cache::open(memory, &disk, Durability::Rio)).unwrap();
        let steps = clock.ticks();
        for second in 0..steps {
            let (memory, disk, clock, outcome) = crash_run(Durability::Rio, limit, 0);
            clock.crash_after(second, 1);
            let (cache, _) = block_on(Cache::open(memory, &disk, Durability::Rio)).unwrap();
            let memory = MemMemory::from_bytes(cache.memory().bytes().to_vec(), clock.clone());
            drop(cache);
            clock.reset();
            let what = format!("crash after {limit}, again at recovery step {second}/{steps}");
            verify(memory, &disk, Durability::Rio, &outcome, &what);
        }
    }
}
