//! The kernel's page tables, built with the `x86_64` crate's types.
//!
//! Physical memory is identity-mapped (virtual = physical), which keeps DMA
//! trivial: a buffer's address is what the device sees. On top of that:
//! - the kernel image is mapped with 4 KiB pages and W^X: text read+execute,
//!   rodata read-only, data/bss/stack read+write and no-execute;
//! - page 0 and the page below the boot stack are left unmapped (null
//!   dereferences and stack overflows fault at once);
//! - the rest of RAM is read+write, no-execute, in 2 MiB pages;
//! - device MMIO is mapped on request, uncached ([`map_mmio`]).
//!
//! Anything else (e.g. a wild pointer above RAM) is unmapped and faults.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator as X86FrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags as Flags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::boot::ImageLayout;
use crate::memory::layout::Protection;
use crate::memory::{FRAME_SIZE, FrameAllocator};

const LARGE: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

static ROOT: AtomicU64 = AtomicU64::new(0);
static NX: AtomicBool = AtomicBool::new(false);

pub(crate) fn no_execute() -> Flags {
    if NX.load(Ordering::Relaxed) {
        Flags::NO_EXECUTE
    } else {
        Flags::empty()
    }
}

/// Lends frames to the `x86_64` mapper for intermediate tables.
struct Frames<'a>(&'a mut FrameAllocator);

// SAFETY: every frame returned comes from the frame allocator, which hands
// each frame out once; frames are zeroed by `table` before use.
unsafe impl X86FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let address = self.0.allocate(1, FRAME_SIZE).ok()?;
        zero_frame(address);
        Some(PhysFrame::containing_address(PhysAddr::new(address)))
    }
}

fn zero_frame(address: u64) {
    // SAFETY: the frame was just allocated (nobody else uses it) and is
    // identity-mapped RAM.
    unsafe { core::ptr::write_bytes(address as *mut u8, 0, FRAME_SIZE as usize) };
}

/// Allocates a zeroed page table.
fn table(frames: &mut FrameAllocator) -> (u64, &'static mut PageTable) {
    let address = frames
        .allocate(1, FRAME_SIZE)
        .expect("out of frames for page tables");
    zero_frame(address);
    // SAFETY: a fresh, zeroed, identity-mapped frame; a zeroed PageTable is valid.
    (address, unsafe { &mut *(address as *mut PageTable) })
}

fn kernel_flags(layout: &ImageLayout, address: u64) -> Option<Flags> {
    match layout.protection(address) {
        Protection::Unmapped => None,
        Protection::ReadExecute => Some(Flags::PRESENT),
        Protection::ReadOnly => Some(Flags::PRESENT | no_execute()),
        Protection::ReadWrite => Some(Flags::PRESENT | Flags::WRITABLE | no_execute()),
    }
}

/// Builds the kernel's page tables for `[0, ram_top)` and switches to them.
/// `read_only` (2 MiB-aligned, possibly empty) is mapped without write
/// access: the Rio region.
pub fn init(
    layout: &ImageLayout,
    ram_top: u64,
    read_only: (u64, u64),
    frames: &mut FrameAllocator,
) {
    let nx_supported = core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 20) != 0;
    if nx_supported {
        // SAFETY: NX is supported (CPUID), so setting EFER.NXE is valid; the
        // current tables set no NX bits, so nothing changes meaning.
        unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
        NX.store(true, Ordering::Relaxed);
    }
    let small_end = layout.end.next_multiple_of(LARGE);
    let top = ram_top.max(small_end);
    let (root_address, root) = table(frames);
    let (pdpt_address, pdpt) = table(frames);
    root[0].set_addr(
        PhysAddr::new(pdpt_address),
        Flags::PRESENT | Flags::WRITABLE,
    );
    let mut chunk = 0;
    while chunk < top {
        let gib = (chunk / GIB) as usize;
        if pdpt[gib].is_unused() {
            let (address, _) = table(frames);
            pdpt[gib].set_addr(PhysAddr::new(address), Flags::PRESENT | Flags::WRITABLE);
        }
        // SAFETY: the PDPT entry was set just above to a zeroed table frame.
        let pd = unsafe { &mut *(pdpt[gib].addr().as_u64() as *mut PageTable) };
        let entry = &mut pd[((chunk % GIB) / LARGE) as usize];
        if chunk < small_end {
            // Every entry is written below (0 where unmapped): no zeroing.
            let address = frames
                .allocate(1, FRAME_SIZE)
                .expect("out of frames for page tables");
            let entries = address as *mut u64;
            // Run by run, not page by page: one protection decision per
            // section instead of 512 (entry → `main` is counted in
            // instructions).
            for (start, end, _) in layout.runs(chunk + LARGE).filter(|r| r.1 > chunk) {
                let start = start.max(chunk);
                let bits = kernel_flags(layout, start).map_or(0, |flags| flags.bits());
                let present = if bits == 0 { 0 } else { 1 };
                let first = (start - chunk) / FRAME_SIZE;
                let last = ((end - chunk) / FRAME_SIZE).min(512);
                for index in first..last {
                    let page = chunk + index * FRAME_SIZE;
                    // SAFETY: `address` is a frame just taken from the
                    // allocator (nobody else owns it), identity-mapped, and
                    // `index` < 512 entries of 8 bytes.
                    unsafe { entries.add(index as usize).write((page | bits) * present) };
                }
            }
            entry.set_addr(PhysAddr::new(address), Flags::PRESENT | Flags::WRITABLE);
        } else {
            let mut flags = Flags::PRESENT | Flags::HUGE_PAGE | no_execute();
            if !(read_only.0..read_only.1).contains(&chunk) {
                flags |= Flags::WRITABLE;
            }
            entry.set_addr(PhysAddr::new(chunk), flags);
        }
        chunk += LARGE;
    }
    premap_devices(pdpt, frames);
    ROOT.store(root_address, Ordering::Release);
    let root_frame = PhysFrame::containing_address(PhysAddr::new(root_address));
    // SAFETY: the new tables map the running code (text), the stack, data
    // and all RAM exactly as the boot tables did (identity), so execution
    // continues unchanged after the switch.
    unsafe { Cr3::write(root_frame, Cr3Flags::empty()) };
}

