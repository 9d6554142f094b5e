//! The block cache's three policy points as graft points: an image whose
//! cache is `BlockCache<_, _, GraftEviction<E>, GraftReadAhead<R>,
//! GraftFilter<F>>` lets a graft replace each of `E`, `R` and `F` while it
//! serves, and falls back to them — compiled in — when no graft is loaded,
//! when the graft aborts (its changes undone by the runtime), or when its
//! answer is no answer the cache can use.
//!
//! | point | kind | graft_main | context | result |
//! |---|---|---|---|---|
//! | `cache.evict` | replace | `(n: i32) -> i32` | `n` candidate block numbers (u64 LE), least recently used first | index of the victim among them |
//! | `cache.readahead` | replace | `(block: i64) -> i64` | — | a block to fetch now, or -1 for none |
//! | `cache.filter` | replace | `(block: i64) -> i32` | the block's bytes, rewritten in place | 0 |
//!
//! `cache.readahead` is called on every read, hit or miss, so a graft sees
//! the whole access stream (the strided sample learns a stride from it); on
//! a miss the block it names is fetched together with the one asked for,
//! on a hit it is fetched if the cache does not hold it. `cache.filter` is
//! called with the user's bytes before a block goes to the disk and with
//! the disk's bytes after one comes back: a graft there must be its own
//! inverse per block (as the stream-cipher sample is) and defines what the
//! disk holds, so it is loaded before the disk is used and never swapped
//! for a different one over written data.
//!
//! The cache stays correct whatever a graft answers (see
//! `unikernel::storage`): a victim is always an occupied slot, read-ahead
//! never replaces a cached block, and a filter only ever sees a copy.

use alloc::vec;
use alloc::vec::Vec;

use graft_runtime::{
    Capabilities, Capability, ManageError, PointId, PointSpec, Val, ValType, Vals,
};
use unikernel::storage::{BLOCK_SIZE, Block, BlockFilter, EvictionPolicy, Lru, Plain, ReadAhead};
use unikernel::storage::{Sequential, Window};

use crate::host::{Shared, grafted};

/// The eviction replace point.
pub const CACHE_EVICT: &str = "cache.evict";
/// The read-ahead replace point.
pub const CACHE_READAHEAD: &str = "cache.readahead";
/// The block filter replace point.
pub const CACHE_FILTER: &str = "cache.filter";

/// Most eviction candidates shown to a graft (the sample reads up to 128).
pub const EVICT_CANDIDATES: usize = 32;

fn evict_index(results: &[Val]) -> bool {
    matches!(results, [Val::I32(i)] if (0..EVICT_CANDIDATES as i32).contains(i))
}

fn readahead_block(results: &[Val]) -> bool {
    matches!(results, [Val::I64(b)] if *b >= -1)
}

fn filter_done(results: &[Val]) -> bool {
    matches!(results, [Val::I32(0)])
}

fn capabilities(list: &[Capability]) -> Capabilities {
    list.iter().fold(Capabilities::NONE, |set, &c| set.with(c))
}

/// `cache.evict`: a graft chooses the victim among the least recently used
/// slots' blocks (it reads them, and may keep maps and counters).
pub fn cache_evict() -> PointSpec {
    PointSpec {
        validator: evict_index,
        capabilities: capabilities(&[
            Capability::Context,
            Capability::Maps,
            Capability::Counters,
            Capability::Log,
        ]),
        ..PointSpec::replace(CACHE_EVICT, &[ValType::I32], &[ValType::I32])
    }
}

/// `cache.readahead`: a graft follows the access stream and names blocks
/// to fetch ahead of their use.
pub fn cache_readahead() -> PointSpec {
    PointSpec {
        validator: readahead_block,
        capabilities: capabilities(&[Capability::Maps, Capability::Counters, Capability::Log]),
        ..PointSpec::replace(CACHE_READAHEAD, &[ValType::I64], &[ValType::I64])
    }
}

/// `cache.filter`: a graft rewrites each block between the user and the
/// disk (it reads and writes the block, byte by byte if it likes: the fuel
/// is sized for a block of [`BLOCK_SIZE`] bytes handled one byte at a time).
pub fn cache_filter() -> PointSpec {
    PointSpec {
        validator: filter_done,
        capabilities: capabilities(&[
            Capability::Context,
            Capability::ContextWrite,
            Capability::Maps,
            Capability::Counters,
        ]),
        fuel: 200_000,
        ..PointSpec::replace(CACHE_FILTER, &[ValType::I64], &[ValType::I32])
    }
}

