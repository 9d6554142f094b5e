//! `kv`: a key-value server that speaks RESP (the Redis protocol), so
//! `redis-cli`, `redis-benchmark` and every Redis client library work with
//! it unmodified, and that keeps its data on a virtio-blk disk through the
//! kernel's Rio block cache.
//!
//! Layers, outside in: [`resp`] (bytes ↔ requests and replies, the trust
//! border), [`command`] (arguments checked into a typed [`Command`]),
//! [`db`] (commands executed; each change staged as a [`record`] in the
//! [`log`] before it is visible), [`store`] (the keyspace in memory), and
//! [`log`] (records appended through the block cache into a log area on
//! the disk, compacted into the other area when it fills up). The server
//! loop (`server`, target only) reads pipelined requests, executes a batch,
//! commits its log records once (group commit), and only then sends the
//! replies: a reply means the change is in the protected cache (or on the
//! disk, with `durability=write-through`).
//!
//! After a kernel crash the image warm-reboots: the cache comes back from
//! the Rio region, verified and written back, and the log replays from it,
//! so no acknowledged write is lost. A clean `SHUTDOWN` (or `SAVE`) writes
//! every dirty block to the disk, so a restart from the disk alone keeps
//! everything too.
//!
//! This crate must never send a reply before the change it acknowledges is
//! committed, never panic on a client's input, and never carry the
//! fault-injection commands outside the `fault-injection` feature.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod command;
pub mod db;
pub mod disk;
pub mod log;
pub mod record;
pub mod resp;
#[cfg(target_os = "none")]
pub mod server;
pub mod store;
#[cfg(test)]
mod tests;

pub use command::Command;

/// Bytes of Rio region the image asks for: the block cache's memory.
pub const RIO_BYTES: u64 = 8 << 20;
