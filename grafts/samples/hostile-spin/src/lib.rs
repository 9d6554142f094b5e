//! Hostile: never returns (the fuel budget must stop it).
#![cfg_attr(target_arch = "wasm32", no_std)]

fn spin(n: i32) -> i32 {
    let mut x = n;
    loop {
        x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

graft_sdk::graft_main!(spin: fn(n: i32) -> i32);
