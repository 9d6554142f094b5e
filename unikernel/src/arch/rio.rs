//! Rio: a region of RAM that is as safe as disk.
//!
//! An image that declares a Rio region (`image!(rio: 8 << 20, ...)`) gets a
//! block of physical memory at the top of RAM, 2 MiB-aligned, at the same
//! address at every boot of the same VM. The kernel never clears it, and
//! QEMU preserves guest RAM across a VM reset, so its contents survive a
//! **warm reboot**: on a kernel panic or CPU exception such an image does
//! not exit but resets the VM (a triple fault; run QEMU without
//! `-no-reboot`), boots again, and finds the region as it was.
//!
//! The region is mapped **read-only**. [`ProtectedRegion::write`] is the only
//! way to change it: with interrupts off it sets the writable bit on the
//! 2 MiB pages it touches, copies, clears the bit again and flushes those
//! TLB entries. A wild write from anywhere else faults at once (fail-stop)
//! instead of corrupting the data — and the fault itself warm-reboots.
//!
//! Layout: the first 4 KiB is the kernel's header (magic, boot count,
//! warm-reboot count); the rest, [`ProtectedRegion::bytes`], belongs to the
//! storage cache, which keeps its own checksummed registry there.
//!
//! This file is step 3 of 6 on the path from the region to a recovered
//! cache; `storage`'s module essay (`storage/mod.rs`) walks the whole path
//! and names each step's file.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags as Flags, Size2MiB};

use crate::sync::critical;

pub use crate::memory::layout::RIO_ALIGN as ALIGN;
const HEADER: usize = 4096;
const MAGIC: u64 = 0x5249_4f5f_5245_4731; // "RIO_REG1"

#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    magic: u64,
    boots: u64,
    warm_reboots: u64,
    /// Set just before a warm reboot; cleared by the boot that follows.
    rebooting: u64,
    region_size: u64,
}

/// The Rio region.
pub struct ProtectedRegion {
    start: u64,
    size: u64,
}

static REGION: Once<ProtectedRegion> = Once::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);
static WARM_REBOOTS: AtomicU64 = AtomicU64::new(0);
static BOOTS: AtomicU64 = AtomicU64::new(0);

/// Adopts the region at `[start, end)` (already reserved and mapped
/// read-only by the boot code) and updates its header.
pub(crate) fn adopt(start: u64, end: u64) {
    let region = REGION.call_once(|| ProtectedRegion {
        start,
        size: end - start,
    });
    // SAFETY: the region is mapped (read-only) and reserved for Rio; reading
    // the header is a plain read of RAM this module owns.
    let mut header = unsafe { (start as *const Header).read_volatile() };
    if header.magic != MAGIC || header.region_size != end - start {
        log::info!(target: "rio", "new region at {start:#x}..{end:#x} ({} KiB)", (end - start) / 1024);
        header = Header {
            magic: MAGIC,
            boots: 0,
            warm_reboots: 0,
            rebooting: 0,
            region_size: end - start,
        };
    } else if header.rebooting != 0 {
        header.warm_reboots += 1;
        log::warn!(target: "rio", "warm reboot #{}: region at {start:#x}..{end:#x} kept", header.warm_reboots);
    } else {
        log::info!(target: "rio", "region at {start:#x}..{end:#x} kept across a VM restart");
    }
    header.boots += 1;
    header.rebooting = 0;
    BOOTS.store(header.boots, Ordering::Relaxed);
    WARM_REBOOTS.store(header.warm_reboots, Ordering::Relaxed);
    region.write_raw(0, as_bytes(&header));
    ACTIVE.store(true, Ordering::Release);
}

fn as_bytes(header: &Header) -> &[u8] {
    // SAFETY: Header is repr(C), made of u64s (no padding); viewing it as
    // bytes for its own size is sound.
    unsafe {
        core::slice::from_raw_parts(header as *const Header as *const u8, size_of::<Header>())
    }
}

/// The image's Rio region, if it declared one.
pub fn region() -> Option<&'static ProtectedRegion> {
    REGION.get()
}

/// How many times this VM's kernel has booted with this region.
pub fn boot_count() -> u64 {
    BOOTS.load(Ordering::Relaxed)
}

/// How many of those boots were warm reboots after a crash.
pub fn warm_reboots() -> u64 {
    WARM_REBOOTS.load(Ordering::Relaxed)
}

