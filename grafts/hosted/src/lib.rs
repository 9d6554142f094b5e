//! Native graft code on the host: what the image's kernel does for graft
//! code (`unikernel::arch::graft_code`), done with a Linux process's tools,
//! so that host tests and host benchmarks run grafts as the same machine
//! code, under the same guarantees, as an image does.
//!
//! - **Publishing** ([`CodeRegion`]): code is copied into fresh anonymous
//!   pages mapped read+write, which are then mapped read+execute and never
//!   writable again (W^X); dropping the region unmaps it. Each published
//!   region is registered, so that a fault can be attributed to graft code.
//! - **Recovering from a fault** ([`catch`]): a closure runs with a recovery
//!   point armed on this thread. If graft code raises `SIGILL` (a `ud2`
//!   trap site), `SIGSEGV`, `SIGBUS` or `SIGFPE` while it runs, the signal
//!   handler rewrites the interrupted context so that the return from the
//!   handler resumes at the recovery point, and `catch` returns a
//!   [`Fault`]. The frames in between are abandoned, never resumed, exactly
//!   as in the image. A signal raised anywhere else (host code, or an
//!   accessor the graft called) is not ours: the handler puts back the
//!   action that was there before and returns, so the instruction faults
//!   again and the process dies as it would have without this crate.
//!
//! The handler touches only a thread-local and a fixed table of atomics:
//! nothing that allocates or locks. Returning from a signal handler with a
//! rewritten context (rather than `siglongjmp`) also restores the signal
//! mask, so the next fault is caught as the first was.
//!
//! This crate is the host's only `unsafe` for graft code; it must never
//! turn a fault outside published graft code into a recovery.

#![cfg_attr(not(all(target_os = "linux", target_arch = "x86_64")), allow(unused))]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod catch;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod code;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use catch::{Fault, catch};
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use code::{CodeError, CodeRegion, MAX_REGIONS};
