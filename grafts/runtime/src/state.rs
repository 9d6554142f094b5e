//! The host state grafts may touch, and the transactions that make every
//! change undoable.
//!
//! Each graft call runs in a `Txn`. Every mutating accessor first writes
//! an undo record; abort replays the records in reverse (VINO's undo call
//! stack), releases the transaction's locks and frees what it allocated.
//! Transactions nest: a graft that triggers another graft's call (the
//! `emit` accessor) opens an inner transaction; the inner abort undoes only
//! the inner work, the inner commit hands its records and locks to the outer
//! one, and only the outermost commit makes everything durable. Locks are
//! two-phase: taken through the `lock` accessor, held until the outermost
//! commit or abort; a nested transaction may take a lock an enclosing one
//! holds (Moss's rule: it runs on its ancestors' behalf).
//!
//! An emitted event brings its own context bytes (a *context frame*): they
//! are discarded when the event's dispatch ends, so an inner commit drops its records of them instead of
//! handing them to an outer transaction that never saw those bytes.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::fault::AbortCause;
use crate::maps::Maps;

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
    /// Context bytes `[offset, offset + len)` held `undo_bytes[at..at + len]`.
    Context {
        offset: usize,
        at: usize,
        len: usize,
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
    /// A record of a graft that was released mid-transaction: nothing to
    /// undo (kept in place so that the savepoints stay valid).
    Forgotten,
}

/// One (possibly nested) transaction: savepoints into the shared undo log,
/// its byte arena and the lock list. Its records and locks are those from
/// its marks to the ends (the inner transactions' come after).
#[derive(Debug)]
struct Txn {
    graft: GraftId,
    undo: usize,
    bytes: usize,
    locks: usize,
    /// The context frame it began in.
    frame: u32,
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
    maps: Maps,
    buffers: Vec<Option<Buffer>>,
    /// Lock id → depth of the transaction holding it (usize::MAX: the host).
    lock_holders: BTreeMap<i32, usize>,
    txns: Vec<Txn>,
    /// The open transactions' undo records, oldest first (one log with
    /// savepoints: opening and committing a transaction allocates nothing
    /// once the log has grown).
    undo: Vec<Undo>,
    /// Old context bytes of the `Undo::Context` records.
    undo_bytes: Vec<u8>,
    /// Locks the open transactions took, in order.
    locks: Vec<i32>,
    /// Context frames entered by emitted events (0: the host's call).
    frame: u32,
    pub(crate) limits: Limits,
    clock: alloc::rc::Rc<dyn Clock>,
}