/// Declares `spec` on `host`, or finds it if it is declared already (a
/// host may serve more than one cache, or a cache be opened again).
fn point(host: &Shared, spec: PointSpec) -> Result<PointId, ManageError> {
    let mut host = host.borrow_mut();
    if let Some(id) = host.runtime().point_id(&spec.name) {
        return Ok(id);
    }
    host.declare(spec)
}

/// One call of the graft at `point`, if one is loaded: its committed
/// results, or `None` (no graft, an abort, or the host busy with a
/// management command). `build` makes the call's context and its one
/// argument, only when a graft will run; the rewritten context comes back
/// with the results.
fn call(
    graft: &Option<(Shared, PointId)>,
    build: impl FnOnce() -> (Vec<u8>, Val),
) -> Option<(Vals, Vec<u8>)> {
    let (host, point) = graft.as_ref()?;
    let mut host = grafted(host, *point)?;
    let (mut context, arg) = build();
    let results = host.runtime().try_invoke_at(*point, &mut context, &[arg])?;
    Some((results, context))
}

/// `P`, unless a graft on `cache.evict` chooses the victim.
pub struct GraftEviction<P: EvictionPolicy = Lru> {
    inner: P,
    /// Recency of the occupied slots, for the candidates a graft sees.
    recency: Lru,
    /// Per slot: the block it holds.
    blocks: Vec<u64>,
    graft: Option<(Shared, PointId)>,
    /// The candidates' slots, between building the context and the answer.
    candidates: Vec<u32>,
}

impl<P: EvictionPolicy> Default for GraftEviction<P> {
    /// No graft host: always `P`.
    fn default() -> Self {
        GraftEviction {
            inner: P::default(),
            recency: Lru::default(),
            blocks: Vec::new(),
            graft: None,
            candidates: Vec::new(),
        }
    }
}

impl<P: EvictionPolicy> GraftEviction<P> {
    /// Declares `cache.evict` on `host` and wraps `inner`.
    pub fn new(host: &Shared, inner: P) -> Result<Self, ManageError> {
        let id = point(host, cache_evict())?;
        Ok(GraftEviction {
            inner,
            graft: Some((host.clone(), id)),
            ..GraftEviction::default()
        })
    }

    /// The compiled-in policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn grafted(&mut self) -> Option<u32> {
        let (candidates, blocks, recency) = (&mut self.candidates, &self.blocks, &self.recency);
        let build = || {
            candidates.clear();
            candidates.extend(recency.oldest().take(EVICT_CANDIDATES));
            let context = candidates
                .iter()
                .flat_map(|&slot| blocks[slot as usize].to_le_bytes())
                .collect();
            (context, Val::I32(candidates.len() as i32))
        };
        let (results, _) = call(&self.graft, build)?;
        match &results[..] {
            [Val::I32(i)] => self.candidates.get(usize::try_from(*i).ok()?).copied(),
            _ => None,
        }
    }
}

impl<P: EvictionPolicy> EvictionPolicy for GraftEviction<P> {
    const NAME: &'static str = "grafted (cache.evict)";

    fn reset(&mut self, slots: u32) {
        self.inner.reset(slots);
        self.recency.reset(slots);
        self.blocks = vec![0; slots as usize];
    }

    fn inserted(&mut self, slot: u32, block: u64) {
        self.inner.inserted(slot, block);
        self.recency.inserted(slot, block);
        self.blocks[slot as usize] = block;
    }

    fn touched(&mut self, slot: u32, block: u64) {
        self.inner.touched(slot, block);
        self.recency.touched(slot, block);
    }

    fn removed(&mut self, slot: u32) {
        self.inner.removed(slot);
        self.recency.removed(slot);
    }

    fn moved(&mut self, from: u32, to: u32, block: u64) {
        self.inner.moved(from, to, block);
        self.recency.moved(from, to, block);
        self.blocks[to as usize] = block;
    }

    fn victim(&mut self) -> Option<u32> {
        match self.grafted() {
            Some(slot) => Some(slot),
            None => self.inner.victim(),
        }
    }
}

/// `R`, unless a graft on `cache.readahead` decides what to fetch.
pub struct GraftReadAhead<R: ReadAhead = Sequential> {
    inner: R,
    graft: Option<(Shared, PointId)>,
}

