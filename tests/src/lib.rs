//! Integration tests that boot images under QEMU.
