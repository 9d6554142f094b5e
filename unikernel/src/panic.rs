//! Kernel panics: a message naming file and line, the call chain as return
//! addresses (see [`crate::arch::backtrace`]; the host tools symbolize it),
//! then exit with [`crate::ExitCode::KernelPanic`]. A fault during the report itself (a
//! panic while panicking, an exception in the exception handler) skips
//! straight to the exit instead of recursing.

use core::sync::atomic::{AtomicBool, Ordering};

static FATAL: AtomicBool = AtomicBool::new(false);

/// Marks the start of a fatal report; a second fatal event exits at once.
pub fn enter_fatal() {
    if FATAL.swap(true, Ordering::SeqCst) {
        #[cfg(target_os = "none")]
        {
            crate::arch::serial::write_emergency(
                b"\n[rootstock ERROR] fault during fault report\n",
            );
            crate::arch::crash(crate::ExitCode::KernelPanic);
        }
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;

    struct Emergency;
    impl Write for Emergency {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            crate::arch::serial::write_emergency(s.as_bytes());
            Ok(())
        }
    }

    x86_64::instructions::interrupts::disable();
    enter_fatal();
    let _ = write!(Emergency, "[rootstock ERROR] kernel panic");
    if let Some(location) = info.location() {
        let _ = write!(
            Emergency,
            " at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(Emergency, ": {}", info.message());
    let rbp = crate::arch::backtrace::current_frame();
    crate::arch::backtrace::walk(None, rbp, |n, address| {
        let _ = writeln!(
            Emergency,
            "[rootstock ERROR] {}{n} {address:#018x}",
            crate::arch::backtrace::MARKER
        );
    });
    crate::arch::crash(crate::ExitCode::KernelPanic)
}
