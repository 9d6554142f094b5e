//! The SDK for writing grafts in Rust (`wasm32-unknown-unknown`, `no_std`).
//!
//! A graft is a `cdylib` crate that calls [`graft_main!`] with a function of
//! its point's signature and uses the typed accessors below; nothing else
//! is needed (this crate supplies the panic handler: a panic is a trap,
//! which the runtime turns into an abort). The accessors mirror the table
//! in `graft_runtime::abi` one for one; each returns what the host returns, and a
//! bad argument aborts the whole transaction (the call never returns).
//!
//! On other targets the accessors are stubs that panic, so graft crates
//! still build (and are linted) with the rest of the workspace; with the
//! `testing` feature they are [`testing`]'s stand-in instead, so a graft's
//! entry function runs natively in a plain `cargo test` against a context
//! buffer (what `cargo xtask graft new` sets up).
//!
//! This is the one place on the graft side with `unsafe`: calls across the
//! WebAssembly import boundary. Each is sound because the host validates
//! every argument and never touches memory outside what it is given.

#![cfg_attr(
    not(any(test, all(feature = "testing", not(target_arch = "wasm32")))),
    no_std
)]

pub mod points;
#[cfg(all(not(target_arch = "wasm32"), feature = "testing"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod sys {
    #[link(wasm_import_module = "rootstock")]
    unsafe extern "C" {
        pub fn ctx_len() -> i32;
        pub fn ctx_read(offset: i32, ptr: i32, len: i32) -> i32;
        pub fn ctx_write(offset: i32, ptr: i32, len: i32) -> i32;
        pub fn map_get(map: i32, key: i64, default: i64) -> i64;
        pub fn map_put(map: i32, key: i64, value: i64);
        pub fn counter_add(index: i32, delta: i64) -> i64;
        pub fn lock(id: i32);
        pub fn buf_alloc(bytes: i32) -> i32;
        pub fn buf_free(handle: i32);
        pub fn now_ns() -> i64;
        pub fn log(ptr: i32, len: i32);
        pub fn emit(point: i32, ptr: i32, len: i32, arg: i64) -> i64;
    }
}

/// The accessors as the image provides them: calls across the import
/// boundary, each argument checked by the host.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod backend {
    use super::sys;

    pub fn context_len() -> usize {
        // SAFETY: no arguments; the host returns a length.
        unsafe { sys::ctx_len() as usize }
    }
    pub fn context_read(offset: usize, out: &mut [u8]) {
        // SAFETY: the host bounds-checks both ranges and writes only `out`.
        unsafe { sys::ctx_read(offset as i32, out.as_mut_ptr() as i32, out.len() as i32) };
    }
    pub fn context_write(offset: usize, bytes: &[u8]) {
        // SAFETY: the host bounds-checks both ranges and only reads `bytes`.
        unsafe { sys::ctx_write(offset as i32, bytes.as_ptr() as i32, bytes.len() as i32) };
    }
    pub fn map_get(map: i32, key: i64, default: i64) -> i64 {
        // SAFETY: plain values across the boundary.
        unsafe { sys::map_get(map, key, default) }
    }
    pub fn map_put(map: i32, key: i64, value: i64) {
        // SAFETY: plain values across the boundary.
        unsafe { sys::map_put(map, key, value) }
    }
    pub fn counter_add(index: i32, delta: i64) -> i64 {
        // SAFETY: plain values across the boundary.
        unsafe { sys::counter_add(index, delta) }
    }
    pub fn lock(id: i32) {
        // SAFETY: plain values across the boundary.
        unsafe { sys::lock(id) }
    }
    pub fn buffer_alloc(bytes: usize) -> i32 {
        // SAFETY: plain values across the boundary.
        unsafe { sys::buf_alloc(bytes as i32) }
    }
    pub fn buffer_free(handle: i32) {
        // SAFETY: plain values across the boundary.
        unsafe { sys::buf_free(handle) }
    }
    pub fn now_ns() -> u64 {
        // SAFETY: no arguments.
        unsafe { sys::now_ns() as u64 }
    }
    pub fn log(text: &str) {
        // SAFETY: the host bounds-checks the range and only reads it.
        unsafe { sys::log(text.as_ptr() as i32, text.len() as i32) }
    }
    pub fn emit(event: usize, context: &[u8], arg: i64) -> i64 {
        // SAFETY: the host bounds-checks the range and only reads it.
        unsafe {
            sys::emit(
                event as i32,
                context.as_ptr() as i32,
                context.len() as i32,
                arg,
            )
        }
    }
}

