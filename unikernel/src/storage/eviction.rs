//! Eviction policies: which cached block leaves when the cache needs a slot.
//!
//! This follows the scheduler's policy model (`task::SchedPolicy`): a
//! trait, a compiled-in default ([`Lru`]), alternatives ([`SecondChance`], and
//! [`KeepHot`], the native form of the keep-hot sample graft), chosen per
//! image as a type parameter of the cache. A policy only ever sees slot
//! numbers and block numbers, never data: whatever it answers, the cache
//! stays correct (a dirty victim is written back first; an answer that
//! names an empty slot is ignored and the cache picks for itself).

use alloc::vec;
use alloc::vec::Vec;

/// Chooses the slot to empty when the cache is full.
pub trait EvictionPolicy: Default {
    /// Shown in the boot log.
    const NAME: &'static str;
    /// The cache has `slots` slots, all empty (called before anything else).
    fn reset(&mut self, slots: u32);
    /// `slot` now holds `block`.
    fn inserted(&mut self, slot: u32, block: u64);
    /// `block`, held in `slot`, was read or written.
    fn touched(&mut self, slot: u32, block: u64);
    /// `slot` was emptied.
    fn removed(&mut self, slot: u32);
    /// `block` moved from slot `from` to slot `to` (it was rewritten: the
    /// cache never overwrites a slot in place). The default treats it as a
    /// removal and an insertion.
    fn moved(&mut self, from: u32, to: u32, block: u64) {
        self.removed(from);
        self.inserted(to, block);
    }
    /// The occupied slot to empty next (`None` if none is occupied).
    fn victim(&mut self) -> Option<u32>;
}

const NIL: u32 = u32::MAX;

/// Least recently used: the default. Constant time for every call (a
/// doubly linked list threaded through arrays indexed by slot).
#[derive(Default, Debug)]
pub struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next victim.
    tail: u32,
}

impl Lru {
    fn linked(&self, slot: u32) -> bool {
        self.head == slot || self.prev[slot as usize] != NIL
    }

    fn unlink(&mut self, slot: u32) {
        if !self.linked(slot) {
            return;
        }
        let (prev, next) = (self.prev[slot as usize], self.next[slot as usize]);
        match prev {
            NIL => self.head = next,
            p => self.next[p as usize] = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.prev[n as usize] = prev,
        }
        self.prev[slot as usize] = NIL;
        self.next[slot as usize] = NIL;
    }

    /// Occupied slots, least recently used first (the order a graft on
    /// `cache.evict` sees its candidates in).
    pub fn oldest(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.tail;
        core::iter::from_fn(move || {
            let slot = at;
            if slot == NIL {
                return None;
            }
            at = self.prev[slot as usize];
            Some(slot)
        })
    }

    fn push_front(&mut self, slot: u32) {
        self.prev[slot as usize] = NIL;
        self.next[slot as usize] = self.head;
        match self.head {
            NIL => self.tail = slot,
            h => self.prev[h as usize] = slot,
        }
        self.head = slot;
    }
}

impl EvictionPolicy for Lru {
    const NAME: &'static str = "lru";

    fn reset(&mut self, slots: u32) {
        self.prev = vec![NIL; slots as usize];
        self.next = vec![NIL; slots as usize];
        self.head = NIL;
        self.tail = NIL;
    }

    fn inserted(&mut self, slot: u32, _block: u64) {
        self.unlink(slot);
        self.push_front(slot);
    }

    fn touched(&mut self, slot: u32, block: u64) {
        self.inserted(slot, block);
    }

    fn removed(&mut self, slot: u32) {
        self.unlink(slot);
    }

    fn victim(&mut self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }
}

/// CLOCK (second chance): one reference bit per slot and a sweeping hand.
#[derive(Default, Debug)]
pub struct SecondChance {
    occupied: Vec<bool>,
    referenced: Vec<bool>,
    hand: usize,
}

impl EvictionPolicy for SecondChance {
    const NAME: &'static str = "second-chance";

