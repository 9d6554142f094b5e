//! Why a graft call was aborted, and the log of every abort.

use alloc::collections::VecDeque;
use alloc::string::String;

/// What went wrong inside a graft call. Every cause is the graft's fault and
/// is absorbed by the runtime (abort, undo, maybe unload): the kernel keeps
/// running. Bugs of the host are not causes; they are errors of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AbortCause {
    /// Ran out of its fuel budget (an endless or too-long loop).
    FuelExhausted,
    /// WebAssembly trap: out-of-bounds memory access.
    OutOfBounds,
    /// WebAssembly trap: `unreachable` executed.
    Unreachable,
    /// WebAssembly trap: call stack exhausted (deep recursion).
    StackOverflow,
    /// WebAssembly trap: integer division by zero or overflow.
    DivideByZero,
    /// Any other WebAssembly trap.
    OtherTrap,
    /// The graft point's validator refused the returned value.
    InvalidReturn,
    /// Waited too long for a lock another transaction holds.
    LockTimeout,
    /// Exceeded a limit: memory, table, map entries, buffers, undo records.
    ResourceLimit,
    /// Called an accessor outside its capabilities at run time.
    ForbiddenAccessor,
    /// Passed an accessor an out-of-range pointer, length or handle.
    BadArgument,
    /// Emitted an event one of whose handlers is already running (itself,
    /// or a graft further up the chain of emits): a cycle, refused.
    Reentrancy,
}

impl AbortCause {
    pub const ALL: [AbortCause; 12] = [
        AbortCause::FuelExhausted,
        AbortCause::OutOfBounds,
        AbortCause::Unreachable,
        AbortCause::StackOverflow,
        AbortCause::DivideByZero,
        AbortCause::OtherTrap,
        AbortCause::InvalidReturn,
        AbortCause::LockTimeout,
        AbortCause::ResourceLimit,
        AbortCause::ForbiddenAccessor,
        AbortCause::BadArgument,
        AbortCause::Reentrancy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AbortCause::FuelExhausted => "fuel-exhausted",
            AbortCause::OutOfBounds => "trap-out-of-bounds",
            AbortCause::Unreachable => "trap-unreachable",
            AbortCause::StackOverflow => "trap-stack-overflow",
            AbortCause::DivideByZero => "trap-divide-by-zero",
            AbortCause::OtherTrap => "trap-other",
            AbortCause::InvalidReturn => "invalid-return",
            AbortCause::LockTimeout => "lock-timeout",
            AbortCause::ResourceLimit => "resource-limit",
            AbortCause::ForbiddenAccessor => "forbidden-accessor",
            AbortCause::BadArgument => "bad-argument",
            AbortCause::Reentrancy => "reentrancy",
        }
    }
}

/// One entry of the fault log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at_ns: u64,
    pub point: String,
    pub graft: u32,
    pub cause: AbortCause,
    /// What the runtime did about it.
    pub action: FaultAction,
}

/// The runtime's response to a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Undone; the graft stays.
    Aborted,
    /// Undone; a fresh instance replaced the faulty one (Nooks recovery).
    Restarted,
    /// Undone; the graft was unloaded and the default policy is back.
    Unloaded,
}

/// The most recent faults (bounded).
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    entries: VecDeque<Fault>,
}

/// How many faults the log keeps.
pub const FAULT_LOG_LEN: usize = 256;

impl FaultLog {
    pub fn push(&mut self, fault: Fault) {
        if self.entries.len() == FAULT_LOG_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back(fault);
    }

    pub fn entries(&self) -> impl Iterator<Item = &Fault> {
        self.entries.iter()
    }

    pub fn last(&self) -> Option<&Fault> {
        self.entries.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_cause_in_discriminant_order_with_unique_names() {
        for (i, cause) in AbortCause::ALL.iter().enumerate() {
            assert_eq!(*cause as usize, i, "stats arrays index by discriminant");
            assert!(
                AbortCause::ALL[i + 1..]
                    .iter()
                    .all(|c| c.name() != cause.name())
            );
        }
        assert_eq!(AbortCause::Reentrancy.name(), "reentrancy");
    }
}
