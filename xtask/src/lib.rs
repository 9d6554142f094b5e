//! Rootstock's tooling as a library: what `cargo xtask` does, reusable by
//! the integration tests in `tests/` (building images, launching QEMU with
//! the same configuration, decoding exit statuses, signing grafts with the
//! development key and talking to an image's graft control channel).

pub mod bench;
pub mod fuzz;
pub mod graft_cli;
pub mod graft_client;
pub mod graft_new;
pub mod graft_view;
pub mod grafts;
pub mod hostile;
pub mod images;
pub mod keys;
pub mod qemu;
pub mod setup;
pub mod symbolize;
pub mod tapnet;

use std::path::PathBuf;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}
