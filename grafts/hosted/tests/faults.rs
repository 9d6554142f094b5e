//! Graft code published on the host: it runs, it is never writable, and
//! each CPU fault it raises comes back from `catch` as a `Fault` (and can
//! be raised again and caught again), while a fault outside published
//! graft code still kills the process.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![allow(unsafe_code)]

use graft_hosted::{CodeRegion, catch};

/// `mov eax, 42; ret`
const FORTY_TWO: &[u8] = &[0xb8, 42, 0, 0, 0, 0xc3];
/// `ud2` (a trap site)
const UD2: &[u8] = &[0x0f, 0x0b];
/// `mov eax, [0x10]` (a null-page read)
const NULL_READ: &[u8] = &[0x8b, 0x04, 0x25, 0x10, 0, 0, 0];
/// `xor ecx, ecx; div ecx` (division by zero)
const DIVIDE_BY_ZERO: &[u8] = &[0x31, 0xc9, 0xf7, 0xf1];

/// Calls the region's first instruction as `extern "C" fn() -> i32`.
fn run(region: &CodeRegion) -> i32 {
    // SAFETY: the region holds one of the fixtures above: machine code with
    // this signature that touches nothing but registers (or faults).
    let f: extern "C" fn() -> i32 = unsafe { core::mem::transmute(region.start()) };
    f()
}

#[test]
fn published_code_runs_and_returns() {
    let region = CodeRegion::publish(FORTY_TWO).unwrap();
    let mut result = 0;
    assert_eq!(catch(&mut || result = run(&region)), Ok(()));
    assert_eq!(result, 42);
}

#[test]
fn every_kind_of_fault_in_graft_code_comes_back_as_a_fault() {
    for (code, signal, offset) in [
        (UD2, libc::SIGILL, 0),
        (NULL_READ, libc::SIGSEGV, 0),
        (DIVIDE_BY_ZERO, libc::SIGFPE, 2),
    ] {
        let region = CodeRegion::publish(code).unwrap();
        let fault = catch(&mut || {
            run(&region);
            unreachable!("the fixture faults");
        })
        .unwrap_err();
        assert_eq!(fault.signal, signal, "{fault:?}");
        assert_eq!(fault.rip, (region.start() + offset) as u64, "{fault:?}");
        if signal == libc::SIGSEGV {
            assert_eq!(fault.address, 0x10);
        }
    }
}

#[test]
fn a_thousand_faults_in_a_row_are_each_caught() {
    // The signal mask is restored each time: a blocked SIGILL would kill
    // the process on the second fault.
    let region = CodeRegion::publish(UD2).unwrap();
    for _ in 0..1000 {
        assert!(
            catch(&mut || {
                let _ = run(&region);
            })
            .is_err()
        );
    }
    let fine = CodeRegion::publish(FORTY_TWO).unwrap();
    assert_eq!(catch(&mut || assert_eq!(run(&fine), 42)), Ok(()));
}

#[test]
fn the_innermost_catch_takes_the_fault_and_the_outer_one_stays_armed() {
    let trap = CodeRegion::publish(UD2).unwrap();
    let mut inner = None;
    let outer = catch(&mut || {
        inner = Some(catch(&mut || {
            let _ = run(&trap);
        }));
        // Still armed: this fault goes to the outer catch.
        run(&trap);
    });
    assert!(matches!(inner, Some(Err(f)) if f.signal == libc::SIGILL));
    assert!(matches!(outer, Err(f) if f.signal == libc::SIGILL));
}

#[test]
fn threads_catch_their_own_faults() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let region = CodeRegion::publish(UD2).unwrap();
                (0..200)
                    .filter(|_| {
                        catch(&mut || {
                            let _ = run(&region);
                        })
                        .is_err()
                    })
                    .count()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
}

#[test]
fn published_code_is_not_writable() {
    let region = CodeRegion::publish(FORTY_TWO).unwrap();
    let child = std::env::var("GRAFT_HOSTED_CHILD").ok();
    if child.as_deref() == Some("write") {
        // SAFETY: deliberately wrong: the page is read+execute, so this
        // write must kill the process (it is not graft code faulting).
        unsafe { core::ptr::write_volatile(region.start() as *mut u8, 0x90) };
        std::process::exit(0);
    }
    assert_child_dies_of("published_code_is_not_writable", "write", libc::SIGSEGV);
}

#[test]
fn a_fault_outside_graft_code_is_not_recovered() {
    if std::env::var("GRAFT_HOSTED_CHILD").ok().as_deref() == Some("host-fault") {
        // Published code exists (the handler is installed), but the fault
        // below is the host's own: it must still kill the process.
        let _region = CodeRegion::publish(FORTY_TWO).unwrap();
        let _ = catch(&mut || {
            // SAFETY: deliberately wrong: a host-code fault inside catch.
            unsafe { core::arch::asm!("ud2") };
        });
        std::process::exit(0);
    }
    assert_child_dies_of(
        "a_fault_outside_graft_code_is_not_recovered",
        "host-fault",
        libc::SIGILL,
    );
}

/// Runs this test binary's test `name` alone with `GRAFT_HOSTED_CHILD=what`
/// and checks that it was killed by `signal`.
fn assert_child_dies_of(name: &str, what: &str, signal: i32) {
    use std::os::unix::process::ExitStatusExt;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env("GRAFT_HOSTED_CHILD", what)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(signal), "{status:?}");
}
