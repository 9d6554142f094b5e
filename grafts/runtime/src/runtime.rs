//! The runtime: graft points, the grafts installed on them, and the
//! transactional call path (begin → call → validate → commit, or abort).

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use wasmi::{Engine, Linker, Val};

use crate::abi::Capabilities;
use crate::fault::{AbortCause, Fault, FaultAction, FaultLog};
use crate::point::{Kind, PointSpec};
use crate::sandbox::{self, HostData, Instance, LoadError, ValidatedModule};
use crate::state::{Clock, GraftId, HostState, Limits};
use crate::stats::GraftStats;

/// An installed graft.
struct Installed {
    id: GraftId,
    module: ValidatedModule,
    instance: Instance,
    capabilities: Capabilities,
    stats: GraftStats,
    failures: u32,
    restarted: bool,
}

struct Point {
    spec: PointSpec,
    grafts: Vec<Installed>,
}

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
    engine: Engine,
    linker: Linker<HostData>,
    state: Rc<RefCell<HostState>>,
    points: Vec<Point>,
    next_id: GraftId,
    faults: FaultLog,
}

/// A host-side error of the management API (not a graft's fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManageError {
    UnknownPoint(String),
    UnknownGraft(GraftId),
    DuplicatePoint(String),
}

impl core::fmt::Display for ManageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ManageError::UnknownPoint(p) => write!(f, "no graft point named `{p}`"),
            ManageError::UnknownGraft(g) => write!(f, "no graft {g} at that point"),
            ManageError::DuplicatePoint(p) => write!(f, "graft point `{p}` is declared twice"),
        }
    }
}

impl Runtime {
    /// A runtime with `counters` host counters, `limits` and the host's clock.
    pub fn new(counters: usize, limits: Limits, clock: Rc<dyn Clock>) -> Runtime {
        let engine = sandbox::engine();
        let linker = sandbox::linker(&engine);
        Runtime {
            engine,
            linker,
            state: Rc::new(RefCell::new(HostState::new(counters, limits, clock))),
            points: Vec::new(),
            next_id: 1,
            faults: FaultLog::default(),
        }
    }

    /// Declares a graft point.
    pub fn declare(&mut self, spec: PointSpec) -> Result<(), ManageError> {
        if self.points.iter().any(|p| p.spec.name == spec.name) {
            return Err(ManageError::DuplicatePoint(spec.name));
        }
        self.points.push(Point {
            spec,
            grafts: Vec::new(),
        });
        Ok(())
    }

    fn point_index(&self, name: &str) -> Option<usize> {
        self.points.iter().position(|p| p.spec.name == name)
    }

