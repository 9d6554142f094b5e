//! The host state grafts may touch, and the transactions that make every
//! change undoable.
//!
//! Each graft call runs in a [`Txn`]. Every mutating accessor first writes
//! an undo record; abort replays the records in reverse (VINO's undo call
//! stack), releases the transaction's locks and frees what it allocated.
//! Transactions nest: a graft that triggers another graft's call opens an
//! inner transaction; the inner abort undoes only the inner work, the inner
//! commit hands its records and locks to the outer one, and only the
//! outermost commit makes everything durable. Locks are two-phase: taken
//! through the `lock` accessor, held until the outermost commit or abort.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::fault::AbortCause;

/// Bounds on what one graft may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Undo records in one (outermost) transaction.
    pub undo_records: usize,
    /// Entries in one of a graft's maps.
    pub map_entries: usize,
    /// Maps per graft.
    pub maps: i32,
    /// Bytes of tracked buffers per graft.
    pub buffer_bytes: usize,
    /// How long to wait for a contested lock.
    pub lock_timeout_ns: u64,
    /// Lock ids available (0..locks).
    pub locks: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            undo_records: 4096,
            map_entries: 1024,
            maps: 8,
            buffer_bytes: 64 * 1024,
            lock_timeout_ns: 1_000_000,
            locks: 64,
        }
    }
}

/// The clock, passed in by the host.
pub trait Clock {
    fn now_ns(&self) -> u64;
}

/// Identifies an installed graft for the life of the runtime.
pub type GraftId = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Undo {
    Context {
        offset: usize,
        old: Vec<u8>,
    },
    Map {
        graft: GraftId,
        map: i32,
        key: i64,
        old: Option<i64>,
    },
    Counter {
        index: usize,
        old: i64,
    },
    Buffer {
        handle: i32,
    },
    BufferFreed {
        handle: i32,
        owner: GraftId,
        bytes: Vec<u8>,
    },
}

/// One (possibly nested) transaction.
#[derive(Debug)]
struct Txn {
    graft: GraftId,
    undo: Vec<Undo>,
    locks: Vec<i32>,
}

/// A tracked buffer.
#[derive(Debug)]
struct Buffer {
    owner: GraftId,
    bytes: Vec<u8>,
}

/// Everything grafts can change, plus the open transactions.
pub struct HostState {
    /// The current call's context bytes (e.g. a packet).
    pub(crate) context: Vec<u8>,
    /// Host counters (the point's typed state).
    counters: Vec<i64>,
    maps: BTreeMap<(GraftId, i32), BTreeMap<i64, i64>>,
    buffers: Vec<Option<Buffer>>,
    /// Lock id → depth of the transaction holding it (usize::MAX: the host).
    lock_holders: BTreeMap<i32, usize>,
    txns: Vec<Txn>,
    pub(crate) limits: Limits,
    clock: alloc::rc::Rc<dyn Clock>,
}

