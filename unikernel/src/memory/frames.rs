//! The physical frame allocator: free physical memory as a sorted list of
//! disjoint frame ranges, allocated first-fit with alignment and coalesced on
//! free. Needs no heap (the list is a fixed array), so it runs before the
//! heap exists and serves page tables and DMA buffers (which need physically
//! contiguous, aligned frames) for the life of the image.

/// Size of a frame.
pub const FRAME_SIZE: u64 = 4096;

/// How many disjoint free ranges the allocator can track.
const MAX_RANGES: usize = 64;

/// Why a frame operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free range can hold the request.
    OutOfMemory { frames: u64 },
    /// The request or range was empty, misaligned or not a power of two.
    BadRequest,
    /// Freeing would need more ranges than the allocator tracks.
    TooFragmented,
    /// The freed range overlaps memory that is already free (a double free).
    AlreadyFree { start: u64 },
}

/// A first-fit allocator of physical frames.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    /// Free ranges as (first byte, end byte), sorted, disjoint, not adjacent.
    ranges: [(u64, u64); MAX_RANGES],
    len: usize,
    free_bytes: u64,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAllocator {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        FrameAllocator {
            ranges: [(0, 0); MAX_RANGES],
            len: 0,
            free_bytes: 0,
        }
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// The free ranges, sorted.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    /// Adds the frames wholly inside `[start, end)` to the free pool.
    pub fn add_region(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let start = start.next_multiple_of(FRAME_SIZE);
        let end = end & !(FRAME_SIZE - 1);
        if end <= start {
            return Ok(());
        }
        self.insert(start, end)
    }

    /// Removes `[start, end)` (rounded out to frames) from the free pool,
    /// e.g. to reserve the kernel image. Parts that are not free are ignored.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let start = start & !(FRAME_SIZE - 1);
        let end = end.next_multiple_of(FRAME_SIZE);
        let mut i = 0;
        while i < self.len {
            let (s, e) = self.ranges[i];
            if e <= start || s >= end {
                i += 1;
                continue;
            }
            self.free_bytes -= e.min(end) - s.max(start);
            match (s < start, e > end) {
                (true, true) => {
                    // Split in two; if the table is full, drop the upper part.
                    self.ranges[i] = (s, start);
                    if self.insert_at(i + 1, (end, e)).is_err() {
                        self.free_bytes -= e - end;
                    }
                    return;
                }
                (true, false) => self.ranges[i] = (s, start),
                (false, true) => self.ranges[i] = (end, e),
                (false, false) => {
                    self.remove_at(i);
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Allocates `count` contiguous frames aligned to `align` bytes (a power
    /// of two, at least [`FRAME_SIZE`]); returns the physical address.
    pub fn allocate(&mut self, count: u64, align: u64) -> Result<u64, FrameError> {
        if count == 0 || !align.is_power_of_two() || align < FRAME_SIZE {
            return Err(FrameError::BadRequest);
        }
        let size = count
            .checked_mul(FRAME_SIZE)
            .ok_or(FrameError::BadRequest)?;
        for i in 0..self.len {
            let (s, e) = self.ranges[i];
            let aligned = s.next_multiple_of(align);
            let Some(end) = aligned.checked_add(size) else {
                continue;
            };
            if end > e {
                continue;
            }
            self.free_bytes -= size;
            match (aligned > s, end < e) {
                (false, false) => self.remove_at(i),
                (false, true) => self.ranges[i] = (end, e),
                (true, false) => self.ranges[i] = (s, aligned),
                (true, true) => {
                    self.ranges[i] = (s, aligned);
                    if self.insert_at(i + 1, (end, e)).is_err() {
                        // Keep the larger piece rather than fail the allocation.
                        self.free_bytes -= e - end;
                    }
                }
            }
            return Ok(aligned);
        }
        Err(FrameError::OutOfMemory { frames: count })
    }

    /// Returns `count` frames starting at `start` to the pool.
    pub fn free(&mut self, start: u64, count: u64) -> Result<(), FrameError> {
        if count == 0 || !start.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::BadRequest);
        }
        let end = start
            .checked_add(count * FRAME_SIZE)
            .ok_or(FrameError::BadRequest)?;
        self.insert(start, end)
    }

    fn insert(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let i = self.ranges[..self.len].partition_point(|&(s, _)| s < start);
        let overlaps_prev = i > 0 && self.ranges[i - 1].1 > start;
        let overlaps_next = i < self.len && self.ranges[i].0 < end;
        if overlaps_prev || overlaps_next {
            return Err(FrameError::AlreadyFree { start });
        }
        let joins_prev = i > 0 && self.ranges[i - 1].1 == start;
        let joins_next = i < self.len && self.ranges[i].0 == end;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.remove_at(i);
            }
            (true, false) => self.ranges[i - 1].1 = end,
            (false, true) => self.ranges[i].0 = start,
            (false, false) => self.insert_at(i, (start, end))?,
        }
        self.free_bytes += end - start;
        Ok(())
    }

    fn insert_at(&mut self, i: usize, range: (u64, u64)) -> Result<(), FrameError> {
        if self.len == MAX_RANGES {
            return Err(FrameError::TooFragmented);
        }
        self.ranges.copy_within(i..self.len, i + 1);
        self.ranges[i] = range;
        self.len += 1;
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        self.ranges.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn pool() -> FrameAllocator {
        let mut frames = FrameAllocator::new();
        frames.add_region(MIB, 32 * MIB).unwrap();
        frames
    }

    #[test]
    fn regions_are_rounded_inwards_to_frames() {
        let mut frames = FrameAllocator::new();
        frames.add_region(0x1001, 0x5fff).unwrap();
        assert_eq!(frames.ranges(), &[(0x2000, 0x5000)]);
        assert_eq!(frames.free_bytes(), 0x3000);
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_accounted() {
        let mut frames = pool();
        let a = frames.allocate(1, FRAME_SIZE).unwrap();
        let b = frames.allocate(16, 2 * MIB).unwrap();
        assert_eq!(a, MIB);
        assert_eq!(b % (2 * MIB), 0);
        assert!(b >= a + FRAME_SIZE);
        assert_eq!(frames.free_bytes(), 31 * MIB - 17 * FRAME_SIZE);
        // The gap left by alignment is still usable.
        let c = frames.allocate(1, FRAME_SIZE).unwrap();
        assert_eq!(c, a + FRAME_SIZE);
    }

    #[test]
    fn free_coalesces_back_to_one_range() {
        let mut frames = pool();
        let before = frames.clone();
        let a = frames.allocate(3, FRAME_SIZE).unwrap();
        let b = frames.allocate(5, 64 * 1024).unwrap();
        let c = frames.allocate(1, FRAME_SIZE).unwrap();
        frames.free(b, 5).unwrap();
        frames.free(a, 3).unwrap();
        frames.free(c, 1).unwrap();
        assert_eq!(frames.ranges(), before.ranges());
        assert_eq!(frames.free_bytes(), before.free_bytes());
    }

    #[test]
    fn double_free_is_refused() {
        let mut frames = pool();
        let a = frames.allocate(2, FRAME_SIZE).unwrap();
        frames.free(a, 2).unwrap();
        assert_eq!(frames.free(a, 1), Err(FrameError::AlreadyFree { start: a }));
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut frames = pool();
        assert_eq!(
            frames.allocate(u64::MAX / 2, FRAME_SIZE),
            Err(FrameError::BadRequest)
        );
        assert_eq!(
            frames.allocate(32 * MIB / FRAME_SIZE, FRAME_SIZE),
            Err(FrameError::OutOfMemory {
                frames: 32 * MIB / FRAME_SIZE
            })
        );
        assert_eq!(frames.allocate(1, 3000), Err(FrameError::BadRequest));
        assert_eq!(frames.allocate(0, FRAME_SIZE), Err(FrameError::BadRequest));
    }

    #[test]
    fn reserve_cuts_holes_and_edges() {
        let mut frames = pool();
        frames.reserve(2 * MIB, 3 * MIB);
        frames.reserve(0, MIB + 10);
        frames.reserve(31 * MIB, 40 * MIB);
        assert_eq!(
            frames.ranges(),
            &[(MIB + FRAME_SIZE, 2 * MIB), (3 * MIB, 31 * MIB)]
        );
        assert_eq!(frames.free_bytes(), (MIB - FRAME_SIZE) + 28 * MIB);
    }

    #[test]
    fn fragmentation_beyond_the_table_is_reported() {
        let mut frames = FrameAllocator::new();
        for i in 0..MAX_RANGES as u64 {
            frames
                .add_region(i * 2 * FRAME_SIZE, i * 2 * FRAME_SIZE + FRAME_SIZE)
                .unwrap();
        }
        let far = 1000 * FRAME_SIZE;
        assert_eq!(
            frames.add_region(far, far + FRAME_SIZE),
            Err(FrameError::TooFragmented)
        );
    }
}
