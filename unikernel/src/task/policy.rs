//! Scheduling policies: which ready task runs next.
//!
//! This is the model every policy in Rootstock follows (and the place where
//! grafts later hang): a trait, a compiled-in default ([`Fifo`]), at least
//! one alternative ([`Priority`]), and the choice made per image at build
//! time (`scheduler: unikernel::task::Priority` in the image's `image!`).
//! The executor is generic over the policy, so the choice costs nothing at
//! run time: no dynamic dispatch, no unused policy in the image.

use alloc::collections::{BinaryHeap, VecDeque};
use core::cmp::Ordering;

use super::TaskId;

/// What a policy knows about a ready task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskMeta {
    pub id: TaskId,
    /// Higher runs first under [`Priority`]; ignored by [`Fifo`].
    pub priority: u8,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn meta(n: u32, priority: u8) -> TaskMeta {
        TaskMeta {
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