/// The active PML4 (identity-mapped).
pub(crate) fn root_table() -> &'static mut PageTable {
    let root = ROOT.load(Ordering::Acquire);
    assert!(root != 0, "paging is not initialised");
    // SAFETY: ROOT is the active PML4, identity-mapped; callers serialise
    // their edits (the frame allocator's lock, or one task at a time).
    unsafe { &mut *(root as *mut PageTable) }
}

/// Where the local APIC (0xfee0_0000), the I/O APIC (0xfec0_0000) and
/// microvm's virtio-mmio slots (0xfeb0_0000 on) live: mapped at boot as
/// three uncached 2 MiB pages, so that bringing them up builds no page
/// tables (three zeroed frames and a table walk each, otherwise).
const DEVICES: (u64, u64) = (0xfea0_0000, 0xff00_0000);

fn premap_devices(pdpt: &mut PageTable, frames: &mut FrameAllocator) {
    let gib = (DEVICES.0 / GIB) as usize;
    if pdpt[gib].is_unused() {
        let (address, _) = table(frames);
        pdpt[gib].set_addr(PhysAddr::new(address), Flags::PRESENT | Flags::WRITABLE);
    }
    // SAFETY: the PDPT entry points at a page-table frame set just above
    // or by `init`.
    let pd = unsafe { &mut *(pdpt[gib].addr().as_u64() as *mut PageTable) };
    let flags = Flags::PRESENT
        | Flags::WRITABLE
        | Flags::HUGE_PAGE
        | Flags::NO_CACHE
        | Flags::WRITE_THROUGH
        | no_execute();
    for chunk in (DEVICES.0..DEVICES.1).step_by(LARGE as usize) {
        let entry = &mut pd[((chunk % GIB) / LARGE) as usize];
        if entry.is_unused() {
            entry.set_addr(PhysAddr::new(chunk), flags);
        }
    }
}

pub(crate) fn mapper() -> OffsetPageTable<'static> {
    let root = ROOT.load(Ordering::Acquire);
    assert!(root != 0, "paging is not initialised");
    // SAFETY: ROOT is the active PML4 (identity-mapped, so offset 0), and
    // callers serialise through the frame allocator's lock.
    unsafe { OffsetPageTable::new(&mut *(root as *mut PageTable), VirtAddr::new(0)) }
}

/// Identity-maps device registers at `[address, address + len)`, uncached.
pub fn map_mmio(address: u64, len: u64) {
    let mut frames = crate::memory::FRAMES.lock();
    let mut mapper = mapper();
    let flags =
        Flags::PRESENT | Flags::WRITABLE | Flags::NO_CACHE | Flags::WRITE_THROUGH | no_execute();
    let mut page = address & !(FRAME_SIZE - 1);
    while page < address + len {
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(page));
        let virt = Page::<Size4KiB>::containing_address(VirtAddr::new(page));
        // SAFETY: MMIO pages are not RAM: mapping them creates no alias of
        // memory Rust code owns.
        match unsafe { mapper.map_to(virt, frame, flags, &mut Frames(&mut frames)) } {
            Ok(flush) => flush.flush(),
            Err(MapToError::PageAlreadyMapped(_) | MapToError::ParentEntryHugePage) => {}
            Err(error) => panic!("cannot map MMIO page {page:#x}: {error:?}"),
        }
        page += FRAME_SIZE;
    }
}