/// Off the image and without the `testing` feature, the accessors panic:
/// graft crates build (and are linted) with the rest of the workspace.
#[cfg(all(not(target_arch = "wasm32"), not(feature = "testing")))]
mod backend {
    fn host() -> ! {
        panic!(
            "graft accessors exist only inside a Rootstock image (wasm32), \
             or in graft_sdk::testing::Call::run with the `testing` feature"
        )
    }
    pub fn context_len() -> usize {
        host()
    }
    pub fn context_read(_: usize, _: &mut [u8]) {
        host()
    }
    pub fn context_write(_: usize, _: &[u8]) {
        host()
    }
    pub fn map_get(_: i32, _: i64, _: i64) -> i64 {
        host()
    }
    pub fn map_put(_: i32, _: i64, _: i64) {
        host()
    }
    pub fn counter_add(_: i32, _: i64) -> i64 {
        host()
    }
    pub fn lock(_: i32) {
        host()
    }
    pub fn buffer_alloc(_: usize) -> i32 {
        host()
    }
    pub fn buffer_free(_: i32) {
        host()
    }
    pub fn now_ns() -> u64 {
        host()
    }
    pub fn log(_: &str) {
        host()
    }
    pub fn emit(_: usize, _: &[u8], _: i64) -> i64 {
        host()
    }
}

#[cfg(all(not(target_arch = "wasm32"), feature = "testing"))]
use testing::backend;

/// Bytes of the call's context (e.g. the packet).
pub fn context_len() -> usize {
    backend::context_len()
}

/// Copies context bytes at `offset` into `out`.
pub fn context_read(offset: usize, out: &mut [u8]) {
    backend::context_read(offset, out)
}

/// Overwrites context bytes at `offset` (undone if the call aborts).
pub fn context_write(offset: usize, bytes: &[u8]) {
    backend::context_write(offset, bytes)
}

/// This graft's map `map`: the value at `key`, or `default`.
pub fn map_get(map: i32, key: i64, default: i64) -> i64 {
    backend::map_get(map, key, default)
}

/// Sets `key → value` in this graft's map `map` (undone on abort).
pub fn map_put(map: i32, key: i64, value: i64) {
    backend::map_put(map, key, value)
}

/// Adds `delta` to host counter `index`; returns the new value (undone on abort).
pub fn counter_add(index: i32, delta: i64) -> i64 {
    backend::counter_add(index, delta)
}

/// Takes lock `id` until the transaction ends.
pub fn lock(id: i32) {
    backend::lock(id)
}

/// A tracked host buffer of `bytes` bytes; freed on abort or unload.
pub fn buffer_alloc(bytes: usize) -> i32 {
    backend::buffer_alloc(bytes)
}

/// Frees a buffer from [`buffer_alloc`].
pub fn buffer_free(handle: i32) {
    backend::buffer_free(handle)
}

/// The host's monotonic clock.
pub fn now_ns() -> u64 {
    backend::now_ns()
}

/// Writes a line to the graft's log (`cargo xtask graft log`).
pub fn log(text: &str) {
    backend::log(text)
}

/// What an [`emit`] did: how many of the event's handlers committed and
/// how many aborted (handlers whose guard declined count in neither).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emitted {
    pub committed: u32,
    pub aborted: u32,
}

impl Emitted {
    /// Decodes the accessor's result: committed in the low 32 bits,
    /// aborted in the high 32 bits.
    pub const fn from_raw(raw: i64) -> Emitted {
        Emitted {
            committed: raw as u64 as u32,
            aborted: (raw as u64 >> 32) as u32,
        }
    }
}

/// Triggers event number `event` of this graft's point's `emits` list with
/// `context` (copied; at most 64 KiB) as the event's context bytes and
/// `arg` as its handlers' argument. The handlers run now, each in a
/// transaction nested in this one: what they commit is undone if this call
/// aborts later. Their fuel comes off this call's budget. Emitting an event
/// whose handler is already running (a cycle) aborts this call.
pub fn emit(event: usize, context: &[u8], arg: i64) -> Emitted {
    Emitted::from_raw(backend::emit(event, context, arg))
}

/// Exports `$f` as the graft's entry point `graft_main`.
#[macro_export]
macro_rules! graft_main {
    ($f:path : fn($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
        pub extern "C" fn graft_main($($arg: $ty),*) -> $ret {
            $f($($arg),*)
        }
    };
}

/// Exports `$f` as the event guard `graft_guard` (non-zero: handle the event).
#[macro_export]
macro_rules! graft_guard {
    ($f:path : fn($($arg:ident : $ty:ty),*)) => {
        #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
        pub extern "C" fn graft_guard($($arg: $ty),*) -> i32 {
            i32::from($f($($arg),*))
        }
    };
}

/// Exports `$f` as `graft_revoke`, called before the graft is revoked.
#[macro_export]
macro_rules! graft_revoke {
    ($f:path) => {
        #[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
        pub extern "C" fn graft_revoke() {
            $f()
        }
    };
}

/// A panic in a graft is a trap: the runtime aborts the call.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
