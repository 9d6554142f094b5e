//! Why a graft call was aborted, and the log of every abort.

use alloc::collections::VecDeque;
use alloc::string::String;

/// Declares [`AbortCause`], its names and [`AbortCause::ALL`] from one list.
macro_rules! abort_causes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What went wrong inside a graft call. Every cause is the graft's
        /// fault and is absorbed by the runtime (abort, undo, maybe unload):
        /// the kernel keeps running. Bugs of the host are not causes; they
        /// are errors of the API.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        pub enum AbortCause {
            $($(#[$doc])* $variant,)*
        }

        impl AbortCause {
            /// Every cause, in declaration order.
            pub const ALL: &[AbortCause] = &[$(AbortCause::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(AbortCause::$variant => $name,)*
                }
            }
        }
    };
}

abort_causes! {
    /// Ran out of its fuel budget (an endless or too-long loop).
    FuelExhausted => "fuel-exhausted",
    /// WebAssembly trap: out-of-bounds memory access.
    OutOfBounds => "trap-out-of-bounds",
    /// WebAssembly trap: `unreachable` executed.
    Unreachable => "trap-unreachable",
    /// WebAssembly trap: call stack exhausted (deep recursion).
    StackOverflow => "trap-stack-overflow",
    /// WebAssembly trap: integer division by zero or overflow.
    DivideByZero => "trap-divide-by-zero",
    /// Any other WebAssembly trap.
    OtherTrap => "trap-other",
    /// The graft point's validator refused the returned value.
    InvalidReturn => "invalid-return",
    /// Waited too long for a lock another transaction holds.
    LockTimeout => "lock-timeout",
    /// Exceeded a limit: memory, table, map entries, buffers, undo records.
    ResourceLimit => "resource-limit",
    /// Called an accessor outside its capabilities at run time.
    ForbiddenAccessor => "forbidden-accessor",
    /// Passed an accessor an out-of-range pointer, length or handle.
    BadArgument => "bad-argument",
    /// Emitted an event one of whose handlers is already running (itself,
    /// or a graft further up the chain of emits): a cycle, refused.
    Reentrancy => "reentrancy",
    /// A CPU exception inside the graft's native code (#DE, #UD, #PF, …):
    /// compiled code that checks every access never raises one, so the
    /// artifact is broken. The graft is unloaded at once; its instance is
    /// abandoned mid-call and never touched again (its memory is leaked).
    CpuFault => "cpu-fault",
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

/// The most recent faults: a ring of [`FAULT_LOG_LEN`] entries, allocated
/// whole at the start, so a long run's faults never grow the heap beyond
/// the entries' own point names.
#[derive(Clone, Debug)]
pub struct FaultLog {
    entries: VecDeque<Fault>,
}

impl Default for FaultLog {
    fn default() -> FaultLog {
        FaultLog {
            entries: VecDeque::with_capacity(FAULT_LOG_LEN),
        }
    }
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

    #[test]
    fn the_fault_log_keeps_the_last_entries_in_the_ring_it_started_with() {
        let mut log = FaultLog::default();
        let ring = log.entries.capacity();
        assert!(ring >= FAULT_LOG_LEN);
        for graft in 0..3 * FAULT_LOG_LEN as u32 {
            log.push(Fault {
                at_ns: u64::from(graft),
                point: "net.rx".into(),
                graft,
                cause: AbortCause::OtherTrap,
                action: FaultAction::Aborted,
            });
        }
        assert_eq!(log.entries().count(), FAULT_LOG_LEN);
        assert_eq!(
            log.last().map(|f| f.graft),
            Some(3 * FAULT_LOG_LEN as u32 - 1)
        );
        assert_eq!(log.entries.capacity(), ring, "the ring never reallocated");
    }
}
