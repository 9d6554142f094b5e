//! Hostile: changes host state through several accessors, then panics
//! mid-way (a trap): every change must be undone.
#![cfg_attr(target_arch = "wasm32", no_std)]

use graft_sdk::{counter_add, map_put};

fn partial(n: i32) -> i32 {
    counter_add(0, 100);
    counter_add(1, -5);
    map_put(0, 42, 4242);
    if core::hint::black_box(n) >= 0 {
        panic!("half-way");
    }
    0
}

graft_sdk::graft_main!(partial: fn(n: i32) -> i32);
