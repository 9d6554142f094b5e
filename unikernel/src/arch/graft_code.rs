//! Native graft code: publishing its pages read+execute (W^X), and turning
//! a CPU exception raised by it into an abort instead of a kernel crash.
//!
//! **Publishing.** A graft artifact is loaded into heap memory, which is
//! mapped read+write and no-execute in 2 MiB pages. [`publish`] splits the
//! 2 MiB pages that hold the code into 4 KiB pages (once) and maps the code
//! read+execute, never writable; [`unpublish`] maps it read+write,
//! no-execute again before the heap takes the memory back. So code pages
//! are writable only while loading and executable only afterwards, and no
//! other heap page is ever executable. The first publish also turns on SSE
//! (`CR4.OSFXSR`): compiled code may use SSE registers for integer moves.
//! The kernel itself is soft-float and never touches them.
//!
//! **Recovering from a fault.** [`catch`] runs a closure with a recovery
//! point armed (a `setjmp` in assembly). If a CPU exception is raised while
//! it runs *and the faulting instruction lies in published graft code*, the
//! exception handler rewrites the interrupted frame so that `iretq` resumes
//! at the recovery point, which returns [`GraftFault`] from `catch`. The
//! frames between (the graft's and its engine's) are abandoned, never
//! resumed, so whoever called `catch` must treat everything they held as
//! lost: the graft runtime unloads the faulted graft and drops its store
//! (which frees memory and runs no graft code) without ever running it again.
//! Exceptions anywhere else, including in accessors the graft called, are
//! kernel bugs and still take the panic path.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr4, Cr4Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};

use super::interrupts::TrapFrame;
use super::paging;
use crate::memory::{FRAME_SIZE, FRAMES};

const LARGE: usize = 2 << 20;
const GIB: usize = 1 << 30;
const PAGE: usize = FRAME_SIZE as usize;

/// The most graft code regions published at once (one per loaded graft).
pub const MAX_REGIONS: usize = 64;

/// Why a region could not be published or unpublished: the caller's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeError {
    /// Not page-aligned, empty, or outside the kernel heap.
    BadRange { start: usize, len: usize },
    /// [`MAX_REGIONS`] regions are published already.
    TooManyRegions,
    /// Unpublishing a region that was never published.
    NotPublished,
    /// No frame left for the page table a split needs.
    OutOfFrames,
}

impl core::fmt::Display for CodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CodeError::BadRange { start, len } => write!(
                f,
                "code region {start:#x}+{len:#x} is not page-aligned heap memory"
            ),
            CodeError::TooManyRegions => {
                write!(f, "{MAX_REGIONS} graft code regions are published already")
            }
            CodeError::NotPublished => write!(f, "that code region was never published"),
            CodeError::OutOfFrames => write!(f, "no frame left to split a 2 MiB page"),
        }
    }
}

/// The heap's range, the only memory that may become graft code.
static HEAP: (AtomicUsize, AtomicUsize) = (AtomicUsize::new(0), AtomicUsize::new(0));

/// Published regions: `[start, end)` pairs, `0, 0` when free. Read by the
/// exception handler, so lock-free.
static REGIONS: [(AtomicUsize, AtomicUsize); MAX_REGIONS] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; MAX_REGIONS];

static SSE: AtomicBool = AtomicBool::new(false);

/// Records the heap's range (boot, once the heap exists).
pub(crate) fn set_heap(start: u64, size: u64) {
    HEAP.0.store(start as usize, Ordering::Relaxed);
    HEAP.1.store((start + size) as usize, Ordering::Relaxed);
}

fn check(start: usize, len: usize) -> Result<usize, CodeError> {
    let bad = CodeError::BadRange { start, len };
    let end = start.checked_add(len).ok_or(bad)?;
    let heap = HEAP.0.load(Ordering::Relaxed)..HEAP.1.load(Ordering::Relaxed);
    if len == 0 || start % PAGE != 0 || end % PAGE != 0 {
        return Err(bad);
    }
    if start < heap.start || end > heap.end {
        return Err(bad);
    }
    Ok(end)
}

