//! Critical sections and CPU-local state.
//!
//! The kernel runs on one CPU; the only concurrency is interrupts. State
//! shared with interrupt handlers is touched inside [`critical`] (interrupts
//! off). State that holds non-`Send` values (tasks are not required to be
//! `Send`) lives in a [`cpu_local!`] static: on the target a single-CPU cell,
//! in host tests a thread-local, so parallel tests cannot see each other.

/// Runs `f` with interrupts disabled (restoring the previous state).
#[inline]
pub fn critical<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "none")]
    {
        x86_64::instructions::interrupts::without_interrupts(f)
    }
    #[cfg(not(target_os = "none"))]
    {
        f()
    }
}

#[cfg(target_os = "none")]
pub use crate::arch::cpu_local::CpuLocal;

/// Host version: a `RefCell` inside a thread-local.
#[cfg(not(target_os = "none"))]
pub struct CpuLocal<T>(core::cell::RefCell<T>);

#[cfg(not(target_os = "none"))]
impl<T> CpuLocal<T> {
    pub const fn new(value: T) -> Self {
        CpuLocal(core::cell::RefCell::new(value))
    }

    /// Runs `f` on the value (not re-entrant: a nested call panics).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

/// Declares CPU-local statics; use them with [`cpu_local_with!`].
#[macro_export]
#[doc(hidden)]
macro_rules! cpu_local {
    ($(static $name:ident: $t:ty = $init:expr;)*) => {$(
        #[cfg(target_os = "none")]
        static $name: $crate::sync::CpuLocal<$t> = $crate::sync::CpuLocal::new($init);
        #[cfg(not(target_os = "none"))]
        std::thread_local! {
            static $name: $crate::sync::CpuLocal<$t> = const { $crate::sync::CpuLocal::new($init) };
        }
    )*};
}

/// Runs a closure on a [`cpu_local!`] static's value.
#[macro_export]
#[doc(hidden)]
macro_rules! cpu_local_with {
    ($name:ident, $f:expr) => {{
        #[cfg(target_os = "none")]
        let result = $name.with($f);
        #[cfg(not(target_os = "none"))]
        let result = $name.with(|local| local.with($f));
        result
    }};
}

mod lock;

pub use lock::{AsyncLock, AsyncLockGuard, Lock};
