//! Grafts in a running `http` image (QEMU, TCG, user networking), loaded
//! through its control port with signed envelopes: the packet filter
//! drops its port and unloading restores it; replacing it under `wrk`
//! fails no request; every hostile module is aborted, logged with its
//! cause and unloaded while a client keeps being served, leaving the
//! point's state as it was; every bad envelope or request is refused with
//! a clear message and changes nothing.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tests::Qemu;
use tests::grafts::{Control, HOSTILE, REFUSED, get_ok, refusal, sample, sealed, status, wasm};
use tests::guest::Guest;

const READY: &str = "http: serving on";
const CONTROL: u16 = 7070;
const FILTER_GRANT: &str = "context,counters";

/// `http` serving on 80 and 8081 (the packet filter's blocked port).
fn server() -> Guest {
    let mut qemu = Qemu::new(tests::image("http"));
    qemu.append = "port=80,8081".into();
    Guest::start_ports(qemu, &[80, 8081, CONTROL], READY)
}

fn control(guest: &Guest) -> Control {
    Control::connect(guest, guest.addr_of(CONTROL))
}

/// Keeps requesting from `addr` until stopped; counts successes and failures.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if get_ok(addr, Duration::from_secs(20)) {
                    o.fetch_add(1, Ordering::Relaxed);
                } else {
                    f.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Traffic {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops and returns (succeeded, failed).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn the_packet_filter_graft_drops_its_port_and_unloading_restores_it() {
    let guest = server();
    let (web, blocked) = (guest.addr_of(80), guest.addr_of(8081));
    assert!(get_ok(web, Duration::from_secs(30)) && get_ok(blocked, Duration::from_secs(30)));
    let mut control = control(&guest);
    let filter = sealed("net.rx", FILTER_GRANT, &sample("packet-filter"));
    let id = control.load_ok("net.rx", &filter);
    assert!(
        !get_ok(blocked, Duration::from_secs(3)),
        "8081 is still served"
    );
    assert!(
        get_ok(web, Duration::from_secs(30)),
        "port 80 must still be served"
    );
    let stats = control.stats();
    let dropped = stats["counters"][0].as_i64().unwrap();
    assert!(dropped >= 1, "the filter counts what it drops: {stats}");
    assert!(
        stats["grafts"][0]["commits"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    let unloaded = control.unload("net.rx", id);
    assert_eq!(control.ok(unloaded)["graft"].as_u64(), Some(u64::from(id)));
    assert_eq!(control.installed(), 0);
    assert!(
        get_ok(blocked, Duration::from_secs(30)),
        "8081 is served again"
    );
}

#[test]
fn replacing_the_filter_under_wrk_fails_no_request() {
    let guest = server();
    let mut control = control(&guest);
    let mut id = control.load_ok(
        "net.rx",
        &sealed("net.rx", FILTER_GRANT, &sample("packet-filter")),
    );
    let url = format!("http://{}/hello.txt", guest.addr_of(80));
    let wrk = std::thread::spawn(move || {
        Command::new("wrk")
            .args(["-t1", "-c4", "-d8s", "--timeout", "5s", &url])
            .output()
            .expect("wrk (apt-get install wrk)")
    });
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        let envelope = sealed("net.rx", FILTER_GRANT, &sample("packet-filter"));
        let reply = control.replace("net.rx", id, &envelope);
        let reply = control.ok(reply);
        assert_eq!(reply["replaced"].as_u64(), Some(u64::from(id)), "{reply}");
        id = reply["graft"].as_u64().unwrap() as u32;
    }
    let output = wrk.join().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed:\n{report}");
    let requests: u64 = report
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.to_string())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
    assert!(requests > 0, "{report}");
    assert!(
        !report.contains("Socket errors"),
        "{report}\n{}",
        guest.console()
    );
    assert!(!report.contains("Non-2xx"), "{report}");
    let listing = control.list();
    assert_eq!(listing["grafts"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["grafts"][0]["id"].as_u64(), Some(u64::from(id)));
}

#[test]
fn every_hostile_graft_is_contained_while_a_client_is_served() {
    let guest = server();
    let mut control = control(&guest);
    let traffic = Traffic::start(guest.addr_of(80));
    for hostile in HOSTILE {
        let before = control.stats();
        let id = control.load_ok("net.rx", &hostile.envelope("net.rx").unwrap());
        guest.wait_for(&format!("{} to be unloaded", hostile.name), || {
            control.installed() == 0
        });
        let log = control.log();
        let faults: Vec<_> = log["faults"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["graft"].as_u64() == Some(u64::from(id)))
            .collect();
        assert!(
            !faults.is_empty(),
            "{}: no fault logged: {log}",
            hostile.name
        );
        for fault in &faults {
            assert_eq!(fault["cause"], hostile.cause, "{}: {log}", hostile.name);
        }
        assert_eq!(
            faults.last().unwrap()["action"],
            "unloaded",
            "{}",
            hostile.name
        );
        let after = control.stats();
        assert_eq!(
            after["counters"], before["counters"],
            "{}: counters changed",
            hostile.name
        );
        assert_eq!(
            after["locks_held"], 0,
            "{}: a lock outlived the graft",
            hostile.name
        );
    }
    let (ok, failed) = traffic.finish();
    assert!(ok > 0, "the client was never served\n{}", guest.console());
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed\n{}",
        ok + failed,
        guest.console()
    );
}

#[test]
fn bad_envelopes_and_requests_are_refused_and_the_image_keeps_serving() {
    let guest = server();
    let mut control = control(&guest);
    let filter = sample("packet-filter");
    let good = sealed("net.rx", FILTER_GRANT, &filter);
    let mut tampered = good.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x40;
    let stranger = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
    let wrong_key =
        xtask::keys::seal_with(&stranger.sk, u64::MAX / 2, "net.rx", FILTER_GRANT, &filter)
            .unwrap();
    let [forbidden, foreign, signature] = [0, 1, 2].map(|i| {
        let refused = &REFUSED[i];
        sealed("net.rx", refused.grant, &refused.module().unwrap())
    });
    let other_point = sealed("http.request", FILTER_GRANT, &filter);
    let cases: [(&str, &[u8], &str); 8] = [
        ("unsigned module", &filter, "malformed envelope"),
        ("tampered", &tampered, "bad signature"),
        ("wrong key", &wrong_key, "does not trust"),
        (REFUSED[0].name, &forbidden, REFUSED[0].reason),
        (REFUSED[1].name, &foreign, REFUSED[1].reason),
        (REFUSED[2].name, &signature, REFUSED[2].reason),
        (
            "signed for another point",
            &other_point,
            "signed for graft point `http.request`",
        ),
        ("garbage", b"\x00\x01garbage\xff\xfe", "malformed envelope"),
    ];
    let before = control.list();
    for (what, envelope, reason) in cases {
        let reply = control.load("net.rx", envelope);
        let message = refusal(&reply);
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(control.list(), before, "{what} changed the image");
    }
    // Garbage lines get an error and the session goes on.
    let reply = control.raw(b"\x16\x03\x01 hello?\n");
    assert!(refusal(&reply).contains("unknown command"), "{reply:?}");
    // A replay of an accepted envelope is refused.
    let id = control.load_ok("net.rx", &good);
    control.unload("net.rx", id);
    let reply = control.load("net.rx", &good);
    assert!(refusal(&reply).contains("replayed"), "{reply:?}");
    // An oversized body cannot be skipped: refused, and the session ends.
    let reply = control.raw(b"load net.rx 99999999\n");
    assert!(refusal(&reply).contains("closing"), "{reply:?}");
    let mut fresh = tests::grafts::Control::connect(&guest, guest.addr_of(CONTROL));
    assert_eq!(fresh.list(), before);
    assert!(
        get_ok(guest.addr_of(80), Duration::from_secs(30)),
        "{}",
        guest.console()
    );
}

#[test]
fn an_http_request_graft_answers_for_the_server_and_aborts_change_nothing() {
    let guest = server();
    let mut control = control(&guest);
    // Answers 403 for targets under /private, carries on otherwise.
    let gate = wasm(
        r#"(module
          (import "rootstock" "ctx_read" (func $read (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "GET /private")
          (func (export "graft_main") (param $len i32) (result i32)
            (local $i i32)
            (if (i32.lt_s (local.get $len) (i32.const 12)) (then (return (i32.const 0))))
            (drop (call $read (i32.const 0) (i32.const 0) (i32.const 12)))
            (block $differ
              (loop $cmp
                (br_if $differ (i32.ne (i32.load8_u (local.get $i))
                                       (i32.load8_u (i32.add (local.get $i) (i32.const 64)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $cmp (i32.lt_u (local.get $i) (i32.const 12))))
              (return (i32.const 403)))
            (i32.const 0)))"#,
    );
    control.load_ok("http.request", &sealed("http.request", "context", &gate));
    let status = |path: &str| status(guest.addr_of(80), path);
    assert_eq!(status("/private/key"), "403");
    assert_eq!(status("/hello.txt"), "200");
    // A handler that answers nonsense (42 is no HTTP status) is aborted:
    // the server routes as compiled in.
    let nonsense =
        wasm(r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 42)))"#);
    control.load_ok("http.request", &sealed("http.request", "", &nonsense));
    assert_eq!(status("/hello.txt"), "200");
    let log = control.log();
    assert_eq!(log["faults"][0]["cause"], "invalid-return", "{log}");
}

#[test]
fn a_release_image_survives_a_graft_that_spins_until_its_fuel_runs_out() {
    // Optimised builds dispatch wasm differently from debug ones; a spinning
    // graft once overflowed a release image's stack. It must be aborted.
    let mut qemu = Qemu::new(tests::release_image("http"));
    qemu.append = "port=80".into();
    let guest = Guest::start_ports(qemu, &[80, CONTROL], READY);
    let mut control = control(&guest);
    let spin = sealed("net.rx", "", &sample("hostile-spin"));
    control.load_ok("net.rx", &spin);
    let traffic = Traffic::start(guest.addr_of(80));
    guest.wait_for("the spinning graft to be unloaded", || {
        control.installed() == 0
    });
    let (ok, failed) = traffic.finish();
    assert_eq!(control.log()["faults"][0]["cause"], "fuel-exhausted");
    assert!(
        ok > 0 && failed == 0,
        "{ok} served, {failed} failed\n{}",
        guest.console()
    );
}
