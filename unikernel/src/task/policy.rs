//! Scheduling policies: which ready task runs next.
//!
//! This is the model every policy in Rootstock follows (and the one a
//! `sched.pick` graft replaces, through [`Overridable`]): a trait, a compiled-in default ([`Fifo`]), at least
//! one alternative ([`Priority`]), and the choice made per image at build
//! time (`scheduler: unikernel::task::Priority` in the image's `image!`).
//! The executor is generic over the policy, so the choice costs nothing at
//! run time: no dynamic dispatch, no unused policy in the image.

use alloc::boxed::Box;
use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Ordering;

use super::TaskId;

/// What a policy knows about a ready task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskMeta {
    pub id: TaskId,
    /// Higher runs first under [`Priority`]; ignored by [`Fifo`].
    pub priority: u8,
    /// The task's group (for group scheduling; policies may ignore it).
    pub group: u8,
    /// Order in which the task became ready (monotonic per executor).
    pub seq: u64,
    pub name: &'static str,
}

/// Picks the next task to run among the ready ones.
pub trait SchedPolicy: Default {
    /// Shown in the boot log.
    const NAME: &'static str;
    /// A task became ready.
    fn enqueue(&mut self, task: TaskMeta);
    /// The task to run next, removed from the ready set.
    fn pick_next(&mut self) -> Option<TaskMeta>;
    /// How many tasks are ready.
    fn len(&self) -> usize;
    /// Removes a specific ready task (when something else chose it).
    fn remove(&mut self, id: TaskId) -> Option<TaskMeta>;
    /// Appends the ready tasks to `out`, in the order this policy would run them.
    fn ready(&self, out: &mut Vec<TaskMeta>);
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First come, first served: the default.
#[derive(Default, Debug)]
pub struct Fifo {
    queue: VecDeque<TaskMeta>,
}

impl SchedPolicy for Fifo {
    const NAME: &'static str = "fifo";

    fn enqueue(&mut self, task: TaskMeta) {
        self.queue.push_back(task);
    }

    fn pick_next(&mut self) -> Option<TaskMeta> {
        self.queue.pop_front()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn remove(&mut self, id: TaskId) -> Option<TaskMeta> {
        let position = self.queue.iter().position(|t| t.id == id)?;
        self.queue.remove(position)
    }

    fn ready(&self, out: &mut Vec<TaskMeta>) {
        out.extend(self.queue.iter().copied());
    }
}

/// Strict priority, FIFO among equals.
#[derive(Default, Debug)]
pub struct Priority {
    heap: BinaryHeap<ByPriority>,
}

#[derive(Debug, PartialEq, Eq)]
struct ByPriority(TaskMeta);

impl Ord for ByPriority {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.seq.cmp(&self.0.seq))
    }
}

impl PartialOrd for ByPriority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl SchedPolicy for Priority {
    const NAME: &'static str = "priority";

    fn enqueue(&mut self, task: TaskMeta) {
        self.heap.push(ByPriority(task));
    }

    fn pick_next(&mut self) -> Option<TaskMeta> {
        self.heap.pop().map(|entry| entry.0)
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    fn remove(&mut self, id: TaskId) -> Option<TaskMeta> {
        let found = self.heap.iter().find(|t| t.0.id == id)?.0;
        self.heap.retain(|t| t.0.id != id);
        Some(found)
    }

    fn ready(&self, out: &mut Vec<TaskMeta>) {
        let start = out.len();
        out.extend(self.heap.iter().map(|t| t.0));
        out[start..].sort_by_key(|t| core::cmp::Reverse(ByPriority(*t)));
    }
}

/// A decision made at run time in place of the compiled-in policy: given the
/// ready tasks (in the policy's own order), the task to run, or `None` to
/// leave the choice to the policy. This is where a scheduling graft attaches.
pub type PickOverride = Box<dyn FnMut(&[TaskMeta]) -> Option<TaskId>>;

crate::cpu_local! {
    static OVERRIDE: Option<PickOverride> = None;
}

/// Installs (or with `None` removes) the run-time pick-next override used by
/// images whose scheduler is [`Overridable`]; returns the previous one.
pub fn set_pick_override(hook: Option<PickOverride>) -> Option<PickOverride> {
    crate::cpu_local_with!(OVERRIDE, |slot: &mut Option<PickOverride>| {
        core::mem::replace(slot, hook)
    })
}

/// Policy `P`, whose pick-next can be replaced in the running image by
/// [`set_pick_override`] (a graft). Without an override it is exactly `P`;
/// an override that names no ready task falls back to `P` for that pick.
#[derive(Default, Debug)]
pub struct Overridable<P: SchedPolicy> {
    inner: P,
}

impl<P: SchedPolicy> SchedPolicy for Overridable<P> {
    const NAME: &'static str = "overridable";