impl<R: ReadAhead> Default for GraftReadAhead<R> {
    /// No graft host: always `R`.
    fn default() -> Self {
        GraftReadAhead {
            inner: R::default(),
            graft: None,
        }
    }
}

impl<R: ReadAhead> GraftReadAhead<R> {
    /// Declares `cache.readahead` on `host` and wraps `inner`.
    pub fn new(host: &Shared, inner: R) -> Result<Self, ManageError> {
        let id = point(host, cache_readahead())?;
        Ok(GraftReadAhead {
            inner,
            graft: Some((host.clone(), id)),
        })
    }

    /// The graft's answer for an access to `block`: `None` when no graft
    /// answered, `Some(None)` when it names no block.
    fn grafted(&mut self, block: u64) -> Option<Option<u64>> {
        let arg = Val::I64(i64::try_from(block).ok()?);
        let (results, _) = call(&self.graft, || (Vec::new(), arg))?;
        match &results[..] {
            [Val::I64(-1)] => Some(None),
            [Val::I64(b)] => Some(u64::try_from(*b).ok().filter(|&b| b != block)),
            _ => None,
        }
    }
}

impl<R: ReadAhead> ReadAhead for GraftReadAhead<R> {
    const NAME: &'static str = "grafted (cache.readahead)";

    fn on_miss(&mut self, block: u64) -> Window {
        match self.grafted(block) {
            None => self.inner.on_miss(block),
            // Ahead: the block asked for, then the one named, in one window.
            Some(Some(next)) if next > block => match u32::try_from(next - block) {
                Ok(stride) => Window {
                    start: block,
                    count: 2,
                    stride,
                },
                Err(_) => Window::single(block),
            },
            // Behind (a window only goes forward), or nothing.
            Some(_) => Window::single(block),
        }
    }

    fn on_hit(&mut self, block: u64) -> Option<Window> {
        match self.grafted(block) {
            None => self.inner.on_hit(block),
            Some(next) => next.map(Window::single),
        }
    }
}

/// `F`, unless a graft on `cache.filter` transforms the block.
pub struct GraftFilter<F: BlockFilter = Plain> {
    inner: F,
    graft: Option<(Shared, PointId)>,
}

impl<F: BlockFilter> Default for GraftFilter<F> {
    /// No graft host: always `F`.
    fn default() -> Self {
        GraftFilter {
            inner: F::default(),
            graft: None,
        }
    }
}

impl<F: BlockFilter> GraftFilter<F> {
    /// Declares `cache.filter` on `host` and wraps `inner`.
    pub fn new(host: &Shared, inner: F) -> Result<Self, ManageError> {
        let id = point(host, cache_filter())?;
        Ok(GraftFilter {
            inner,
            graft: Some((host.clone(), id)),
        })
    }

    /// Runs the graft over a copy of `data`; true if it committed (then
    /// `data` holds its result).
    fn grafted(&mut self, block: u64, data: &mut Block) -> bool {
        let Ok(arg) = i64::try_from(block) else {
            return false;
        };
        match call(&self.graft, || (data.to_vec(), Val::I64(arg))) {
            Some((_, context)) if context.len() == BLOCK_SIZE => {
                data.copy_from_slice(&context);
                true
            }
            _ => false,
        }
    }
}

impl<F: BlockFilter> BlockFilter for GraftFilter<F> {
    const NAME: &'static str = "grafted (cache.filter)";

    fn encode(&mut self, block: u64, data: &mut Block) {
        if !self.grafted(block, data) {
            self.inner.encode(block, data);
        }
    }

    fn decode(&mut self, block: u64, data: &mut Block) {
        if !self.grafted(block, data) {
            self.inner.decode(block, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_refuse_what_the_cache_cannot_use() {
        assert!(evict_index(&[Val::I32(0)]) && evict_index(&[Val::I32(31)]));
        assert!(!evict_index(&[Val::I32(32)]) && !evict_index(&[Val::I32(-1)]));
        assert!(readahead_block(&[Val::I64(-1)]) && readahead_block(&[Val::I64(9)]));
        assert!(!readahead_block(&[Val::I64(-2)]) && !readahead_block(&[Val::I32(0)]));
        assert!(filter_done(&[Val::I32(0)]) && !filter_done(&[Val::I32(1)]));
        assert_eq!(cache_readahead().results, [ValType::I64]);
    }
}
