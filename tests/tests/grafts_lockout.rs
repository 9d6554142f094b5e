//! The operator can never be locked out of a running `http` image (QEMU,
//! TCG, user networking): a graft on `net.rx` that drops or answers every
//! frame cuts the web service but not the control channel, whose frames
//! reach the stack before `net.rx` runs; a confirmed load that nobody
//! confirms is undone by the image itself and logged; an idle flood of
//! control connections is bounded and timed out while HTTP keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tests::Qemu;
use tests::grafts::{Control, get_ok, refusal, sealed, wasm};
use tests::guest::Guest;

const READY: &str = "http: serving on";
const CONTROL: u16 = 7070;

/// Drops every frame it sees.
const DROP_ALL: &str =
    r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 1)))"#;
/// Answers every frame with itself (bounced back to the sender).
const ANSWER_ALL: &str =
    r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 2)))"#;

fn server(append: &str) -> Guest {
    let mut qemu = Qemu::new(tests::image("http"));
    qemu.append = append.into();
    Guest::start_ports(qemu, &[80, CONTROL], READY)
}

/// A new control session (a new TCP connection: handshake and all).
fn control(guest: &Guest) -> Control {
    Control::connect(guest, guest.addr_of(CONTROL))
}

#[test]
fn a_graft_that_drops_or_answers_every_frame_cannot_cut_the_control_channel() {
    let guest = server("");
    let web = guest.addr_of(80);
    assert!(get_ok(web, Duration::from_secs(30)), "{}", guest.console());
    for (name, wat) in [("drop-all", DROP_ALL), ("answer-all", ANSWER_ALL)] {
        let id = control(&guest).load_ok("net.rx", &sealed("net.rx", "context", &wasm(wat)));
        assert!(
            !get_ok(web, Duration::from_secs(3)),
            "{name}: the web service still answers, so the graft is not in the path"
        );
        // Fresh sessions: each needs its handshake to get through.
        let listing = control(&guest).list();
        let grafts = listing["grafts"].as_array().unwrap();
        assert_eq!(grafts.len(), 1, "{name}: {listing}");
        assert!(
            grafts[0]["calls"].as_u64().unwrap() > 0,
            "{name}: {listing}"
        );
        let reply = control(&guest).unload("net.rx", id);
        assert!(reply.is_ok(), "{name}: {reply:?}");
        assert!(
            get_ok(web, Duration::from_secs(30)),
            "{name}: unloading did not bring the web service back\n{}",
            guest.console()
        );
        assert_eq!(control(&guest).installed(), 0);
    }
}

#[test]
fn an_unconfirmed_load_is_undone_by_the_image_and_logged() {
    let guest = server("");
    let web = guest.addr_of(80);
    assert!(get_ok(web, Duration::from_secs(30)), "{}", guest.console());
    let envelope = sealed("net.rx", "context", &wasm(DROP_ALL));
    let mut session = control(&guest);
    let reply = session.load_confirmed("net.rx", &envelope, 3000);
    let reply = session.ok(reply);
    let id = reply["graft"].as_u64().unwrap() as u32;
    assert_eq!(reply["confirm_ms"].as_u64(), Some(3000), "{reply}");
    assert!(
        !get_ok(web, Duration::from_secs(2)),
        "the graft is not in the path"
    );
    guest.wait_for("the image to unload the unconfirmed graft", || {
        control(&guest).installed() == 0
    });
    let log = control(&guest).log();
    let faults = log["faults"].as_array().unwrap();
    assert!(
        faults
            .iter()
            .any(|f| f["graft"].as_u64() == Some(u64::from(id))
                && f["cause"] == "unconfirmed"
                && f["action"] == "unloaded"
                && f["point"] == "net.rx"),
        "{log}"
    );
    assert!(get_ok(web, Duration::from_secs(30)), "{}", guest.console());
    // Too late now.
    let late = control(&guest).confirm(id);
    assert!(
        refusal(&late).contains("not waiting for confirmation"),
        "{late:?}"
    );
}

