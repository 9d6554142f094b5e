//! The transactional call path: begin → call → validate → commit, or abort,
//! then the point's failure policy. It is shared by the host's calls
//! ([`crate::Runtime`]) and by the events grafts emit, so it lives in a
//! [`Core`] that the host functions can reach from a store.
//!
//! Borrowing discipline (what keeps a nested call from tripping a
//! `RefCell`): each installed graft sits in its own `RefCell`, borrowed only
//! while it runs; the point table is borrowed only for short look-ups and
//! edits, never across a call into WebAssembly; the host state is borrowed
//! only inside an accessor or between calls. A graft that is already
//! running cannot be borrowed again: that is how re-entry is detected.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use wasmi::{Linker, Val};

use crate::fault::{AbortCause, Fault, FaultAction};
use crate::point::PointSpec;
use crate::sandbox::{self, HostData, Instance, ValidatedModule};
use crate::state::{GraftId, HostState};
use crate::stats::GraftStats;

/// An installed graft: its id, and the rest in a cell borrowed exactly
/// while the graft runs.
pub(crate) struct Graft {
    pub(crate) id: GraftId,
    pub(crate) cell: RefCell<Installed>,
}

/// What an installed graft's cell holds.
pub(crate) struct Installed {
    pub(crate) module: ValidatedModule,
    pub(crate) instance: Instance,
    pub(crate) stats: GraftStats,
    pub(crate) failures: u32,
    pub(crate) restarted: bool,
}

/// A point's reference to one of its grafts.
pub(crate) type Slot = Rc<Graft>;

/// A declared graft point.
pub(crate) struct Point {
    pub(crate) spec: Rc<PointSpec>,
    pub(crate) grafts: Vec<Slot>,
    /// `spec.emits` resolved to point indices (`None`: not emittable yet).
    pub(crate) emits: Vec<Option<usize>>,
}

/// What a [`crate::Runtime`] shares with the host functions of its grafts.
pub(crate) struct Core {
    pub(crate) linker: Linker<HostData>,
    pub(crate) state: Rc<RefCell<HostState>>,
    pub(crate) points: RefCell<Vec<Point>>,
    /// Faults not yet moved to the runtime's log (it takes them after
    /// every call from the host).
    pub(crate) faults: RefCell<Vec<Fault>>,
    /// Emits in progress (nesting depth).
    pub(crate) emit_depth: Cell<usize>,
}

/// One call's outcome. `Ok(None)`: its guard declined.
pub(crate) type Outcome = Result<Option<Vec<Val>>, AbortCause>;

/// What a dispatch of an event point did: each handler that ran and its
/// committed results or abort cause.
pub(crate) type Outcomes = Vec<(GraftId, Result<Vec<Val>, AbortCause>)>;

impl Core {
    /// The spec of point `index` and a snapshot of its grafts (the list may
    /// change while they run: a failing handler can be unloaded).
    pub(crate) fn handlers(&self, index: usize) -> Option<(Rc<PointSpec>, Vec<Slot>)> {
        let points = self.points.borrow();
        let point = points.get(index)?;
        Some((point.spec.clone(), point.grafts.clone()))
    }

