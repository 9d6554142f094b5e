//! Graft points: where grafts attach, declared by the host.

use alloc::string::String;
use alloc::vec::Vec;

use crate::val::{Val, ValType};

use crate::abi::Capabilities;

/// How grafts attach to a point (SPIN: the primary handler arbitrates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One graft replaces the compiled-in policy (VINO "replace a method").
    Replace,
    /// Up to `max_handlers` grafts handle the event in order, each behind
    /// its optional guard (SPIN events and guards).
    Event { max_handlers: usize },
}

/// Checks a graft's results before they are committed.
pub type Validator = fn(&[Val]) -> bool;

/// Accepts anything.
pub fn any_result(_: &[Val]) -> bool {
    true
}

/// A graft point as the host declares it.
#[derive(Clone, Debug)]
pub struct PointSpec {
    pub name: String,
    pub kind: Kind,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    /// Fuel for one call (a time-out in instructions).
    pub fuel: u64,
    /// Fuel for the `graft_revoke` callback.
    pub revoke_fuel: u64,
    pub validator: Validator,
    /// The most a graft at this point may be granted.
    pub capabilities: Capabilities,
    /// Failures before the graft is unloaded (K).
    pub max_failures: u32,
    /// Restart a fresh instance once before unloading (Nooks recovery).
    pub restart: bool,
    /// Linear memory cap, in 64 KiB pages.
    pub memory_pages: u32,
    /// Table elements cap.
    pub table_elements: u32,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// The event points a graft here may trigger with `emit`, which names
    /// them by their index in this list. Each name is resolved when both
    /// points are declared (in either order, so cycles can be declared; a
    /// point may name itself); until then, or if the named point is not an
    /// event point taking `()`, `(i32)` or `(i64)`, emitting it is a
    /// `bad-argument` abort.
    pub emits: Vec<String>,
}

impl PointSpec {
    /// Whether `emit` can trigger this point: an event point whose handlers
    /// take nothing or one integer (the emitter's `arg`).
    pub fn emittable(&self) -> bool {
        matches!(self.kind, Kind::Event { .. })
            && matches!(self.params[..], [] | [ValType::I32] | [ValType::I64])
    }

    /// A replace point with conservative defaults.
    pub fn replace(name: &str, params: &[ValType], results: &[ValType]) -> PointSpec {
        PointSpec {
            name: name.into(),
            kind: Kind::Replace,
            params: params.to_vec(),
            results: results.to_vec(),
            fuel: 100_000,
            revoke_fuel: 10_000,
            validator: any_result,
            capabilities: Capabilities::ALL,
            max_failures: 3,
            restart: false,
            memory_pages: 4,
            table_elements: 64,
            max_module_bytes: 256 * 1024,
            emits: Vec::new(),
        }
    }

    /// An event point (handlers return `results`).
    pub fn event(
        name: &str,
        params: &[ValType],
        results: &[ValType],
        max_handlers: usize,
    ) -> PointSpec {
        PointSpec {
            kind: Kind::Event { max_handlers },
            ..PointSpec::replace(name, params, results)
        }
    }
}
