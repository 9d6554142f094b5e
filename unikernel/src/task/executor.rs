//! The executor: a single-CPU, cooperative scheduler of async tasks.
//!
//! Why async tasks rather than kernel threads: an image is one application
//! on one CPU, its work is mostly waiting on devices and timers, and a
//! future is a few hundred bytes where a thread needs a stack; there is no
//! context-switch code to get wrong, and each wait point is explicit.
//!
//! Three interrupt-safe structures connect the executor to the world:
//! tasks spawned (from task context), tasks woken from anywhere (including
//! interrupt handlers), and the timer queue.
//!
//! Waking never allocates or frees, so an interrupt handler may wake a
//! task even when it interrupted code that holds the heap's lock. A wake
//! sets the task's bit in a bitmap ([`WakeSet`]) that the executor sizes
//! in task context when it admits a task, before any waker for that slot
//! exists; and every task slot has one waker, made once and kept by the
//! executor for good, so the waker a handler clones and drops is never the
//! last reference. A waker names a slot, not a generation: a wake that
//! outlives its task wakes the slot's next task, which futures must
//! tolerate anyway (a spurious wake-up). The executor owns the tasks and asks its
//! [`SchedPolicy`] which ready task to poll next. When nothing is ready it
//! asks the [`Platform`] to idle until the next timer deadline: on the
//! target that is `hlt` with a one-shot APIC timer, so an idle image uses
//! no CPU.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};

use super::TaskId;
use super::policy::{SchedPolicy, TaskMeta};
use crate::slab::Slab;
use crate::time::{Instant, TimerQueue};

/// What the executor needs from the machine.
pub trait Platform {
    /// The current time.
    fn now(&mut self) -> Instant;
    /// Waits until an interrupt or `deadline`, unless work is already pending
    /// (checked with [`has_pending_work`] with interrupts disabled).
    fn idle(&mut self, deadline: Option<Instant>);
}

pub(crate) type BoxedTask = Pin<Box<dyn Future<Output = ()> + 'static>>;

pub(crate) struct NewTask {
    pub future: BoxedTask,
    pub priority: u8,
    pub group: u8,
    pub name: &'static str,
}

/// The task slots woken since the executor last looked: one bit per slot.
/// Only [`WakeSet::cover`] allocates, and only the executor calls it, in
/// task context; [`WakeSet::insert`] (what a waker does) never does.
pub(crate) struct WakeSet {
    words: Vec<u64>,
    any: bool,
}

impl WakeSet {
    const fn new() -> WakeSet {
        WakeSet {
            words: Vec::new(),
            any: false,
        }
    }

    /// Makes room for slot `index` (task context only).
    fn cover(&mut self, index: usize) {
        let words = index / 64 + 1;
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
    }

    /// Marks slot `index` woken. A slot not covered cannot have a waker
    /// yet; it is ignored rather than grown into (no allocation here).
    fn insert(&mut self, index: usize) {
        if let Some(word) = self.words.get_mut(index / 64) {
            *word |= 1 << (index % 64);
            self.any = true;
        }
    }

