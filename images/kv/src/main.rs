//! The `kv` image: a Redis-protocol key-value server on port 6379 (see the
//! `kv` library for the design, `kv::server` for the command line).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

unikernel::image!(rio: kv::RIO_BYTES, main: main);

extern crate alloc;

#[cfg(target_os = "none")]
async fn main() -> i32 {
    // On the heap: the kernel stack is small, and so is `main`'s future
    // when it is only this box.
    alloc::boxed::Box::pin(kv::server::run()).await
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