impl HostState {
    pub fn new(counters: usize, limits: Limits, clock: alloc::rc::Rc<dyn Clock>) -> HostState {
        HostState {
            context: Vec::new(),
            counters: alloc::vec![0; counters],
            maps: BTreeMap::new(),
            buffers: Vec::new(),
            lock_holders: BTreeMap::new(),
            txns: Vec::new(),
            limits,
            clock,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    // ----- transactions -------------------------------------------------

    /// Opens a (nested) transaction for `graft`.
    pub fn begin(&mut self, graft: GraftId) {
        self.txns.push(Txn {
            graft,
            undo: Vec::new(),
            locks: Vec::new(),
        });
    }

    /// Transaction nesting depth (0: none open).
    pub fn depth(&self) -> usize {
        self.txns.len()
    }

    /// Commits the innermost transaction.
    pub fn commit(&mut self) {
        let txn = self.txns.pop().expect("commit without a transaction");
        match self.txns.last_mut() {
            Some(outer) => {
                // Durable only when the outer transaction commits.
                outer.undo.extend(txn.undo);
                for lock in txn.locks {
                    self.lock_holders.insert(lock, self.txns.len() - 1);
                    self.txns.last_mut().expect("outer").locks.push(lock);
                }
            }
            None => {
                for lock in txn.locks {
                    self.lock_holders.remove(&lock);
                }
            }
        }
    }

    /// Aborts the innermost transaction: undo in reverse, release, free.
    pub fn abort(&mut self) {
        let txn = self.txns.pop().expect("abort without a transaction");
        for record in txn.undo.into_iter().rev() {
            match record {
                Undo::Context { offset, old } => {
                    self.context[offset..offset + old.len()].copy_from_slice(&old);
                }
                Undo::Map {
                    graft,
                    map,
                    key,
                    old,
                } => {
                    let entries = self.maps.entry((graft, map)).or_default();
                    match old {
                        Some(value) => entries.insert(key, value),
                        None => entries.remove(&key),
                    };
                    if entries.is_empty() {
                        self.maps.remove(&(graft, map));
                    }
                }
                Undo::Counter { index, old } => self.counters[index] = old,
                Undo::Buffer { handle } => {
                    if let Some(slot) = self.buffers.get_mut(handle as usize) {
                        *slot = None;
                    }
                }
                Undo::BufferFreed {
                    handle,
                    owner,
                    bytes,
                } => {
                    if let Some(slot) = self.buffers.get_mut(handle as usize) {
                        *slot = Some(Buffer { owner, bytes });
                    }
                }
            }
        }
        for lock in txn.locks {
            self.lock_holders.remove(&lock);
        }
    }

    fn undo_records(&self) -> usize {
        self.txns.iter().map(|t| t.undo.len()).sum()
    }

    fn log_undo(&mut self, record: Undo) -> Result<(), AbortCause> {
        if self.undo_records() >= self.limits.undo_records {
            return Err(AbortCause::ResourceLimit);
        }
        self.txns
            .last_mut()
            .ok_or(AbortCause::ForbiddenAccessor)?
            .undo
            .push(record);
        Ok(())
    }

    fn current_graft(&self) -> Result<GraftId, AbortCause> {
        self.txns
            .last()
            .map(|t| t.graft)
            .ok_or(AbortCause::ForbiddenAccessor)
    }

    // ----- accessors' effects -----------------------------------------

    /// The context bytes `[offset, offset + len)`.
    pub fn context_slice(&self, offset: i32, len: i32) -> Result<&[u8], AbortCause> {
        let range = checked_range(offset, len, self.context.len())?;
        Ok(&self.context[range])
    }

    /// Overwrites context bytes at `offset` (undoable).
    pub fn write_context(&mut self, offset: i32, bytes: &[u8]) -> Result<(), AbortCause> {
        let len = i32::try_from(bytes.len()).map_err(|_| AbortCause::BadArgument)?;
        let range = checked_range(offset, len, self.context.len())?;
        let old = self.context[range.clone()].to_vec();
        self.log_undo(Undo::Context {
            offset: range.start,
            old,
        })?;
        self.context[range].copy_from_slice(bytes);
        Ok(())
    }

    pub fn map_get(&self, graft: GraftId, map: i32, key: i64) -> Option<i64> {
        self.maps
            .get(&(graft, map))
            .and_then(|m| m.get(&key))
            .copied()
    }

    /// Puts `key → value` in the calling graft's map `map` (undoable).
    pub fn map_put(&mut self, map: i32, key: i64, value: i64) -> Result<(), AbortCause> {
        let graft = self.current_graft()?;
        if !(0..self.limits.maps).contains(&map) {
            return Err(AbortCause::BadArgument);
        }
        let limit = self.limits.map_entries;
        let entries = self.maps.get(&(graft, map));
        let old = entries.and_then(|m| m.get(&key)).copied();
        if old.is_none() && entries.map_or(0, BTreeMap::len) >= limit {
            return Err(AbortCause::ResourceLimit);
        }
        self.log_undo(Undo::Map {
            graft,
            map,
            key,
            old,
        })?;
        self.maps
            .entry((graft, map))
            .or_default()
            .insert(key, value);
        Ok(())
    }

    pub fn counter(&self, index: usize) -> Option<i64> {
        self.counters.get(index).copied()
    }

    /// Sets a host counter from the host (no transaction).
    pub fn set_counter(&mut self, index: usize, value: i64) {
        if let Some(slot) = self.counters.get_mut(index) {
            *slot = value;
        }
    }

    /// Adds to a host counter (undoable); returns the new value.
    pub fn counter_add(&mut self, index: i32, delta: i64) -> Result<i64, AbortCause> {
        let index = usize::try_from(index).map_err(|_| AbortCause::BadArgument)?;
        let old = *self.counters.get(index).ok_or(AbortCause::BadArgument)?;
        self.log_undo(Undo::Counter { index, old })?;
        let new = old.wrapping_add(delta);
        self.counters[index] = new;
        Ok(new)
    }

    /// Takes lock `id` for the current transaction, waiting up to the
    /// limit's time-out if another transaction (or the host) holds it.
    pub fn lock(&mut self, id: i32) -> Result<(), AbortCause> {
        if !(0..self.limits.locks).contains(&id) {
            return Err(AbortCause::BadArgument);
        }
        let depth = self
            .txns
            .len()
            .checked_sub(1)
            .ok_or(AbortCause::ForbiddenAccessor)?;
        let deadline = self.now_ns().saturating_add(self.limits.lock_timeout_ns);
        loop {
            match self.lock_holders.get(&id) {
                // Already ours (this or an enclosing transaction of the same graft).
                Some(&holder)
                    if holder != usize::MAX
                        && self.txns[holder].graft == self.txns[depth].graft =>
                {
                    return Ok(());
                }
                Some(_) => {
                    // One CPU: nothing can release it while we wait, but the
                    // wait is bounded by the clock all the same.
                    if self.now_ns() >= deadline {
                        return Err(AbortCause::LockTimeout);
                    }
                    core::hint::spin_loop();
                }
                None => {
                    self.lock_holders.insert(id, depth);
                    self.txns[depth].locks.push(id);
                    return Ok(());
                }
            }
        }
    }

    /// The host takes or releases a lock outside any transaction.
    pub fn host_lock(&mut self, id: i32, held: bool) {
        if held {
            self.lock_holders.insert(id, usize::MAX);
        } else if self.lock_holders.get(&id) == Some(&usize::MAX) {
            self.lock_holders.remove(&id);
        }
    }

    /// How many locks are held (by anyone).
    pub fn locks_held(&self) -> usize {
        self.lock_holders.len()
    }

    /// Allocates a tracked, zeroed buffer for the current graft.
    pub fn buffer_alloc(&mut self, bytes: i32) -> Result<i32, AbortCause> {
        let graft = self.current_graft()?;
        let bytes = usize::try_from(bytes).map_err(|_| AbortCause::BadArgument)?;
        if self.buffer_bytes(graft) + bytes > self.limits.buffer_bytes {
            return Err(AbortCause::ResourceLimit);
        }
        let handle = match self.buffers.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.buffers.push(None);
                self.buffers.len() - 1
            }
        };
        let handle = i32::try_from(handle).map_err(|_| AbortCause::ResourceLimit)?;
        self.log_undo(Undo::Buffer { handle })?;
        self.buffers[handle as usize] = Some(Buffer {
            owner: graft,
            bytes: alloc::vec![0; bytes],
        });
        Ok(handle)
    }

