//! Eviction for the `cache.evict` replace point: `graft_main(n) -> index`
//! with `n` candidate block numbers (u64 little-endian, least recently used
//! first) as context. It evicts the least recently used block that is not
//! in the hot set `[0, HOT_BLOCKS)` (say, a file system's metadata); only if
//! every candidate is hot does it fall back to plain LRU.
#![cfg_attr(any(target_arch = "wasm32", target_os = "none"), no_std)]

use graft_sdk::{context_len, context_read};

/// Blocks below this number are kept resident.
pub const HOT_BLOCKS: u64 = 16;

/// The victim among candidates in LRU order.
pub fn victim(candidates: impl Iterator<Item = u64>) -> usize {
    candidates
        .enumerate()
        .find(|(_, b)| *b >= HOT_BLOCKS)
        .map_or(0, |(i, _)| i)
}

fn evict(n: i32) -> i32 {
    let n = (n.max(0) as usize).min(context_len() / 8).min(128);
    let mut table = [0u8; 1024];
    context_read(0, &mut table[..n * 8]);
    let blocks = table[..n * 8]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    victim(blocks) as i32
}

graft_sdk::graft_main!(evict: fn(n: i32) -> i32);

#[cfg(test)]
mod tests {
    #[test]
    fn hot_blocks_survive() {
        assert_eq!(super::victim([3, 1, 40, 2].into_iter()), 2);
        assert_eq!(super::victim([3, 1].into_iter()), 0);
    }
}
