//! Host doubles for the cache's disk and memory: [`MemDisk`] and
//! [`MemMemory`] share a [`CrashClock`], so a test can stop every mutation
//! after the n-th one (a simulated crash at any step, even in the middle of
//! a write: a torn write) and then reopen the cache on what survived.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::device::{BLOCK_SIZE, Block, CacheMemory, DeviceError, Disk};

/// Counts mutations (memory and disk writes) and stops applying them after
/// a limit: everything after the limit "never happened", as after a crash.
/// The mutation at the limit can be applied in part (a torn write).
#[derive(Clone, Default)]
pub struct CrashClock(Rc<ClockState>);

#[derive(Default)]
struct ClockState {
    ticks: Cell<u64>,
    limit: Cell<Option<u64>>,
    torn_bytes: Cell<usize>,
}

/// How much of one mutation to apply.
enum Apply {
    All,
    Prefix(usize),
    Nothing,
}

impl CrashClock {
    /// A clock with no limit.
    pub fn new() -> CrashClock {
        CrashClock::default()
    }

    /// Crash after `mutations` mutations; the next one keeps only its first
    /// `torn_bytes` bytes (0: none of it).
    pub fn crash_after(&self, mutations: u64, torn_bytes: usize) {
        self.0.limit.set(Some(mutations));
        self.0.torn_bytes.set(torn_bytes);
    }

    /// Mutations so far (counting those dropped after the crash).
    pub fn ticks(&self) -> u64 {
        self.0.ticks.get()
    }

    /// Whether the crash point has been reached.
    pub fn crashed(&self) -> bool {
        self.0.limit.get().is_some_and(|limit| self.ticks() > limit)
    }

    /// Lifts the limit and the count (the machine "reboots").
    pub fn reset(&self) {
        self.0.limit.set(None);
        self.0.ticks.set(0);
    }

    fn tick(&self) -> Apply {
        let tick = self.0.ticks.get();
        self.0.ticks.set(tick + 1);
        match self.0.limit.get() {
            Some(limit) if tick > limit => Apply::Nothing,
            Some(limit) if tick == limit => Apply::Prefix(self.0.torn_bytes.get()),
            _ => Apply::All,
        }
    }

    /// Applies one mutation; a torn one keeps a prefix of `unit`-byte
    /// pieces (1 for memory; a block for disks, whose sector writes are
    /// atomic).
    fn apply(&self, destination: &mut [u8], data: &[u8], unit: usize) {
        match self.tick() {
            Apply::All => destination.copy_from_slice(data),
            Apply::Prefix(n) => {
                let n = (n / unit * unit).min(data.len());
                destination[..n].copy_from_slice(&data[..n]);
            }
            Apply::Nothing => {}
        }
    }
}

/// An in-memory disk for host tests, counting requests.
pub struct MemDisk {
    blocks: RefCell<Vec<u8>>,
    clock: CrashClock,
    stats: Cell<DiskStats>,
    fail: Cell<bool>,
}

/// What a [`MemDisk`] was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub read_requests: u64,
    pub blocks_read: u64,
    pub write_requests: u64,
    pub blocks_written: u64,
    pub flushes: u64,
}

impl MemDisk {
    pub fn new(blocks: u64, clock: CrashClock) -> MemDisk {
        MemDisk {
            blocks: RefCell::new(vec![0; blocks as usize * BLOCK_SIZE]),
            clock,
            stats: Cell::new(DiskStats::default()),
            fail: Cell::new(false),
        }
    }

    /// The raw contents of `block` (what is really on the disk).
    pub fn raw(&self, block: u64) -> Block {
        let start = block as usize * BLOCK_SIZE;
        self.blocks.borrow()[start..start + BLOCK_SIZE]
            .try_into()
            .expect("one block")
    }

    pub fn stats(&self) -> DiskStats {
        self.stats.get()
    }

    /// Makes every later request fail (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.set(fail);
    }

    fn range(&self, block: u64, len: usize) -> Result<core::ops::Range<usize>, DeviceError> {
        assert!(
            len > 0 && len.is_multiple_of(BLOCK_SIZE) && len / BLOCK_SIZE <= Self::MAX_BLOCKS,
            "bad buffer of {len} bytes"
        );
        if self.fail.get() {
            return Err(DeviceError::Failed);
        }
        let start = usize::try_from(block)
            .ok()
            .and_then(|b| b.checked_mul(BLOCK_SIZE))
            .ok_or(DeviceError::OutOfRange)?;
        let end = start + len;
        if end > self.blocks.borrow().len() {
            return Err(DeviceError::OutOfRange);
        }
        Ok(start..end)
    }

    fn count(&self, f: impl FnOnce(&mut DiskStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

impl Disk for MemDisk {
    const MAX_BLOCKS: usize = 128;

    fn capacity_blocks(&self) -> u64 {
        (self.blocks.borrow().len() / BLOCK_SIZE) as u64
    }

    async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let range = self.range(block, buf.len())?;
        buf.copy_from_slice(&self.blocks.borrow()[range]);
        self.count(|s| {
            s.read_requests += 1;
            s.blocks_read += (buf.len() / BLOCK_SIZE) as u64;
        });
        Ok(())
    }

    async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let range = self.range(block, buf.len())?;
        self.clock
            .apply(&mut self.blocks.borrow_mut()[range], buf, BLOCK_SIZE);
        self.count(|s| {
            s.write_requests += 1;
            s.blocks_written += (buf.len() / BLOCK_SIZE) as u64;
        });
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.count(|s| s.flushes += 1);
        Ok(())
    }
}

/// Crash-surviving memory for host tests: a `Vec` whose writes go through
/// a [`CrashClock`]. Clone the bytes to "reboot" with them.
pub struct MemMemory {
    bytes: Vec<u8>,
    clock: CrashClock,
    writes: u64,
}

impl MemMemory {
    pub fn new(len: usize, clock: CrashClock) -> MemMemory {
        MemMemory::from_bytes(vec![0; len], clock)
    }

    /// Memory for a cache of exactly `slots` slots (registry, alignment
    /// and data; see [`super::registry::Geometry`]).
    pub fn for_slots(slots: usize, clock: CrashClock) -> MemMemory {
        let entries = super::registry::HEADER_LEN + slots * super::registry::ENTRY_LEN;
        MemMemory::new(entries.next_multiple_of(4096) + slots * BLOCK_SIZE, clock)
    }

    /// Memory that holds what a previous boot left.
    pub fn from_bytes(bytes: Vec<u8>, clock: CrashClock) -> MemMemory {
        MemMemory {
            bytes,
            clock,
            writes: 0,
        }
    }

    /// Calls to [`CacheMemory::write`] so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Changes a byte behind the cache's back (a wild write that protection
    /// would have stopped; tests use it to prove the checksums catch it).
    pub fn corrupt(&mut self, offset: usize) {
        self.bytes[offset] ^= 0xff;
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl CacheMemory for MemMemory {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        self.writes += 1;
        self.clock
            .apply(&mut self.bytes[offset..offset + data.len()], data, 1);
    }
}

/// Runs a future that never waits (everything here completes at once).
/// Panics if it does wait: host doubles never make a future pend.
pub fn block_on<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        core::task::Poll::Ready(output) => output,
        core::task::Poll::Pending => panic!("a host storage future waited"),
    }
}
