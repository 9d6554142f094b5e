//! Leaving the VM: QEMU's `isa-debug-exit` device.
//!
//! A byte `v` written to port 0xf4 makes QEMU exit with status `(v << 1) | 1`.
//! `xtask` maps that back to `v`. Without the device the write is ignored and
//! the CPU halts for good with interrupts off.

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exits QEMU with `code` (see [`crate::ExitCode`]).
pub fn exit(code: u8) -> ! {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit; writing it has no effect
    // other than ending the VM, and no effect at all if it is absent.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(u32::from(code)) };
    halt_forever()
}

/// Halts with interrupts disabled, forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
