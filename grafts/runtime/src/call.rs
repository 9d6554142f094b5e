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

use wasmtime::{Linker, Store};

use crate::engine::Catch;
use crate::fault::{AbortCause, Fault, FaultAction};
use crate::point::PointSpec;
use crate::sandbox::{self, Entry, HostData, Instance, Typed, ValidatedModule};
use crate::state::{GraftId, HostState};
use crate::stats::GraftStats;
use crate::val::{MAX_VALUES, Val, ValType, Vals};

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
    /// The platform's recovery from CPU faults in graft code.
    pub(crate) catch: Option<Catch>,
    pub(crate) state: Rc<RefCell<HostState>>,
    pub(crate) points: RefCell<Vec<Point>>,
    /// Faults not yet moved to the runtime's log (it takes them after
    /// every call from the host).
    pub(crate) faults: RefCell<Vec<Fault>>,
    /// Emits in progress (nesting depth).
    pub(crate) emit_depth: Cell<usize>,
}

/// One call's outcome. `Ok(None)`: its guard declined.
pub(crate) type Outcome = Result<Option<Vals>, AbortCause>;

/// What a dispatch of an event point did: each handler that ran and its
/// committed results or abort cause.
pub(crate) type Outcomes = Vec<(GraftId, Result<Vals, AbortCause>)>;

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
        let timed = graft.stats.times_next_call();
        let started = {
            let mut state = self.state.borrow_mut();
            core::mem::swap(&mut state.context, context);
            state.begin(id);
            if timed { state.now_ns() } else { 0 }
        };
        graft.stats.calls += 1;
        let store = &mut graft.instance.store;
        let outcome = (|| {
            store
                .set_fuel(spec.fuel)
                .map_err(|_| AbortCause::OtherTrap)?;
            if guarded && let Some(guard) = &graft.instance.guard {
                let verdict = call_func(self.catch, store, guard, args, &[ValType::I32])?;
                if verdict[0] == Val::I32(0) {
                    return Ok(None);
                }
            }
            let results = call_func(self.catch, store, &graft.instance.main, args, &spec.results)?;
            if !(spec.validator)(&results) {
                return Err(AbortCause::InvalidReturn);
            }
            Ok(Some(results))
        })();
        let burnt = spec.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        graft.stats.fuel_used += burnt;
        let ended = {
            let mut state = self.state.borrow_mut();
            match outcome {
                Ok(_) => state.commit(),
                Err(_) => state.abort(),
            }
            core::mem::swap(&mut state.context, context);
            if timed { state.now_ns() } else { 0 }
        };
        if timed {
            graft.stats.record_latency(ended.saturating_sub(started));
        }
        match &outcome {
            Ok(None) => graft.stats.guarded_out += 1,
            Ok(Some(_)) => graft.stats.commits += 1,
            Err(cause) => {
                graft.stats.record_abort(*cause);
                graft.failures += 1;
                let action = self.after_failure(index, spec, slot, graft, *cause);
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
        cause: AbortCause,
    ) -> FaultAction {
        if cause == AbortCause::CpuFault {
            // Its instance was abandoned mid-call: never run it again, and
            // unload it at once, whatever the failure count. Dropping it is
            // sound: a store's destructor frees its instances and memories
            // and runs no code of theirs, and the abandoned frames (the
            // call's, Wasmtime's, the graft's) are never resumed.
        } else if graft.failures < spec.max_failures {
            return FaultAction::Aborted;
        } else if spec.restart && !graft.restarted {
            let binding = graft.instance.store.data().binding();
            if let Ok(instance) =
                sandbox::instantiate(&self.linker, self.catch, &graft.module, spec, binding)
            {
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

/// Calls `entry` with `args`, expecting `results` of those types, under the
/// platform's CPU-fault recovery: typed when the signature allows.
pub(crate) fn call_func(
    catch: Option<Catch>,
    store: &mut Store<HostData>,
    entry: &Entry,
    args: &[Val],
    results: &[ValType],
) -> Result<Vals, AbortCause> {
    macro_rules! typed {
        ($f:expr, $arg:expr, $wrap:path) => {{
            let mut out = None;
            if crate::engine::guarded(catch, &mut || out = Some($f.call(&mut *store, $arg)))
                .is_err()
            {
                return Err(AbortCause::CpuFault);
            }
            match out {
                Some(Ok(value)) => Ok(Vals::one($wrap(value))),
                Some(Err(e)) => Err(sandbox::cause_of(&e)),
                None => Err(AbortCause::OtherTrap),
            }
        }};
    }
    match (&entry.typed, args, results) {
        (Typed::I32ToI32(f), [Val::I32(a)], [ValType::I32]) => typed!(f, *a, Val::I32),
        (Typed::I64ToI64(f), [Val::I64(a)], [ValType::I64]) => typed!(f, *a, Val::I64),
        (Typed::I64ToI32(f), [Val::I64(a)], [ValType::I32]) => typed!(f, *a, Val::I32),
        (Typed::I32ToI64(f), [Val::I32(a)], [ValType::I64]) => typed!(f, *a, Val::I64),
        _ => call_dynamic(catch, store, entry.func, args, results),
    }
}

/// [`call_func`] through the engine's dynamically typed call.
fn call_dynamic(
    catch: Option<Catch>,
    store: &mut Store<HostData>,
    func: wasmtime::Func,
    args: &[Val],
    results: &[ValType],
) -> Result<Vals, AbortCause> {
    if args.len() > MAX_VALUES || results.len() > MAX_VALUES {
        return Err(AbortCause::BadArgument);
    }
    let mut params = [wasmtime::Val::I32(0); MAX_VALUES];
    for (slot, arg) in params.iter_mut().zip(args) {
        *slot = arg.to_engine();
    }
    let mut raw = [wasmtime::Val::I32(0); MAX_VALUES];
    let mut called = Ok(());
    crate::engine::guarded(catch, &mut || {
        called = func.call(
            &mut *store,
            &params[..args.len()],
            &mut raw[..results.len()],
        );
    })
    .map_err(|_| AbortCause::CpuFault)?;
    called.map_err(|e| sandbox::cause_of(&e))?;
    match (&raw[..results.len()], results) {
        ([], []) => Ok(Vals::EMPTY),
        ([value], [ty]) => match Val::from_engine(value) {
            Some(v) if v.ty() == *ty => Ok(Vals::one(v)),
            _ => Err(AbortCause::InvalidReturn),
        },
        _ => Err(AbortCause::BadArgument),
    }
}
