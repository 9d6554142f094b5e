//! The scheduler's pick-next as a graft point (`sched.pick`, replace).
//!
//! [`install`] hooks the executor of an image whose scheduler is
//! `unikernel::task::Overridable<P>`: whenever more than one task is ready,
//! a graft on `sched.pick` sees them as its context (`[priority, group, 0,
//! 0]` each) and returns the index of the one to run. No graft, a graft
//! that aborts, or an index past the ready set: `P` picks, as compiled in.

use alloc::boxed::Box;
use alloc::vec::Vec;

use graft_runtime::{PointId, Val};
use unikernel::task::{TaskId, TaskMeta, set_pick_override};

use crate::host::{Shared, grafted};

/// Most ready tasks shown to a graft at once (the rest are not candidates).
pub const MAX_SHOWN: usize = 256;

/// The context a scheduling graft sees for `ready`.
pub fn context(ready: &[TaskMeta]) -> Vec<u8> {
    ready
        .iter()
        .take(MAX_SHOWN)
        .flat_map(|t| [t.priority, t.group, 0, 0])
        .collect()
}

fn pick(host: &Shared, point: PointId, ready: &[TaskMeta]) -> Option<TaskId> {
    let mut host = grafted(host, point)?;
    let shown = ready.len().min(MAX_SHOWN);
    let mut context = context(ready);
    let results = host
        .runtime()
        .try_invoke_at(point, &mut context, &[Val::I32(shown as i32)])?;
    match &results[..] {
        [Val::I32(i)] => ready.get(usize::try_from(*i).ok()?).map(|t| t.id),
        _ => None,
    }
}

/// Declares `sched.pick` on `host` and hooks the executor's pick-next.
pub fn install(host: &Shared) -> Result<(), graft_runtime::ManageError> {
    let point = host.borrow_mut().declare(crate::points::sched_pick())?;
    let host = host.clone();
    set_pick_override(Some(Box::new(move |ready: &[TaskMeta]| {
        pick(&host, point, ready)
    })));
    Ok(())
}