    fn reset(&mut self, slots: u32) {
        self.occupied = vec![false; slots as usize];
        self.referenced = vec![false; slots as usize];
        self.hand = 0;
    }

    fn inserted(&mut self, slot: u32, _block: u64) {
        self.occupied[slot as usize] = true;
        self.referenced[slot as usize] = true;
    }

    fn touched(&mut self, slot: u32, _block: u64) {
        self.referenced[slot as usize] = true;
    }

    fn removed(&mut self, slot: u32) {
        self.occupied[slot as usize] = false;
        self.referenced[slot as usize] = false;
    }

    fn victim(&mut self) -> Option<u32> {
        let slots = self.occupied.len();
        // Two sweeps: the first may only clear reference bits.
        for _ in 0..2 * slots {
            let slot = self.hand;
            self.hand = (self.hand + 1) % slots;
            if self.occupied[slot] {
                if !self.referenced[slot] {
                    return Some(slot as u32);
                }
                self.referenced[slot] = false;
            }
        }
        None
    }
}

/// Keep-hot: blocks used at least [`KeepHot::HOT`] times are passed over
/// by the inner policy `P` (they are treated as just used) as long as some
/// block that is not hot can go instead. Uses are remembered per block, in a
/// small direct-mapped history that outlives a block's stay in the cache,
/// so a block that keeps coming back becomes hot. At most half the slots
/// can be hot, so a scan never finds the cache pinned solid. This is the
/// compiled-in form of the keep-hot sample graft: it protects a working set
/// from being flushed by one long sequential scan.
#[derive(Default, Debug)]
pub struct KeepHot<P = Lru> {
    inner: P,
    /// Per slot: its block and whether it is hot.
    blocks: Vec<u64>,
    hot_slots: Vec<bool>,
    hot: u32,
    /// (block, uses), indexed by a hash of the block.
    history: Vec<(u64, u32)>,
}

impl<P> KeepHot<P> {
    /// Uses after which a block is hot.
    pub const HOT: u32 = 3;

    /// Slots currently held hot.
    pub fn hot_slots(&self) -> u32 {
        self.hot
    }

    fn count_use(&mut self, slot: u32, block: u64) {
        let mask = self.history.len() - 1;
        let at = (block.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        let entry = &mut self.history[at];
        if entry.0 == block {
            entry.1 = entry.1.saturating_add(1);
        } else {
            *entry = (block, 1);
        }
        let uses = entry.1;
        let slot = slot as usize;
        if !self.hot_slots[slot] && uses >= Self::HOT && self.hot < self.hot_slots.len() as u32 / 2
        {
            self.hot_slots[slot] = true;
            self.hot += 1;
        }
    }
}

impl<P: EvictionPolicy> EvictionPolicy for KeepHot<P> {
    const NAME: &'static str = "keep-hot";

    fn reset(&mut self, slots: u32) {
        self.inner.reset(slots);
        self.blocks = vec![0; slots as usize];
        self.hot_slots = vec![false; slots as usize];
        self.hot = 0;
        self.history = vec![(u64::MAX, 0); (slots as usize * 2).next_power_of_two()];
    }

    fn inserted(&mut self, slot: u32, block: u64) {
        self.inner.inserted(slot, block);
        self.blocks[slot as usize] = block;
        self.count_use(slot, block);
    }

    fn touched(&mut self, slot: u32, block: u64) {
        self.inner.touched(slot, block);
        self.count_use(slot, block);
    }

    fn removed(&mut self, slot: u32) {
        self.inner.removed(slot);
        if core::mem::take(&mut self.hot_slots[slot as usize]) {
            self.hot -= 1;
        }
    }

