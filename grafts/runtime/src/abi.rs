//! The graft ABI: the one table of accessors a graft may import, with their
//! WebAssembly signatures and the capability each needs. The loader checks
//! every import against it; the linker defines exactly these; the SDK's
//! bindings are written from it. Nothing else crosses the sandbox border.
//!
//! All accessors live in import module [`MODULE`]. Pointers and lengths are
//! offsets into the graft's own linear memory and are bounds-checked; an
//! out-of-range argument aborts the transaction ([`crate::AbortCause::BadArgument`]).
//!
//! | accessor | signature | capability | undo |
//! |---|---|---|---|
//! | `ctx_len` | `() -> i32` | `context` | — |
//! | `ctx_read` | `(offset, ptr, len: i32) -> i32` | `context` | — |
//! | `ctx_write` | `(offset, ptr, len: i32) -> i32` | `context-write` | old bytes |
//! | `map_get` | `(map: i32, key: i64, default: i64) -> i64` | `maps` | — |
//! | `map_put` | `(map: i32, key: i64, value: i64)` | `maps` | old entry |
//! | `counter_add` | `(index: i32, delta: i64) -> i64` | `counters` | old value |
//! | `lock` | `(id: i32)` | `locks` | released at commit/abort |
//! | `buf_alloc` | `(bytes: i32) -> i32` | `buffers` | freed on abort/unload |
//! | `buf_free` | `(handle: i32)` | `buffers` | — |
//! | `now_ns` | `() -> i64` | `time` | — |
//! | `log` | `(ptr, len: i32)` | `log` | — |
//! | `emit` | `(point, ptr, len: i32, arg: i64) -> i64` | `events` | handlers nest in the caller's transaction |
//!
//! `emit` triggers an event point while the graft runs (SPIN's events,
//! VINO's nested transactions). `point` indexes the calling graft's point's
//! [`crate::PointSpec::emits`] list; `ptr`/`len` (at most
//! [`MAX_EMIT_CONTEXT`] bytes) are copied to become the event's context
//! (the handlers' writes to it are discarded with it), and `arg` is the
//! handlers' argument (an `(i32)` point's must fit in 32 bits). Each
//! handler runs as a transaction nested in the caller's: its abort undoes
//! only its own work (and counts as its failure), its commit becomes
//! durable only when the caller's transaction commits. The result packs the
//! handlers' outcomes ([`emit_verdict`]): the number that committed in the
//! low 32 bits, the number that aborted in the high 32 bits (guards that
//! declined count in neither). The caller pays: the fuel its handlers burn
//! comes off its own budget. The emit aborts the caller with `bad-argument`
//! (index or range out of bounds, target not an emittable event point),
//! `reentrancy` (a handler of that event is already running: a cycle;
//! nothing ran), `resource-limit` (more than [`MAX_EMIT_DEPTH`] nested
//! emits), `fuel-exhausted` (it cannot pay for its handlers) or
//! `forbidden-accessor` (outside a transaction, e.g. in a start function).
//!
//! Exports a graft provides: `graft_main` (the point's signature),
//! optionally `graft_guard` (event points: same parameters, `-> i32`,
//! non-zero to run) and `graft_revoke` (`()`, called on revocation).

use crate::val::ValType;

/// Import module of every accessor.
pub const MODULE: &str = "rootstock";
/// The entry point every graft exports.
pub const MAIN: &str = "graft_main";
/// An event handler's guard.
pub const GUARD: &str = "graft_guard";
/// Called (with a small fuel budget) before a graft is revoked.
pub const REVOKE: &str = "graft_revoke";
/// The most context bytes one `emit` may pass.
pub const MAX_EMIT_CONTEXT: usize = 64 * 1024;
/// The deepest chain of emits (a graft's handler emitting, and so on).
pub const MAX_EMIT_DEPTH: usize = 4;

/// What `emit` returns for `committed` and `aborted` handlers.
pub const fn emit_verdict(committed: u32, aborted: u32) -> i64 {
    ((aborted as u64) << 32 | committed as u64) as i64
}

/// A right a graft can be granted at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Context,
    ContextWrite,
    Maps,
    Counters,
    Locks,
    Buffers,
    Time,
    Log,
    /// Emit events (`emit`), running other grafts nested in this call.
    Events,
}

