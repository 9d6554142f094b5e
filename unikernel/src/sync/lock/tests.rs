//! The interleavings that lose wake-ups in a naive async lock, replayed
//! with hand-driven futures and counting wakers.

use super::*;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn waker() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

fn woken(count: &Count) -> usize {
    count.0.load(Ordering::Relaxed)
}

/// Runs `tasks` like an executor would: polls a task only when it was
/// woken since its last poll, except that `spurious` tasks are polled once
/// more, first, in the round after the first task finished (woken by
/// something else, as a connection is by its socket, before the task the
/// release woke). Returns the order the tasks finished in;
/// panics if every unfinished task sleeps (a lost wake-up).
fn drive(tasks: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>, spurious: &[usize]) -> Vec<usize> {
    let wakers: Vec<_> = tasks.iter().map(|_| waker()).collect();
    let mut seen = alloc::vec![usize::MAX; tasks.len()];
    let mut tasks: Vec<_> = tasks.into_iter().map(Some).collect();
    let mut finished = Vec::new();
    let mut spurious = spurious.to_vec();
    let mut rounds = 0;
    while finished.len() < tasks.len() {
        rounds += 1;
        assert!(rounds < 1000, "no progress");
        // As an executor drains its woken queue: who is due is decided at
        // the start of the round.
        let forced = !finished.is_empty();
        let mut due: Vec<usize> = (0..tasks.len())
            .filter(|&i| {
                tasks[i].is_some()
                    && (woken(&wakers[i].0) != seen[i] || (forced && spurious.contains(&i)))
            })
            .collect();
        if forced {
            due.sort_by_key(|i| !spurious.contains(i));
            spurious.clear();
        }
        let polled = !due.is_empty();
        for i in due {
            let (count, waker) = &wakers[i];
            let task = tasks[i].as_mut().expect("unfinished");
            seen[i] = woken(count);
            if task
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_ready()
            {
                tasks[i] = None;
                finished.push(i);
            }
        }
        assert!(
            polled,
            "lost wake-up: tasks {:?} wait and none was woken",
            (0..tasks.len())
                .filter(|&i| tasks[i].is_some())
                .collect::<Vec<_>>()
        );
    }
    finished
}

/// A task that takes the lock, yields once while holding it, records
/// itself and releases.
async fn worker(lock: &AsyncLock, log: &RefCell<Vec<usize>>, me: usize) {
    let _guard = lock.lock().await;
    crate::task::yield_now().await;
    log.borrow_mut().push(me);
}

#[test]
fn a_waiter_polled_for_another_reason_does_not_swallow_the_next_wakeup() {
    let lock = AsyncLock::new();
    let log = RefCell::new(Vec::new());
    let tasks: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = (0..3)
        .map(|i| Box::pin(worker(&lock, &log, i)) as Pin<Box<dyn Future<Output = ()> + '_>>)
        .collect();
    // Task 2 is polled again right after task 0 releases, as if its socket
    // had woken it: in the old lock it took the lock and left its waker
    // queued, and task 1 then slept for ever.
    drive(tasks, &[2]);
    assert_eq!(*log.borrow(), [0, 1, 2], "turns in arrival order");
    assert!(!lock.is_locked());
}

#[test]
fn a_dropped_waiter_passes_its_wakeup_on() {
    let lock = AsyncLock::new();
    let (_, w0) = waker();
    let (c1, w1) = waker();
    let (c2, w2) = waker();
    let mut first = pin!(lock.lock());
    let Poll::Ready(guard) = first.as_mut().poll(&mut Context::from_waker(&w0)) else {
        panic!("a free lock is taken at once")
    };
    let mut one = Box::pin(lock.lock());
    let mut two = pin!(lock.lock());
    assert!(
        one.as_mut()
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        two.as_mut()
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    drop(guard);
    assert_eq!(
        (woken(&c1), woken(&c2)),
        (1, 0),
        "the first waiter is woken"
    );
    // It gives up (its task was cancelled) before it runs.
    drop(one);
    assert_eq!(woken(&c2), 1, "the next waiter gets the turn");
    assert!(two.as_mut().poll(&mut Context::from_waker(&w2)).is_ready());
}

#[test]
fn a_newcomer_does_not_jump_the_queue() {
    let lock = AsyncLock::new();
    let (_, w) = waker();
    let cx = &mut Context::from_waker(&w);
    let mut first = pin!(lock.lock());
    let Poll::Ready(guard) = first.as_mut().poll(cx) else {
        panic!("free")
    };
    let mut waiting = pin!(lock.lock());
    assert!(waiting.as_mut().poll(cx).is_pending());
    drop(guard);
    // The lock is free, but the woken waiter has not run yet.
    let mut newcomer = pin!(lock.lock());
    assert!(newcomer.as_mut().poll(cx).is_pending());
    let Poll::Ready(guard) = waiting.as_mut().poll(cx) else {
        panic!("the waiter's turn")
    };
    drop(guard);
    assert!(newcomer.as_mut().poll(cx).is_ready());
}

#[test]
fn many_tasks_through_the_real_executor_all_finish_in_order() {
    use crate::task::{Executor, Fifo, Platform, spawn};
    use crate::time::Instant;
    struct Never;
    impl Platform for Never {
        fn now(&mut self) -> Instant {
            Instant::from_nanos(0)
        }
        fn idle(&mut self, _: Option<Instant>) {
            panic!("every task waits: a wake-up was lost");
        }
    }
    let order = Executor::<Fifo>::default().block_on(&mut Never, async {
        let lock = Rc::new(AsyncLock::new());
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (lock, log) = (lock.clone(), log.clone());
                spawn(async move { worker(&lock, &log, i).await })
            })
            .collect();
        for handle in handles {
            handle.await;
        }
        log.take()
    });
    assert_eq!(order, (0..50).collect::<Vec<_>>());
}
