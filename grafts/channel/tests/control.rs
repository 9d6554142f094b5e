//! The management channel driving the graft host, on the host: signed
//! loading through the control protocol, every refusal changing nothing,
//! and the receive-path and scheduler adapters calling grafts and falling
//! back to the compiled-in policy.

use std::rc::Rc;

use ed25519_compact::{KeyPair, Seed};
use graft_channel::{Next, Session};
use graft_control::envelope::seal;
use graft_control::{Response, TrustedKeys};
use graft_host::points::{NET_RX, SCHED_PICK};
use graft_host::rx::GraftRx;
use graft_host::{GraftHost, Shared};
use graft_runtime::testing::Ticks;
use net::{RxPolicy, Verdict};

fn key(seed: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([seed; 32]))
}

fn host() -> Shared {
    GraftHost::new(Rc::new(Ticks::default()), TrustedKeys::new([*key(1).pk])).share()
}

/// `net.rx` handler: drops TCP to port 8081 and counts drops in counter 0.
const FILTER: &str = r#"(module
  (import "rootstock" "ctx_read" (func $read (param i32 i32 i32) (result i32)))
  (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "graft_main") (param $len i32) (result i32)
    (if (i32.lt_s (local.get $len) (i32.const 38)) (then (return (i32.const 0))))
    (drop (call $read (i32.const 36) (i32.const 0) (i32.const 2)))
    (if (result i32)
        (i32.eq (i32.or (i32.shl (i32.load8_u (i32.const 0)) (i32.const 8))
                        (i32.load8_u (i32.const 1)))
                (i32.const 8081))
      (then (drop (call $add (i32.const 0) (i64.const 1))) (i32.const 1))
      (else (i32.const 0)))))"#;

/// Writes counter 1, then traps: must leave no trace.
const TRAP_AFTER_WRITE: &str = r#"(module
  (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
  (func (export "graft_main") (param i32) (result i32)
    (drop (call $add (i32.const 1) (i64.const 42)))
    unreachable))"#;

fn compiled(text: &str) -> Vec<u8> {
    let module = wat::parse_str(text).expect("test module is valid WAT");
    graft_runtime::compile(&module, graft_runtime::Target::Native).expect("test module compiles")
}

/// `text` compiled and sealed for `point` by the trusted key.
fn sealed(sequence: u64, point: &str, grant: &str, text: &str) -> Vec<u8> {
    let artifact = compiled(text);
    signed(1, sequence, point, grant, graft_runtime::ENGINE, &artifact)
}

/// `artifact` sealed by key `seed` as compiled for `engine`.
fn signed(
    seed: u8,
    sequence: u64,
    point: &str,
    grant: &str,
    engine: &str,
    artifact: &[u8],
) -> Vec<u8> {
    seal(&key(seed).sk, sequence, point, grant, engine, artifact).unwrap()
}

/// The packet filter, compiled and sealed for `net.rx` by the trusted key.
fn filter_envelope(sequence: u64) -> Vec<u8> {
    sealed(sequence, NET_RX, "context,counters", FILTER)
}

fn send(host: &Shared, bytes: &[u8]) -> Vec<Response> {
    let mut session = Session::new();
    let mut out = Vec::new();
    session.feed(&mut host.borrow_mut(), bytes, &mut out);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| Response::decode(l).expect("a response line"))
        .collect()
}

fn load_request(point: &str, envelope: &[u8]) -> Vec<u8> {
    let mut bytes = format!("load {point} {}\n", envelope.len()).into_bytes();
    bytes.extend_from_slice(envelope);
    bytes
}

fn ok(response: &Response) -> serde_json::Value {
    match response {
        Response::Ok(text) => serde_json::from_str(text).unwrap(),
        Response::Err(e) => panic!("refused: {e}"),
    }
}

fn err(response: &Response) -> &str {
    match response {
        Response::Err(e) => e,
        Response::Ok(text) => panic!("accepted: {text}"),
    }
}

