//! A graft call on the host, for a graft crate's own tests (the `testing`
//! feature): [`Call`] holds what the image would hand the graft — the
//! context bytes, its maps, the host counters, the clock — and
//! [`Call::run`] runs the graft's entry function natively with the
//! accessors reading and writing it, so `cargo test` needs no image and no
//! WebAssembly engine.
//!
//! ```
//! use graft_sdk::testing::Call;
//! let mut call = Call::new(b"GET /");
//! let len = call.run(|| {
//!     graft_sdk::counter_add(0, 1);
//!     graft_sdk::context_len()
//! });
//! assert_eq!((len, call.counter(0)), (5, 1));
//! ```
//!
//! What the stand-in does not do: check capabilities, meter fuel, or undo
//! anything (a panic in the graft is the test's failure). An accessor
//! called with a bad argument (a context range past its end, an unknown
//! buffer) panics where the image would abort the call; one called outside
//! [`Call::run`] panics too.

extern crate std;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec::Vec;

/// One graft call's world: what the accessors see while [`Call::run`] runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The call's context bytes (rewritten by `context_write`).
    pub context: Vec<u8>,
    /// The graft's maps: `(map, key) → value`.
    pub maps: BTreeMap<(i32, i64), i64>,
    /// Host counters: `index → value`.
    pub counters: BTreeMap<i32, i64>,
    /// What `now_ns` returns.
    pub now_ns: u64,
    /// The lines the graft logged.
    pub log: Vec<String>,
    /// The events the graft emitted: `(event, context, arg)`; each reports
    /// no handlers run.
    pub emitted: Vec<(usize, Vec<u8>, i64)>,
    /// Locks taken.
    pub locks: BTreeSet<i32>,
    /// Live buffers: `handle → bytes`.
    pub buffers: BTreeMap<i32, usize>,
}

std::thread_local! {
    static CURRENT: RefCell<Option<Call>> = const { RefCell::new(None) };
}

impl Call {
    /// A call with `context` and nothing else yet.
    pub fn new(context: &[u8]) -> Call {
        Call {
            context: context.to_vec(),
            ..Call::default()
        }
    }

    /// Runs `graft` (the graft's entry function, called with its argument)
    /// with the accessors on this call; returns what it returned.
    pub fn run<R>(&mut self, graft: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|c| c.replace(Some(core::mem::take(self))));
        assert!(previous.is_none(), "Call::run inside Call::run");
        let result = graft();
        *self = CURRENT.with(|c| c.take()).expect("the call is still there");
        result
    }

    /// Host counter `index` (0 if never added to).
    pub fn counter(&self, index: i32) -> i64 {
        self.counters.get(&index).copied().unwrap_or(0)
    }

    /// The value at `key` in map `map`, if set.
    pub fn map(&self, map: i32, key: i64) -> Option<i64> {
        self.maps.get(&(map, key)).copied()
    }
}

fn with<R>(accessor: &str, f: impl FnOnce(&mut Call) -> R) -> R {
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(call) => f(call),
        None => panic!("graft_sdk::{accessor} called outside graft_sdk::testing::Call::run"),
    })
}

/// The part of the context `offset..offset + len`, or a panic saying why not.
fn range(call: &Call, accessor: &str, offset: usize, len: usize) -> core::ops::Range<usize> {
    let end = offset
        .checked_add(len)
        .filter(|&end| end <= call.context.len());
    match end {
        Some(end) => offset..end,
        None => panic!(
            "graft_sdk::{accessor}: bytes {offset}..{offset}+{len} are past the context's {} \
             (in an image the call aborts)",
            call.context.len()
        ),
    }
}

/// The accessors on the current [`Call`].
pub(crate) mod backend {
    use super::{range, with};
    use std::string::ToString;

    pub fn context_len() -> usize {
        with("context_len", |c| c.context.len())
    }
    pub fn context_read(offset: usize, out: &mut [u8]) {
        with("context_read", |c| {
            let at = range(c, "context_read", offset, out.len());
            out.copy_from_slice(&c.context[at]);
        })
    }
    pub fn context_write(offset: usize, bytes: &[u8]) {
        with("context_write", |c| {
            let at = range(c, "context_write", offset, bytes.len());
            c.context[at].copy_from_slice(bytes);
        })
    }
    pub fn map_get(map: i32, key: i64, default: i64) -> i64 {
        with("map_get", |c| c.map(map, key).unwrap_or(default))
    }
    pub fn map_put(map: i32, key: i64, value: i64) {
        with("map_put", |c| {
            c.maps.insert((map, key), value);
        })
    }
    pub fn counter_add(index: i32, delta: i64) -> i64 {
        with("counter_add", |c| {
            let value = c.counters.entry(index).or_default();
            *value = value.wrapping_add(delta);
            *value
        })
    }
    pub fn lock(id: i32) {
        with("lock", |c| {
            c.locks.insert(id);
        })
    }
    pub fn buffer_alloc(bytes: usize) -> i32 {
        with("buffer_alloc", |c| {
            let handle = c.buffers.keys().next_back().map_or(1, |h| h + 1);
            c.buffers.insert(handle, bytes);
            handle
        })
    }
    pub fn buffer_free(handle: i32) {
        with("buffer_free", |c| {
            if c.buffers.remove(&handle).is_none() {
                panic!("graft_sdk::buffer_free: no buffer {handle} (in an image the call aborts)");
            }
        })
    }
    pub fn now_ns() -> u64 {
        with("now_ns", |c| c.now_ns)
    }
    pub fn log(text: &str) {
        with("log", |c| c.log.push(text.to_string()))
    }
    pub fn emit(event: usize, context: &[u8], arg: i64) -> i64 {
        with("emit", |c| {
            c.emitted.push((event, context.to_vec(), arg));
            0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Call;

    #[test]
    fn accessors_see_and_change_the_call() {
        let mut call = Call::new(b"abcd");
        call.maps.insert((0, 1), 10);
        let seen = call.run(|| {
            let mut two = [0u8; 2];
            crate::context_read(1, &mut two);
            crate::context_write(0, b"X");
            crate::map_put(0, 2, crate::map_get(0, 1, 0) + 1);
            crate::counter_add(3, 5);
            crate::log("hello");
            two
        });
        assert_eq!(&seen, b"bc");
        assert_eq!(call.context, b"Xbcd");
        assert_eq!((call.map(0, 2), call.counter(3)), (Some(11), 5));
        assert_eq!(call.log, ["hello"]);
    }

    #[test]
    #[should_panic(expected = "past the context's 4")]
    fn reading_past_the_context_panics_where_an_image_aborts() {
        Call::new(b"abcd").run(|| crate::context_read(2, &mut [0; 3]));
    }

    #[test]
    #[should_panic(expected = "outside graft_sdk::testing::Call::run")]
    fn an_accessor_outside_a_call_panics() {
        crate::context_len();
    }
}
