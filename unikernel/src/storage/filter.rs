//! Block filters: a transformation between the user's data and the disk.
//!
//! The cache keeps the user's bytes; a filter changes them on the way to
//! the disk ([`BlockFilter::encode`], at write-back) and back on the way
//! in ([`BlockFilter::decode`], at every fetch). It is the point where
//! the encryption sample graft plugs in: the disk then only ever holds
//! ciphertext. A filter must be a bijection per block (`decode` undoes
//! `encode` for the same block number); the default is [`Plain`].

use super::device::Block;

/// Transforms blocks on their way to and from the disk.
pub trait BlockFilter: Default {
    /// Shown in the boot log.
    const NAME: &'static str;
    /// `data` is about to be written to `block` on the disk.
    fn encode(&mut self, block: u64, data: &mut Block);
    /// `data` was just read from `block` on the disk.
    fn decode(&mut self, block: u64, data: &mut Block);
}

/// The identity: the disk holds the user's bytes.
#[derive(Default, Debug)]
pub struct Plain;

impl BlockFilter for Plain {
    const NAME: &'static str = "plain";
    fn encode(&mut self, _block: u64, _data: &mut Block) {}
    fn decode(&mut self, _block: u64, _data: &mut Block) {}
}
