//! A test image for the kernel's storage mechanisms; the command line picks:
//!
//! - `count`: increments a counter kept in the Rio region and prints it with
//!   the boot and warm-reboot counts (`riotest: counter N boots B warm W`);
//! - `crash=N`: like `count`, then panics until N warm reboots have happened,
//!   then exits 0 — the counter must have survived every crash;
//! - `wild`: writes into the Rio region without going through its write
//!   routine: must fault (and so warm-reboot); on the next boot prints the
//!   counter unchanged and exits 0;
//! - `disk`: writes, reads back and compares blocks on the virtio-blk disk.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

unikernel::image!(rio: 2 << 20, main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    use unikernel::println;
    use unikernel::rio;

    let Some(region) = rio::region() else {
        println!("riotest: no Rio region");
        return 1;
    };
    let counter = u64::from_le_bytes(region.bytes()[..8].try_into().unwrap_or([0; 8]));
    let cmdline = unikernel::cmdline();
    println!(
        "riotest: counter {counter} boots {} warm {}",
        rio::boot_count(),
        rio::warm_reboots()
    );
    if unikernel::cmdline::flag(cmdline, "wild") {
        if rio::warm_reboots() > 0 {
            return 0;
        }
        println!("riotest: wild write to {:#x}", region.address());
        unikernel::fault_injection::write_to(region.address());
        println!("riotest: the wild write did not fault");
        return 1;
    }
    if unikernel::cmdline::flag(cmdline, "disk") {
        return disk().await;
    }
    region.write(0, &(counter + 1).to_le_bytes());
    if let Some(limit) =
        unikernel::cmdline::setting(cmdline, "crash").and_then(|n| n.parse::<u64>().ok())
        && rio::warm_reboots() < limit
    {
        panic!("riotest: deliberate crash after counter {}", counter + 1);
    }
    0
}

#[cfg(target_os = "none")]
async fn disk() -> i32 {
    use unikernel::block::{BLOCK_SIZE, BlockDevice};
    use unikernel::println;

    let Some(disk) = BlockDevice::open() else {
        println!("riotest: no disk");
        return 1;
    };
    let mut pattern = [0u8; 8 * BLOCK_SIZE];
    for (i, byte) in pattern.iter_mut().enumerate() {
        *byte = (i * 7 + 3) as u8;
    }
    let last = disk.capacity_blocks() - 8;
    for block in [0, 8, last] {
        if disk.write(block, &pattern).await.is_err() {
            println!("riotest: write {block} failed");
            return 1;
        }
    }
    let mut back = [0u8; 8 * BLOCK_SIZE];
    for block in [0, 8, last] {
        if disk.read(block, &mut back).await.is_err() || back != pattern {
            println!("riotest: read {block} differs");
            return 1;
        }
    }
    let refused = disk.read(last + 1, &mut back).await.is_err();
    println!(
        "riotest: disk ok ({} blocks), out-of-range refused: {refused}",
        disk.capacity_blocks()
    );
    if refused { 0 } else { 1 }
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
