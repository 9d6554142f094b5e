//! Deliberate faults, for tests that prove the kernel reports them. Only
//! built with the `fault-injection` feature; release images never have it.

/// Writes one byte to `address`, which had better be unmapped: the expected
/// outcome is a page-fault report and exit status 102.
pub fn write_to(address: u64) {
    // SAFETY: not sound by design: this exists to fault. The address is not
    // memory Rust code owns (callers pick an unmapped one), so if the write
    // does land it corrupts nothing the kernel relies on.
    unsafe { core::ptr::write_volatile(address as *mut u8, 0x42) };
}
