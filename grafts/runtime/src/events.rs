//! Events that grafts emit (SPIN's events, VINO's nested transactions).
//!
//! A graft granted `events` calls `emit` to trigger one of the event points
//! its own point lists in [`crate::PointSpec::emits`]. The event's handlers
//! run right away, each in a transaction nested in the emitter's: an inner
//! abort undoes that handler's work only and counts as its failure (fault
//! log, K-failure policy); an inner commit hands its undo records and locks
//! to the emitter's transaction, so if the emitter later aborts, the
//! handlers' work is undone with its own.
//!
//! What keeps this bounded: a handler that is already running (the emitter
//! itself, or any graft further up the chain) is never entered again — the
//! emit is refused with [`AbortCause::Reentrancy`] before any handler runs,
//! so a cycle cannot recurse; the chain of emits is at most
//! [`MAX_EMIT_DEPTH`] deep; and each handler runs on its own point's fuel,
//! which is then charged to the emitter, so one host call never burns more
//! than its budget plus one overshoot per level.

use alloc::vec::Vec;

use crate::val::{Val, ValType};

use crate::abi::{MAX_EMIT_DEPTH, emit_verdict};
use crate::call::{Core, Point};
use crate::fault::AbortCause;

/// Resolves every point's `emits` names to point indices (after a point
/// is declared: names may refer to points declared later, or to itself).
pub(crate) fn resolve(points: &mut [Point]) {
    for i in 0..points.len() {
        let resolved: Vec<Option<usize>> = points[i]
            .spec
            .emits
            .iter()
            .map(|name| {
                points
                    .iter()
                    .position(|p| p.spec.name == *name && p.spec.emittable())
            })
            .collect();
        points[i].emits = resolved;
    }
}

/// The handlers' arguments for a target point's parameters.
fn arguments(params: &[ValType], arg: i64) -> Result<Vec<Val>, AbortCause> {
    match params {
        [] => Ok(Vec::new()),
        [ValType::I32] => i32::try_from(arg)
            .map(|a| alloc::vec![Val::I32(a)])
            .map_err(|_| AbortCause::BadArgument),
        [ValType::I64] => Ok(alloc::vec![Val::I64(arg)]),
        _ => Err(AbortCause::BadArgument),
    }
}

impl Core {
    /// A graft at point `from` emits its `which`-th event with `context`
    /// and `arg`. Returns the verdict (see [`emit_verdict`]) and the fuel
    /// the handlers burnt, or why the emitter must abort.
    pub(crate) fn emit(
        &self,
        from: usize,
        which: i32,
        mut context: Vec<u8>,
        arg: i64,
    ) -> Result<(i64, u64), AbortCause> {
        // Only from inside a transaction (not from a start function).
        if self.state.borrow().depth() == 0 {
            return Err(AbortCause::ForbiddenAccessor);
        }
        let target = {
            let points = self.points.borrow();
            let which = usize::try_from(which).map_err(|_| AbortCause::BadArgument)?;
            points
                .get(from)
                .and_then(|p| p.emits.get(which).copied().flatten())
                .ok_or(AbortCause::BadArgument)?
        };
        let (spec, handlers) = self.handlers(target).ok_or(AbortCause::BadArgument)?;
        let args = arguments(&spec.params, arg)?;
        if handlers.iter().any(|g| g.cell.try_borrow_mut().is_err()) {
            return Err(AbortCause::Reentrancy);
        }
        let depth = self.emit_depth.get();
        if depth >= MAX_EMIT_DEPTH {
            return Err(AbortCause::ResourceLimit);
        }
        self.emit_depth.set(depth + 1);
        self.state.borrow_mut().enter_frame();
        let (outcomes, burnt) = self.run_handlers(target, &spec, &handlers, &mut context, &args);
        self.state.borrow_mut().leave_frame();
        self.emit_depth.set(depth);
        let committed = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
        let aborted = outcomes.len() - committed;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok((emit_verdict(count(committed), count(aborted)), burnt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_fit_the_target_parameters_or_are_refused() {
        assert!(matches!(arguments(&[], 9).as_deref(), Ok([])));
        assert!(matches!(
            arguments(&[ValType::I64], -3).as_deref(),
            Ok([Val::I64(-3)])
        ));
        assert!(matches!(
            arguments(&[ValType::I32], 7).as_deref(),
            Ok([Val::I32(7)])
        ));
        assert_eq!(
            arguments(&[ValType::I32], i64::MAX).err(),
            Some(AbortCause::BadArgument)
        );
        assert_eq!(
            arguments(&[ValType::I32, ValType::I32], 0).err(),
            Some(AbortCause::BadArgument)
        );
    }
}
