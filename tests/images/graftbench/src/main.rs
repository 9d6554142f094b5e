//! The `graftbench` image: VINO's graft overhead table measured inside a
//! booted image (`graft_bench`), on the TSC-based kernel clock.
//!
//! It builds a graft host as every image does (`graft_host::image_host`),
//! measures the transaction mechanics, the indirection of an empty graft
//! point, a null graft and the four sample grafts (their artifacts embedded
//! at build time from `ROOTSTOCK_GRAFTS_DIR`, which `cargo xtask build`
//! sets after compiling them to `target/grafts/*.cwasm`), each beside the same algorithm
//! compiled natively into this image, prints one line
//! `graftbench: {JSON}` and exits 0 (1 if the table could not be set up).
//! `cargo xtask bench grafts` boots it and reports the line.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

unikernel::image!(main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    use graft_bench::{self as bench, Modules, Plan};

    macro_rules! graft {
        ($name:literal) => {
            include_bytes!(concat!(
                env!(
                    "ROOTSTOCK_GRAFTS_DIR",
                    "build this image with `cargo xtask build graftbench`: it compiles the grafts and sets ROOTSTOCK_GRAFTS_DIR"
                ),
                "/",
                $name,
                ".cwasm"
            ))
        };
    }
    let modules = Modules {
        readahead: graft!("strided-readahead"),
        evict: graft!("keep-hot"),
        sched: graft!("priority-sched"),
        cipher: graft!("stream-cipher"),
    };

    let host = graft_host::image_host();
    let now = || unikernel::arch::clock_now().as_nanos();
    let samples = bench::samples(modules, bench::natives());
    let null = graft!("null-graft");
    let table = bench::run(&mut host.borrow_mut(), &now, Plan::IMAGE, null, samples);
    match table {
        Ok(table) => {
            unikernel::println!("graftbench: {table}");
            0
        }
        Err(e) => {
            unikernel::println!("graftbench: error: {e}");
            1
        }
    }
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
