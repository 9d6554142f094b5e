//! The runtime: graft points, the grafts installed on them, and the host's
//! way in — management (declare, load, replace, unload, revoke) and calls
//! (invoke a replace point, dispatch an event point). The call path itself
//! is in the `call` module, shared with the events grafts emit.

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use crate::abi::Capabilities;
use crate::call::{Core, Graft, Installed, Point, Slot};
use crate::engine::Platform;
use crate::fault::{AbortCause, FaultLog};
use crate::point::{Kind, PointSpec};
use crate::sandbox::{self, Binding, LoadError};
use crate::state::{Clock, GraftId, HostState, Limits};
use crate::stats::GraftStats;
use crate::val::{Val, Vals};

/// A declared graft point's handle (points are never removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointId(usize);

/// What a listing shows of one graft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraftInfo {
    pub id: GraftId,
    pub point: String,
    pub module_bytes: usize,
    pub stats: GraftStats,
}

/// How a revocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The graft's `graft_revoke` ran and committed within its budget.
    Clean,
    /// It had no callback, or the callback failed: removed by force (the
    /// abort protocol); its resources were freed all the same.
    Forced(Option<AbortCause>),
}

/// The graft runtime of one image.
pub struct Runtime {
    /// Shared with every graft's store (weakly), for `emit`.
    core: Rc<Core>,
    /// Per point: whether any graft is installed (the hot path's one check,
    /// kept outside the shared table; see `refresh`).
    grafted: Vec<bool>,
    next_id: GraftId,
    faults: FaultLog,
}

/// A host-side error of the management API (not a graft's fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManageError {
    UnknownPoint(String),
    UnknownGraft(GraftId),
    DuplicatePoint(String),
    /// A point may return at most [`crate::MAX_RESULTS`] values.
    TooManyResults(String),
}

impl core::fmt::Display for ManageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ManageError::UnknownPoint(p) => write!(f, "no graft point named `{p}`"),
            ManageError::UnknownGraft(g) => write!(f, "no graft {g} at that point"),
            ManageError::DuplicatePoint(p) => write!(f, "graft point `{p}` is declared twice"),
            ManageError::TooManyResults(p) => write!(
                f,
                "graft point `{p}` returns more than {} value",
                crate::val::MAX_RESULTS
            ),
        }
    }
}

impl Runtime {
    /// A runtime with `counters` host counters, `limits` and the host's
    /// clock, whose code pages use the host's own virtual memory (host
    /// tests and benchmarks).
    pub fn new(counters: usize, limits: Limits, clock: Rc<dyn Clock>) -> Runtime {
        Runtime::with_platform(counters, limits, clock, Platform::default())
    }

    /// [`Runtime::new`] on the embedder's [`Platform`]: how code pages are
    /// published read+execute and CPU faults in graft code are recovered
    /// (an image's page tables and exception handler).
    pub fn with_platform(
        counters: usize,
        limits: Limits,
        clock: Rc<dyn Clock>,
        platform: Platform,
    ) -> Runtime {
        let engine = crate::engine::engine(platform.code_memory);
        Runtime {
            core: Rc::new(Core {
                linker: sandbox::linker(&engine),
                catch: platform.catch,
                state: Rc::new(RefCell::new(HostState::new(counters, limits, clock))),
                points: RefCell::new(Vec::new()),
                faults: RefCell::new(Vec::new()),
                emit_depth: Cell::new(0),
            }),
            grafted: Vec::new(),
            next_id: 1,
            faults: FaultLog::default(),
        }
    }

    /// Declares a graft point, and resolves the `emits` names of every
    /// point (this one's, and others' that name it).
    pub fn declare(&mut self, spec: PointSpec) -> Result<(), ManageError> {
        if spec.results.len() > crate::val::MAX_RESULTS {
            return Err(ManageError::TooManyResults(spec.name));
        }
        let mut points = self.core.points.borrow_mut();
        if points.iter().any(|p| p.spec.name == spec.name) {
            return Err(ManageError::DuplicatePoint(spec.name));
        }
        points.push(Point {
            spec: Rc::new(spec),
            grafts: Vec::new(),
            emits: Vec::new(),
        });
        crate::events::resolve(&mut points);
        self.grafted.push(false);
        Ok(())
    }

