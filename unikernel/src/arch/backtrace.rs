//! Call chains for fatal reports: a walk of the frame-pointer chain.
//!
//! Every image is built with `-C force-frame-pointers=yes`, so each frame
//! starts with the caller's `rbp` and, above it, the return address. The
//! walk follows that chain from a starting `rbp` and prints one line per
//! return address:
//!
//! ```text
//! backtrace: #0 0x0000000000104f2e
//! ```
//!
//! The kernel has no symbol table at run time (it would double the image);
//! `cargo xtask run` and the test harness read these lines from the console
//! and symbolize them against the ELF to `function (file:line)`.
//!
//! The walk trusts nothing it reads: a frame pointer must be 8-byte aligned,
//! inside the boot stack (the only stack; tasks are futures) and higher than
//! the previous one, and a return address must lie in the kernel's text.
//! Anything else ends the walk, so a corrupt stack gives a short backtrace,
//! never a second fault.

/// Most frames printed.
pub const MAX_FRAMES: usize = 48;

/// The marker the host tools look for.
pub const MARKER: &str = "backtrace: #";

/// The caller's frame pointer.
#[inline(always)]
pub fn current_frame() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory is touched.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

/// Calls `each(n, return_address)` for `first` (when given: the faulting
/// instruction of an exception) and then for every frame from `rbp` up.
pub fn walk(first: Option<u64>, mut rbp: u64, mut each: impl FnMut(usize, u64)) {
    let layout = super::boot::layout();
    let (stack_bottom, stack_top) = layout.stack;
    let (text_start, text_end) = layout.text;
    let mut n = 0;
    if let Some(rip) = first {
        each(n, rip);
        n += 1;
    }
    while n < MAX_FRAMES {
        let in_stack = rbp >= stack_bottom && rbp.saturating_add(16) <= stack_top;
        if !in_stack || !rbp.is_multiple_of(8) {
            break;
        }
        // SAFETY: `rbp..rbp + 16` lies inside the boot stack (checked just
        // above), which is mapped read-write for the kernel's whole life;
        // reading two words there cannot fault.
        let (next, ret) = unsafe {
            let frame = rbp as *const u64;
            (frame.read_volatile(), frame.add(1).read_volatile())
        };
        if !(text_start..text_end).contains(&ret) {
            break;
        }
        each(n, ret);
        n += 1;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}