    /// Frees one of the current graft's buffers (undone on abort: the
    /// buffer comes back).
    pub fn buffer_free(&mut self, handle: i32) -> Result<(), AbortCause> {
        let graft = self.current_graft()?;
        let index = usize::try_from(handle).map_err(|_| AbortCause::BadArgument)?;
        match self.buffers.get(index) {
            Some(Some(buffer)) if buffer.owner == graft => {}
            _ => return Err(AbortCause::BadArgument),
        }
        // Room in the undo log first: a full log must not lose the buffer.
        if self.undo_records() >= self.limits.undo_records {
            return Err(AbortCause::ResourceLimit);
        }
        let Some(buffer) = self.buffers[index].take() else {
            return Err(AbortCause::BadArgument);
        };
        self.log_undo(Undo::BufferFreed {
            handle,
            owner: buffer.owner,
            bytes: buffer.bytes,
        })
    }

    /// Bytes of buffers `graft` holds.
    pub fn buffer_bytes(&self, graft: GraftId) -> usize {
        self.buffers
            .iter()
            .flatten()
            .filter(|b| b.owner == graft)
            .map(|b| b.bytes.len())
            .sum()
    }

    /// Frees everything `graft` owns (unload, revocation).
    pub fn release_graft(&mut self, graft: GraftId) {
        for slot in &mut self.buffers {
            if slot.as_ref().is_some_and(|b| b.owner == graft) {
                *slot = None;
            }
        }
        self.maps.retain(|&(owner, _), _| owner != graft);
    }

