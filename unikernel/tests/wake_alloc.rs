//! Waking a task the way an interrupt handler does (`wake_by_ref` on a
//! stored waker, `wake` on a clone, dropping the handler's waker) neither
//! allocates nor frees: the handler may have interrupted code that holds
//! the heap's lock. A counting global allocator (`stats_alloc`) watches
//! the whole binary, so this file holds a single test.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Poll, Waker};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use unikernel::task::{Executor, Fifo, Platform, spawn, yield_now};
use unikernel::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Idling jumps to the next deadline; there is none in this test.
struct NoClock;

impl Platform for NoClock {
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn idle(&mut self, _deadline: Option<Instant>) {
        panic!("every task waits: a wake-up was lost");
    }
}

/// A task that waits until `done` is set, leaving its waker in `slot`.
async fn waiter(slot: Rc<RefCell<Option<Waker>>>, done: Rc<RefCell<bool>>) {
    std::future::poll_fn(|cx| {
        *slot.borrow_mut() = Some(cx.waker().clone());
        if *done.borrow() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[test]
fn waking_from_interrupt_context_neither_allocates_nor_frees() {
    let mut executor = Executor::<Fifo>::default();
    executor.block_on(&mut NoClock, async {
        let done = Rc::new(RefCell::new(false));
        let slots: Vec<_> = (0..300).map(|_| Rc::new(RefCell::new(None))).collect();
        let tasks: Vec<_> = slots
            .iter()
            .map(|slot| spawn(waiter(slot.clone(), done.clone())))
            .collect();
        yield_now().await; // every waiter runs once and parks
        let wakers: Vec<Waker> = slots
            .iter()
            .map(|slot| slot.borrow_mut().take().expect("the waiter ran"))
            .collect();

        // The "interrupt handler": many wakes of many tasks, by reference
        // and by value, with the executor not draining in between.
        let region = Region::new(GLOBAL);
        for round in 0..50 {
            for waker in &wakers {
                waker.wake_by_ref();
                if round % 10 == 0 {
                    // A handler that takes a stored waker wakes it by value.
                    #[allow(clippy::waker_clone_wake)]
                    waker.clone().wake();
                }
            }
        }
        let change = region.change();
        assert_eq!(
            (
                change.allocations,
                change.reallocations,
                change.deallocations
            ),
            (0, 0, 0),
            "waking allocated or freed: {change:?}"
        );

        // The tasks finish; the handler still holds their wakers. Dropping
        // them (the last references outside the executor) frees nothing.
        *done.borrow_mut() = true;
        for waker in &wakers {
            waker.wake_by_ref();
        }
        for task in tasks {
            task.await;
        }
        let region = Region::new(GLOBAL);
        for waker in wakers.iter().cloned() {
            waker.wake();
        }
        let change = region.change();
        assert_eq!(
            (change.allocations, change.deallocations),
            (0, 0),
            "a stale wake allocated or freed: {change:?}"
        );
        let region = Region::new(GLOBAL);
        let mut wakers = wakers;
        while let Some(waker) = wakers.pop() {
            drop(waker);
        }
        let change = region.change();
        assert_eq!(
            (change.allocations, change.deallocations),
            (0, 0),
            "dropping a handler's waker freed: {change:?}"
        );
    });
}
