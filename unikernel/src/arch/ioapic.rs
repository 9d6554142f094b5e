//! The I/O APIC: routes device interrupt lines (GSIs) to CPU vectors.
//! microvm wires each virtio-mmio slot to its own GSI; lines are programmed
//! edge-triggered, active-high, to the boot CPU, masked until a driver
//! asks for them.

use core::sync::atomic::{AtomicU64, Ordering};

const DEFAULT_BASE: u64 = 0xfec0_0000;
const REG_SELECT: u64 = 0x00;
const REG_WINDOW: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REDIRECTION_BASE: u32 = 0x10;
const MASKED: u32 = 1 << 16;

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

/// Maps the I/O APIC and masks every line; returns how many lines it has.
pub fn init() -> u32 {
    super::paging::map_mmio(DEFAULT_BASE, 0x1000);
    BASE.store(DEFAULT_BASE, Ordering::Relaxed);
    let lines = ((read(REG_VERSION) >> 16) & 0xff) + 1;
    for gsi in 0..lines {
        write(REDIRECTION_BASE + 2 * gsi, MASKED);
        write(REDIRECTION_BASE + 2 * gsi + 1, 0);
    }
    lines
}

/// Routes `gsi` to `vector` on CPU 0 (APIC id 0), unmasked.
pub fn route(gsi: u32, vector: u8) {
    write(REDIRECTION_BASE + 2 * gsi + 1, 0);
    write(REDIRECTION_BASE + 2 * gsi, u32::from(vector));
}
