//! Confirmed loads ("commit confirmed"): a graft loaded with
//! `load … confirm=<ms>` is on probation until `confirm <graft>` arrives;
//! past its deadline the image unloads it by itself and records the
//! removal in the fault log (cause `unconfirmed`, action `unloaded`).
//!
//! The deadline is checked by a task of the control channel
//! (`graft_channel::probation`), which sleeps until the earliest one and is woken
//! when a new probation begins; [`Confirmations::due`] takes the time
//! as an argument, so host tests drive it with a clock of their own. A
//! graft that is unloaded, replaced or removed by a fault while on
//! probation simply leaves it: its entry is dropped at the deadline.

use alloc::string::String;
use alloc::vec::Vec;
use core::task::Waker;

use graft_runtime::GraftId;

/// A graft on probation.
struct Probation {
    graft: GraftId,
    point: String,
    deadline_ns: u64,
}

/// A removal the image made on its own, for the fault log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub at_ns: u64,
    pub point: String,
    pub graft: GraftId,
}

/// Removals kept for `log` (the oldest go first).
pub const REMOVALS_KEPT: usize = 64;

/// The grafts on probation and the removals made so far.
#[derive(Default)]
pub struct Confirmations {
    pending: Vec<Probation>,
    removals: Vec<Removal>,
    /// The deadline task, to be woken when a probation begins.
    watcher: Option<Waker>,
}

impl Confirmations {
    /// Puts `graft` on probation until `deadline_ns`.
    pub fn begin(&mut self, graft: GraftId, point: &str, deadline_ns: u64) {
        self.pending.push(Probation {
            graft,
            point: point.into(),
            deadline_ns,
        });
        if let Some(waker) = self.watcher.take() {
            waker.wake();
        }
    }

    /// Ends `graft`'s probation; false if it was not on probation.
    pub fn confirm(&mut self, graft: GraftId) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.graft != graft);
        self.pending.len() != before
    }

    /// Whether `graft` is on probation.
    pub fn is_pending(&self, graft: GraftId) -> bool {
        self.pending.iter().any(|p| p.graft == graft)
    }

    /// Takes the probations due at `now_ns` (their grafts are to be
    /// unloaded) and returns them as (graft, point).
    pub fn due(&mut self, now_ns: u64) -> Vec<(GraftId, String)> {
        let mut due = Vec::new();
        self.pending.retain_mut(|p| {
            let expired = p.deadline_ns <= now_ns;
            if expired {
                due.push((p.graft, core::mem::take(&mut p.point)));
            }
            !expired
        });
        due
    }

    /// Records that the image removed `graft` from `point` at `at_ns`.
    pub fn record(&mut self, at_ns: u64, point: String, graft: GraftId) {
        if self.removals.len() == REMOVALS_KEPT {
            self.removals.remove(0);
        }
        self.removals.push(Removal {
            at_ns,
            point,
            graft,
        });
    }

    /// The earliest deadline, if any graft is on probation.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.deadline_ns).min()
    }

    /// Registers the deadline task's waker.
    pub fn watch(&mut self, waker: &Waker) {
        self.watcher = Some(waker.clone());
    }

    pub fn removals(&self) -> &[Removal] {
        &self.removals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_takes_only_what_expired_and_confirm_ends_probation() {
        let mut c = Confirmations::default();
        c.begin(1, "net.rx", 100);
        c.begin(2, "net.rx", 50);
        c.begin(3, "http.request", 200);
        assert_eq!(c.next_deadline(), Some(50));
        assert!(c.confirm(3));
        assert!(!c.confirm(3), "confirmed twice");
        assert!(c.due(49).is_empty());
        assert_eq!(c.due(100), [(1, "net.rx".into()), (2, "net.rx".into())]);
        assert_eq!(c.next_deadline(), None);
        assert!(!c.is_pending(1));
    }

    #[test]
    fn the_removal_log_is_bounded() {
        let mut c = Confirmations::default();
        for graft in 0..(REMOVALS_KEPT as u32 + 5) {
            c.record(u64::from(graft), "p".into(), graft);
        }
        assert_eq!(c.removals().len(), REMOVALS_KEPT);
        assert_eq!(c.removals()[0].graft, 5);
    }
}
