//! The x86-64 layer: everything that touches ports, MMIO, control registers
//! or raw memory lives here (the rest of the crate denies `unsafe`). It boots
//! the machine, then hands the image's `main` to the executor.

pub(crate) mod apic;
pub(crate) mod backtrace;
pub(crate) mod boot;
pub(crate) mod cpu_local;
pub(crate) mod exit;
pub(crate) mod fault;
#[cfg(feature = "fault-injection")]
pub mod fault_injection;
pub(crate) mod gdt;
pub mod graft_code;
pub(crate) mod heap;
pub(crate) mod interrupts;
pub(crate) mod ioapic;
pub mod irq;
pub(crate) mod paging;
pub(crate) mod pci;
pub mod rio;
pub mod serial;
pub(crate) mod start_info;
pub(crate) mod tsc;
pub mod virtio;
pub mod virtio_blk;
pub mod virtio_kick;
pub mod virtio_net;

/// Local APIC timer register writes spent arming the timer so far.
pub use apic::arm_writes as timer_arm_writes;
/// Boot-phase stamps (`bootphases` on the command line prints them).
pub use boot::phases;

use spin::Once;

use crate::memory::{FRAME_SIZE, FRAMES};
use crate::task::{Executor, Platform, SchedPolicy, has_pending_work};
use crate::time::{Calibration, Instant, TscScale};

const MIB: u64 = 1 << 20;

static CALIBRATION: Once<Calibration> = Once::new();
/// The calibrated TSC rate as a multiply-and-shift (what clock reads use).
static SCALE: Once<TscScale> = Once::new();
static CMDLINE: Once<&'static str> = Once::new();

unsafe extern "Rust" {
    /// Defined by the image crate through [`crate::image!`].
    safe fn __rootstock_image_main() -> i32;
    /// Bytes of Rio region the image asked for (0: none), from [`crate::image!`].
    safe static __ROOTSTOCK_RIO_BYTES: u64;
}

/// The kernel command line (`-append`).
pub fn cmdline() -> &'static str {
    CMDLINE.get().copied().unwrap_or("")
}

fn calibration() -> &'static Calibration {
    CALIBRATION.call_once(|| {
        let calibration = tsc::calibrate();
        log::debug!(target: "time", "TSC {} Hz, APIC timer {} Hz", calibration.tsc_hz, calibration.apic_hz);
        calibration
    })
}

/// The monotonic clock (calibrates the TSC on first use).
pub fn clock_now() -> Instant {
    let scale = SCALE.call_once(|| TscScale::new(calibration().tsc_hz));
    let ticks = tsc::now().saturating_sub(boot::entry_tsc());
    Instant::from_nanos(scale.to_ns(ticks))
}

/// Uptime for log lines, only once the clock is calibrated (logging never
/// triggers a calibration).
pub fn uptime_if_calibrated() -> Option<u64> {
    let scale = match SCALE.get() {
        Some(scale) => *scale,
        None => TscScale::new(CALIBRATION.get()?.tsc_hz),
    };
    Some(scale.to_ns(tsc::now().saturating_sub(boot::entry_tsc())))
}

