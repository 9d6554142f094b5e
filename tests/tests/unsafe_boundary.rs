//! The unsafe boundary holds: an image crate (`#![forbid(unsafe_code)]`,
//! built for the image target) cannot reach the parts of
//! `unikernel::arch` that act on raw addresses or rely on being called
//! once: each such call is a compile error, while the safe surface an
//! image uses still compiles (so a failure means what it should).
//!
//! Why not `trybuild`: `unikernel::arch` exists only when building for
//! `x86_64-unknown-none`, and trybuild checks its cases for the host; this
//! test writes each case as a small image crate and runs
//! `cargo check --target x86_64-unknown-none` on it (no linking, so it is
//! quick once the kernel's dependencies are checked, and they are shared
//! by every case).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Calls an image must not be able to make, and the error to expect.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "start_info_read",
        "let _ = unikernel::arch::start_info::read(0x1000);",
        "module `start_info` is private",
    ),
    (
        "rio_adopt",
        "unikernel::rio::adopt(0x100000, 0x200000);",
        "function `adopt` is private",
    ),
    (
        "interrupts_init",
        "unikernel::arch::interrupts::init();",
        "module `interrupts` is private",
    ),
    (
        "paging",
        "let _ = unikernel::arch::paging::init;",
        "module `paging` is private",
    ),
    (
        "heap_init",
        "unsafe { unikernel::arch::heap::init(0x100000, 4096) };",
        "module `heap` is private",
    ),
    (
        "serial_init",
        "unikernel::arch::serial::init();",
        "function `init` is private",
    ),
];

/// What an image may use: compiles.
const ALLOWED: &str = "let _ = unikernel::arch::clock_now(); \
    let _ = unikernel::memory::heap::usage(); \
    let _ = unikernel::rio::region(); \
    unikernel::arch::serial::write(b\"x\");";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes an image crate whose `main` runs `body`; `cargo check`s it for
/// the image target; returns (success, compiler output).
fn check(name: &str, body: &str) -> (bool, String) {
    let root = root();
    let dir = root.join("target/boundary").join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"boundary-{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nunikernel = {{ path = {:?} }}\n\n[workspace]\n",
        name.replace('_', "-"),
        root.join("unikernel")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let main = format!(
        "#![no_std]\n#![no_main]\n#![forbid(unsafe_code)]\n\
         unikernel::image!(main: main);\n\
         async fn main() -> i32 {{\n    {body}\n    0\n}}\n"
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "check",
            "--quiet",
            "--offline",
            "--target",
            "x86_64-unknown-none",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target/boundary/target"))
        .current_dir(&root)
        .output()
        .expect("cargo");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_image_cannot_reach_the_raw_parts_of_arch() {
    let (ok, output) = check("allowed", ALLOWED);
    assert!(ok, "the safe surface no longer compiles:\n{output}");
    for (name, body, error) in FORBIDDEN {
        let (ok, output) = check(name, body);
        assert!(!ok, "{name}: an image can call `{body}`");
        assert!(
            output.contains(error),
            "{name}: refused, but not for the expected reason ({error}):\n{output}"
        );
    }
}
