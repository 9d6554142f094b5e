//! Storage: a block cache that is as safe as the disk (the Rio file cache,
//! for one disk).
//!
//! The cache keeps disk blocks in memory that survives a kernel crash — on
//! the target the Rio region (`rio`), mapped read-only except inside its
//! own write routine, so a wild write faults instead of corrupting a block.
//! Every slot is described by a checksummed [`registry`] entry. After a
//! crash the kernel warm-reboots, and [`BlockCache::open`] finds the
//! registry again, verifies every cached block against its checksum, writes
//! the dirty ones to the disk, and only then serves. A write is
//! acknowledged once it is in the protected cache ([`Durability::Rio`]);
//! [`Durability::WriteThrough`] is there for comparison.
//!
//! Where it lives: the Rio region is the highest 2 MiB-aligned block of
//! guest RAM of the size the image declares (`image!(rio: …)`); its first
//! 4 KiB are the kernel's header, and the registry header starts right
//! after, at `rio::region().address()`. A warm reboot finds it by
//! recomputing the same placement (same RAM size, same image) and checking
//! the registry's magic and checksum.
//!
//! Three policy points, each a trait with a compiled-in default chosen per
//! image as a type parameter (the scheduler's model): [`EvictionPolicy`]
//! (default [`Lru`]; [`Clock`], [`KeepHot`]), [`ReadAhead`] (default
//! [`Sequential`]; [`NoReadAhead`], [`Strided`]) and [`BlockFilter`]
//! between the user's data and the disk (default [`Plain`]). Grafts take
//! them as the graft points `cache.evict`, `cache.readahead` and
//! `cache.filter` through the wrappers in `graft_host::storage`, which are
//! policies themselves ([`BlockCache::open_with`] takes them).
//!
//! Everything here is portable: the cache is generic over its memory
//! ([`CacheMemory`]) and disk ([`BlockDev`]), and the host tests run it on
//! the doubles in [`testing`], crashing it at every single step.
//!
//! This module must never write cache memory except through
//! [`CacheMemory::write`], never overwrite the only copy of an
//! acknowledged block, and never trust a registry entry it has not
//! checksummed.

mod cache;
mod device;
mod eviction;
mod filter;
mod readahead;
mod recovery;
pub mod registry;
pub mod testing;
mod write;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

pub use cache::{BlockCache, CacheError, CacheStats, Durability};
pub use device::{BLOCK, Block, BlockDev, CacheMemory, DeviceError};
pub use eviction::{Clock, EvictionPolicy, KeepHot, Lru};
pub use filter::{BlockFilter, Plain};
pub use readahead::{NoReadAhead, ReadAhead, Sequential, Strided, Window};
pub use recovery::{FormatReason, OpenError, Policies, Recovery, Start};

/// The cache as an image uses it: the Rio region over the virtio-blk disk.
#[cfg(target_os = "none")]
pub type RioCache<E = Lru, R = Sequential, F = Plain> =
    BlockCache<&'static crate::rio::ProtectedRegion, crate::block::BlockDevice, E, R, F>;
