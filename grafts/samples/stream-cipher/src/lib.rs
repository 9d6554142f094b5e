//! A stream-cipher filter for the `cache.filter` replace point:
//! `graft_main(block) -> 0`, with the block's bytes as context, rewritten in
//! place with a keystream derived from the key and the block number, so
//! applying it twice restores the plaintext. The graft reads the block in
//! 512-byte chunks through one [`Keystream`], so each byte costs what it
//! costs the native body, which applies it to the whole block at once. The
//! keystream generator (xorshift64*) shows the mechanism; it is not a
//! secure cipher.
#![cfg_attr(any(target_arch = "wasm32", target_os = "none"), no_std)]

use graft_sdk::{context_len, context_read, context_write};

const KEY: u64 = 0x5eed_c0de_f00d_1234;

/// The keystream of one block, consumed in order: each byte of the block
/// is XORed with the next keystream byte, whatever the chunks it comes in.
pub struct Keystream {
    state: u64,
    word: u64,
    /// Bytes of the block consumed so far.
    at: usize,
}

impl Keystream {
    /// The keystream of block `block`, at its first byte.
    pub fn new(block: u64) -> Keystream {
        Keystream {
            state: KEY ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            word: 0,
            at: 0,
        }
    }

    /// The next keystream byte.
    fn next_byte(&mut self) -> u8 {
        if self.at.is_multiple_of(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        let byte = (self.word >> ((self.at % 8) * 8)) as u8;
        self.at += 1;
        byte
    }

    /// XORs `bytes`, the block's next bytes, with the keystream.
    pub fn apply(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte ^= self.next_byte();
        }
    }

    /// Passes over the block's next `n` bytes.
    pub fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.next_byte();
        }
    }
}

/// XORs `bytes` (at `offset` within block `block`) with the keystream.
pub fn apply(block: u64, offset: usize, bytes: &mut [u8]) {
    let mut keystream = Keystream::new(block);
    keystream.skip(offset);
    keystream.apply(bytes);
}

fn filter(block: i64) -> i32 {
    let len = context_len();
    let mut keystream = Keystream::new(block as u64);
    let mut chunk = [0u8; 512];
    let mut offset = 0;
    while offset < len {
        let n = chunk.len().min(len - offset);
        context_read(offset, &mut chunk[..n]);
        keystream.apply(&mut chunk[..n]);
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
