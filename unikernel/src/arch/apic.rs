//! The local APIC (xAPIC, memory-mapped): its timer drives sleeping and
//! time-outs in one-shot mode, programmed for the earliest deadline only
//! (a tickless kernel: an idle image takes no timer interrupts at all).
//!
//! Also masks the legacy 8259 PICs, which microvm may still emulate.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use super::interrupts::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1b;
const REG_EOI: usize = 0xb0;
const REG_SPURIOUS: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_INITIAL_COUNT: usize = 0x380;
const REG_CURRENT_COUNT: usize = 0x390;
const REG_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0x3;

static BASE: AtomicU64 = AtomicU64::new(0);
/// Whether the timer's LVT is in one-shot mode, unmasked: arming then
/// takes one register write (each is a VM exit under KVM), not two.
static ONESHOT: AtomicBool = AtomicBool::new(false);
/// The deadline (the caller's clock, ns) the timer is armed for; 0: none.
static ARMED: AtomicU64 = AtomicU64::new(0);
/// Register writes made to arm the timer, for the benchmarks.
static ARM_WRITES: AtomicU64 = AtomicU64::new(0);

fn register(offset: usize) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: BASE is the APIC's MMIO page (identity-mapped, uncached) and
    // `offset` one of the register offsets above.
    unsafe { register(offset).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as for `read`.
    unsafe { register(offset).write_volatile(value) }
}

/// Masks the 8259s, enables the local APIC with its timer masked.
pub fn init() {
    // SAFETY: 0x21/0xa1 are the 8259 data ports; writing 0xff masks every
    // line, which has no effect if the PICs are absent.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC, which every
    // x86-64 CPU that QEMU emulates has.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() } & 0xffff_f000;
    BASE.store(base, Ordering::Relaxed);
    super::paging::map_mmio(base, 0x1000);
    write(REG_SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_INITIAL_COUNT, 0);
    ONESHOT.store(false, Ordering::Relaxed);
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// Starts the timer counting down from the maximum, masked (calibration).
pub fn start_free_running() {
    ONESHOT.store(false, Ordering::Relaxed);
    ARMED.store(0, Ordering::Relaxed);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_INITIAL_COUNT, u32::MAX);
}

/// Ticks elapsed since [`start_free_running`].
pub fn elapsed_since_start() -> u32 {
    u32::MAX - read(REG_CURRENT_COUNT)
}

/// Arms a one-shot interrupt in `ticks` APIC timer ticks (0 disarms).
pub fn arm_oneshot(ticks: u32) {
    if !ONESHOT.swap(true, Ordering::Relaxed) {
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
        ARM_WRITES.fetch_add(1, Ordering::Relaxed);
    }
    write(REG_INITIAL_COUNT, ticks);
    ARM_WRITES.fetch_add(1, Ordering::Relaxed);
}

/// Arms the timer for `deadline` (any monotonic clock, ns; not 0), `ticks`
/// from now, unless it is armed already for that deadline or an earlier
/// one that has not fired. The executor asks at every idle, and a busy
/// network image's earliest deadline moves later at nearly every request
/// (a retransmission or idle timer pushed back): leaving the earlier
/// deadline armed costs one early wake-up, at most once per that deadline,
/// where re-arming costs a register write (a VM exit) per request. A
/// wake-up before the deadline is harmless: the executor finds nothing due
/// and arms the timer again.
pub fn arm_for(deadline: u64, ticks: impl FnOnce() -> u32) {
    let armed = ARMED.load(Ordering::Relaxed);
    if armed != 0 && armed <= deadline {
        return;
    }
    arm_oneshot(ticks());
    ARMED.store(deadline, Ordering::Relaxed);
}

/// The timer interrupt's acknowledgement: end of interrupt, and the timer
/// is no longer armed.
pub fn timer_interrupt() {
    ARMED.store(0, Ordering::Relaxed);
    end_of_interrupt();
}

/// Register writes spent arming the timer so far.
pub fn arm_writes() -> u64 {
    ARM_WRITES.load(Ordering::Relaxed)
}