#[test]
fn a_confirmed_load_stays() {
    let guest = server("");
    let filter = sealed("net.rx", "context", &wasm(ANSWER_ALL));
    let mut session = control(&guest);
    let reply = session.load_confirmed("net.rx", &filter, 2000);
    let id = session.ok(reply)["graft"].as_u64().unwrap() as u32;
    // The graft answers every frame, the confirmation still gets through.
    let confirmed = control(&guest).confirm(id);
    let confirmed = session.ok(confirmed);
    assert_eq!(confirmed["confirmed"], true, "{confirmed}");
    std::thread::sleep(Duration::from_secs(5));
    let listing = control(&guest).list();
    assert_eq!(
        listing["grafts"][0]["id"].as_u64(),
        Some(u64::from(id)),
        "{listing}"
    );
    let again = control(&guest).confirm(id);
    assert!(refusal(&again).contains("not waiting"), "{again:?}");
    let log = control(&guest).log();
    assert!(
        !log["faults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["cause"] == "unconfirmed"),
        "{log}"
    );
}

/// The `http` image's count of sockets in its stack, from `/stats`.
fn sockets(web: SocketAddr) -> u64 {
    let mut stream = TcpStream::connect_timeout(&web, Duration::from_secs(30)).unwrap();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let stats: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
    stats["net"]["sockets"].as_u64().unwrap()
}

#[test]
fn an_idle_flood_of_control_connections_is_bounded_and_timed_out() {
    let guest = server("control-sessions=3 control-idle=4");
    let web = guest.addr_of(80);
    assert!(get_ok(web, Duration::from_secs(30)), "{}", guest.console());
    let before = sockets(web);
    let opened = Instant::now();
    // Each connection says nothing and waits for the image to close it.
    let control_addr = guest.addr_of(CONTROL);
    let opener = std::thread::spawn(move || {
        (0..40)
            .map(|_| {
                let mut stream = TcpStream::connect(control_addr).expect("host side");
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(90)));
                    let mut text = Vec::new();
                    let _ = stream.read_to_end(&mut text);
                    (String::from_utf8_lossy(&text).into_owned(), start.elapsed())
                })
            })
            .collect::<Vec<_>>()
    });
    // The web keeps serving while the flood comes in and holds on, and
    // the flood holds only a few sockets.
    let mut most = 0;
    let mut samples = 0;
    while !opener.is_finished() || opened.elapsed() < Duration::from_secs(6) {
        assert!(get_ok(web, Duration::from_secs(30)), "{}", guest.console());
        most = most.max(sockets(web));
        samples += 1;
    }
    let flood = opener.join().unwrap();
    let mut refused = 0;
    let mut admitted = 0;
    for thread in flood {
        let (text, open_for) = thread.join().unwrap();
        if text.starts_with("err too many control sessions (at most 3)") {
            refused += 1;
        } else {
            assert_eq!(text, "", "an idle session got a reply");
            // Closed by the idle time-out (4 s on the guest's clock, which
            // TCG lets drift by some per cent), not before it.
            assert!(
                open_for >= Duration::from_secs(3) && open_for < Duration::from_secs(20),
                "an idle session was closed after {open_for:?}"
            );
            admitted += 1;
        }
    }
    eprintln!(
        "flood: {admitted} admitted, {refused} refused, at most {most} sockets in {samples} samples (before: {before})"
    );
    assert!(
        admitted >= 3 && refused >= 20,
        "{admitted} admitted, {refused} refused"
    );
    // The flood held at most the three sessions plus the refused
    // connections' own sockets while they closed (each is answered and
    // closed at once, but its socket lives until the close handshake
    // ends, so how many overlap depends on the host's timing: 42 to 54
    // with 35 before were seen). Admitting every connection would break it.
    assert!(
        most <= before + 3 + refused,
        "the flood holds {most} sockets (before: {before}, {refused} refused)\n{}",
        guest.console()
    );
    // And the operator gets in again.
    assert_eq!(control(&guest).installed(), 0);
    assert!(get_ok(web, Duration::from_secs(30)));
}
