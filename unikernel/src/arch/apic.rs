//! The local APIC (xAPIC, memory-mapped): its timer drives sleeping and
//! time-outs in one-shot mode, programmed for the earliest deadline only
//! (a tickless kernel: an idle image takes no timer interrupts at all).
//!
//! Also masks the legacy 8259 PICs, which microvm may still emulate.

use core::sync::atomic::{AtomicU64, Ordering};

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
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// Starts the timer counting down from the maximum, masked (calibration).
pub fn start_free_running() {
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_INITIAL_COUNT, u32::MAX);
}

/// Ticks elapsed since [`start_free_running`].
pub fn elapsed_since_start() -> u32 {
    u32::MAX - read(REG_CURRENT_COUNT)
}

/// Arms a one-shot interrupt in `ticks` APIC timer ticks (0 disarms).
pub fn arm_oneshot(ticks: u32) {
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    write(REG_INITIAL_COUNT, ticks);
}