    fn point_index(&self, name: &str) -> Option<usize> {
        self.core
            .points
            .borrow()
            .iter()
            .position(|p| p.spec.name == name)
    }

    /// The index of `point`, or the load error that names it.
    fn point_to_load(&self, point: &str) -> Result<usize, LoadError> {
        self.point_index(point)
            .ok_or_else(|| LoadError::UnknownPoint(point.into()))
    }

    /// Point `index`'s graft `graft`: its spec, position and slot.
    fn find(&self, index: usize, graft: GraftId) -> Option<(Rc<PointSpec>, usize, Slot)> {
        let points = self.core.points.borrow();
        let point = &points[index];
        let position = point.grafts.iter().position(|g| g.id == graft)?;
        Some((point.spec.clone(), position, point.grafts[position].clone()))
    }

    /// Every installed graft that is not running (from the host, none is).
    fn grafts(&self) -> Vec<(Rc<PointSpec>, Slot)> {
        let points = self.core.points.borrow();
        points
            .iter()
            .flat_map(|p| p.grafts.iter().map(|g| (p.spec.clone(), g.clone())))
            .collect()
    }

    /// The host state (counters, maps, locks) for the host to read or seed.
    pub fn state(&self) -> core::cell::RefMut<'_, HostState> {
        self.core.state.borrow_mut()
    }

    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    /// Moves the faults of the call that just ended (its own and those of
    /// the handlers of events it emitted) to the log. Only a fault can
    /// unload a graft during a call, so only then is `grafted` refreshed.
    fn settle(&mut self) {
        let mut pending = self.core.faults.borrow_mut();
        if pending.is_empty() {
            return;
        }
        for fault in pending.drain(..) {
            self.faults.push(fault);
        }
        drop(pending);
        self.refresh();
    }

    /// Recomputes which points have grafts.
    fn refresh(&mut self) {
        let points = self.core.points.borrow();
        self.grafted.clear();
        self.grafted
            .extend(points.iter().map(|p| !p.grafts.is_empty()));
    }

    fn prepare(
        &mut self,
        index: usize,
        bytes: &[u8],
        granted: Capabilities,
    ) -> Result<Slot, LoadError> {
        let spec = self.core.points.borrow()[index].spec.clone();
        let capabilities = granted.intersect(spec.capabilities);
        let module = sandbox::validate(self.core.linker.engine(), bytes, &spec, capabilities)?;
        let id = self.next_id;
        let binding = Binding {
            core: Rc::downgrade(&self.core),
            state: self.core.state.clone(),
            point: index,
            graft: id,
            capabilities,
        };
        let instance =
            sandbox::instantiate(&self.core.linker, self.core.catch, &module, &spec, binding)?;
        self.next_id += 1;
        Ok(Rc::new(Graft {
            id,
            cell: RefCell::new(Installed {
                module,
                instance,
                stats: GraftStats::default(),
                failures: 0,
                restarted: false,
            }),
        }))
    }

    /// Validates, instantiates and installs a graft; returns its id.
    pub fn load(
        &mut self,
        point: &str,
        bytes: &[u8],
        granted: Capabilities,
    ) -> Result<GraftId, LoadError> {
        let index = self.point_to_load(point)?;
        let full = {
            let points = self.core.points.borrow();
            let capacity = match points[index].spec.kind {
                Kind::Replace => 1,
                Kind::Event { max_handlers } => max_handlers,
            };
            points[index].grafts.len() >= capacity
        };
        if full {
            return Err(LoadError::PointFull(point.into()));
        }
        let slot = self.prepare(index, bytes, granted)?;
        let id = slot.id;
        self.core.points.borrow_mut()[index].grafts.push(slot);
        self.refresh();
        Ok(id)
    }

    /// Atomically swaps graft `old` for a new module: the new one is fully
    /// validated and instantiated first; calls see the old one or the new
    /// one, never neither. On error nothing changes.
    pub fn replace(
        &mut self,
        point: &str,
        old: GraftId,
        bytes: &[u8],
        granted: Capabilities,
    ) -> Result<GraftId, LoadError> {
        let index = self.point_to_load(point)?;
        let (_, position, _) = self
            .find(index, old)
            .ok_or_else(|| LoadError::UnknownPoint(alloc::format!("{point} (graft {old})")))?;
        let slot = self.prepare(index, bytes, granted)?;
        let id = slot.id;
        self.core.points.borrow_mut()[index].grafts[position] = slot;
        self.core.state.borrow_mut().release_graft(old);
        Ok(id)
    }

    /// Removes a graft and frees everything it holds.
    pub fn unload(&mut self, point: &str, graft: GraftId) -> Result<(), ManageError> {
        let index = self
            .point_index(point)
            .ok_or_else(|| ManageError::UnknownPoint(point.into()))?;
        let (_, position, _) = self
            .find(index, graft)
            .ok_or(ManageError::UnknownGraft(graft))?;
        self.core.points.borrow_mut()[index].grafts.remove(position);
        self.core.state.borrow_mut().release_graft(graft);
        self.refresh();
        Ok(())
    }

    /// Visible revocation: the graft's `graft_revoke` runs (in a transaction,
    /// on the point's small revoke budget) to release things cleanly; if it
    /// is missing or fails, the abort protocol removes the graft by force.
    /// Either way it is gone and its resources are freed.
    pub fn revoke(&mut self, point: &str, graft: GraftId) -> Result<Revocation, ManageError> {
        let index = self
            .point_index(point)
            .ok_or_else(|| ManageError::UnknownPoint(point.into()))?;
        let (spec, _, slot) = self
            .find(index, graft)
            .ok_or(ManageError::UnknownGraft(graft))?;
        let outcome = match slot.cell.try_borrow_mut() {
            Ok(mut installed) => match installed.instance.revoke.clone() {
                None => Revocation::Forced(None),
                Some(revoke) => {
                    self.core.state.borrow_mut().begin(graft);
                    let store = &mut installed.instance.store;
                    let result = store
                        .set_fuel(spec.revoke_fuel)
                        .map_err(|_| AbortCause::OtherTrap)
                        .and_then(|()| {
                            crate::call::call_func(self.core.catch, store, &revoke, &[], &[])
                        });
                    let mut state = self.core.state.borrow_mut();
                    match result {
                        Ok(_) => {
                            state.commit();
                            Revocation::Clean
                        }
                        Err(cause) => {
                            state.abort();
                            Revocation::Forced(Some(cause))
                        }
                    }
                }
            },
            Err(_) => Revocation::Forced(Some(AbortCause::Reentrancy)),
        };
        self.settle();
        self.unload(point, graft)?;
        Ok(outcome)
    }

    /// Every installed graft.
    pub fn list(&self) -> Vec<GraftInfo> {
        self.grafts()
            .into_iter()
            .filter_map(|(spec, g)| {
                let installed = g.cell.try_borrow().ok()?;
                Some(GraftInfo {
                    id: g.id,
                    point: spec.name.clone(),
                    module_bytes: installed.module.bytes,
                    stats: installed.stats.clone(),
                })
            })
            .collect()
    }

    /// The installed graft `graft`'s cell, wherever it is.
    fn graft(&self, graft: GraftId) -> Option<Slot> {
        let points = self.core.points.borrow();
        points
            .iter()
            .flat_map(|p| p.grafts.iter())
            .find(|g| g.id == graft)
            .cloned()
    }

    /// Lines the graft wrote with the `log` accessor (most recent last).
    pub fn graft_log(&self, graft: GraftId) -> Vec<String> {
        self.graft(graft)
            .and_then(|g| {
                let installed = g.cell.try_borrow().ok()?;
                Some(installed.instance.store.data().log.clone())
            })
            .unwrap_or_default()
    }

    /// Whether `point` has any graft (else its compiled-in default runs).
    pub fn is_grafted(&self, point: &str) -> bool {
        self.point_id(point)
            .is_some_and(|id| self.is_grafted_at(id))
    }

    /// [`Runtime::is_grafted`] by handle: one flag, no name lookup (what an
    /// adapter checks before it builds a call's context).
    #[inline]
    pub fn is_grafted_at(&self, point: PointId) -> bool {
        self.grafted.get(point.0).copied().unwrap_or(false)
    }

    /// Calls a replace point: the graft if one is installed and it commits,
    /// otherwise `default` (the compiled-in policy). `context` is the call's
    /// context bytes, visible to the graft through `ctx_*` accessors; on
    /// abort every change to it is undone.
    pub fn invoke(
        &mut self,
        point: &str,
        context: &mut Vec<u8>,
        args: &[Val],
        default: impl FnOnce(&[Val]) -> Vec<Val>,
    ) -> Vec<Val> {
        match self.point_id(point) {
            Some(id) => self.invoke_at(id, context, args, default),
            None => default(args),
        }
    }

    /// The handle of a declared point, for [`Runtime::invoke_at`] (no name
    /// lookup on the hot path).
    pub fn point_id(&self, name: &str) -> Option<PointId> {
        self.point_index(name).map(PointId)
    }

    /// [`Runtime::invoke`] by handle: with no graft installed this is one
    /// check and a call of `default`.
    #[inline]
    pub fn invoke_at(
        &mut self,
        point: PointId,
        context: &mut Vec<u8>,
        args: &[Val],
        default: impl FnOnce(&[Val]) -> Vec<Val>,
    ) -> Vec<Val> {
        match self.try_invoke_at(point, context, args) {
            Some(results) => results.to_vec(),
            None => default(args),
        }
    }

    /// A replace point's graft call by handle: its committed results, or
    /// `None` when no graft is installed or it aborted (for callers whose
    /// compiled-in policy is not a function of the same arguments).
    #[inline]
    pub fn try_invoke_at(
        &mut self,
        point: PointId,
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> Option<Vals> {
        if !self.is_grafted_at(point) {
            return None;
        }
        self.call_replace(point.0, context, args)
    }

    /// The slow half of [`Runtime::try_invoke_at`]: a graft is installed.
    /// `None`: it aborted (or its guard declined), the default serves.
    fn call_replace(&mut self, index: usize, context: &mut Vec<u8>, args: &[Val]) -> Option<Vals> {
        let (spec, slot) = {
            let points = self.core.points.borrow();
            let point = points.get(index)?;
            (point.spec.clone(), point.grafts.first()?.clone())
        };
        let (outcome, _) = self.core.call(index, &spec, &slot, context, args, false);
        self.settle();
        outcome.ok().flatten()
    }

    /// Runs every handler of an event point in order; each handler's guard
    /// (if any) is evaluated first. Returns each handler that ran and its
    /// committed results or abort cause.
    pub fn dispatch(
        &mut self,
        point: &str,
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> Vec<(GraftId, Result<Vals, AbortCause>)> {
        match self.point_id(point) {
            Some(id) => self.dispatch_at(id, context, args),
            None => Vec::new(),
        }
    }

    /// [`Runtime::dispatch`] by handle (no name lookup on the hot path).
    pub fn dispatch_at(
        &mut self,
        point: PointId,
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> Vec<(GraftId, Result<Vals, AbortCause>)> {
        if !self.is_grafted_at(point) {
            return Vec::new();
        }
        let (outcomes, _) = self.core.dispatch(point.0, context, args);
        self.settle();
        outcomes
    }

    /// Statistics of one graft.
    pub fn stats(&self, graft: GraftId) -> Option<GraftStats> {
        let slot = self.graft(graft)?;
        let installed = slot.cell.try_borrow().ok()?;
        Some(installed.stats.clone())
    }

    /// Names of the declared points.
    pub fn points(&self) -> Vec<String> {
        let points = self.core.points.borrow();
        points.iter().map(|p| p.spec.name.to_string()).collect()
    }
}
