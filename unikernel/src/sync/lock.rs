//! [`AsyncLock`]: a lock that tasks wait for without spinning, taken in
//! arrival order.
//!
//! Every waiting [`Lock`] future owns one entry in the lock's queue, from
//! its first pending poll until it takes the lock or is dropped; the entry
//! holds the latest waker it was polled with. A release wakes the entry at
//! the front and leaves it there. Only the front entry (or a newcomer when
//! nobody waits) may take a free lock, and taking it removes the entry. A
//! future dropped while waiting removes its entry, and if it was the one
//! just woken, wakes the next, so a release is never spent on a task that
//! is no longer waiting.
//!
//! That is the difference from the first version of this lock, which
//! popped a waker per release and let any poller take a free lock: a task
//! that took the lock after being woken for another reason left its waker
//! queued, the next release woke it instead of a real waiter, and under 50
//! pipelining `kv` clients every connection slept with the lock free.
//! [`tests`] replay that interleaving.
//!
//! The state is touched inside [`critical`] sections, so a lock may be
//! shared with code that runs with interrupts on; it is never taken from
//! an interrupt handler (waiting is a task's business).

use alloc::collections::VecDeque;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::critical;

/// A lock that tasks wait for in arrival order.
#[derive(Default)]
pub struct AsyncLock {
    state: spin::Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    locked: bool,
    /// Waiting futures, oldest first: (ticket, latest waker).
    waiters: VecDeque<(u64, Waker)>,
    next_ticket: u64,
}

/// Holds an [`AsyncLock`]; releasing wakes the next waiter.
pub struct AsyncLockGuard<'a> {
    lock: &'a AsyncLock,
}

/// The future of [`AsyncLock::lock`].
pub struct Lock<'a> {
    lock: &'a AsyncLock,
    /// This future's entry in the queue, once it has waited.
    ticket: Option<u64>,
}

impl AsyncLock {
    pub const fn new() -> Self {
        AsyncLock {
            state: spin::Mutex::new(LockState {
                locked: false,
                waiters: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    /// Waits until it is this caller's turn and the lock is free, and
    /// takes it.
    pub fn lock(&self) -> Lock<'_> {
        Lock {
            lock: self,
            ticket: None,
        }
    }

    /// Whether a task holds the lock now.
    pub fn is_locked(&self) -> bool {
        critical(|| self.state.lock().locked)
    }
}

impl<'a> Future for Lock<'a> {
    type Output = AsyncLockGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AsyncLockGuard<'a>> {
        let lock = self.lock;
        let ticket = self.ticket;
        let taken = critical(|| {
            let mut state = lock.state.lock();
            let front = state.waiters.front().map(|(t, _)| *t);
            let my_turn = match ticket {
                None => front.is_none(),
                Some(mine) => front == Some(mine),
            };
            if !state.locked && my_turn {
                state.locked = true;
                if ticket.is_some() {
                    state.waiters.pop_front();
                }
                return Ok(());
            }
            match ticket {
                Some(mine) => {
                    if let Some((_, waker)) = state.waiters.iter_mut().find(|(t, _)| *t == mine)
                        && !waker.will_wake(cx.waker())
                    {
                        waker.clone_from(cx.waker());
                    }
                    Err(None)
                }
                None => {
                    let mine = state.next_ticket;
                    state.next_ticket += 1;
                    state.waiters.push_back((mine, cx.waker().clone()));
                    Err(Some(mine))
                }
            }
        });
        match taken {
            Ok(()) => {
                self.ticket = None;
                Poll::Ready(AsyncLockGuard { lock })
            }
            Err(new_ticket) => {
                if new_ticket.is_some() {
                    self.ticket = new_ticket;
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let Some(mine) = self.ticket else { return };
        let next = critical(|| {
            let mut state = self.lock.state.lock();
            let was_front = state.waiters.front().is_some_and(|(t, _)| *t == mine);
            state.waiters.retain(|(t, _)| *t != mine);
            // It may have been woken by a release it will never use: pass
            // the turn on.
            (was_front && !state.locked)
                .then(|| state.waiters.front().map(|(_, w)| w.clone()))
                .flatten()
        });
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        let next = critical(|| {
            let mut state = self.lock.state.lock();
            state.locked = false;
            state.waiters.front().map(|(_, w)| w.clone())
        });
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests;