    /// Entries in all of `graft`'s maps.
    pub fn map_entries(&self, graft: GraftId) -> usize {
        self.maps
            .iter()
            .filter(|((owner, _), _)| *owner == graft)
            .map(|(_, m)| m.len())
            .sum()
    }
}

/// `[offset, offset + len)` if it lies within `0..size`.
pub(crate) fn checked_range(
    offset: i32,
    len: i32,
    size: usize,
) -> Result<core::ops::Range<usize>, AbortCause> {
    let start = usize::try_from(offset).map_err(|_| AbortCause::BadArgument)?;
    let len = usize::try_from(len).map_err(|_| AbortCause::BadArgument)?;
    let end = start
        .checked_add(len)
        .filter(|&end| end <= size)
        .ok_or(AbortCause::BadArgument)?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::Cell;

    struct Ticks(Cell<u64>);
    impl Clock for Ticks {
        fn now_ns(&self) -> u64 {
            self.0.set(self.0.get() + 1000);
            self.0.get()
        }
    }

    fn state() -> HostState {
        let mut s = HostState::new(4, Limits::default(), Rc::new(Ticks(Cell::new(0))));
        s.context = b"hello world".to_vec();
        s
    }

    #[test]
    fn abort_undoes_everything_in_reverse_and_releases() {
        let mut s = state();
        s.begin(1);
        s.write_context(0, b"HELLO").unwrap();
        s.write_context(1, b"xx").unwrap();
        s.counter_add(2, 5).unwrap();
        s.counter_add(2, 5).unwrap();
        s.map_put(0, 7, 70).unwrap();
        s.lock(3).unwrap();
        let handle = s.buffer_alloc(100).unwrap();
        assert_eq!(s.counter(2), Some(10));
        s.abort();
        assert_eq!(s.context, b"hello world");
        assert_eq!(s.counter(2), Some(0));
        assert_eq!(s.map_get(1, 0, 7), None);
        assert_eq!(s.locks_held(), 0);
        assert_eq!(s.buffer_bytes(1), 0);
        assert!(s.buffers[handle as usize].is_none());
    }

    #[test]
    fn nested_abort_undoes_only_the_inner_work_and_outer_commit_keeps_the_rest() {
        let mut s = state();
        s.begin(1);
        s.counter_add(0, 1).unwrap();
        s.begin(2);
        s.counter_add(0, 10).unwrap();
        s.map_put(0, 1, 1).unwrap();
        s.abort();
        assert_eq!(s.counter(0), Some(1));
        s.begin(2);
        s.counter_add(1, 100).unwrap();
        s.lock(5).unwrap();
        s.commit();
        assert_eq!(
            s.locks_held(),
            1,
            "inner commit hands its lock to the outer transaction"
        );
        s.commit();
        assert_eq!((s.counter(0), s.counter(1)), (Some(1), Some(100)));
        assert_eq!(s.locks_held(), 0);
    }

    #[test]
    fn an_inner_commit_is_undone_by_an_outer_abort() {
        let mut s = state();
        s.begin(1);
        s.begin(2);
        s.counter_add(3, 9).unwrap();
        s.commit();
        s.abort();
        assert_eq!(s.counter(3), Some(0));
    }

    #[test]
    fn contested_locks_time_out_and_bad_arguments_are_refused() {
        let mut s = state();
        s.host_lock(4, true);
        s.begin(1);
        assert_eq!(s.lock(4), Err(AbortCause::LockTimeout));
        assert_eq!(s.lock(-1), Err(AbortCause::BadArgument));
        assert_eq!(s.lock(1_000), Err(AbortCause::BadArgument));
        assert_eq!(s.write_context(9, b"xyz"), Err(AbortCause::BadArgument));
        assert_eq!(
            s.write_context(i32::MAX, b"x"),
            Err(AbortCause::BadArgument)
        );
        assert_eq!(s.context_slice(-1, 2).err(), Some(AbortCause::BadArgument));
        assert_eq!(s.counter_add(99, 1), Err(AbortCause::BadArgument));
        assert_eq!(s.map_put(-1, 0, 0), Err(AbortCause::BadArgument));
        assert_eq!(s.buffer_free(0), Err(AbortCause::BadArgument));
        s.abort();
        s.host_lock(4, false);
        assert_eq!(s.locks_held(), 0);
    }

    #[test]
    fn an_aborted_free_brings_the_buffer_back() {
        let mut s = state();
        s.begin(1);
        let handle = s.buffer_alloc(64).unwrap();
        s.commit();
        s.begin(1);
        s.buffer_free(handle).unwrap();
        assert_eq!(s.buffer_bytes(1), 0);
        s.abort();
        assert_eq!(s.buffer_bytes(1), 64);
        s.begin(2);
        assert_eq!(
            s.buffer_free(handle),
            Err(AbortCause::BadArgument),
            "not graft 2's buffer"
        );
        s.abort();
        assert_eq!(s.buffer_bytes(1), 64);
    }

    #[test]
    fn limits_are_resource_aborts() {
        let limits = Limits {
            map_entries: 2,
            undo_records: 5,
            buffer_bytes: 10,
            ..Limits::default()
        };
        let mut s = HostState::new(1, limits, Rc::new(Ticks(Cell::new(0))));
        s.begin(1);
        s.map_put(0, 1, 1).unwrap();
        s.map_put(0, 2, 1).unwrap();
        s.map_put(0, 2, 5).unwrap(); // an update needs no new entry
        assert_eq!(s.map_put(0, 3, 1), Err(AbortCause::ResourceLimit));
        assert_eq!(s.buffer_alloc(11), Err(AbortCause::ResourceLimit));
        s.counter_add(0, 1).unwrap();
        s.buffer_alloc(4).unwrap();
        assert_eq!(
            s.counter_add(0, 1),
            Err(AbortCause::ResourceLimit),
            "undo log full"
        );
        s.abort();
        assert_eq!(s.map_entries(1), 0);
    }

    #[test]
    fn accessors_outside_a_transaction_are_forbidden() {
        let mut s = state();
        assert_eq!(s.counter_add(0, 1), Err(AbortCause::ForbiddenAccessor));
        assert_eq!(s.map_put(0, 1, 1), Err(AbortCause::ForbiddenAccessor));
        assert_eq!(s.lock(1), Err(AbortCause::ForbiddenAccessor));
    }
}
