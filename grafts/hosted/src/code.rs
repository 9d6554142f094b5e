//! Graft code pages: written while mapped read+write, then mapped
//! read+execute for the rest of their life (W^X), and registered so that
//! the fault handler knows them.

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering};

/// The most regions published at once (one per loaded graft, as in the
/// image's `MAX_REGIONS`).
pub const MAX_REGIONS: usize = 256;

/// Published regions as `[start, end)` pairs (0, 0: a free slot). Written
/// by [`CodeRegion`], read by the signal handler (atomics only).
static REGIONS: [(AtomicUsize, AtomicUsize); MAX_REGIONS] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; MAX_REGIONS];

/// Whether `address` lies in published graft code.
pub(crate) fn is_graft_code(address: usize) -> bool {
    REGIONS.iter().any(|(start, end)| {
        let start = start.load(Ordering::Acquire);
        start != 0 && (start..end.load(Ordering::Acquire)).contains(&address)
    })
}

/// Why code could not be published: the caller's fault, or the host's.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeError {
    /// No code to publish.
    Empty,
    /// [`MAX_REGIONS`] regions are published already.
    TooManyRegions,
    /// The host refused to map or protect the pages (its `errno`).
    Map(i32),
}

impl core::fmt::Display for CodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CodeError::Empty => f.write_str("no code to publish"),
            CodeError::TooManyRegions => {
                write!(f, "{MAX_REGIONS} graft code regions are published already")
            }
            CodeError::Map(errno) => write!(f, "mapping graft code failed (errno {errno})"),
        }
    }
}

impl std::error::Error for CodeError {}

/// Published graft code: read+execute pages holding a copy of the bytes.
#[derive(Debug)]
pub struct CodeRegion {
    start: usize,
    len: usize,
    /// Mapped length (whole pages).
    mapped: usize,
    slot: usize,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl CodeRegion {
    /// Copies `code` into fresh pages and publishes them read+execute.
    pub fn publish(code: &[u8]) -> Result<CodeRegion, CodeError> {
        if code.is_empty() {
            return Err(CodeError::Empty);
        }
        crate::catch::install();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mapped = code.len().div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(CodeError::Map(errno()));
        }
        // SAFETY: `base` is a fresh writable mapping of `mapped >= len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), base.cast(), code.len()) };
        // SAFETY: the range is the mapping made above.
        if unsafe { libc::mprotect(base, mapped, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            let error = errno();
            // SAFETY: unmapping the mapping made above, which nothing else uses.
            unsafe { libc::munmap(base, mapped) };
            return Err(CodeError::Map(error));
        }
        let start = base as usize;
        let Some(slot) = REGIONS.iter().position(|(s, _)| {
            s.compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            // SAFETY: as above.
            unsafe { libc::munmap(base, mapped) };
            return Err(CodeError::TooManyRegions);
        };
        REGIONS[slot].1.store(start + code.len(), Ordering::Release);
        Ok(CodeRegion {
            start,
            len: code.len(),
            mapped,
            slot,
        })
    }

    /// The address of the code's first byte.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The code's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: an empty region cannot be published.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `address` is inside this region's code.
    pub fn contains(&self, address: usize) -> bool {
        (self.start..self.start + self.len).contains(&address)
    }
}

impl Drop for CodeRegion {
    fn drop(&mut self) {
        // Unregistered first: a fault at these addresses is no longer graft code's.
        REGIONS[self.slot].1.store(0, Ordering::Release);
        REGIONS[self.slot].0.store(0, Ordering::Release);
        // SAFETY: the mapping made in `publish`, which only this region owns.
        unsafe { libc::munmap(self.start as *mut libc::c_void, self.mapped) };
    }
}