    fn victim(&mut self) -> Option<u32> {
        let mut candidate = self.inner.victim()?;
        // Pass over hot blocks, at most once around the cache.
        for _ in 0..self.blocks.len() {
            if !self.hot_slots[candidate as usize] {
                return Some(candidate);
            }
            let block = self.blocks[candidate as usize];
            self.inner.touched(candidate, block);
            candidate = self.inner.victim()?;
        }
        Some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a policy an access string over a cache of `slots` slots (a
    /// miniature cache: block → slot) and returns the hit count.
    fn hits<P: EvictionPolicy>(slots: u32, accesses: &[u64]) -> usize {
        let mut policy = P::default();
        policy.reset(slots);
        let mut held: Vec<Option<u64>> = vec![None; slots as usize];
        let mut hits = 0;
        for &block in accesses {
            if let Some(slot) = held.iter().position(|&b| b == Some(block)) {
                hits += 1;
                policy.touched(slot as u32, block);
                continue;
            }
            let slot = match held.iter().position(Option::is_none) {
                Some(free) => free as u32,
                None => {
                    let victim = policy.victim().expect("a full cache has a victim");
                    assert!(held[victim as usize].is_some(), "victim must be occupied");
                    policy.removed(victim);
                    victim
                }
            };
            held[slot as usize] = Some(block);
            policy.inserted(slot, block);
        }
        hits
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::default();
        lru.reset(3);
        for slot in 0..3 {
            lru.inserted(slot, u64::from(slot) * 10);
        }
        lru.touched(0, 0);
        assert_eq!(lru.victim(), Some(1));
        lru.removed(1);
        assert_eq!(lru.victim(), Some(2));
        lru.moved(2, 1, 20);
        assert_eq!(lru.victim(), Some(0));
        assert_eq!(lru.oldest().collect::<Vec<_>>(), [0, 1]);
        lru.removed(0);
        lru.removed(1);
        assert_eq!(lru.victim(), None);
        // 1 2 3 1 2 3 with 3 slots: 3 hits; with 2 slots LRU gets none.
        assert_eq!(hits::<Lru>(3, &[1, 2, 3, 1, 2, 3]), 3);
        assert_eq!(hits::<Lru>(2, &[1, 2, 3, 1, 2, 3]), 0);
    }

    #[test]
    fn clock_gives_a_second_chance() {
        let mut clock = SecondChance::default();
        clock.reset(3);
        for slot in 0..3 {
            clock.inserted(slot, 0);
        }
        // All referenced: the first sweep clears the bits, then slot 0 goes.
        assert_eq!(clock.victim(), Some(0));
        clock.removed(0);
        clock.touched(1, 0);
        assert_eq!(clock.victim(), Some(2));
        assert_eq!(hits::<SecondChance>(3, &[1, 2, 3, 1, 2, 3]), 3);
    }

    /// A working set of 8 blocks used three times over, then a scan of 100
    /// blocks used once, 20 rounds, in a 32-slot cache.
    fn hot_and_scan() -> Vec<u64> {
        let mut accesses = Vec::new();
        for round in 0..20u64 {
            for _ in 0..3 {
                accesses.extend(0..8);
            }
            accesses.extend((0..100).map(|i| 1000 + round * 100 + i));
        }
        accesses
    }

    #[test]
    fn keep_hot_survives_scans_that_flush_lru() {
        let lru = hits::<Lru>(32, &hot_and_scan());
        let keep_hot = hits::<KeepHot>(32, &hot_and_scan());
        // LRU: every scan flushes the working set; only repeats hit.
        assert_eq!(lru, 2 * 8 * 20);
        // Hot after three uses; from then on every use hits.
        assert_eq!(keep_hot, 2 * 8 + 3 * 8 * 19, "keep-hot hits {keep_hot}");
    }

    #[test]
    fn keep_hot_never_pins_more_than_half() {
        // Everything is used often: at most 16 of 32 become hot, so the
        // policy still yields victims and the cache keeps working.
        let mut accesses = Vec::new();
        for _ in 0..5 {
            accesses.extend(0..64);
        }
        let _ = hits::<KeepHot>(32, &accesses);
        let mut policy = KeepHot::<Lru>::default();
        policy.reset(4);
        for slot in 0..4 {
            policy.inserted(slot, u64::from(slot));
            for _ in 0..5 {
                policy.touched(slot, u64::from(slot));
            }
        }
        assert_eq!(policy.hot_slots(), 2);
        assert!(policy.victim().is_some());
    }
}