impl HostState {
    pub fn new(counters: usize, limits: Limits, clock: alloc::rc::Rc<dyn Clock>) -> HostState {
        HostState {
            context: Vec::new(),
            counters: alloc::vec![0; counters],
            maps: Maps::default(),
            buffers: Vec::new(),
            lock_holders: BTreeMap::new(),
            txns: Vec::new(),
            undo: Vec::new(),
            undo_bytes: Vec::new(),
            locks: Vec::new(),
            frame: 0,
            limits,
            clock,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    // ----- transactions -------------------------------------------------

    /// Opens a (nested) transaction for `graft`.
    #[inline]
    pub fn begin(&mut self, graft: GraftId) {
        self.txns.push(Txn {
            graft,
            undo: self.undo.len(),
            bytes: self.undo_bytes.len(),
            locks: self.locks.len(),
            frame: self.frame,
        });
    }

    /// Starts an emitted event: the transactions that begin until
    /// `leave_frame` run on the event's own context bytes, which die with it.
    pub(crate) fn enter_frame(&mut self) {
        self.frame += 1;
    }

    /// Ends an emitted event.
    pub(crate) fn leave_frame(&mut self) {
        self.frame -= 1;
    }

    /// Transaction nesting depth (0: none open).
    pub fn depth(&self) -> usize {
        self.txns.len()
    }

    /// Commits the innermost transaction.
    #[inline]
    pub fn commit(&mut self) {
        let txn = self.txns.pop().expect("commit without a transaction");
        if self.txns.is_empty() {
            // The outermost commit: everything is durable.
            self.undo.clear();
            self.undo_bytes.clear();
            if !self.locks.is_empty() {
                self.release_all_locks();
            }
        } else {
            self.commit_nested(txn);
        }
    }

    /// An inner commit: the records pass to the outer transaction, which
    /// owns everything after its marks: durable only when it commits.
    /// Records of an emitted event's context die with that context.
    fn commit_nested(&mut self, txn: Txn) {
        let Some(outer) = self.txns.last() else {
            return;
        };
        if outer.frame != txn.frame {
            for record in &mut self.undo[txn.undo..] {
                if matches!(record, Undo::Context { .. }) {
                    *record = Undo::Forgotten;
                }
            }
        }
        let depth = self.txns.len() - 1;
        for lock in &self.locks[txn.locks..] {
            self.lock_holders.insert(*lock, depth);
        }
    }

    fn release_all_locks(&mut self) {
        for lock in self.locks.drain(..) {
            self.lock_holders.remove(&lock);
        }
    }

    /// Aborts the innermost transaction: undo in reverse, release, free.
    pub fn abort(&mut self) {
        let txn = self.txns.pop().expect("abort without a transaction");
        while self.undo.len() > txn.undo {
            let record = self.undo.pop().expect("a record after the savepoint");
            self.undo_one(record);
        }
        self.undo_bytes.truncate(txn.bytes);
        if self.locks.len() > txn.locks {
            for lock in self.locks.drain(txn.locks..) {
                self.lock_holders.remove(&lock);
            }
        }
    }

    /// Reverts one change.
    fn undo_one(&mut self, record: Undo) {
        match record {
            Undo::Context { offset, at, len } => {
                self.context[offset..offset + len].copy_from_slice(&self.undo_bytes[at..at + len]);
            }
            Undo::Map {
                graft,
                map,
                key,
                old,
            } => {
                self.maps.set(graft, map, key, old);
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
            Undo::Forgotten => {}
        }
    }

    fn undo_records(&self) -> usize {
        self.undo.len()
    }

    fn log_undo(&mut self, record: Undo) -> Result<(), AbortCause> {
        if self.txns.is_empty() {
            return Err(AbortCause::ForbiddenAccessor);
        }
        if self.undo_records() >= self.limits.undo_records {
            return Err(AbortCause::ResourceLimit);
        }
        self.undo.push(record);
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
        self.log_undo(Undo::Context {
            offset: range.start,
            at: self.undo_bytes.len(),
            len: range.len(),
        })?;
        self.undo_bytes
            .extend_from_slice(&self.context[range.clone()]);
        self.context[range].copy_from_slice(bytes);
        Ok(())
    }

    pub fn map_get(&self, graft: GraftId, map: i32, key: i64) -> Option<i64> {
        self.maps.get(graft, map, key)
    }

    /// Puts `key → value` in the calling graft's map `map` (undoable).
    pub fn map_put(&mut self, map: i32, key: i64, value: i64) -> Result<(), AbortCause> {
        let graft = self.current_graft()?;
        if !(0..self.limits.maps).contains(&map) {
            return Err(AbortCause::BadArgument);
        }
        let limit = self.limits.map_entries;
        let old = self.maps.get(graft, map, key);
        if old.is_none() && self.maps.len(graft, map) >= limit {
            return Err(AbortCause::ResourceLimit);
        }
        self.log_undo(Undo::Map {
            graft,
            map,
            key,
            old,
        })?;
        self.maps.set(graft, map, key, Some(value));
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

    /// Takes lock `id` for the current transaction. A lock that another
    /// transaction (or the host) holds aborts the caller at once with
    /// `lock-timeout`: there is one CPU and a graft call runs to its end
    /// without yielding, so nothing could release the lock while it waited;
    /// a wait would only burn the time of the call it blocks.
    pub fn lock(&mut self, id: i32) -> Result<(), AbortCause> {
        if !(0..self.limits.locks).contains(&id) {
            return Err(AbortCause::BadArgument);
        }
        let depth = self
            .txns
            .len()
            .checked_sub(1)
            .ok_or(AbortCause::ForbiddenAccessor)?;
        match self.lock_holders.get(&id) {
            // Held by this or an enclosing transaction (every open one is
            // an ancestor of the innermost): ours to use.
            Some(&holder) if holder != usize::MAX => Ok(()),
            Some(_) => Err(AbortCause::LockTimeout),
            None => {
                self.lock_holders.insert(id, depth);
                self.locks.push(id);
                Ok(())
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

    /// Frees everything `graft` owns (unload, revocation), and forgets the
    /// open transactions' records of it, so that no later abort brings back
    /// a map entry or buffer of a graft that is gone.
    pub fn release_graft(&mut self, graft: GraftId) {
        let buffers = &self.buffers;
        let owned = |handle: i32| {
            buffers
                .get(handle as usize)
                .is_some_and(|b| b.as_ref().is_some_and(|b| b.owner == graft))
        };
        for record in &mut self.undo {
            let theirs = match *record {
                Undo::Map { graft: owner, .. } | Undo::BufferFreed { owner, .. } => owner == graft,
                Undo::Buffer { handle } => owned(handle),
                _ => false,
            };
            if theirs {
                *record = Undo::Forgotten;
            }
        }
        for slot in &mut self.buffers {
            if slot.as_ref().is_some_and(|b| b.owner == graft) {
                *slot = None;
            }
        }
        self.maps.release(graft);
    }

    /// Entries in all of `graft`'s maps.
    pub fn map_entries(&self, graft: GraftId) -> usize {
        self.maps.entries_of(graft)
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
mod tests;
