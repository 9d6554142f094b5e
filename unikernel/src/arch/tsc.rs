//! The time-stamp counter and its calibration.
//!
//! The monotonic clock is the TSC. Its frequency comes from CPUID when the
//! (virtual) CPU reports it (leaf 0x15 or the hypervisor leaf 0x4000_0010);
//! otherwise it is measured against the 8254 PIT, whose input clock is a
//! fixed 1.193182 MHz, over [`CALIBRATION_PIT_TICKS`]. The local APIC timer
//! is measured over the same window, so one wait calibrates both clocks.
//!
//! Calibration is lazy: it runs the first time anything asks for the time,
//! so an image that never does (hello) pays nothing for it at boot.

use core::arch::x86_64::{__cpuid, _rdtsc};

use x86_64::instructions::port::Port;

use super::apic;
use crate::time::Calibration;

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 2386 PIT ticks ≈ 2 ms.
const CALIBRATION_PIT_TICKS: u16 = 2386;

/// Reads the TSC.
pub fn now() -> u64 {
    // SAFETY: RDTSC is available on every x86-64 CPU and has no side effects.
    unsafe { _rdtsc() }
}

fn cpuid_tsc_hz() -> Option<u64> {
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let leaf = __cpuid(0x15);
        if leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0 {
            return Some(u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax));
        }
    }
    let hypervisor = __cpuid(0x4000_0000).eax;
    if hypervisor >= 0x4000_0010 {
        let khz = __cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some(u64::from(khz) * 1000);
        }
    }
    None
}

/// Reads PIT channel 0's current count (latched).
fn pit_count() -> u16 {
    // SAFETY: 0x43 is the PIT mode/command port and 0x40 channel 0's data
    // port; latching and reading the count has no side effects.
    unsafe {
        Port::<u8>::new(0x43).write(0x00);
        let low = Port::<u8>::new(0x40).read();
        let high = Port::<u8>::new(0x40).read();
        u16::from_le_bytes([low, high])
    }
}

/// Measures the TSC and the APIC timer against the PIT.
pub fn calibrate() -> Calibration {
    // Channel 0, lobyte/hibyte, mode 2 (rate generator), reload 0 (= 65536):
    // a free-running down-counter; its interrupt line is masked at the PIC.
    // SAFETY: PIT command and data ports, see `pit_count`.
    unsafe {
        Port::<u8>::new(0x43).write(0x34);
        Port::<u8>::new(0x40).write(0);
        Port::<u8>::new(0x40).write(0);
    }
    let start_pit = pit_count();
    apic::start_free_running();
    let start_tsc = now();
    let mut elapsed = 0u16;
    let mut spins = 0u32;
    while elapsed < CALIBRATION_PIT_TICKS {
        elapsed = start_pit.wrapping_sub(pit_count());
        spins += 1;
        if spins > 50_000_000 {
            break; // No PIT: fall back to a nominal frequency below.
        }
    }
    let tsc_ticks = now() - start_tsc;
    let apic_ticks = u64::from(apic::elapsed_since_start());
    let window_ns = u64::from(elapsed) * 1_000_000_000 / PIT_HZ;
    let measured = Calibration::from_window(window_ns, tsc_ticks, apic_ticks);
    match cpuid_tsc_hz() {
        Some(hz) => Calibration {
            tsc_hz: hz,
            ..measured
        },
        None if elapsed == 0 => Calibration::NOMINAL,
        None => measured,
    }
}
