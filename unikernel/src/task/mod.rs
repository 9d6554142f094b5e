//! Tasks: the application's concurrent work, as async tasks run by the
//! [`Executor`] under a per-image [`SchedPolicy`].
//!
//! ```ignore
//! let worker = task::Builder::new().name("worker").priority(5).spawn(async { 7 });
//! task::sleep(Duration::from_millis(10)).await;
//! assert_eq!(worker.await, 7);
//! ```

mod executor;
mod policy;

pub use executor::{Executor, ExecutorStats, Platform, has_pending_work};
pub use policy::{
    Fifo, Overridable, PickOverride, Priority, SchedPolicy, TaskMeta, set_pick_override,
};

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use spin::Mutex;

use crate::sync::critical;
use crate::time::{Duration, Instant};
use executor::{NewTask, push_spawned, with_timers};

/// Identifies a task; never confused with a later task in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(crate::slab::Key);

impl TaskId {
    pub const fn new(index: u32, generation: u32) -> TaskId {
        TaskId(crate::slab::Key { index, generation })
    }
    pub const fn index(self) -> u32 {
        self.0.index
    }
    pub const fn key(self) -> crate::slab::Key {
        self.0
    }
    pub const fn from_key(key: crate::slab::Key) -> TaskId {
        TaskId(key)
    }
}

crate::cpu_local! {
    static LAST_NOW: Instant = Instant::from_nanos(0);
}

fn set_last_now(now: Instant) {
    crate::cpu_local_with!(LAST_NOW, |last: &mut Instant| *last = now);
}

/// The time as tasks see it: the monotonic clock on the target, the
/// executor's (fake) clock in host tests.
pub fn current_time() -> Instant {
    #[cfg(target_os = "none")]
    {
        crate::time::now()
    }
    #[cfg(not(target_os = "none"))]
    {
        crate::cpu_local_with!(LAST_NOW, |last: &mut Instant| *last)
    }
}

/// Options for a new task.
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    name: &'static str,
    priority: u8,
    group: u8,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Default name "task", priority 0 (the lowest).
    pub const fn new() -> Builder {
        Builder {
            name: "task",
            priority: 0,
            group: 0,
        }
    }

    pub const fn name(self, name: &'static str) -> Builder {
        Builder { name, ..self }
    }

    /// Used by priority policies; higher runs first.
    pub const fn priority(self, priority: u8) -> Builder {
        Builder { priority, ..self }
    }

    /// The task's group, for group scheduling (a graft may serve groups in
    /// turn so that one busy group cannot starve another); default 0.
    pub const fn group(self, group: u8) -> Builder {
        Builder { group, ..self }
    }

    /// Starts `future` as a task; its output is collected by the handle.
    pub fn spawn<T: 'static>(self, future: impl Future<Output = T> + 'static) -> JoinHandle<T> {
        let state = Arc::new(Mutex::new(JoinState {
            output: None,
            waker: None,
        }));
        let done = state.clone();
        let task = async move {
            let output = future.await;
            let waker = critical(|| {
                let mut state = done.lock();
                state.output = Some(output);
                state.waker.take()
            });
            if let Some(waker) = waker {
                waker.wake();
            }
        };
        push_spawned(NewTask {
            future: Box::pin(task),
            priority: self.priority,
            group: self.group,
            name: self.name,
        });
        JoinHandle { state }
    }
}

/// Starts a task with default options.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    Builder::new().spawn(future)
}

struct JoinState<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// Awaits a task's output. Dropping the handle detaches the task.
pub struct JoinHandle<T> {
    state: Arc<Mutex<JoinState<T>>>,
}

impl<T> JoinHandle<T> {
    /// The output, if the task has finished (taken once).
    pub fn try_take(&self) -> Option<T> {
        critical(|| self.state.lock().output.take())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        critical(|| {
            let mut state = self.state.lock();
            match state.output.take() {
                Some(output) => Poll::Ready(output),
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// Completes after `duration` (at the earliest).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        duration,
        timer: None,
    }
}

/// Completes at `deadline` (at the earliest).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        duration: Duration::ZERO,
        timer: Some(SleepTimer::Unregistered(deadline)),
    }
}

enum SleepTimer {
    Unregistered(Instant),
    Registered(crate::time::TimerId),
}

/// The future returned by [`sleep`].
pub struct Sleep {
    duration: Duration,
    timer: Option<SleepTimer>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = match self.timer {
            Some(SleepTimer::Registered(id)) => {
                let pending = with_timers(|timers| {
                    timers.update(id, cx.waker());
                    timers.is_pending(id)
                });
                return if pending {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                };
            }
            Some(SleepTimer::Unregistered(deadline)) => deadline,
            None => current_time().saturating_add(self.duration),
        };
        if current_time() >= deadline {
            return Poll::Ready(());
        }
        let id = with_timers(|timers| timers.insert(deadline, cx.waker().clone()));
        self.timer = Some(SleepTimer::Registered(id));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(SleepTimer::Registered(id)) = self.timer {
            with_timers(|timers| timers.cancel(id));
        }
    }
}

/// Lets other ready tasks run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
