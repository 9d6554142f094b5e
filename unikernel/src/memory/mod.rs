//! Physical memory: the map the loader reported, the frame allocator that
//! owns free RAM, and (on the target) the kernel heap carved out of it.

pub mod frames;
/// The kernel heap (its allocator glue is `unsafe`, so it lives in `arch`).
#[cfg(target_os = "none")]
pub mod heap {
    pub use crate::arch::heap::usage;
}
pub mod layout;

pub use frames::{FRAME_SIZE, FrameAllocator, FrameError};

/// The frame allocator that owns all free physical memory after boot.
pub static FRAMES: spin::Mutex<FrameAllocator> = spin::Mutex::new(FrameAllocator::new());

/// What a region of physical memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Ram,
    Reserved,
}

/// One entry of the physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

const MAX_REGIONS: usize = 32;

/// The physical memory map (a fixed-capacity list: it exists before the heap).
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [Region; MAX_REGIONS],
    len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    pub const fn new() -> Self {
        MemoryMap {
            regions: [Region {
                start: 0,
                end: 0,
                kind: RegionKind::Reserved,
            }; MAX_REGIONS],
            len: 0,
        }
    }

    /// Adds a region; regions past the capacity are dropped (and so unused).
    pub fn push(&mut self, region: Region) {
        if self.len < MAX_REGIONS && region.end > region.start {
            self.regions[self.len] = region;
            self.len += 1;
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// The end of the highest RAM region.
    pub fn ram_top(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Ram)
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    }

    /// Total bytes of RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Ram)
            .map(|r| r.end - r.start)
            .sum()
    }

    /// A frame allocator owning the RAM above `floor`, minus `[reserved)`.
    pub fn free_frames(&self, floor: u64, reserved: (u64, u64)) -> FrameAllocator {
        let mut frames = FrameAllocator::new();
        for region in self.regions().iter().filter(|r| r.kind == RegionKind::Ram) {
            // Too many ranges only means some RAM goes unused.
            let _ = frames.add_region(region.start.max(floor), region.end);
        }
        // Reserved regions the loader reported inside RAM win over RAM.
        for region in self
            .regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Reserved)
        {
            frames.reserve(region.start, region.end);
        }
        frames.reserve(reserved.0, reserved.1);
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_frames_skip_low_memory_reserved_areas_and_the_kernel() {
        let mut map = MemoryMap::new();
        map.push(Region {
            start: 0,
            end: 0x9fc00,
            kind: RegionKind::Ram,
        });
        map.push(Region {
            start: 0x9fc00,
            end: 0xa0000,
            kind: RegionKind::Reserved,
        });
        map.push(Region {
            start: 0x100000,
            end: 0x2000000,
            kind: RegionKind::Ram,
        });
        map.push(Region {
            start: 0x1f00000,
            end: 0x1f10000,
            kind: RegionKind::Reserved,
        });
        assert_eq!(map.ram_top(), 0x2000000);
        let frames = map.free_frames(0x100000, (0x100000, 0x123456));
        assert_eq!(
            frames.ranges(),
            &[(0x124000, 0x1f00000), (0x1f10000, 0x2000000)]
        );
    }
}