    /// Calls `f` for every woken slot and clears them.
    fn drain(&mut self, mut f: impl FnMut(usize)) {
        if !core::mem::take(&mut self.any) {
            return;
        }
        for (at, word) in self.words.iter_mut().enumerate() {
            let mut bits = core::mem::take(word);
            while bits != 0 {
                f(at * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}

crate::cpu_local! {
    static SPAWNED: VecDeque<NewTask> = VecDeque::new();
    static WOKEN: WakeSet = WakeSet::new();
    static TIMERS: TimerQueue = TimerQueue::new();
}

/// Whether any task was spawned or woken and not yet admitted.
pub fn has_pending_work() -> bool {
    crate::cpu_local_with!(SPAWNED, |s: &mut VecDeque<NewTask>| !s.is_empty())
        || crate::cpu_local_with!(WOKEN, |w: &mut WakeSet| w.any)
}

fn wake_slot(index: usize) {
    crate::cpu_local_with!(WOKEN, |w: &mut WakeSet| w.insert(index));
}

/// Queues a new task for the executor.
pub(crate) fn push_spawned(task: NewTask) {
    crate::cpu_local_with!(SPAWNED, |s: &mut VecDeque<NewTask>| s.push_back(task));
}

/// Runs `f` on the timer queue.
pub(crate) fn with_timers<R>(f: impl FnOnce(&mut TimerQueue) -> R) -> R {
    crate::cpu_local_with!(TIMERS, f)
}

/// A task slot's waker: marks the slot woken for the executor.
struct SlotWaker(usize);

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        wake_slot(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake_slot(self.0);
    }
}

struct Task {
    future: BoxedTask,
    meta: TaskMeta,
    queued: bool,
}

/// Counters for the stats a kernel reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    pub polls: u64,
    pub spawned: u64,
    pub completed: u64,
    pub idles: u64,
}

/// Runs tasks under policy `P` until `main` completes.
pub struct Executor<P: SchedPolicy> {
    policy: P,
    tasks: Slab<Task>,
    /// One waker per task slot, made when the slot is first used and kept
    /// for good (see the module essay).
    wakers: Vec<Waker>,
    /// The slots woken, between the wake set and the policy.
    woken: Vec<usize>,
    seq: u64,
    stats: ExecutorStats,
}

impl<P: SchedPolicy> Default for Executor<P> {
    fn default() -> Self {
        Executor {
            policy: P::default(),
            tasks: Default::default(),
            wakers: Vec::new(),
            woken: Vec::new(),
            seq: 0,
            stats: ExecutorStats::default(),
        }
    }
}

impl<P: SchedPolicy> Executor<P> {
    pub fn stats(&self) -> ExecutorStats {
        self.stats
    }

    fn make_ready(&mut self, id: TaskId) {
        if let Some(task) = self.tasks.get_mut(id.key())
            && !task.queued
        {
            task.queued = true;
            self.seq += 1;
            task.meta.seq = self.seq;
            self.policy.enqueue(task.meta);
        }
    }

    fn admit(&mut self) {
        let spawned: Vec<NewTask> =
            crate::cpu_local_with!(SPAWNED, |s: &mut VecDeque<NewTask>| s.drain(..).collect());
        for new in spawned {
            let id = TaskId::from_key(self.tasks.next_key());
            let meta = TaskMeta {
                id,
                priority: new.priority,
                group: new.group,
                seq: 0,
                name: new.name,
            };
            let slot = id.index() as usize;
            crate::cpu_local_with!(WOKEN, |w: &mut WakeSet| w.cover(slot));
            while self.wakers.len() <= slot {
                let next = self.wakers.len();
                self.wakers.push(Waker::from(Arc::new(SlotWaker(next))));
            }
            self.tasks.insert(Task {
                future: new.future,
                meta,
                queued: false,
            });
            self.stats.spawned += 1;
            self.make_ready(id);
        }
        // Taken with interrupts off, into a buffer that is reused (it
        // allocates only the first time it grows).
        let mut woken = core::mem::take(&mut self.woken);
        crate::cpu_local_with!(WOKEN, |w: &mut WakeSet| w.drain(|slot| woken.push(slot)));
        for slot in woken.drain(..) {
            if let Some(id) = self.tasks.key_at(slot as u32) {
                self.make_ready(TaskId::from_key(id));
            }
        }
        self.woken = woken;
    }

    fn poll_one(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get_mut(id.key()) else {
            return;
        };
        task.queued = false;
        let Some(waker) = self.wakers.get(id.index() as usize) else {
            return;
        };
        let mut cx = Context::from_waker(waker);
        self.stats.polls += 1;
        if task.future.as_mut().poll(&mut cx).is_ready() {
            self.tasks.remove(id.key());
            self.stats.completed += 1;
        }
    }

    /// Runs every task until `main` completes and returns its output. Tasks
    /// still alive then are dropped, like threads at process exit.
    pub fn block_on<T: 'static>(
        &mut self,
        platform: &mut impl Platform,
        main: impl Future<Output = T> + 'static,
    ) -> T {
        let handle = super::Builder::new().name("main").spawn(main);
        loop {
            self.admit();
            // The clock is read only when a timer is pending: an image that
            // never sleeps never pays for calibrating it.
            if with_timers(|t| t.next_deadline()).is_some() {
                let now = platform.now();
                super::set_last_now(now);
                if with_timers(|t| t.fire_due(now)) > 0 {
                    self.admit();
                }
            }
            if let Some(next) = self.policy.pick_next() {
                self.poll_one(next.id);
                if let Some(output) = handle.try_take() {
                    self.tasks.clear();
                    return output;
                }
                continue;
            }
            self.stats.idles += 1;
            let deadline = with_timers(|t| t.next_deadline());
            platform.idle(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Builder, Fifo, Priority, sleep, spawn, yield_now};
    use crate::time::Duration;
    use alloc::rc::Rc;
    use core::cell::RefCell;
    use core::task::Poll;

    /// A fake machine: idling jumps the clock to the next deadline.
    struct FakeClock {
        now: Instant,
        idles: usize,
    }

    impl Platform for FakeClock {
        fn now(&mut self) -> Instant {
            self.now
        }
        fn idle(&mut self, deadline: Option<Instant>) {
            self.idles += 1;
            assert!(!has_pending_work(), "idled with work pending");
            self.now = deadline.expect("idle with no timer would hang forever");
        }
    }

    fn run<P: SchedPolicy, T: 'static>(main: impl Future<Output = T> + 'static) -> (T, FakeClock) {
        let mut clock = FakeClock {
            now: Instant::from_nanos(0),
            idles: 0,
        };
        let out = Executor::<P>::default().block_on(&mut clock, main);
        (out, clock)
    }

    #[test]
    fn main_output_is_returned() {
        let (out, _) = run::<Fifo, _>(async { 42 });
        assert_eq!(out, 42);
    }

    #[test]
    fn spawned_tasks_join_with_their_results() {
        let (out, _) = run::<Fifo, _>(async {
            let a = spawn(async { 2 });
            let b = spawn(async {
                yield_now().await;
                3
            });
            a.await * b.await
        });
        assert_eq!(out, 6);
    }

    #[test]
    fn sleeps_advance_the_clock_and_wake_in_deadline_order() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let o = order.clone();
        let (end, clock) = run::<Fifo, _>(async move {
            let mut handles = Vec::new();
            for ms in [30u64, 10, 20] {
                let o = o.clone();
                handles.push(spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    o.lock().unwrap().push(ms);
                }));
            }
            for h in handles {
                h.await;
            }
            crate::task::current_time()
        });
        assert_eq!(*order.lock().unwrap(), [10, 20, 30]);
        assert_eq!(end, Instant::from_nanos(30_000_000));
        assert_eq!(
            clock.idles, 3,
            "one idle per distinct deadline, no busy waiting"
        );
    }

    #[test]
    fn the_policy_decides_the_order() {
        fn order<P: SchedPolicy>() -> Vec<u8> {
            let log = Rc::new(RefCell::new(Vec::new()));
            let l = log.clone();
            run::<P, _>(async move {
                let handles: Vec<_> = [1u8, 7, 3, 7, 5]
                    .into_iter()
                    .map(|p| {
                        let l = l.clone();
                        Builder::new()
                            .priority(p)
                            .spawn(async move { l.borrow_mut().push(p) })
                    })
                    .collect();
                for h in handles {
                    h.await;
                }
            });
            log.take()
        }
        assert_eq!(order::<Fifo>(), [1, 7, 3, 7, 5]);
        assert_eq!(order::<Priority>(), [7, 7, 5, 3, 1]);
    }

    /// Polls a future exactly once.
    struct PollOnce<'a, F>(Pin<&'a mut F>);

    impl<F: Future> Future for PollOnce<'_, F> {
        type Output = Poll<F::Output>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Poll::Ready(self.0.as_mut().poll(cx))
        }
    }

    #[test]
    fn dropped_sleep_cancels_its_timer() {
        let (_, clock) = run::<Fifo, _>(async {
            let mut long = Box::pin(sleep(Duration::from_secs(100)));
            assert!(PollOnce(long.as_mut()).await.is_pending());
            drop(long);
            sleep(Duration::from_millis(1)).await;
        });
        assert_eq!(clock.now, Instant::from_nanos(1_000_000));
    }
}
