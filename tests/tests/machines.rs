//! One image, two machines: the network and disk paths on `-M q35`, where
//! SeaBIOS boots the PVH ELF and the devices are modern virtio-pci on bus
//! 0, beside the microvm (virtio-mmio) runs of every other test. Also the
//! kernel's own BAR assignment (`pci=assign`), used where firmware left
//! BARs unassigned.

mod kv;

use std::process::Command;

use tests::guest::Guest;
use tests::{Outcome, Qemu, image, run};
use xtask::qemu::Machine;

const HELLO: &str = include_str!("../../images/http/static/hello.txt");

fn on_q35(image_name: &str, append: &str) -> Qemu {
    let mut qemu = Qemu::new(image(image_name));
    qemu.machine = Machine::Q35;
    qemu.append = append.into();
    qemu
}

fn curl(guest: &Guest, paths: &[&str]) -> String {
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("http://{}{p}", guest.addr))
        .collect();
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(&urls)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        guest.console()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn http_serves_curl_over_virtio_pci_on_q35() {
    let guest = Guest::start_qemu(on_q35("http", "loglevel=debug"), 80, "http: serving on");
    assert!(
        guest.console().contains("virtio: Network on pci"),
        "{}",
        guest.console()
    );
    // Two requests on one connection, then a third: interrupts keep coming.
    let body = curl(&guest, &["/hello.txt", "/hello.txt"]);
    assert_eq!(body, format!("{HELLO}{HELLO}"));
    assert_eq!(curl(&guest, &["/hello.txt"]), HELLO);
}

#[test]
fn bars_the_kernel_assigns_itself_work() {
    let guest = Guest::start_qemu(
        on_q35("http", "loglevel=debug pci=assign"),
        80,
        "http: serving on",
    );
    let console = guest.console();
    let assigned = console
        .lines()
        .filter(|l| l.contains("pci:") && l.contains("assigned"))
        .count();
    assert!(assigned >= 1, "no BAR assigned by the kernel:\n{console}");
    // The window starts at 0xc0000000: the device now lives there.
    assert!(
        console.contains("virtio: Network on pci at 0xc00"),
        "{console}"
    );
    assert_eq!(curl(&guest, &["/hello.txt"]), HELLO);
}

#[test]
fn kv_keeps_its_keys_on_a_virtio_pci_disk_on_q35() {
    let disk = kv::fresh_disk("q35");
    let boot = || {
        let mut qemu = on_q35("kv", "loglevel=debug");
        qemu.disk = Some(disk.clone());
        kv::Kv {
            guest: Guest::start_qemu(qemu, 6379, kv::READY),
        }
    };
    let mut kv = boot();
    assert!(
        kv.console().contains("virtio: Block on pci"),
        "{}",
        kv.console()
    );
    assert_eq!(kv.set_keys(200, |i| format!("value-{i}")), (200, 0));
    let _ = kv.cli(&["SHUTDOWN"]);
    kv.wait_exit();
    drop(kv);
    // A new VM on the same disk: only what reached the disk is there.
    let kv = boot();
    let values = kv.get_keys(200);
    let expected: Vec<String> = (0..200).map(|i| format!("value-{i}")).collect();
    assert_eq!(values, expected, "{}", kv.console());
}

#[test]
fn hello_exits_with_its_status_on_q35() {
    let done = run(&on_q35("hello", ""));
    assert_eq!(done.outcome, Outcome::Exited(0), "{}", done.output);
    done.expect("Hello from Rootstock!");
}
