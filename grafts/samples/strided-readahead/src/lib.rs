//! Read-ahead for the `cache.readahead` replace point:
//! `graft_main(block) -> block to prefetch, or -1`. It remembers the last
//! block and stride (map 0) and, once the same stride repeats, prefetches
//! the next block of the pattern — including non-sequential strides the
//! default sequential read-ahead misses.
#![cfg_attr(any(target_arch = "wasm32", target_os = "none"), no_std)]

use graft_sdk::{map_get, map_put};

const LAST: i64 = 0;
const STRIDE: i64 = 1;

/// Given the previous block and stride, the prefetch for `block` (pure).
pub fn prefetch(block: i64, last: i64, stride: i64) -> i64 {
    let now = block - last;
    if last >= 0 && now != 0 && now == stride {
        block + now
    } else {
        -1
    }
}

fn readahead(block: i64) -> i64 {
    let last = map_get(0, LAST, -1);
    let stride = map_get(0, STRIDE, 0);
    map_put(0, LAST, block);
    if last >= 0 {
        map_put(0, STRIDE, block - last);
    }
    prefetch(block, last, stride)
}

graft_sdk::graft_main!(readahead: fn(block: i64) -> i64);

#[cfg(test)]
mod tests {
    #[test]
    fn a_repeated_stride_predicts_the_next_block() {
        assert_eq!(super::prefetch(10, -1, 0), -1);
        assert_eq!(super::prefetch(17, 10, 0), -1);
        assert_eq!(super::prefetch(24, 17, 7), 31);
    }
}
