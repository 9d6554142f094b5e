//! Device interrupts as something a task can await.
//!
//! A driver claims a GSI with [`IrqLine::claim`]; the line is routed through
//! the I/O APIC to a vector of its own. The interrupt handler only records
//! that the line fired and wakes the task waiting on it; all device work
//! happens in task context (so handlers never allocate or take locks that
//! tasks hold).

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use super::cpu_local::CpuLocal;
use super::interrupts::{FIRST_DEVICE_VECTOR, STUB_VECTORS, set_device_handler};

const LINES: usize = STUB_VECTORS - FIRST_DEVICE_VECTOR as usize;

struct Slot {
    fired: AtomicBool,
    count: AtomicU64,
    waker: CpuLocal<Option<Waker>>,
}

static SLOTS: [Slot; LINES] = [const {
    Slot {
        fired: AtomicBool::new(false),
        count: AtomicU64::new(0),
        waker: CpuLocal::new(None),
    }
}; LINES];

static CLAIMED: CpuLocal<[Option<u32>; LINES]> = CpuLocal::new([None; LINES]);

/// Why a line could not be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// All device vectors are in use.
    NoVector,
    /// Another driver holds this GSI.
    Busy(u32),
}

/// A claimed device interrupt line.
pub struct IrqLine {
    slot: usize,
    gsi: u32,
}

macro_rules! handlers {
    ($($i:literal)*) => {
        [$({
            fn handler() {
                on_interrupt($i);
            }
            handler as fn()
        }),*]
    };
}

/// One handler per slot (a `fn()` cannot capture its slot number).
static HANDLERS: [fn(); LINES] = handlers!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
);

fn on_interrupt(slot: usize) {
    let slot = &SLOTS[slot];
    slot.fired.store(true, Ordering::Release);
    slot.count.fetch_add(1, Ordering::Relaxed);
    if let Some(waker) = slot.waker.with(|w| w.take()) {
        waker.wake();
    }
}

impl IrqLine {
    /// Routes `gsi` to a free vector and returns the line.
    pub fn claim(gsi: u32) -> Result<IrqLine, IrqError> {
        let slot = CLAIMED.with(|claimed| {
            if claimed.contains(&Some(gsi)) {
                return Err(IrqError::Busy(gsi));
            }
            let free = claimed
                .iter()
                .position(Option::is_none)
                .ok_or(IrqError::NoVector)?;
            claimed[free] = Some(gsi);
            Ok(free)
        })?;
        let vector = FIRST_DEVICE_VECTOR + slot as u8;
        set_device_handler(vector, HANDLERS[slot]);
        super::ioapic::route(gsi, vector);
        Ok(IrqLine { slot, gsi })
    }

    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// How many times the line has fired.
    pub fn count(&self) -> u64 {
        SLOTS[self.slot].count.load(Ordering::Relaxed)
    }

    /// Clears and returns whether the line fired since the last call.
    pub fn take_fired(&self) -> bool {
        SLOTS[self.slot].fired.swap(false, Ordering::AcqRel)
    }

    /// Arranges for `waker` to be woken at the next interrupt; returns
    /// whether one already arrived (then the caller should not sleep).
    pub fn register(&self, waker: &Waker) -> bool {
        let slot = &SLOTS[self.slot];
        slot.waker.with(|w| match w {
            Some(existing) if existing.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        });
        slot.fired.load(Ordering::Acquire)
    }

    /// Completes at the next interrupt (or at once if one is pending).
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        Wait { line: self }
    }
}

struct Wait<'a> {
    line: &'a IrqLine,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.line.register(cx.waker()) && self.line.take_fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
