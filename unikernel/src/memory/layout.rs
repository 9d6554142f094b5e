//! Page-protection and placement decisions, as plain arithmetic: which
//! protection each page of the kernel image gets, and where the Rio region
//! goes. The page-table code in `arch::paging` applies these; the logic
//! itself is tested on the host. (Placing the Rio region is step 2 on the
//! path from the region to a recovered cache that `storage/mod.rs` walks.)

/// Extents of the loaded image (physical = virtual), from the linker script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    pub start: u64,
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    pub data_start: u64,
    pub stack_guard: u64,
    pub stack: (u64, u64),
    pub end: u64,
}

/// How a page is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Not mapped at all: touching it faults (page 0, the stack guard).
    Unmapped,
    /// Code: read and execute, never written.
    ReadExecute,
    /// Constants: read only, never executed.
    ReadOnly,
    /// Data, bss, stack, other RAM: read and write, never executed.
    ReadWrite,
}

impl ImageLayout {
    /// The protection of the 4 KiB page at `address` in the low, finely
    /// mapped part of memory (page 0 up to the end of the image).
    pub fn protection(&self, address: u64) -> Protection {
        let within = |range: (u64, u64)| (range.0..range.1).contains(&address);
        if address < 4096 || within((self.stack_guard, self.stack.0)) {
            Protection::Unmapped
        } else if within(self.text) {
            Protection::ReadExecute
        } else if within(self.rodata) {
            Protection::ReadOnly
        } else {
            Protection::ReadWrite
        }
    }
}

impl ImageLayout {
    /// `[0, end)` cut into runs of pages with one protection each, as
    /// `(start, end, protection)` in address order (runs may be empty):
    /// the page tables fill a run without asking page by page.
    pub fn runs(&self, end: u64) -> impl Iterator<Item = (u64, u64, Protection)> + '_ {
        let mut cuts = [
            4096,
            self.text.0,
            self.text.1,
            self.rodata.0,
            self.rodata.1,
            self.stack_guard,
            self.stack.0,
        ]
        // A page takes the protection of its first byte: a section that
        // ends inside a page gives that page its own protection.
        .map(|cut| cut.next_multiple_of(4096).min(end));
        cuts.sort_unstable();
        let starts = core::iter::once(0).chain(cuts);
        let ends = cuts.into_iter().chain(core::iter::once(end));
        starts
            .zip(ends)
            .filter(|(start, end)| start < end)
            .map(|(start, end)| (start, end, self.protection(start)))
    }
}

/// Granularity of the Rio region (one large page).
pub const RIO_ALIGN: u64 = 2 << 20;

/// Where a Rio region of `size` bytes goes below `ram_top`: the highest
/// 2 MiB-aligned block, so that the same VM puts it at the same address at
/// every boot. `None` for no region or one that does not fit above `floor`.
pub fn rio_placement(ram_top: u64, size: u64, floor: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    let size = size.checked_next_multiple_of(RIO_ALIGN)?;
    let end = ram_top & !(RIO_ALIGN - 1);
    let start = end.checked_sub(size)?;
    (start >= floor).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ImageLayout = ImageLayout {
        start: 0x10_0000,
        text: (0x10_0000, 0x11_4000),
        rodata: (0x11_4000, 0x11_d000),
        data_start: 0x11_d000,
        stack_guard: 0x13_b000,
        stack: (0x13_c000, 0x14_c000),
        end: 0x14_c000,
    };

    #[test]
    fn kernel_pages_are_w_xor_x_with_guards() {
        use Protection::*;
        let cases = [
            (0, Unmapped),
            (0xfff, Unmapped),
            (0x1000, ReadWrite),
            (0x10_0000, ReadExecute),
            (0x11_3fff, ReadExecute),
            (0x11_4000, ReadOnly),
            (0x11_d000, ReadWrite),
            (0x13_b000, Unmapped),
            (0x13_bfff, Unmapped),
            (0x13_c000, ReadWrite),
            (0x1f_f000, ReadWrite),
        ];
        for (address, expected) in cases {
            assert_eq!(LAYOUT.protection(address), expected, "page {address:#x}");
        }
    }

    #[test]
    fn no_page_is_both_writable_and_executable() {
        for page in (0..0x20_0000).step_by(4096) {
            let p = LAYOUT.protection(page);
            assert!(!(p == Protection::ReadExecute && page >= LAYOUT.data_start));
        }
    }

    #[test]
    fn runs_give_every_page_its_protection() {
        let end = 0x20_0000;
        let unaligned = ImageLayout {
            text: (0x10_0000, 0x10_844e),
            rodata: (0x10_9000, 0x10_ade8),
            ..LAYOUT
        };
        for layout in [LAYOUT, unaligned] {
            runs_match(&layout, end);
        }
    }

    fn runs_match(layout: &ImageLayout, end: u64) {
        let runs: Vec<_> = layout.runs(end).collect();
        let mut covered = 0;
        for &(start, stop, _) in &runs {
            assert_eq!(start, covered, "runs are contiguous and in order");
            assert_eq!(start % 4096, 0, "runs start on a page");
            covered = stop;
        }
        assert_eq!(covered, end);
        for page in (0..end).step_by(4096) {
            let run = runs.iter().find(|r| (r.0..r.1).contains(&page)).unwrap();
            assert_eq!(layout.protection(page), run.2, "page {page:#x}");
        }
    }

    #[test]
    fn rio_region_sits_at_the_top_aligned() {
        const MIB: u64 = 1 << 20;
        assert_eq!(
            rio_placement(32 * MIB, 2 * MIB, MIB),
            Some((30 * MIB, 32 * MIB))
        );
        // Rounded up to 2 MiB, below an unaligned top.
        assert_eq!(
            rio_placement(33 * MIB, 3 * MIB, MIB),
            Some((28 * MIB, 32 * MIB))
        );
        assert_eq!(rio_placement(32 * MIB, 0, MIB), None);
        assert_eq!(rio_placement(4 * MIB, 8 * MIB, MIB), None);
        assert_eq!(
            rio_placement(4 * MIB, 4 * MIB, MIB),
            None,
            "would cover the kernel"
        );
        assert_eq!(rio_placement(32 * MIB, u64::MAX, MIB), None);
    }
}
