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
//! From the region to a recovered cache, step by step (each step's file):
//!
//! 1. **Declaring.** The image asks for crash-surviving memory with
//!    `image!(rio: BYTES, …)` (`lib.rs`, the `image!` macro), which the
//!    kernel reads at boot.
//! 2. **Placing.** `memory/layout.rs` (`rio_placement`, host-tested
//!    arithmetic) puts the region at the highest 2 MiB-aligned block of RAM
//!    above the kernel image: the same RAM size and image give the same
//!    address at every boot. `arch/mod.rs` (`kernel_entry`) reserves those
//!    frames so the allocator never hands them out, and `arch/paging.rs`
//!    maps them read-only.
//! 3. **Adopting.** `arch/rio.rs` (`adopt`) checks the kernel's 4 KiB
//!    header at the start of the region (magic, size; boot and warm-reboot
//!    counts) and, from then on, a crash resets the VM (`warm_reboot`)
//!    instead of exiting. `ProtectedRegion` (`arch/rio.rs`) is the
//!    only writer: writable bit on, copy, bit off, TLB flush.
//! 4. **Handing to the cache.** `storage/device.rs` makes the region the
//!    cache's [`CacheMemory`] (the bytes after the kernel's header);
//!    the host tests use `storage/testing.rs`'s memory instead.
//! 5. **Reading the registry.** `storage/registry.rs` is the byte format
//!    in that memory: a checksummed header (geometry, disk size), one
//!    checksummed entry per slot (block, sequence number, data CRC, clean
//!    or dirty), then the slots.
//! 6. **Recovering.** `storage/recovery.rs` ([`BlockCache::open`]):
//!    formats on a cold or foreign registry; otherwise verifies every entry
//!    and every slot's data, keeps the newest copy of each block, writes
//!    the dirty ones to the disk, flushes it, and only then returns the
//!    cache. `storage/cache.rs` and `storage/write.rs` serve from there.
//!
//! `tests/images/riotest` (the region across warm reboots, wild writes)
//! and `images/kv` (the whole path, with `DEBUG PANIC` under the
//! `fault-injection` feature) exercise it in a VM; `storage/crash_tests.rs`
//! crashes the cache at every step on the host.
//!
//! Three policy points, each a trait with a compiled-in default chosen per
//! image as a type parameter (the scheduler's model): [`EvictionPolicy`]
//! (default [`Lru`]; [`SecondChance`], [`KeepHot`]), [`ReadAhead`] (default
//! [`Sequential`]; [`NoReadAhead`], [`Strided`]) and [`BlockFilter`]
//! between the user's data and the disk (default [`Plain`]). Grafts take
//! them as the graft points `cache.evict`, `cache.readahead` and
//! `cache.filter` through the wrappers in `graft_host::storage`, which are
//! policies themselves ([`BlockCache::open_with`] takes them).
//!
//! Everything here is portable: the cache is generic over its memory
//! ([`CacheMemory`]) and disk ([`Disk`]), and the host tests run it on
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
pub use device::{BLOCK_SIZE, Block, CacheMemory, DeviceError, Disk};
pub use eviction::{EvictionPolicy, KeepHot, Lru, SecondChance};
pub use filter::{BlockFilter, Plain};
pub use readahead::{NoReadAhead, ReadAhead, Sequential, Strided, Window};
pub use recovery::{FormatReason, OpenError, Policies, Recovery, Start};

/// The cache as an image uses it: the Rio region over the virtio-blk disk.
#[cfg(target_os = "none")]
pub type RioCache<E = Lru, R = Sequential, F = Plain> =
    BlockCache<&'static crate::rio::ProtectedRegion, crate::block::BlockDevice, E, R, F>;
