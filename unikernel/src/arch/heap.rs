//! The kernel heap: `talc` over one physically contiguous block of frames.
//!
//! Running out of heap is a clear panic naming the request and the heap's
//! state, never a silent hang or a null pointer handed to Rust code.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use talc::TalcLock;
use talc::source::Manual;

struct KernelHeap {
    talc: TalcLock<spin::mutex::SpinMutex<()>, Manual>,
    size: AtomicUsize,
    used: AtomicUsize,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    talc: TalcLock::new(Manual),
    size: AtomicUsize::new(0),
    used: AtomicUsize::new(0),
};

/// Gives the heap `[start, start + size)`.
///
/// # Safety
/// The range must be mapped, writable, unused by anything else and never
/// handed out again (by the frame allocator or anyone).
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: guaranteed by the caller.
    let claimed = unsafe { HEAP.talc.lock().claim(start as *mut u8, size as usize) };
    assert!(
        claimed.is_some(),
        "heap region {start:#x}+{size:#x} is too small"
    );
    HEAP.size.store(size as usize, Ordering::Relaxed);
}

/// Heap statistics: (bytes in use, bytes in the heap).
pub fn usage() -> (usize, usize) {
    (
        HEAP.used.load(Ordering::Relaxed),
        HEAP.size.load(Ordering::Relaxed),
    )
}

// SAFETY: delegates to talc, which upholds the GlobalAlloc contract; the
// counters are bookkeeping only.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.talc.alloc(layout) };
        if ptr.is_null() {
            out_of_memory(layout);
        }
        self.used.fetch_add(layout.size(), Ordering::Relaxed);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { self.talc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let new = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if new.is_null() {
            // SAFETY: `layout.align()` is a valid alignment (from a Layout).
            out_of_memory(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        }
        self.used.fetch_add(new_size, Ordering::Relaxed);
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
        new
    }
}

#[cold]
fn out_of_memory(layout: Layout) -> ! {
    let (used, size) = usage();
    panic!(
        "out of memory: cannot allocate {} bytes (align {}); heap has {} of {} bytes in use \
         (run the image with more memory: cargo xtask run <image> --mem 64M)",
        layout.size(),
        layout.align(),
        used,
        size
    );
}