    fn enqueue(&mut self, task: TaskMeta) {
        self.inner.enqueue(task);
    }

    fn pick_next(&mut self) -> Option<TaskMeta> {
        // The hook is taken out while it runs, so it may itself spawn or
        // wake tasks (and a hook replaced meanwhile is not put back).
        let hook = set_pick_override(None);
        let Some(mut hook) = hook else {
            return self.inner.pick_next();
        };
        let mut ready = Vec::new();
        self.inner.ready(&mut ready);
        let choice = if ready.len() > 1 { hook(&ready) } else { None };
        crate::cpu_local_with!(OVERRIDE, |slot: &mut Option<PickOverride>| {
            if slot.is_none() {
                *slot = Some(hook);
            }
        });
        match choice.and_then(|id| self.inner.remove(id)) {
            Some(task) => Some(task),
            None => self.inner.pick_next(),
        }
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn remove(&mut self, id: TaskId) -> Option<TaskMeta> {
        self.inner.remove(id)
    }

    fn ready(&self, out: &mut Vec<TaskMeta>) {
        self.inner.ready(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn meta(n: u32, priority: u8) -> TaskMeta {
        TaskMeta {
            group: 0,
            id: TaskId::new(n, 0),
            priority,
            seq: u64::from(n),
            name: "t",
        }
    }

    fn drain<P: SchedPolicy>(policy: &mut P) -> Vec<u32> {
        core::iter::from_fn(|| policy.pick_next())
            .map(|t| t.id.index())
            .collect()
    }

    #[test]
    fn fifo_keeps_arrival_order_whatever_the_priority() {
        let mut fifo = Fifo::default();
        for (n, p) in [(1, 0), (2, 9), (3, 5)] {
            fifo.enqueue(meta(n, p));
        }
        assert_eq!(fifo.len(), 3);
        assert_eq!(drain(&mut fifo), [1, 2, 3]);
        assert!(fifo.is_empty());
    }

    #[test]
    fn priority_runs_highest_first_and_fifo_among_equals() {
        let mut prio = Priority::default();
        for (n, p) in [(1, 1), (2, 9), (3, 5), (4, 9), (5, 1)] {
            prio.enqueue(meta(n, p));
        }
        assert_eq!(drain(&mut prio), [2, 4, 3, 1, 5]);
    }
}

#[cfg(test)]
mod override_tests {
    use super::tests::meta;
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn ready_lists_tasks_in_policy_order_and_remove_takes_one() {
        let mut prio = Priority::default();
        for (n, p) in [(1, 1), (2, 9), (3, 5)] {
            prio.enqueue(meta(n, p));
        }
        let mut ready = Vec::new();
        prio.ready(&mut ready);
        assert_eq!(
            ready.iter().map(|t| t.id.index()).collect::<Vec<_>>(),
            [2, 3, 1]
        );
        assert_eq!(prio.remove(TaskId::new(3, 0)).map(|t| t.priority), Some(5));
        assert_eq!(prio.remove(TaskId::new(3, 0)), None);
        assert_eq!(prio.pick_next().map(|t| t.id.index()), Some(2));
        assert_eq!(prio.pick_next().map(|t| t.id.index()), Some(1));
    }

    #[test]
    fn an_override_decides_and_a_bad_answer_falls_back() {
        let mut policy = Overridable::<Fifo>::default();
        for n in 1..=4 {
            policy.enqueue(meta(n, 0));
        }
        // Without an override: FIFO.
        assert_eq!(policy.pick_next().map(|t| t.id.index()), Some(1));
        // "Run the last one": 4, then 3.
        set_pick_override(Some(Box::new(|ready: &[TaskMeta]| {
            ready.last().map(|t| t.id)
        })));
        assert_eq!(policy.pick_next().map(|t| t.id.index()), Some(4));
        assert_eq!(policy.pick_next().map(|t| t.id.index()), Some(3));
        // A task that is not ready: the policy's own choice.
        set_pick_override(Some(Box::new(|_: &[TaskMeta]| Some(TaskId::new(99, 0)))));
        policy.enqueue(meta(5, 0));
        assert_eq!(policy.pick_next().map(|t| t.id.index()), Some(2));
        assert!(set_pick_override(None).is_some());
        assert_eq!(policy.pick_next().map(|t| t.id.index()), Some(5));
        assert_eq!(policy.pick_next(), None);
    }
}