/// A set of capabilities (a bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const ALL: Capabilities = Capabilities(u16::MAX);

    pub const fn with(self, capability: Capability) -> Capabilities {
        Capabilities(self.0 | 1 << capability as u16)
    }

    pub const fn without(self, capability: Capability) -> Capabilities {
        Capabilities(self.0 & !(1 << capability as u16))
    }

    pub const fn has(self, capability: Capability) -> bool {
        self.0 & (1 << capability as u16) != 0
    }

    /// Both sets' rights (a point narrowing what the loader granted).
    pub const fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// From names such as `"context,maps,log"`; unknown names are errors.
    pub fn parse(list: &str) -> Result<Capabilities, &str> {
        let mut set = Capabilities::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let capability = match name {
                "context" => Capability::Context,
                "context-write" => Capability::ContextWrite,
                "maps" => Capability::Maps,
                "counters" => Capability::Counters,
                "locks" => Capability::Locks,
                "buffers" => Capability::Buffers,
                "time" => Capability::Time,
                "log" => Capability::Log,
                "events" => Capability::Events,
                other => return Err(other),
            };
            set = set.with(capability);
        }
        Ok(set)
    }
}

/// One accessor's entry in the ABI table.
#[derive(Clone, Copy, Debug)]
pub struct Accessor {
    pub name: &'static str,
    pub params: &'static [ValType],
    pub results: &'static [ValType],
    pub capability: Capability,
}

use ValType::{I32, I64};

/// Every accessor, in one place.
pub const ACCESSORS: &[Accessor] = &[
    Accessor {
        name: "ctx_len",
        params: &[],
        results: &[I32],
        capability: Capability::Context,
    },
    Accessor {
        name: "ctx_read",
        params: &[I32, I32, I32],
        results: &[I32],
        capability: Capability::Context,
    },
    Accessor {
        name: "ctx_write",
        params: &[I32, I32, I32],
        results: &[I32],
        capability: Capability::ContextWrite,
    },
    Accessor {
        name: "map_get",
        params: &[I32, I64, I64],
        results: &[I64],
        capability: Capability::Maps,
    },
    Accessor {
        name: "map_put",
        params: &[I32, I64, I64],
        results: &[],
        capability: Capability::Maps,
    },
    Accessor {
        name: "counter_add",
        params: &[I32, I64],
        results: &[I64],
        capability: Capability::Counters,
    },
    Accessor {
        name: "lock",
        params: &[I32],
        results: &[],
        capability: Capability::Locks,
    },
    Accessor {
        name: "buf_alloc",
        params: &[I32],
        results: &[I32],
        capability: Capability::Buffers,
    },
    Accessor {
        name: "buf_free",
        params: &[I32],
        results: &[],
        capability: Capability::Buffers,
    },
    Accessor {
        name: "now_ns",
        params: &[],
        results: &[I64],
        capability: Capability::Time,
    },
    Accessor {
        name: "log",
        params: &[I32, I32],
        results: &[],
        capability: Capability::Log,
    },
    Accessor {
        name: "emit",
        params: &[I32, I32, I32, I64],
        results: &[I64],
        capability: Capability::Events,
    },
];

/// The accessor named `name`, if any.
pub fn accessor(name: &str) -> Option<&'static Accessor> {
    ACCESSORS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_parse_intersect_and_refuse_unknown_names() {
        let set = Capabilities::parse("context, maps,log").unwrap();
        assert!(
            set.has(Capability::Context) && set.has(Capability::Maps) && set.has(Capability::Log)
        );
        assert!(!set.has(Capability::Locks));
        let narrowed = set.intersect(Capabilities::NONE.with(Capability::Maps));
        assert!(narrowed.has(Capability::Maps) && !narrowed.has(Capability::Log));
        assert_eq!(Capabilities::parse("context,root"), Err("root"));
        assert!(
            Capabilities::parse("events")
                .unwrap()
                .has(Capability::Events)
        );
    }

    #[test]
    fn emit_verdicts_pack_committed_low_and_aborted_high() {
        assert_eq!(emit_verdict(0, 0), 0);
        assert_eq!(emit_verdict(3, 0), 3);
        assert_eq!(emit_verdict(1, 2), 2 << 32 | 1);
        assert_eq!(emit_verdict(u32::MAX, u32::MAX), -1);
    }

    #[test]
    fn accessor_names_are_unique() {
        for (i, a) in ACCESSORS.iter().enumerate() {
            assert!(
                ACCESSORS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            assert_eq!(accessor(a.name).map(|x| x.name), Some(a.name));
        }
    }
}
