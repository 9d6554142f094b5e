//! The smallest Rootstock image: prints one line and exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

unikernel::image!(main: main);

async fn main() -> i32 {
    unikernel::println!("Hello from Rootstock!");
    0
}
