//! The target's CPU-local cell (see [`crate::sync`]).

use spin::Mutex;

/// A value owned by the (single) CPU, touched only with interrupts off.
pub struct CpuLocal<T>(Mutex<T>);

// SAFETY: Rootstock runs on one CPU and `with` only touches the value with
// interrupts disabled, so no two contexts ever access it at once; values are
// never moved to another CPU because there is none.
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    pub const fn new(value: T) -> Self {
        CpuLocal(Mutex::new(value))
    }

    /// Runs `f` on the value with interrupts disabled.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(|| f(&mut self.0.lock()))
    }
}
