//! Rio's promise, end to end: `kv` acknowledges 1,000 SETs (pipelined
//! through `redis-cli --pipe`), the kernel crashes on purpose, the VM warm
//! reboots, and every acknowledged value is there — 20 times over, for a
//! kernel panic and for a wild write into the block cache.

mod kv;

use kv::{Kv, fault_image, fresh_disk};

const KEYS: usize = 1000;
const CYCLES: usize = 20;

fn crash_cycles(name: &str, fault: &str) {
    let disk = fresh_disk(name);
    let mut kv = Kv::boot(&fault_image(), &disk, "");
    for cycle in 0..CYCLES {
        let (replies, errors) = kv.set_keys(KEYS, |i| format!("cycle{cycle}-value{i}"));
        assert_eq!(
            (replies, errors),
            (KEYS, 0),
            "cycle {cycle}: not all acknowledged"
        );
        kv.crash(fault, cycle + 2);
        let expected: Vec<String> = (0..KEYS)
            .map(|i| format!("cycle{cycle}-value{i}"))
            .collect();
        let got = kv.get_keys(KEYS);
        let lost = expected.iter().zip(&got).filter(|(e, g)| e != g).count();
        assert!(
            got.len() == KEYS && lost == 0,
            "cycle {cycle}: {lost} of {KEYS} acknowledged values lost after DEBUG {fault} \
             (got {} lines)\n{}",
            got.len(),
            kv.console()
        );
    }
    let console = kv.console();
    assert!(
        console.contains(&format!("warm reboot #{CYCLES}:")),
        "{console}"
    );
    // Every boot's recovery reports its lost blocks: none, every time.
    assert_eq!(
        console.matches(", 0 lost)").count(),
        CYCLES + 1,
        "{console}"
    );
    assert_eq!(kv.cli(&["DBSIZE"]).trim(), KEYS.to_string());
}

#[test]
fn twenty_kernel_panics_lose_no_acknowledged_write() {
    crash_cycles("crash-panic", "PANIC");
}

#[test]
fn twenty_wild_writes_into_the_cache_fault_and_lose_nothing() {
    crash_cycles("crash-wild", "WILDWRITE");
}

#[test]
fn a_wild_write_is_stopped_by_the_page_protection() {
    let disk = fresh_disk("crash-wild-report");
    let mut kv = Kv::boot(&fault_image(), &disk, "");
    assert_eq!(kv.cli(&["SET", "k", "v"]).trim(), "OK");
    kv.crash("WILDWRITE", 2);
    let console = kv.console();
    let target = console
        .lines()
        .find_map(|l| l.strip_prefix("kv: wild write to "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no wild write announced:\n{console}"))
        .to_string();
    // A write fault on a present page (error code 0x3: present + write),
    // at exactly the address aimed at inside the cache.
    assert!(console.contains("#PF page fault (vector 14)"), "{console}");
    assert!(console.contains("error code 0x3"), "{console}");
    let address = u64::from_str_radix(target.trim_start_matches("0x"), 16).unwrap();
    assert!(
        console.contains(&format!("faulting address (CR2): {address:#018x}")),
        "{console}"
    );
    assert!(console.contains("rio: warm reboot #1"), "{console}");
    assert_eq!(kv.cli(&["GET", "k"]).trim(), "v");
}
