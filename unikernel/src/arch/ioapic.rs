//! The I/O APIC: routes device interrupt lines (GSIs) to CPU vectors.
//! microvm wires each virtio-mmio slot to its own GSI; lines are programmed
//! edge-triggered, active-high, to the boot CPU, masked (as reset left
//! them) until a driver asks for them.

use core::sync::atomic::{AtomicU64, Ordering};

const DEFAULT_BASE: u64 = 0xfec0_0000;
const REG_SELECT: u64 = 0x00;
const REG_WINDOW: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REDIRECTION_BASE: u32 = 0x10;

static BASE: AtomicU64 = AtomicU64::new(0);

fn write(register: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: BASE is the I/O APIC's MMIO page (mapped uncached by `init`);
    // the select/window pair is its documented indirect register access.
    unsafe {
        ((base + REG_SELECT) as *mut u32).write_volatile(register);
        ((base + REG_WINDOW) as *mut u32).write_volatile(value);
    }
}

fn read(register: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as for `write`.
    unsafe {
        ((base + REG_SELECT) as *mut u32).write_volatile(register);
        ((base + REG_WINDOW) as *const u32).read_volatile()
    }
}

/// Maps the I/O APIC. Its lines are masked already: reset leaves every
/// redirection entry masked (82093AA datasheet; QEMU's `ioapic_reset`), and
/// a warm reboot is a reset, so masking them again would only cost two
/// register writes per line, each a VM exit under KVM.
pub fn init() {
    super::paging::map_mmio(DEFAULT_BASE, 0x1000);
    BASE.store(DEFAULT_BASE, Ordering::Relaxed);
}

/// How many lines the I/O APIC has (read from it; for diagnostics).
pub fn lines() -> u32 {
    ((read(REG_VERSION) >> 16) & 0xff) + 1
}

/// Routes `gsi` to `vector` on CPU 0 (APIC id 0), unmasked.
pub fn route(gsi: u32, vector: u8) {
    write(REDIRECTION_BASE + 2 * gsi + 1, 0);
    write(REDIRECTION_BASE + 2 * gsi, u32::from(vector));
}