/// Rust's first code: brings the machine up and runs the image.
pub extern "C" fn kernel_entry(start_info: u32) -> ! {
    boot::phases::phase("long mode");
    serial::init();
    let info = start_info::read(u64::from(start_info));
    CMDLINE.call_once(|| info.cmdline);
    crate::console::init(crate::cmdline::log_level(info.cmdline));
    log::debug!(target: "boot", "command line: {}", info.cmdline);
    boot::phases::phase("console");
    gdt::init();
    interrupts::init();
    boot::phases::phase("gdt, idt");

    let layout = boot::layout();
    let mut frames = info.memory.free_frames(MIB, (layout.start, layout.end));
    boot::phases::phase("frames");
    let rio = crate::memory::layout::rio_placement(
        info.memory.ram_top(),
        __ROOTSTOCK_RIO_BYTES,
        layout
            .end
            .next_multiple_of(crate::memory::layout::RIO_ALIGN),
    );
    if rio.is_none() && __ROOTSTOCK_RIO_BYTES != 0 {
        panic!(
            "the image wants a {} KiB Rio region but RAM is too small; give it more (--mem)",
            __ROOTSTOCK_RIO_BYTES / 1024
        );
    }
    if let Some((start, end)) = rio {
        frames.reserve(start, end);
    }
    paging::init(
        &layout,
        info.memory.ram_top(),
        rio.unwrap_or((0, 0)),
        &mut frames,
    );
    boot::phases::phase("page tables");
    let largest = frames
        .ranges()
        .iter()
        .map(|&(s, e)| e - s)
        .max()
        .unwrap_or(0);
    let heap_size = (frames.free_bytes() / 4 * 3).min(largest) & !(FRAME_SIZE - 1);
    let heap = frames
        .allocate(heap_size / FRAME_SIZE, FRAME_SIZE)
        .expect("no memory for the heap");
    // SAFETY: the frames were just taken from the allocator (nobody else
    // owns them) and are identity-mapped read-write by `paging::init`.
    unsafe { heap::init(heap, heap_size) };
    graft_code::set_heap(heap, heap_size);
    let free = frames.free_bytes();
    *FRAMES.lock() = frames;
    boot::phases::phase("heap");
    // Debug level: under emulation every console byte is a VM exit, and this
    // line would otherwise be the largest part of entry → main.
    log::debug!(target: "boot", "{} MiB RAM, image {:#x}..{:#x}, heap {} KiB, {} KiB free frames",
        info.memory.ram_bytes() / MIB, layout.start, layout.end, heap_size / 1024, free / 1024);

    if let Some((start, end)) = rio {
        rio::adopt(start, end);
    }
    boot::phases::phase("rio");
    apic::init();
    ioapic::init();
    if log::log_enabled!(target: "boot", log::Level::Debug) {
        log::debug!(target: "boot", "I/O APIC with {} lines", ioapic::lines());
    }
    boot::phases::phase("apic, ioapic");
    x86_64::instructions::interrupts::enable();
    let status = __rootstock_image_main();
    crate::shutdown(status)
}

/// The executor's view of the machine: TSC clock, `hlt` with a one-shot
/// APIC timer for the next deadline.
struct Machine;

impl Platform for Machine {
    fn now(&mut self) -> Instant {
        clock_now()
    }

    fn idle(&mut self, deadline: Option<Instant>) {
        use x86_64::instructions::interrupts;
        boot::phases::report();
        interrupts::disable();
        if has_pending_work() {
            interrupts::enable();
            return;
        }
        if let Some(deadline) = deadline {
            let now = clock_now();
            if deadline <= now {
                interrupts::enable();
                return;
            }
            let ns = deadline.as_nanos() - now.as_nanos();
            apic::arm_for(deadline.as_nanos().max(1), || {
                calibration().ns_to_apic_ticks(ns)
            });
        }
        // `sti; hlt` is atomic with respect to interrupts: a wake-up that
        // arrives after the check above still ends the halt.
        let halted = tsc::now();
        interrupts::enable_and_hlt();
        boot::phases::exclude(tsc::now() - halted);
    }
}

/// Runs the image's main future to completion under policy `P`.
pub fn run<P: SchedPolicy, T: 'static>(main: impl core::future::Future<Output = T> + 'static) -> T {
    Executor::<P>::default().block_on(&mut Machine, main)
}

/// TSC cycles from the PVH entry to now.
pub fn cycles_since_entry() -> u64 {
    tsc::now().saturating_sub(boot::entry_tsc())
}

/// Converts TSC cycles to nanoseconds (calibrating if needed).
pub fn cycles_to_ns(cycles: u64) -> u64 {
    calibration().tsc_to_ns(cycles)
}

/// Ends the image after a fatal error: a warm reboot if it keeps a Rio
/// region (the crash must not lose it), otherwise exit with `code`.
pub fn crash(code: crate::ExitCode) -> ! {
    if rio::warm_reboot_enabled() {
        rio::warm_reboot()
    }
    exit::exit(code as u8)
}
