//! [`Exclusive`]: a value that tasks take turns with, in arrival order.
//!
//! The server's connections share one database; each holds it across the
//! awaits of a batch (a cache eviction may wait for the disk). The lock is
//! task-only (never touched by interrupt handlers), so it needs no critical
//! sections. It is written here rather than on `unikernel::sync::AsyncLock`
//! because a waiter that acquires that lock after being woken for another
//! reason leaves its waker queued, and the next release then wakes it
//! instead of a real waiter: under 50 pipelining clients every connection
//! ended up asleep with the lock free. Here a task that acquires removes
//! its own waker, so every release wakes a task that is really waiting.

use alloc::collections::VecDeque;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};

/// A value behind a first-come, first-served async lock.
pub struct Exclusive<T> {
    locked: Cell<bool>,
    waiters: RefCell<VecDeque<Waker>>,
    value: RefCell<T>,
}

/// Releases the turn on drop (also when the holder's future is dropped).
struct Turn<'a, T> {
    owner: &'a Exclusive<T>,
}

impl<T> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        self.owner.locked.set(false);
        let next = self.owner.waiters.borrow_mut().pop_front();
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

impl<T> Exclusive<T> {
    pub fn new(value: T) -> Self {
        Exclusive {
            locked: Cell::new(false),
            waiters: RefCell::new(VecDeque::new()),
            value: RefCell::new(value),
        }
    }

    async fn turn(&self) -> Turn<'_, T> {
        poll_fn(|cx| {
            let mut waiters = self.waiters.borrow_mut();
            if self.locked.get() {
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push_back(cx.waker().clone());
                }
                Poll::Pending
            } else {
                self.locked.set(true);
                waiters.retain(|w| !w.will_wake(cx.waker()));
                Poll::Ready(Turn { owner: self })
            }
        })
        .await
    }

    /// Runs `f` on the value once it is this task's turn.
    #[allow(clippy::await_holding_refcell_ref)] // The turn serialises it.
    pub async fn with<R>(&self, f: impl AsyncFnOnce(&mut T) -> R) -> R {
        let _turn = self.turn().await;
        let mut value = self.value.borrow_mut();
        f(&mut value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use alloc::vec::Vec;
    use core::pin::pin;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use core::task::Context;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wakers(n: usize) -> (Vec<Arc<Count>>, Vec<Waker>) {
        let counts: Vec<Arc<Count>> = (0..n)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let wakers = counts.iter().map(|c| Waker::from(c.clone())).collect();
        (counts, wakers)
    }

    #[test]
    fn a_waiter_that_barges_in_leaves_no_stale_waker() {
        let shared = Exclusive::new(());
        let (woken, wakers) = wakers(3);
        let cx = |i: usize| Context::from_waker(&wakers[i]);
        let mut holder = pin!(shared.turn());
        let Poll::Ready(first) = holder.as_mut().poll(&mut cx(0)) else {
            panic!("a free lock is taken at once")
        };
        // Task 2 queues, then task 1.
        let mut t2 = pin!(shared.turn());
        let mut t1 = pin!(shared.turn());
        assert!(t2.as_mut().poll(&mut cx(2)).is_pending());
        assert!(t1.as_mut().poll(&mut cx(1)).is_pending());
        drop(first);
        assert_eq!(
            woken[2].0.load(Ordering::Relaxed),
            1,
            "the first waiter is woken"
        );
        // Task 1 runs first (woken for another reason) and takes the turn.
        let Poll::Ready(second) = t1.as_mut().poll(&mut cx(1)) else {
            panic!("the lock was free")
        };
        assert!(t2.as_mut().poll(&mut cx(2)).is_pending());
        drop(second);
        // Task 2, the only task still waiting, must be the one woken.
        assert_eq!(woken[2].0.load(Ordering::Relaxed), 2);
        assert!(t2.as_mut().poll(&mut cx(2)).is_ready());
    }

    #[test]
    fn turns_come_in_arrival_order() {
        let shared = Exclusive::new(Vec::new());
        let (_, wakers) = wakers(3);
        let mut tasks: Vec<_> = (0..3u8)
            .map(|i| alloc::boxed::Box::pin(shared.with(async move |v: &mut Vec<u8>| v.push(i))))
            .collect();
        let mut done = [false; 3];
        while done.iter().any(|d| !d) {
            for (i, task) in tasks.iter_mut().enumerate() {
                if !done[i] {
                    done[i] = task
                        .as_mut()
                        .poll(&mut Context::from_waker(&wakers[i]))
                        .is_ready();
                }
            }
        }
        drop(tasks);
        assert_eq!(*shared.value.borrow(), [0, 1, 2]);
    }
}