/// Maps `[start, start + len)` of the heap read+execute and not writable,
/// and records it as graft code. It cannot break memory safety: taking
/// write access away turns a later write into a page fault (a reported
/// crash), never into silent corruption, and granting execute runs nothing.
pub fn publish(start: usize, len: usize) -> Result<(), CodeError> {
    let end = check(start, len)?;
    let slot = REGIONS
        .iter()
        .find(|(s, _)| s.load(Ordering::Relaxed) == 0)
        .ok_or(CodeError::TooManyRegions)?;
    enable_sse();
    protect(start, end, Flags::PRESENT)?;
    slot.1.store(end, Ordering::Relaxed);
    slot.0.store(start, Ordering::Release);
    Ok(())
}

/// Maps a published region read+write and no-execute again, and forgets it.
pub fn unpublish(start: usize, len: usize) -> Result<(), CodeError> {
    let end = check(start, len)?;
    let slot = REGIONS
        .iter()
        .find(|(s, e)| s.load(Ordering::Relaxed) == start && e.load(Ordering::Relaxed) == end)
        .ok_or(CodeError::NotPublished)?;
    slot.0.store(0, Ordering::Release);
    slot.1.store(0, Ordering::Relaxed);
    protect(
        start,
        end,
        Flags::PRESENT | Flags::WRITABLE | paging::no_execute(),
    )
}

/// Whether `address` is in published graft code.
pub fn is_graft_code(address: usize) -> bool {
    REGIONS.iter().any(|(s, e)| {
        let start = s.load(Ordering::Acquire);
        start != 0 && (start..e.load(Ordering::Relaxed)).contains(&address)
    })
}

fn enable_sse() {
    if SSE.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: every x86-64 CPU has SSE2; with CR0.EM clear, CR0.MP set and
    // CR4.OSFXSR/OSXMMEXCPT set, SSE instructions run instead of raising
    // #UD. The kernel is soft-float and keeps no state in these registers,
    // so turning them on changes nothing it relies on.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Sets the 4 KiB mappings of `[start, end)` (identity-mapped heap) to
/// `flags`, splitting 2 MiB pages first where needed.
fn protect(start: usize, end: usize, flags: Flags) -> Result<(), CodeError> {
    let mut page = start;
    while page < end {
        let table = small_pages(page)?;
        let index = (page % LARGE) / PAGE;
        table[index].set_addr(PhysAddr::new(page as u64), flags);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page as u64));
        page += PAGE;
    }
    Ok(())
}

/// The page table that maps the 2 MiB page holding `address`, splitting a
/// 2 MiB mapping into 512 equal 4 KiB ones first.
fn small_pages(address: usize) -> Result<&'static mut PageTable, CodeError> {
    let root = paging::root_table();
    let pdpt_address = root[0].addr().as_u64();
    // SAFETY: the kernel's tables are identity-mapped frames that only the
    // paging code edits, and graft code is published from one task at a
    // time (the graft host is not reentrant); `check` put `address` inside
    // the heap, which `paging::init` mapped through these levels.
    let pdpt = unsafe { &mut *(pdpt_address as *mut PageTable) };
    let pd_address = pdpt[address / GIB].addr().as_u64();
    // SAFETY: as above.
    let pd = unsafe { &mut *(pd_address as *mut PageTable) };
    let entry = &mut pd[(address % GIB) / LARGE];
    if entry.flags().contains(Flags::HUGE_PAGE) {
        let base = address & !(LARGE - 1);
        let huge = entry.flags() - Flags::HUGE_PAGE;
        let frame = FRAMES
            .lock()
            .allocate(1, FRAME_SIZE)
            .map_err(|_| CodeError::OutOfFrames)?;
        // SAFETY: a fresh frame from the frame allocator, identity-mapped;
        // it is filled before it is linked into the tables.
        let table = unsafe { &mut *(frame as *mut PageTable) };
        for (i, pte) in table.iter_mut().enumerate() {
            pte.set_addr(PhysAddr::new((base + i * PAGE) as u64), huge);
        }
        entry.set_addr(PhysAddr::new(frame), Flags::PRESENT | Flags::WRITABLE);
        // The 2 MiB translation may be cached: drop every cached one.
        let (root_frame, cr3_flags) = Cr3::read();
        // SAFETY: reloading the same root only flushes the TLB.
        unsafe { Cr3::write(root_frame, cr3_flags) };
    }
    // SAFETY: the entry now points to a 4 KiB page table (split above or
    // earlier); tables are identity-mapped.
    Ok(unsafe { &mut *(entry.addr().as_u64() as *mut PageTable) })
}

