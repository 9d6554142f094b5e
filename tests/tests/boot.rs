//! The kernel's own behaviour, observed from outside: boot, exit status,
//! panics and CPU exceptions reported with their facts, timers, warm reboot.

use tests::{Outcome, Qemu, boot, image, run};

#[test]
fn hello_prints_its_line_and_exits_zero() {
    let run = boot("hello", "");
    run.expect("Hello from Rootstock!");
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    // Kernel lines are prefixed; the application's are not.
    let kernel_lines: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("[rootstock"))
        .collect();
    // Nothing before main at the default level (every console byte is a VM
    // exit under KVM): the kernel's first line comes after it.
    assert!(
        kernel_lines.iter().any(|l| l.contains("boot: entry->main")),
        "{}",
        run.output
    );
    assert!(
        run.output.lines().any(|l| l == "Hello from Rootstock!"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("exit: main returned 0"),
        "{}",
        run.output
    );
}

#[test]
fn a_status_from_main_is_the_exit_status() {
    assert_eq!(boot("selftest", "exit=7").outcome, Outcome::Exited(7));
}

#[test]
fn panic_reports_file_and_line_and_exits_101() {
    let run = boot("selftest", "panic");
    assert_eq!(run.outcome, Outcome::Panic, "{}", run.output);
    let line = run
        .output
        .lines()
        .find(|l| l.contains("kernel panic at"))
        .unwrap_or_else(|| panic!("no panic line:\n{}", run.output));
    let source =
        std::fs::read_to_string(xtask::root().join("tests/images/selftest/src/main.rs")).unwrap();
    let expected_line = source
        .lines()
        .position(|l| l.contains("panic!(\"selftest: deliberate panic\")"))
        .expect("the deliberate panic in the source")
        + 1;
    assert!(
        line.contains(&format!(
            "tests/images/selftest/src/main.rs:{expected_line}:"
        )),
        "panic line {line:?} does not name main.rs:{expected_line}"
    );
    assert!(line.contains("selftest: deliberate panic"));
}

#[test]
fn page_fault_reports_vector_error_code_and_address_and_exits_102() {
    let run = boot("selftest", "pagefault");
    assert_eq!(run.outcome, Outcome::Exception, "{}", run.output);
    let address = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix("selftest: writing to "))
        .unwrap_or_else(|| panic!("the image did not say where it writes:\n{}", run.output))
        .trim()
        .to_string();
    let address = u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap();
    run.expect("#PF page fault (vector 14)");
    // A write to a page that is not present: error code 0x2.
    run.expect("error code 0x2");
    run.expect(&format!(
        "faulting address (CR2): {address:#018x} (write, page not present, kernel)"
    ));
    assert!(
        run.output.contains("rip 0x")
            && run.output.contains("rsp 0x")
            && run.output.contains("r15 0x")
    );
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported() {
    let run = boot("selftest", "overflow");
    assert_eq!(run.outcome, Outcome::Exception, "{}", run.output);
    run.expect("#DF double fault (vector 8)");
    run.expect("guard page: kernel stack overflow");
}

#[test]
fn out_of_memory_is_a_clear_panic() {
    let run = boot("selftest", "oom");
    assert_eq!(run.outcome, Outcome::Panic, "{}", run.output);
    run.expect("out of memory: cannot allocate");
}

#[test]
fn kernel_self_checks_pass() {
    let run = boot("selftest", "ok");
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    run.expect("selftest: ok");
    assert!(!run.output.contains("FAIL"), "{}", run.output);
}

#[test]
fn the_rio_region_survives_crashes_by_warm_reboot() {
    let mut qemu = Qemu::new(image("riotest"));
    qemu.no_reboot = false;
    qemu.append = "crash=3".into();
    let run = run(&qemu);
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    // The counter in the region went 0, 1, 2, 3 across three crashes.
    for (counter, warm) in [(0, 0), (1, 1), (2, 2), (3, 3)] {
        run.expect(&format!(
            "riotest: counter {counter} boots {} warm {warm}",
            warm + 1
        ));
    }
}

#[test]
fn a_wild_write_into_the_rio_region_faults_and_changes_nothing() {
    let mut qemu = Qemu::new(image("riotest"));
    qemu.no_reboot = false;
    qemu.append = "wild".into();
    let run = run(&qemu);
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    run.expect("(write, protection violation, kernel)");
    run.expect("riotest: counter 0 boots 2 warm 1");
    assert!(!run.output.contains("did not fault"));
}

#[test]
fn virtio_blk_round_trips_blocks() {
    let disk = std::env::temp_dir().join(format!("rootstock-itest-{}.img", std::process::id()));
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut qemu = Qemu::new(image("riotest"));
    qemu.append = "disk".into();
    qemu.disk = Some(disk.clone());
    let run = run(&qemu);
    let written = std::fs::read(&disk).unwrap();
    let _ = std::fs::remove_file(&disk);
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    run.expect("riotest: disk ok (2048 blocks), out-of-range refused: true");
    // What the guest wrote is on the host's file.
    assert_eq!(&written[..4], &[3, 10, 17, 24]);
}