fn listing(host: &Shared) -> String {
    match &send(host, b"list\n")[0] {
        Response::Ok(text) => text.clone(),
        Response::Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_signed_filter_loads_drops_its_port_and_unloads() {
    let host = host();
    let mut rx = GraftRx::new(&host, net::PassAll).unwrap();
    assert_eq!(
        rx.on_receive(&graft_fixtures::tcp_frame(8081)),
        Verdict::Pass,
        "no graft yet"
    );
    let envelope = filter_envelope(1);
    let loaded = ok(&send(&host, &load_request(NET_RX, &envelope))[0]);
    let id = loaded["graft"].as_u64().unwrap();
    assert_eq!(loaded["point"], NET_RX);
    assert_eq!(
        rx.on_receive(&graft_fixtures::tcp_frame(8081)),
        Verdict::Drop
    );
    assert_eq!(rx.on_receive(&graft_fixtures::tcp_frame(80)), Verdict::Pass);
    let stats = ok(&send(&host, b"stats net.rx\n")[0]);
    assert_eq!(stats["counters"][0], 1, "one drop counted");
    assert_eq!(stats["grafts"][0]["calls"], 2);
    assert_eq!(stats["grafts"][0]["commits"], 2);
    let unloaded = ok(&send(&host, format!("unload net.rx {id}\n").as_bytes())[0]);
    assert_eq!(unloaded["graft"].as_u64(), Some(id));
    assert_eq!(
        rx.on_receive(&graft_fixtures::tcp_frame(8081)),
        Verdict::Pass,
        "default again"
    );
    assert!(listing(&host).contains(r#""grafts":[]"#));
}

#[test]
fn every_bad_envelope_is_refused_with_its_reason_and_changes_nothing() {
    let host = host();
    let _rx = GraftRx::new(&host, net::PassAll).unwrap();
    let module = compiled(FILTER);
    let good = signed(
        1,
        10,
        NET_RX,
        "context,counters",
        graft_runtime::ENGINE,
        &module,
    );
    let mut tampered = good.clone();
    let at = tampered.len() - 70;
    tampered[at] ^= 1;
    // The machine code changed after signing: one byte in the middle of
    // the artifact (its text section), the signature left as it was.
    let mut recoded = good.clone();
    let at = good.len() - 64 - module.len() / 2;
    recoded[at] ^= 0x90;
    let wasm = wat::parse_str(FILTER).unwrap();
    let for_images = graft_runtime::compile(&wasm, graft_runtime::Target::Image).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"not an envelope at all".to_vec(), "malformed"),
        ("unsigned module", module.clone(), "malformed"),
        ("tampered", tampered, "bad signature"),
        ("code changed after signing", recoded, "bad signature"),
        (
            "another engine",
            signed(
                1,
                16,
                NET_RX,
                "context,counters",
                "wasmtime-1/other",
                &module,
            ),
            "compiled for graft engine `wasmtime-1/other`",
        ),
        (
            "another target",
            signed(
                1,
                17,
                NET_RX,
                "context,counters",
                graft_runtime::ENGINE,
                &for_images,
            ),
            "not a loadable graft artifact",
        ),
        (
            "wrong key",
            signed(
                2,
                11,
                NET_RX,
                "context,counters",
                graft_runtime::ENGINE,
                &module,
            ),
            "does not trust",
        ),
        (
            "other point",
            signed(
                1,
                12,
                "http.request",
                "context,counters",
                graft_runtime::ENGINE,
                &module,
            ),
            "signed for graft point `http.request`",
        ),
        (
            "unknown capability",
            signed(
                1,
                13,
                NET_RX,
                "context,root",
                graft_runtime::ENGINE,
                &module,
            ),
            "unknown capability `root`",
        ),
        (
            "forbidden import",
            signed(1, 14, NET_RX, "context", graft_runtime::ENGINE, &module),
            "rootstock.counter_add",
        ),
        (
            "wrong signature",
            signed(
                1,
                15,
                NET_RX,
                "",
                graft_runtime::ENGINE,
                &compiled(r#"(module (func (export "graft_main") (param i64)))"#),
            ),
            "graft_main",
        ),
    ];
    let before = listing(&host);
    for (what, envelope, reason) in cases {
        let reply = send(&host, &load_request(NET_RX, &envelope));
        let message = err(&reply[0]);
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(listing(&host), before, "{what} changed the listing");
    }
    // The refused sequence numbers were not used up: 10 still loads…
    ok(&send(&host, &load_request(NET_RX, &good))[0]);
    // …and a replay of it is refused.
    let replay = send(&host, &load_request(NET_RX, &good));
    assert!(err(&replay[0]).contains("replayed"), "{replay:?}");
}

#[test]
fn an_image_without_trusted_keys_refuses_everything() {
    let host = GraftHost::new(Rc::new(Ticks::default()), TrustedKeys::default()).share();
    let _rx = GraftRx::new(&host, net::PassAll).unwrap();
    let envelope = filter_envelope(1);
    let reply = send(&host, &load_request(NET_RX, &envelope));
    assert!(err(&reply[0]).contains("trusts no signing key"));
}

#[test]
fn a_trapping_handler_is_undone_logged_and_unloaded_after_k_failures() {
    let host = host();
    let mut rx = GraftRx::new(&host, net::PassAll).unwrap();
    let envelope = sealed(1, NET_RX, "counters", TRAP_AFTER_WRITE);
    ok(&send(&host, &load_request(NET_RX, &envelope))[0]);
    for _ in 0..3 {
        assert_eq!(rx.on_receive(&graft_fixtures::tcp_frame(80)), Verdict::Pass);
    }
    let stats = ok(&send(&host, b"stats\n")[0]);
    assert_eq!(
        stats["counters"][1], 0,
        "the write before the trap is undone"
    );
    assert_eq!(stats["grafts"].as_array().unwrap().len(), 0, "unloaded");
    let log = ok(&send(&host, b"log\n")[0]);
    let faults = log["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 3);
    assert!(faults.iter().all(|f| f["cause"] == "trap-unreachable"));
    assert_eq!(faults[2]["action"], "unloaded");
}

#[test]
fn requests_split_anywhere_decode_and_garbage_does_not_end_the_session() {
    let host = host();
    let _rx = GraftRx::new(&host, net::PassAll).unwrap();
    let envelope = filter_envelope(1);
    let mut stream = b"hello there\n".to_vec();
    stream.extend(load_request(NET_RX, &envelope));
    stream.extend_from_slice(b"list\n");
    let mut session = Session::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(7) {
        assert_eq!(
            session.feed(&mut host.borrow_mut(), chunk, &mut out),
            Next::Continue
        );
    }
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("err unknown command"));
    assert!(lines[1].starts_with("ok {\"bytes\""));
    assert!(lines[2].contains("\"net.rx\""));
    let mut out = Vec::new();
    let fatal = session.feed(&mut host.borrow_mut(), b"load net.rx 999999999\n", &mut out);
    assert_eq!(fatal, Next::Close);
}

#[test]
fn a_scheduling_graft_picks_and_an_aborting_one_falls_back() {
    use graft_host::sched;
    use unikernel::task::{Overridable, SchedPolicy, TaskId, TaskMeta};
    let host = host();
    sched::install(&host).unwrap();
    let meta = |n: u32, priority: u8| TaskMeta {
        id: TaskId::new(n, 0),
        priority,
        group: 0,
        seq: u64::from(n),
        name: "t",
    };
    let order = || {
        let mut policy = Overridable::<unikernel::task::Fifo>::default();
        for (n, p) in [(1, 1), (2, 9), (3, 5)] {
            policy.enqueue(meta(n, p));
        }
        core::iter::from_fn(|| policy.pick_next().map(|t| t.id.index())).collect::<Vec<_>>()
    };
    assert_eq!(order(), [1, 2, 3], "FIFO without a graft");
    // Highest priority first: scan the [priority, group, 0, 0] records.
    let highest = r#"(module
      (import "rootstock" "ctx_read" (func $read (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "graft_main") (param $n i32) (result i32)
        (local $i i32) (local $best i32)
        (drop (call $read (i32.const 0) (i32.const 0) (i32.mul (local.get $n) (i32.const 4))))
        (loop $scan
          (if (i32.gt_u (i32.load8_u (i32.mul (local.get $i) (i32.const 4)))
                        (i32.load8_u (i32.mul (local.get $best) (i32.const 4))))
            (then (local.set $best (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $scan (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $best)))"#;
    let envelope = sealed(1, SCHED_PICK, "context", highest);
    let id = ok(&send(&host, &load_request(SCHED_PICK, &envelope))[0])["graft"]
        .as_u64()
        .unwrap();
    assert_eq!(order(), [2, 3, 1], "the graft's priority order");
    send(&host, format!("unload sched.pick {id}\n").as_bytes());
    let spin = r#"(module (func (export "graft_main") (param i32) (result i32)
      (loop $forever (br $forever)) (i32.const 0)))"#;
    let envelope = sealed(2, SCHED_PICK, "", spin);
    ok(&send(&host, &load_request(SCHED_PICK, &envelope))[0]);
    assert_eq!(order(), [1, 2, 3], "an aborting graft: FIFO again");
    let log = ok(&send(&host, b"log\n")[0]);
    assert_eq!(log["faults"][0]["cause"], "fuel-exhausted");
    unikernel::task::set_pick_override(None);
}

#[test]
fn the_image_narrows_what_the_signer_granted() {
    let host = host();
    graft_host::app::Event::declare(&host, graft_host::points::http_request()).unwrap();
    // Signed with `buffers` granted, but `http.request` allows no buffers.
    let alloc = r#"(module (import "rootstock" "buf_alloc" (func (param i32) (result i32)))
      (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#;
    let envelope = sealed(1, "http.request", "context,buffers", alloc);
    let reply = send(&host, &load_request("http.request", &envelope));
    assert!(err(&reply[0]).contains("rootstock.buf_alloc"), "{reply:?}");
    assert!(listing(&host).contains(r#""grafts":[]"#));
}

#[test]
fn a_policy_call_while_the_host_is_busy_is_counted_never_silent() {
    let host = host();
    let _rx = GraftRx::new(&host, net::PassAll).unwrap();
    let envelope = filter_envelope(1);
    ok(&send(&host, &load_request(NET_RX, &envelope))[0]);
    let point = host.borrow_mut().runtime().point_id(NET_RX).unwrap();
    assert!(
        graft_host::host::grafted(&host, point).is_some(),
        "free: the graft runs"
    );
    let before = graft_host::host::busy_skips();
    let busy = host.borrow_mut();
    assert!(
        graft_host::host::grafted(&host, point).is_none(),
        "busy: the default serves"
    );
    assert!(
        graft_host::host::busy_skips() > before,
        "and the skip is counted"
    );
    drop(busy);
    let stats = ok(&send(&host, b"stats\n")[0]);
    assert!(stats["busy_skips"].as_u64().unwrap() > before, "{stats}");
}
