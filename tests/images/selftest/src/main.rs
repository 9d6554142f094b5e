//! A test image: what it does is chosen by the kernel command line.
//!
//! - `ok` (or nothing): kernel self-checks (heap, clock, sleeping, tasks,
//!   scheduling order), then `selftest: ok` and status 0;
//! - `panic`: panics on purpose (status 101, file and line reported);
//! - `pagefault`: writes to an unmapped address (status 102, #PF report);
//! - `overflow`: recurses until the kernel stack overflows into its guard
//!   page (status 102, a double-fault report that says so);
//! - `oom`: allocates until the heap is exhausted (status 101, "out of memory");
//! - `devices`: lists the virtio devices found;
//! - `sleep=MS`: sleeps MS milliseconds (an idle image: the CPU halts);
//! - `exit=N`: returns N from main.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

use alloc::vec::Vec;
use unikernel::cmdline::{flags, setting};
use unikernel::println;
use unikernel::task::{self, Builder};
use unikernel::time::Duration;

unikernel::image!(scheduler: unikernel::task::Priority, main: main);

/// An address no image maps: 64 GiB.
const UNMAPPED: u64 = 0x10_0000_0000;

async fn main() -> i32 {
    let cmdline = unikernel::cmdline();
    if let Some(ms) = setting(cmdline, "sleep") {
        let ms = ms.parse().unwrap_or(1000);
        task::sleep(Duration::from_millis(ms)).await;
        println!("selftest: slept {ms} ms");
        return 0;
    }
    if let Some(status) = setting(cmdline, "exit") {
        return status.parse().unwrap_or_else(|_| {
            println!("selftest: bad exit={status}");
            2
        });
    }
    match flags(cmdline).next().unwrap_or("ok") {
        "panic" => panicking_caller(cmdline.len()),
        "pagefault" => {
            println!("selftest: writing to {UNMAPPED:#x}");
            unikernel::fault_injection::write_to(UNMAPPED);
            println!("selftest: the write did not fault");
            1
        }
        "overflow" => {
            println!("selftest: recursing until the stack overflows");
            i32::from(recurse(0, &mut [0; 64]) == 0)
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(Vec::with_capacity(1 << 20));
                println!("selftest: holding {} MiB", hoard.len());
            }
        }
        "ok" => checks().await,
        #[cfg(target_os = "none")]
        "devices" => {
            for device in unikernel::virtio::discover() {
                println!(
                    "selftest: virtio {:?} on {} at {:#x} GSI {}",
                    device.kind,
                    device.transport_name(),
                    device.address,
                    device.gsi
                );
            }
            0
        }
        other => {
            println!("selftest: unknown mode {other:?}");
            2
        }
    }
}

/// Calls [`panicking_leaf`]: the backtrace test expects both frames.
#[inline(never)]
fn panicking_caller(seed: usize) -> i32 {
    let status = panicking_leaf(seed);
    // Work after the call keeps it from becoming a tail call.
    core::hint::black_box(status) + 1
}

/// Panics on purpose (the `panic` mode).
#[inline(never)]
fn panicking_leaf(seed: usize) -> i32 {
    if core::hint::black_box(seed) != usize::MAX {
        panic!("selftest: deliberate panic");
    }
    0
}

/// Uses stack without bound (the optimiser cannot turn it into a loop:
/// each frame's buffer is observed after the recursive call).
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, buffer: &mut [u64; 64]) -> u64 {
    let mut local = [depth; 64];
    let below = recurse(depth + 1, &mut local);
    buffer[0] = buffer[0].wrapping_add(below);
    core::hint::black_box(&local)[(depth % 64) as usize] ^ below
}

fn check(ok: bool, what: &str) -> bool {
    println!("selftest: {} {what}", if ok { "pass" } else { "FAIL" });
    ok
}

async fn checks() -> i32 {
    let mut ok = true;

    let data: Vec<u64> = (0..100_000).collect();
    ok &= check(
        data.iter().sum::<u64>() == 4_999_950_000,
        "heap: 800 KB vector",
    );

    let start = task::current_time();
    task::sleep(Duration::from_millis(20)).await;
    let slept = task::current_time().saturating_duration_since(start);
    ok &= check(
        slept >= Duration::from_millis(20),
        "sleep: woke no earlier than asked",
    );
    ok &= check(
        slept < Duration::from_secs(2),
        "sleep: woke within 2 s (a loaded TCG host can stall the VM)",
    );
    println!("selftest: slept {} us for 20000 us", slept.as_micros());

    // Priority scheduling (this image's policy): ready tasks run highest first.
    let order = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
    let handles: Vec<_> = [1u8, 9, 5]
        .into_iter()
        .map(|p| {
            let order = order.clone();
            Builder::new()
                .priority(p)
                .spawn(async move { order.borrow_mut().push(p) })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
    ok &= check(*order.borrow() == [9, 5, 1], "scheduler: priority order");

    // Concurrent sleepers finish in deadline order. The deadlines share one
    // base instant, so a host that stalls the VM between spawns (TCG under
    // load) cannot reorder them.
    let woke = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
    let base = task::current_time();
    let sleepers: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let woke = woke.clone();
            let deadline = base.saturating_add(Duration::from_millis(ms));
            task::spawn(async move {
                task::sleep_until(deadline).await;
                woke.borrow_mut().push(ms);
            })
        })
        .collect();
    for sleeper in sleepers {
        sleeper.await;
    }
    ok &= check(*woke.borrow() == [10, 20, 30], "timers: deadline order");

    if ok {
        println!("selftest: ok");
        0
    } else {
        println!("selftest: failed");
        1
    }
}
