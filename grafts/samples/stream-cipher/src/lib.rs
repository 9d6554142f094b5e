//! A stream-cipher filter for the `cache.filter` replace point:
//! `graft_main(block) -> 0`, with the block's bytes as context, rewritten in
//! place with a keystream derived from the key and the block number, so
//! applying it twice restores the plaintext. The keystream generator
//! (xorshift64*) shows the mechanism; it is not a secure cipher.
#![cfg_attr(any(target_arch = "wasm32", target_os = "none"), no_std)]
#![forbid(unsafe_code)]

use graft_sdk::{context_len, context_read, context_write};

const KEY: u64 = 0x5eed_c0de_f00d_1234;

/// XORs `bytes` (at `offset` within block `block`) with the keystream.
pub fn apply(block: u64, offset: usize, bytes: &mut [u8]) {
    let mut state = KEY ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut word = 0u64;
    for i in 0..offset + bytes.len() {
        if i % 8 == 0 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        if i >= offset {
            bytes[i - offset] ^= (word >> ((i % 8) * 8)) as u8;
        }
    }
}

fn filter(block: i64) -> i32 {
    let len = context_len();
    let mut chunk = [0u8; 512];
    let mut offset = 0;
    while offset < len {
        let n = chunk.len().min(len - offset);
        context_read(offset, &mut chunk[..n]);
        apply(block as u64, offset, &mut chunk[..n]);
        context_write(offset, &chunk[..n]);
        offset += n;
    }
    0
}

graft_sdk::graft_main!(filter: fn(block: i64) -> i32);

#[cfg(test)]
mod tests {
    #[test]
    fn applying_twice_restores_and_blocks_differ() {
        let plain = *b"the quick brown fox jumps over the lazy dog";
        let mut a = plain;
        super::apply(7, 0, &mut a);
        assert_ne!(a, plain);
        let mut b = plain;
        super::apply(8, 0, &mut b);
        assert_ne!(a, b);
        super::apply(7, 0, &mut a);
        assert_eq!(a, plain);
        // Chunked application equals whole application.
        let mut whole = plain;
        super::apply(3, 0, &mut whole);
        let mut parts = plain;
        let (x, y) = parts.split_at_mut(13);
        super::apply(3, 0, x);
        super::apply(3, 13, y);
        assert_eq!(whole, parts);
    }
}