    /// The host state (counters, maps, locks) for the host to read or seed.
    pub fn state(&self) -> core::cell::RefMut<'_, HostState> {
        self.state.borrow_mut()
    }

    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    fn prepare(
        &mut self,
        point: usize,
        bytes: &[u8],
        granted: Capabilities,
    ) -> Result<Installed, LoadError> {
        let spec = &self.points[point].spec;
        let capabilities = granted.intersect(spec.capabilities);
        let module = sandbox::validate(&self.engine, bytes, spec, capabilities)?;
        let id = self.next_id;
        let instance = sandbox::instantiate(
            &self.linker,
            &module,
            spec,
            self.state.clone(),
            id,
            capabilities,
        )?;
        self.next_id += 1;
        Ok(Installed {
            id,
            module,
            instance,
            capabilities,
            stats: GraftStats::default(),
            failures: 0,
            restarted: false,
        })
    }

    /// Validates, instantiates and installs a graft; returns its id.
    pub fn load(
        &mut self,
        point: &str,
        bytes: &[u8],
        granted: Capabilities,
    ) -> Result<GraftId, LoadError> {
        let index = self
            .point_index(point)
            .ok_or_else(|| LoadError::UnknownPoint(point.into()))?;
        let capacity = match self.points[index].spec.kind {
            Kind::Replace => 1,
            Kind::Event { max_handlers } => max_handlers,
        };
        if self.points[index].grafts.len() >= capacity {
            return Err(LoadError::PointFull(point.into()));
        }
        let installed = self.prepare(index, bytes, granted)?;
        let id = installed.id;
        self.points[index].grafts.push(installed);
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
        let index = self
            .point_index(point)
            .ok_or_else(|| LoadError::UnknownPoint(point.into()))?;
        let slot = self.points[index]
            .grafts
            .iter()
            .position(|g| g.id == old)
            .ok_or_else(|| LoadError::UnknownPoint(alloc::format!("{point} (graft {old})")))?;
        let installed = self.prepare(index, bytes, granted)?;
        let id = installed.id;
        let previous = core::mem::replace(&mut self.points[index].grafts[slot], installed);
        self.state.borrow_mut().release_graft(previous.id);
        Ok(id)
    }

    /// Removes a graft and frees everything it holds.
    pub fn unload(&mut self, point: &str, graft: GraftId) -> Result<(), ManageError> {
        let index = self
            .point_index(point)
            .ok_or_else(|| ManageError::UnknownPoint(point.into()))?;
        let grafts = &mut self.points[index].grafts;
        let slot = grafts
            .iter()
            .position(|g| g.id == graft)
            .ok_or(ManageError::UnknownGraft(graft))?;
        grafts.remove(slot);
        self.state.borrow_mut().release_graft(graft);
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
        let grafts = &mut self.points[index].grafts;
        let slot = grafts
            .iter()
            .position(|g| g.id == graft)
            .ok_or(ManageError::UnknownGraft(graft))?;
        let fuel = self.points[index].spec.revoke_fuel;
        let installed = &mut self.points[index].grafts[slot];
        let outcome = match installed.instance.revoke {
            None => Revocation::Forced(None),
            Some(revoke) => {
                self.state.borrow_mut().begin(graft);
                let store = &mut installed.instance.store;
                let result = store
                    .set_fuel(fuel)
                    .and_then(|()| revoke.call(&mut *store, &[], &mut []));
                match result {
                    Ok(()) => {
                        self.state.borrow_mut().commit();
                        Revocation::Clean
                    }
                    Err(error) => {
                        self.state.borrow_mut().abort();
                        Revocation::Forced(Some(sandbox::cause_of(&error)))
                    }
                }
            }
        };
        self.unload(point, graft)?;
        Ok(outcome)
    }

    /// Every installed graft.
    pub fn list(&self) -> Vec<GraftInfo> {
        self.points
            .iter()
            .flat_map(|p| {
                p.grafts.iter().map(|g| GraftInfo {
                    id: g.id,
                    point: p.spec.name.clone(),
                    module_bytes: g.module.bytes,
                    stats: g.stats.clone(),
                })
            })
            .collect()
    }

    /// Lines the graft wrote with the `log` accessor (most recent last).
    pub fn graft_log(&self, graft: GraftId) -> Vec<String> {
        self.points
            .iter()
            .flat_map(|p| p.grafts.iter())
            .find(|g| g.id == graft)
            .map(|g| g.instance.store.data().log.clone())
            .unwrap_or_default()
    }

    /// Whether `point` has any graft (else its compiled-in default runs).
    pub fn is_grafted(&self, point: &str) -> bool {
        self.point_index(point)
            .is_some_and(|i| !self.points[i].grafts.is_empty())
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
        let grafted = self
            .points
            .get(point.0)
            .is_some_and(|p| !p.grafts.is_empty());
        if !grafted {
            return default(args);
        }
        match self.call(point.0, 0, context, args, false) {
            Ok(Some(results)) => results,
            _ => default(args),
        }
    }

    /// Runs every handler of an event point in order; each handler's guard
    /// (if any) is evaluated first. Returns each handler that ran and its
    /// committed results or abort cause.
    pub fn dispatch(
        &mut self,
        point: &str,
        context: &mut Vec<u8>,
        args: &[Val],
    ) -> Vec<(GraftId, Result<Vec<Val>, AbortCause>)> {
        let Some(index) = self.point_index(point) else {
            return Vec::new();
        };
        let mut outcomes = Vec::new();
        let mut slot = 0;
        while slot < self.points[index].grafts.len() {
            let id = self.points[index].grafts[slot].id;
            match self.call(index, slot, context, args, true) {
                Ok(Some(results)) => outcomes.push((id, Ok(results))),
                Ok(None) => {}
                Err(cause) => outcomes.push((id, Err(cause))),
            }
            // An unloaded handler shifts the rest down.
            if self.points[index]
                .grafts
                .get(slot)
                .is_some_and(|g| g.id == id)
            {
                slot += 1;
            }
        }
        outcomes
    }

    /// One transactional call of graft `slot` at point `index`.
    /// `Ok(None)`: its guard declined.
    fn call(
        &mut self,
        index: usize,
        slot: usize,
        context: &mut Vec<u8>,
        args: &[Val],
        guarded: bool,
    ) -> Result<Option<Vec<Val>>, AbortCause> {
        let spec = &self.points[index].spec;
        let (fuel, validator) = (spec.fuel, spec.validator);
        let result_types = spec.results.clone();
        let started = self.state.borrow().now_ns();
        let graft = &mut self.points[index].grafts[slot];
        let id = graft.id;
        {
            let mut state = self.state.borrow_mut();
            core::mem::swap(&mut state.context, context);
            state.begin(id);
        }
        graft.stats.calls += 1;
        let store = &mut graft.instance.store;
        let outcome = (|| {
            store.set_fuel(fuel).map_err(|_| AbortCause::OtherTrap)?;
            if guarded && let Some(guard) = graft.instance.guard {
                let mut verdict = [Val::I32(0)];
                guard
                    .call(&mut *store, args, &mut verdict)
                    .map_err(|e| sandbox::cause_of(&e))?;
                if verdict[0].i32() == Some(0) {
                    return Ok(None);
                }
            }
            let mut results: Vec<Val> = result_types
                .iter()
                .map(|t| Val::default_for_ty(*t))
                .collect();
            graft
                .instance
                .main
                .call(&mut *store, args, &mut results)
                .map_err(|e| sandbox::cause_of(&e))?;
            if !validator(&results) {
                return Err(AbortCause::InvalidReturn);
            }
            Ok(Some(results))
        })();
        let fuel_left = store.get_fuel().unwrap_or(0);
        graft.stats.fuel_used += fuel.saturating_sub(fuel_left);
        {
            let mut state = self.state.borrow_mut();
            match outcome {
                Ok(_) => state.commit(),
                Err(_) => state.abort(),
            }
            core::mem::swap(&mut state.context, context);
        }
        let elapsed = self.state.borrow().now_ns().saturating_sub(started);
        let graft = &mut self.points[index].grafts[slot];
        graft.stats.record_latency(elapsed);
        match outcome {
            Ok(None) => {
                graft.stats.guarded_out += 1;
                Ok(None)
            }
            Ok(Some(results)) => {
                graft.stats.commits += 1;
                Ok(Some(results))
            }
            Err(cause) => {
                graft.stats.record_abort(cause);
                graft.failures += 1;
                let action = self.after_failure(index, slot);
                let at_ns = self.state.borrow().now_ns();
                let point = self.points[index].spec.name.clone();
                self.faults.push(Fault {
                    at_ns,
                    point,
                    graft: id,
                    cause,
                    action,
                });
                Err(cause)
            }
        }
    }

    /// The point's failure policy: keep, restart a fresh instance once
    /// (Nooks), or unload after `max_failures`.
    fn after_failure(&mut self, index: usize, slot: usize) -> FaultAction {
        let spec = &self.points[index].spec;
        let graft = &self.points[index].grafts[slot];
        if graft.failures < spec.max_failures {
            return FaultAction::Aborted;
        }
        if spec.restart && !graft.restarted {
            let fresh = sandbox::instantiate(
                &self.linker,
                &graft.module,
                spec,
                self.state.clone(),
                graft.id,
                graft.capabilities,
            );
            if let Ok(instance) = fresh {
                let graft = &mut self.points[index].grafts[slot];
                graft.instance = instance;
                graft.failures = 0;
                graft.restarted = true;
                return FaultAction::Restarted;
            }
        }
        let removed = self.points[index].grafts.remove(slot);
        self.state.borrow_mut().release_graft(removed.id);
        FaultAction::Unloaded
    }

    /// Statistics of one graft.
    pub fn stats(&self, graft: GraftId) -> Option<GraftStats> {
        self.points
            .iter()
            .flat_map(|p| p.grafts.iter())
            .find(|g| g.id == graft)
            .map(|g| g.stats.clone())
    }

    /// Names of the declared points.
    pub fn points(&self) -> Vec<String> {
        self.points
            .iter()
            .map(|p| p.spec.name.to_string())
            .collect()
    }
}