/// Whether a crash should warm-reboot (a region is in use) rather than exit.
pub fn warm_reboot_enabled() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Marks the region and resets the VM. Called on the crash path only.
pub fn warm_reboot() -> ! {
    if let Some(region) = region() {
        // SAFETY: reads the header as in `adopt`.
        let mut header = unsafe { (region.start as *const Header).read_volatile() };
        header.rebooting = 1;
        region.write_raw(0, as_bytes(&header));
    }
    super::serial::write_emergency(b"[rootstock WARN ] rio: warm reboot: resetting the VM\n");
    // A zero-limit IDT turns the next exception into a triple fault, which
    // resets the VM (QEMU keeps guest RAM across the reset).
    let idt = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // SAFETY: deliberately makes every interrupt fatal; nothing runs after.
    unsafe {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::tables::lidt(&idt);
        core::arch::asm!("int3", options(noreturn));
    }
}

impl ProtectedRegion {
    /// Size of the part that belongs to the storage cache.
    pub fn len(&self) -> usize {
        self.size as usize - HEADER
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Physical address of the storage part (for documentation and logs).
    pub fn address(&self) -> u64 {
        self.start + HEADER as u64
    }

    /// The storage part, read-only.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the region is mapped for its whole size and reserved; its
        // only writer is `write_raw`, which runs with interrupts disabled on
        // the only CPU, so no `&[u8]` observed here is written concurrently
        // within a single read by another context.
        unsafe {
            core::slice::from_raw_parts((self.start as usize + HEADER) as *const u8, self.len())
        }
    }

    /// Copies `data` to `offset` in the storage part: the cache's write
    /// routine, the only code that can write the region. Panics if the
    /// range does not fit (a bug in the caller).
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.assert_fits(offset, data);
        self.write_raw(HEADER + offset, data);
    }

    /// Panics unless `data` at `offset` lies within the storage part.
    fn assert_fits(&self, offset: usize, data: &[u8]) {
        let end = offset
            .checked_add(data.len())
            .filter(|&end| end <= self.len());
        assert!(
            end.is_some(),
            "Rio write {offset}+{} outside the region",
            data.len()
        );
    }

    /// Copies several `(offset, data)` pieces into the storage part, in
    /// order, with the pages made writable once for all of them (the cache
    /// commits a batch of blocks with one flip rather than one per piece).
    /// Panics if a piece does not fit (a bug in the caller).
    pub fn write_many(&self, pieces: &[(usize, &[u8])]) {
        let (mut low, mut high) = (usize::MAX, 0);
        for &(offset, data) in pieces {
            self.assert_fits(offset, data);
            if !data.is_empty() {
                low = low.min(offset);
                high = high.max(offset + data.len());
            }
        }
        if low >= high {
            return;
        }
        let first = (self.start + (HEADER + low) as u64) & !(ALIGN - 1);
        let last = (self.start + (HEADER + high) as u64 - 1) & !(ALIGN - 1);
        critical(|| {
            set_writable(first, last, true);
            for &(offset, data) in pieces {
                // SAFETY: each piece lies inside the region (checked above),
                // which is writable now, and interrupts are off until the
                // pages are read-only again.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        (self.start as usize + HEADER + offset) as *mut u8,
                        data.len(),
                    )
                };
            }
            set_writable(first, last, false);
        });
    }

    fn write_raw(&self, offset: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let first = (self.start + offset as u64) & !(ALIGN - 1);
        let last = (self.start + (offset + data.len()) as u64 - 1) & !(ALIGN - 1);
        critical(|| {
            set_writable(first, last, true);
            // SAFETY: the destination lies inside the region (checked by the
            // callers), is now writable, and interrupts are off, so nothing
            // else runs until the pages are read-only again.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    (self.start as usize + offset) as *mut u8,
                    data.len(),
                )
            };
            set_writable(first, last, false);
        });
    }
}

fn set_writable(first: u64, last: u64, writable: bool) {
    let mut mapper = super::paging::mapper();
    let mut page = first;
    while page <= last {
        let mut flags = Flags::PRESENT | Flags::HUGE_PAGE | super::paging::no_execute();
        if writable {
            flags |= Flags::WRITABLE;
        }
        let large = Page::<Size2MiB>::containing_address(VirtAddr::new(page));
        // SAFETY: the region's pages are identity-mapped 2 MiB pages of RAM
        // reserved for Rio; changing their W bit affects only this region.
        match unsafe { mapper.update_flags(large, flags) } {
            Ok(flush) => flush.flush(),
            Err(error) => panic!("Rio page {page:#x} is not a mapped large page: {error:?}"),
        }
        page += ALIGN;
    }
}
