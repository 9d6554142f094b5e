//! Rootstock's tooling as a library: what `cargo xtask` does, reusable by
//! the integration tests in `tests/` (building images, launching QEMU with
//! the same configuration, decoding exit statuses).

pub mod bench;
pub mod grafts;
pub mod images;
pub mod qemu;
pub mod setup;

use std::path::PathBuf;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}