    /// Runs every handler of `index` in order, each behind its guard.
    /// Returns the outcomes and the fuel the handlers burnt.
    pub(crate) fn dispatch(
        &self,
        index: usize,
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> (Outcomes, u64) {
        match self.handlers(index) {
            Some((spec, handlers)) => self.run_handlers(index, &spec, &handlers, context, args),
            None => (Vec::new(), 0),
        }
    }

    /// [`Core::dispatch`] on a snapshot of the point's handlers.
    pub(crate) fn run_handlers(
        &self,
        index: usize,
        spec: &PointSpec,
        handlers: &[Slot],
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> (Outcomes, u64) {
        let mut outcomes = Vec::new();
        let mut burnt = 0u64;
        for slot in handlers {
            let (outcome, fuel) = self.call(index, spec, slot, context, args, true);
            burnt = burnt.saturating_add(fuel);
            match outcome {
                Ok(Some(results)) => outcomes.push((slot.id, Ok(results))),
                Ok(None) => {}
                Err(cause) => outcomes.push((slot.id, Err(cause))),
            }
        }
        (outcomes, burnt)
    }

    /// One transactional call of the graft in `slot` at point `index`, on
    /// `context`. Returns the outcome and the fuel it burnt.
    pub(crate) fn call(
        &self,
        index: usize,
        spec: &PointSpec,
        slot: &Slot,
        context: &mut Vec<u8>,
        args: &[Val],
        guarded: bool,
    ) -> (Outcome, u64) {
        // Borrowed already: the graft is running further up this call chain.
        let Ok(mut graft) = slot.cell.try_borrow_mut() else {
            return (Err(AbortCause::Reentrancy), 0);
        };
        let graft = &mut *graft;
        let id = slot.id;
        let started = {
            let mut state = self.state.borrow_mut();
            core::mem::swap(&mut state.context, context);
            state.begin(id);
            state.now_ns()
        };
        graft.stats.calls += 1;
        let store = &mut graft.instance.store;
        let outcome = (|| {
            store
                .set_fuel(spec.fuel)
                .map_err(|_| AbortCause::OtherTrap)?;
            if guarded && let Some(guard) = graft.instance.guard {
                let mut verdict = [Val::I32(0)];
                guard
                    .call(&mut *store, args, &mut verdict)
                    .map_err(|e| sandbox::cause_of(&e))?;
                if verdict[0].i32() == Some(0) {
                    return Ok(None);
                }
            }
            let mut results: Vec<Val> = spec
                .results
                .iter()
                .map(|t| Val::default_for_ty(*t))
                .collect();
            graft
                .instance
                .main
                .call(&mut *store, args, &mut results)
                .map_err(|e| sandbox::cause_of(&e))?;
            if !(spec.validator)(&results) {
                return Err(AbortCause::InvalidReturn);
            }
            Ok(Some(results))
        })();
        let burnt = spec.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        graft.stats.fuel_used += burnt;
        let elapsed = {
            let mut state = self.state.borrow_mut();
            match outcome {
                Ok(_) => state.commit(),
                Err(_) => state.abort(),
            }
            core::mem::swap(&mut state.context, context);
            state.now_ns().saturating_sub(started)
        };
        graft.stats.record_latency(elapsed);
        match &outcome {
            Ok(None) => graft.stats.guarded_out += 1,
            Ok(Some(_)) => graft.stats.commits += 1,
            Err(cause) => {
                graft.stats.record_abort(*cause);
                graft.failures += 1;
                let action = self.after_failure(index, spec, slot, graft);
                let at_ns = self.state.borrow().now_ns();
                self.faults.borrow_mut().push(Fault {
                    at_ns,
                    point: spec.name.clone(),
                    graft: id,
                    cause: *cause,
                    action,
                });
            }
        }
        (outcome, burnt)
    }

    /// The point's failure policy: keep, restart a fresh instance once
    /// (Nooks), or unload after `max_failures`.
    fn after_failure(
        &self,
        index: usize,
        spec: &PointSpec,
        slot: &Slot,
        graft: &mut Installed,
    ) -> FaultAction {
        if graft.failures < spec.max_failures {
            return FaultAction::Aborted;
        }
        if spec.restart && !graft.restarted {
            let binding = graft.instance.store.data().binding();
            if let Ok(instance) = sandbox::instantiate(&self.linker, &graft.module, spec, binding) {
                graft.instance = instance;
                graft.failures = 0;
                graft.restarted = true;
                return FaultAction::Restarted;
            }
        }
        self.remove(index, slot);
        self.state.borrow_mut().release_graft(slot.id);
        FaultAction::Unloaded
    }

    /// Takes the graft in `slot` off point `index` (if it is still there).
    pub(crate) fn remove(&self, index: usize, slot: &Slot) {
        if let Some(point) = self.points.borrow_mut().get_mut(index) {
            point.grafts.retain(|g| !Rc::ptr_eq(g, slot));
        }
    }
}
