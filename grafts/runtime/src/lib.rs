//! The graft runtime: safe hot extension of a running image.
//!
//! A **graft** is a WebAssembly module, compiled ahead of time to x86-64
//! machine code ([`engine`]: Wasmtime's Cranelift on the host, Wasmtime's
//! runtime in the image), that replaces a policy (a *replace* graft point)
//! or handles an event (an *event* point, with guards) in a running image. It follows VINO — every call is a
//! **transaction**: state changes go through **accessors** ([`abi`]) that
//! write undo records ([`state`]); a graft that runs out of fuel, traps,
//! returns what the point's validator refuses, waits too long for a lock,
//! exceeds a limit or calls an accessor it was not granted is aborted, its
//! changes undone, its locks released and its allocations freed, and after
//! `max_failures` it is unloaded (optionally restarted once first, as in
//! Nooks) so the compiled-in policy serves again. SPIN's capabilities are
//! checked at load time (every import must be granted) and again at run
//! time; the Exokernel's visible revocation is [`Runtime::revoke`].
//!
//! Grafts can trigger each other: a graft granted `events` calls the `emit`
//! accessor to trigger an event point its own point lists
//! ([`PointSpec::emits`]); the event's handlers run at once, each in a
//! transaction nested in the emitter's, so an inner abort undoes only that
//! handler and an outer abort undoes everything the handlers committed
//! ([`abi`] has the rules: no re-entry, bounded depth, the emitter pays
//! the fuel).
//!
//! One warm instance per graft: a call is a store refuel and a function
//! call, not an instantiation. Time is passed in ([`state::Clock`]); the
//! runtime never reads a global clock, and the embedder passes in how code
//! pages become executable and how a CPU fault in graft code is caught
//! ([`Platform`]).
//!
//! This crate must never panic on a graft's behaviour or bytes: every
//! misbehaviour becomes an [`AbortCause`] or a [`LoadError`]. Its one
//! `unsafe` room is [`engine`]: loading an artifact (which only a verified
//! envelope or this process's own compiler hands it) and the image's
//! soft-float opt-in; everything else denies `unsafe`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi;
mod accessors;
mod call;
pub mod engine;
mod events;
pub mod fault;
mod maps;
pub mod point;
pub mod runtime;
pub mod sandbox;
pub mod state;
pub mod stats;
pub mod testing;
pub mod val;

pub use abi::{Capabilities, Capability};
#[cfg(not(target_os = "none"))]
pub use engine::compile;
pub use engine::{
    Catch, CodeMemory, CompileError, ENGINE, EngineError, NativeFault, Platform, Target,
};
pub use fault::{AbortCause, Fault, FaultAction, FaultLog};
pub use point::{Kind, PointSpec};
pub use runtime::{GraftInfo, ManageError, PointId, Revocation, Runtime};
pub use sandbox::LoadError;
pub use state::{Clock, GraftId, HostState, Limits};
pub use stats::GraftStats;
pub use val::{MAX_RESULTS, MAX_VALUES, Val, ValType, Vals};
