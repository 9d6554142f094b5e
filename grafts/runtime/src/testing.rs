//! Test doubles for code that runs grafts: a clock that needs no hardware,
//! and the null graft that benchmarks measure a bare call with.

use core::cell::Cell;

use crate::state::Clock;

/// A clock that advances 1 µs at every reading (deterministic latencies
/// and lock time-outs in tests).
#[derive(Debug, Default)]
pub struct Ticks(pub Cell<u64>);

impl Clock for Ticks {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1_000);
        self.0.get()
    }
}

/// The null graft: `(module (func (export "graft_main") (param i32)
/// (result i32) (local.get 0)))`, encoded by hand (no WAT parser needed).
pub const NULL_GRAFT: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
    0x03, 0x02, 0x01, 0x00, // function 0 has type 0
    0x07, 0x0e, 0x01, 0x0a, b'g', b'r', b'a', b'f', b't', b'_', b'm', b'a', b'i', b'n', 0x00,
    0x00, // export "graft_main" = function 0
    0x0a, 0x06, 0x01, 0x04, 0x00, 0x20, 0x00, 0x0b, // code: local.get 0, end
];
