//! Test doubles for code that runs grafts: a clock that needs no hardware.

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