/// A CPU exception raised by graft code inside [`catch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraftFault {
    pub vector: u8,
    pub rip: u64,
    /// CR2 for a page fault.
    pub address: u64,
}

/// The armed recovery point's stack pointer (0: none armed).
static RECOVER_RSP: AtomicU64 = AtomicU64::new(0);
static FAULT: (AtomicU64, AtomicU64, AtomicU64) =
    (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));

/// Runs `f`; a CPU exception raised by published graft code while it runs
/// abandons the frames it interrupted and returns here as [`GraftFault`].
/// Nests: the innermost `catch` takes the fault.
pub fn catch<F: FnMut()>(f: &mut F) -> Result<(), GraftFault> {
    extern "C" fn call<F: FnMut()>(data: *mut u8) {
        // SAFETY: `data` is the `&mut F` passed to `catch_trampoline` below,
        // alive for the whole call.
        let f = unsafe { &mut *data.cast::<F>() };
        f();
    }
    // SAFETY: the trampoline calls `call::<F>(data)` once with the callee-
    // saved registers preserved, and returns 0 when it returns, or 1 when
    // the exception handler resumed at the recovery point.
    let faulted = unsafe { catch_trampoline((f as *mut F).cast(), call::<F>) };
    if faulted == 0 {
        return Ok(());
    }
    Err(GraftFault {
        vector: FAULT.0.load(Ordering::Relaxed) as u8,
        rip: FAULT.1.load(Ordering::Relaxed),
        address: FAULT.2.load(Ordering::Relaxed),
    })
}

/// Saves the callee-saved registers and the previous recovery point on the
/// stack, arms a new one there, and calls `call(data)`.
///
/// # Safety
/// `call` must be safe to call with `data`.
#[unsafe(naked)]
unsafe extern "C" fn catch_trampoline(data: *mut u8, call: extern "C" fn(*mut u8)) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push qword ptr [rip + {recover}]",
        "mov [rip + {recover}], rsp",
        "call rsi",
        "pop qword ptr [rip + {recover}]",
        "xor eax, eax",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        recover = sym RECOVER_RSP,
    )
}

/// Where a recovered fault resumes (by `iretq`, with `rsp` the armed
/// recovery point): restores what the trampoline saved and returns 1 from it.
#[unsafe(naked)]
unsafe extern "C" fn landing() {
    naked_asm!(
        "pop qword ptr [rip + {recover}]",
        "mov eax, 1",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        recover = sym RECOVER_RSP,
    )
}

/// Called by the exception dispatcher first: if the exception came from
/// graft code under an armed [`catch`], records it and redirects the frame
/// to the recovery point. Returns whether it did.
pub(crate) fn recover(frame: &mut TrapFrame, cr2: u64) -> bool {
    let rsp = RECOVER_RSP.load(Ordering::Relaxed);
    // #DF, #MC and NMI are never a graft's doing to recover from.
    if rsp == 0 || matches!(frame.vector, 2 | 8 | 18) || !is_graft_code(frame.rip as usize) {
        return false;
    }
    FAULT.0.store(frame.vector, Ordering::Relaxed);
    FAULT.1.store(frame.rip, Ordering::Relaxed);
    FAULT.2.store(cr2, Ordering::Relaxed);
    frame.rip = landing as *const () as u64;
    frame.rsp = rsp;
    // Clear the direction flag, as the ABI expects at a call boundary.
    frame.rflags &= !(1 << 10);
    true
}
