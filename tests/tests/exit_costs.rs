//! What the benchmarks count, held as behaviour: QEMU's trace events show
//! what would be VM exits under KVM (see xtask's `bench::exits`).
//!
//! - At the default log level an image prints nothing before `main`: the
//!   first byte on the console is the application's.
//! - virtio-net kicks follow the event-index rule once per poll, and an
//!   interrupt is acknowledged without reading the status register: a
//!   64-byte echo round trip costs one queue notification and no
//!   virtio-mmio read (it cost two and one before).

use std::time::Duration;

use tests::guest::Guest;
use tests::{Qemu, image};
use xtask::bench::exits::{Probe, before_line};

#[test]
fn hello_prints_nothing_before_main() {
    let mut qemu = Qemu::new(image("hello"));
    let probe = Probe::attach(&mut qemu, "test-hello").expect("probe");
    qemu.qmp = None;
    let status = qemu
        .command()
        .expect("QEMU command")
        .output()
        .expect("QEMU");
    let console = String::from_utf8_lossy(&status.stdout);
    assert!(console.contains("Hello from Rootstock!"), "{console}");
    let trace = probe.trace().expect("trace");
    let (before, printed) =
        before_line(&trace, "Hello from Rootstock!").expect("the line is in the trace");
    assert_eq!(printed, 0, "bytes printed before main:\n{console}");
    assert_eq!(before.ioapic, 0.0, "I/O APIC touched before main");
}

#[test]
fn an_echo_round_trip_kicks_once_and_reads_no_register() {
    let mut qemu = Qemu::new(image("echo"));
    let mut probe = Probe::attach(&mut qemu, "test-echo").expect("probe");
    let guest = Guest::start_qemu(qemu, 7, "echo: listening on");
    let rounds = 300;
    let per = xtask::bench::costs::echo(&mut probe, guest.addr, rounds)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", guest.console()));
    std::thread::sleep(Duration::from_millis(10));
    assert!(
        per.notifies <= 1.1,
        "{:.2} queue notifications per round trip (one is the transmit kick)",
        per.notifies
    );
    assert!(
        per.mmio_reads < 0.05,
        "{:.2} virtio-mmio reads per round trip",
        per.mmio_reads
    );
    assert!(
        per.device_irqs >= 0.9,
        "the round trips were interrupt-driven: {per:?}"
    );
}
