//! Rootstock's kernel library: everything an image needs between the
//! hypervisor and the application's `main`.
//!
//! An image is one application linked with this crate into one ELF that QEMU
//! boots directly through PVH (`-M microvm -kernel`). The kernel is a
//! library OS in the Exokernel sense: it has one application, so its
//! policies (the scheduler's pick-next, the block cache's eviction and
//! read-ahead; `net`'s receive path) are chosen per image at build time, as
//! type parameters, and a graft can replace them in the running image
//! (`grafts/host`).
//!
//! Boot path: [`arch::boot`] (32-bit PVH entry → long mode) →
//! [`arch::kernel_entry`] (console, GDT/IDT, page tables, heap, APIC) → the
//! image's `main` on the [`task`] executor → exit through `isa-debug-exit`
//! with the status `main` returned ([`ExitCode`]).
//!
//! Layout: `arch/` is the only module allowed `unsafe` (ports, MMIO,
//! control registers, entry stubs); the rest is plain logic that builds and
//! is tested on the host: the frame allocator ([`memory::frames`]), time
//! arithmetic and timers ([`time`]), scheduling policies and the executor
//! ([`task`]), console formatting ([`console`]).
//!
//! This crate must never block with interrupts disabled, never allocate in
//! an interrupt handler, and never return to the loader.

#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
pub mod cmdline;
pub mod console;
pub mod event_idx;
pub mod memory;
pub mod panic;
pub mod slab;
pub mod storage;
pub mod sync;
pub mod task;
pub mod time;

#[cfg(all(target_os = "none", feature = "fault-injection"))]
pub use arch::fault_injection;
#[cfg(target_os = "none")]
pub use arch::serial::SerialInput;
#[cfg(target_os = "none")]
pub use arch::{cmdline, irq, rio, run, virtio, virtio_net};

/// Block storage: the block size (everywhere) and, on the target, the
/// virtio-blk driver, [`block::BlockDevice`], which the block cache
/// ([`storage`]) takes as its [`storage::Disk`].
pub mod block {
    #[cfg(target_os = "none")]
    pub use crate::arch::virtio_blk::{BlockDevice, BlockError, MAX_REQUEST};
    pub use crate::storage::BLOCK_SIZE;
}

/// The kernel command line (empty on the host).
#[cfg(not(target_os = "none"))]
pub fn cmdline() -> &'static str {
    ""
}

/// Host stand-in for the deliberate faults (they only make sense in a VM).
#[cfg(all(not(target_os = "none"), feature = "fault-injection"))]
pub mod fault_injection {
    pub fn write_to(address: u64) {
        panic!("fault injection (write to {address:#x}) works only inside an image");
    }
}

/// Exit statuses as seen by `cargo xtask run` (QEMU exits `(code << 1) | 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// `main` returned 0.
    Success = 0,
    /// A kernel panic (message with file and line on the console).
    KernelPanic = 101,
    /// An unhandled CPU exception (report on the console).
    CpuException = 102,
}

/// The largest Ethernet frame (without FCS) a network device carries: 1500
/// bytes of payload plus the 14-byte header. The virtio-net driver sizes
/// its buffers by it; `net` gives smoltcp it as the MTU and clamps to it.
pub const MAX_FRAME: usize = 1514;

/// The largest status an image's `main` can return; larger ones are clamped.
pub const MAX_APP_STATUS: i32 = 100;

/// Clamps an application's status into the range left to applications.
pub fn app_status(status: i32) -> u8 {
    status.clamp(0, MAX_APP_STATUS) as u8
}

/// Ends the image with the application's `status`.
#[cfg(target_os = "none")]
pub fn shutdown(status: i32) -> ! {
    arch::boot::phases::report();
    let cycles = BOOT_TO_MAIN_CYCLES.load(core::sync::atomic::Ordering::Relaxed);
    let entry_to_main = arch::cycles_to_ns(cycles);
    log::info!(target: "boot", "entry->main {cycles} TSC cycles, {entry_to_main} ns");
    log::info!(target: "exit", "main returned {status}");
    arch::exit::exit(app_status(status))
}

#[cfg(target_os = "none")]
static BOOT_TO_MAIN_CYCLES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Called by [`image!`]: runs the application's `main` under policy `P`.
#[cfg(target_os = "none")]
pub fn start<P: task::SchedPolicy, F: core::future::Future<Output = i32> + 'static>(
    image: &str,
    main: F,
) -> i32 {
    let cycles = arch::cycles_since_entry();
    BOOT_TO_MAIN_CYCLES.store(cycles, core::sync::atomic::Ordering::Relaxed);
    arch::boot::phases::phase("main");
    // Debug level: every console byte before `main` is a VM exit.
    log::debug!(target: "boot", "image {image}, scheduler {}, entry->main {cycles} TSC cycles", P::NAME);
    run::<P, i32>(main)
}

/// What an image crate's `fn main` does on the host: explain and fail.
#[cfg(not(target_os = "none"))]
pub fn host_stub(image: &str) -> ! {
    eprintln!(
        "`{image}` is a Rootstock image: it boots under QEMU, not on the host.\n\
         Run it with: cargo xtask run {image}"
    );
    std::process::exit(2)
}

/// Declares an image: its policies and its `main`.
///
/// ```ignore
/// unikernel::image!(scheduler: unikernel::task::Priority, main: main);
/// async fn main() -> i32 { unikernel::println!("hi"); 0 }
/// ```
/// `scheduler` is optional (default [`task::Fifo`]); so is `rio`, the
/// bytes of crash-surviving memory the image wants (see `arch::rio`;
/// default 0, none). `main` is an
/// `async fn() -> i32`; its result is the image's exit status (0..=100).
/// The image crate is `#![cfg_attr(not(test), no_main)]` (and `no_std` on
/// the target): the kernel owns the entry point; under `cargo test` the test
/// harness does.
#[macro_export]
macro_rules! image {
    (main: $main:path $(,)?) => {
        $crate::image!(scheduler: $crate::task::Fifo, rio: 0, main: $main);
    };
    (scheduler: $policy:ty, main: $main:path $(,)?) => {
        $crate::image!(scheduler: $policy, rio: 0, main: $main);
    };
    (rio: $rio:expr, main: $main:path $(,)?) => {
        $crate::image!(scheduler: $crate::task::Fifo, rio: $rio, main: $main);
    };
    (scheduler: $policy:ty, rio: $rio:expr, main: $main:path $(,)?) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        fn __rootstock_image_main() -> i32 {
            $crate::start::<$policy, _>(env!("CARGO_PKG_NAME"), $main())
        }

        /// Bytes of Rio region this image asks for (0: none).
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        static __ROOTSTOCK_RIO_BYTES: u64 = $rio;

        // Image crates are `#![no_main]`: on the host this is the C entry
        // (in `cargo test` the test harness provides its own).
        #[cfg(all(not(target_os = "none"), not(test)))]
        #[unsafe(export_name = "main")]
        extern "C" fn __rootstock_host_main(_argc: i32, _argv: *const *const u8) -> i32 {
            let _ = $main; // The image's main is type-checked on the host too.
            let _: u64 = $rio;
            $crate::host_stub(env!("CARGO_PKG_NAME"))
        }
    };
}
