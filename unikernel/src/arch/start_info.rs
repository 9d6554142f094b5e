//! Reading the PVH `hvm_start_info` the loader left in guest memory: the
//! physical memory map and the kernel command line. The structure is
//! untrusted only in the sense of being checked: magic, version and counts
//! are validated before anything is believed.

use crate::memory::{MemoryMap, Region, RegionKind};

const MAGIC: u32 = 0x336e_c578;
const RAM_TYPE: u32 = 1;
const MAX_CMDLINE: usize = 4096;

#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// What the loader told the kernel.
pub struct BootInfo {
    pub memory: MemoryMap,
    pub cmdline: &'static str,
}

/// Reads the start info at `address`. Panics (a loader bug) if it is not one.
pub fn read(address: u64) -> BootInfo {
    assert!(
        address != 0 && address.is_multiple_of(8),
        "PVH start info pointer {address:#x} is invalid"
    );
    // SAFETY: the PVH loader passed this address in %ebx; it lies in low RAM,
    // identity-mapped by the boot page tables, and is never written again.
    let info = unsafe { &*(address as *const HvmStartInfo) };
    assert_eq!(info.magic, MAGIC, "PVH start info has a bad magic number");
    let mut memory = MemoryMap::new();
    if info.version >= 1 && info.memmap_paddr != 0 {
        let count = info.memmap_entries.min(128) as usize;
        // SAFETY: the loader provides `memmap_entries` entries at
        // `memmap_paddr` (identity-mapped low memory); the count is capped.
        let entries =
            unsafe { core::slice::from_raw_parts(info.memmap_paddr as *const MemmapEntry, count) };
        for entry in entries {
            let kind = if entry.kind == RAM_TYPE {
                RegionKind::Ram
            } else {
                RegionKind::Reserved
            };
            memory.push(Region {
                start: entry.addr,
                end: entry.addr.saturating_add(entry.size),
                kind,
            });
        }
    }
    BootInfo {
        memory,
        cmdline: cmdline(info.cmdline_paddr),
    }
}

fn cmdline(address: u64) -> &'static str {
    if address == 0 {
        return "";
    }
    let base = address as *const u8;
    let mut len = 0;
    // SAFETY: the loader wrote a NUL-terminated string at `address`; the scan
    // is capped at MAX_CMDLINE bytes of identity-mapped low memory.
    while len < MAX_CMDLINE && unsafe { base.add(len).read() } != 0 {
        len += 1;
    }
    // SAFETY: `len` bytes at `base` were just read and stay unchanged.
    let bytes = unsafe { core::slice::from_raw_parts(base, len) };
    core::str::from_utf8(bytes).unwrap_or("")
}
