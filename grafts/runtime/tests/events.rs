//! Grafts triggering grafts: the `emit` accessor runs an event point's
//! handlers as transactions nested in the emitter's. Each test checks the
//! containment rule it is named for against the host state before and
//! after: an inner abort undoes only the handler, an outer abort undoes the
//! handlers' committed work too, cycles and deep chains are refused
//! cleanly, and bad arguments change nothing.

use std::rc::Rc;

use graft_runtime::abi::emit_verdict;
use graft_runtime::testing::Ticks;
use graft_runtime::{
    AbortCause, Capabilities, FaultAction, GraftId, Limits, LoadError, PointSpec, Runtime, Val,
    ValType, Vals,
};
use proptest::prelude::*;

const DEFAULT: i32 = -7;
const ARG: i64 = 7;

fn compiled(text: &str) -> Vec<u8> {
    let module = wat::parse_str(text).expect("test module is valid WAT");
    graft_runtime::compile(&module, graft_runtime::Target::Native).expect("test module compiles")
}

fn caps(names: &str) -> Capabilities {
    Capabilities::parse(names).unwrap()
}

/// "policy" (replace, emits `emits`) and "audit" (event, `(i64)`), declared
/// in that order: a name resolves to a point declared after it.
fn runtime(policy_fuel: u64, emits: &[&str]) -> Runtime {
    let mut rt = Runtime::new(8, Limits::default(), Rc::new(Ticks::default()));
    let mut policy = PointSpec::replace("policy", &[ValType::I32], &[ValType::I32]);
    policy.fuel = policy_fuel;
    policy.emits = emits.iter().map(|e| e.to_string()).collect();
    rt.declare(policy).unwrap();
    let mut audit = PointSpec::event("audit", &[ValType::I64], &[], 4);
    audit.fuel = 50_000;
    audit.max_failures = 2;
    rt.declare(audit).unwrap();
    rt
}

/// The emitter: takes lock 1, counter 0 += 1, emits `emit` (the call's
/// arguments) with its memory's first bytes "PING", puts the verdict in
/// counter 1, then `tail`.
fn emitter(emit: &str, tail: &str) -> Vec<u8> {
    compiled(&format!(
        r#"(module
             (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
             (import "rootstock" "emit" (func $emit (param i32 i32 i32 i64) (result i64)))
             (import "rootstock" "lock" (func $lock (param i32)))
             (memory (export "memory") 2)
             (data (i32.const 0) "PING")
             (func (export "graft_main") (param i32) (result i32)
               (call $lock (i32.const 1))
               (drop (call $add (i32.const 0) (i64.const 1)))
               (drop (call $add (i32.const 1) (call $emit {emit})))
               {tail}
               (i32.const 0)))"#
    ))
}

const EMITTER_CAPS: &str = "counters,locks,events";

/// An audit handler: locks 1 and 2, counter 2 += arg, counter 3 += the
/// event's context length, overwrites the event's context, puts a map
/// entry, allocates a buffer, then `tail`.
fn handler(tail: &str) -> Vec<u8> {
    compiled(&format!(
        r#"(module
             (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
             (import "rootstock" "ctx_len" (func $len (result i32)))
             (import "rootstock" "ctx_write" (func $w (param i32 i32 i32) (result i32)))
             (import "rootstock" "lock" (func $lock (param i32)))
             (import "rootstock" "map_put" (func $put (param i32 i64 i64)))
             (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "pong")
             (func (export "graft_main") (param i64)
               (call $lock (i32.const 1))
               (call $lock (i32.const 2))
               (drop (call $add (i32.const 2) (local.get 0)))
               (drop (call $add (i32.const 3) (i64.extend_i32_u (call $len))))
               (drop (call $w (i32.const 0) (i32.const 0) (i32.const 4)))
               (call $put (i32.const 0) (i64.const 1) (i64.const 2))
               (drop (call $alloc (i32.const 16)))
               {tail}))"#
    ))
}

const HANDLER_CAPS: &str = "counters,context,context-write,locks,maps,buffers";

/// Invokes "policy" with the host context "HOST"; returns its result.
fn invoke(rt: &mut Runtime) -> i32 {
    let mut context = b"HOST".to_vec();
    let out = rt.invoke("policy", &mut context, &[Val::I32(0)], |_| {
        vec![Val::I32(DEFAULT)]
    });
    assert_eq!(context, b"HOST", "the host's context is not the event's");
    out[0].i32().unwrap()
}

fn snapshot(rt: &Runtime, grafts: &[GraftId]) -> (Vec<Option<i64>>, usize, Vec<usize>) {
    let state = rt.state();
    (
        (0..8).map(|i| state.counter(i)).collect(),
        state.locks_held(),
        grafts
            .iter()
            .flat_map(|&g| [state.map_entries(g), state.buffer_bytes(g)])
            .collect(),
    )
}

/// Loads on `policy` an emitter that raises its first emit point with
/// the 4 bytes `PING` and argument 7, then runs `tail`.
fn load_emitter(rt: &mut Runtime, tail: &str) -> GraftId {
    let emit = "(i32.const 0) (i32.const 0) (i32.const 4) (i64.const 7)";
    rt.load("policy", &emitter(emit, tail), caps(EMITTER_CAPS))
        .unwrap()
}

fn counters(rt: &Runtime) -> Vec<i64> {
    (0..8).map(|i| rt.state().counter(i).unwrap()).collect()
}

#[test]
fn a_handlers_writes_commit_with_the_emitter() {
    let mut rt = runtime(200_000, &["audit"]);
    let a = load_emitter(&mut rt, "");
    let b = rt.load("audit", &handler(""), caps(HANDLER_CAPS)).unwrap();
    assert_eq!(invoke(&mut rt), 0, "the emitter committed");
    // Counter 1 holds the verdict: one handler committed, none aborted.
    let verdict = emit_verdict(1, 0);
    assert_eq!(counters(&rt), [1, verdict, ARG, 4, 0, 0, 0, 0]);
    assert_eq!(
        rt.state().map_entries(b),
        1,
        "the handler's map entry is durable"
    );
    assert_eq!(rt.state().buffer_bytes(b), 16, "and its buffer");
    assert_eq!(
        rt.state().locks_held(),
        0,
        "the handler shared the emitter's lock 1 and handed lock 2 up; all released at commit"
    );
    assert_eq!(rt.faults().entries().count(), 0);
    assert_eq!(
        (rt.stats(a).unwrap().commits, rt.stats(b).unwrap().commits),
        (1, 1)
    );
}

#[test]
fn a_failing_handler_is_undone_alone_logged_and_unloaded_after_k_failures() {
    let mut rt = runtime(200_000, &["audit"]);
    let a = load_emitter(&mut rt, "");
    let good = rt.load("audit", &handler(""), caps(HANDLER_CAPS)).unwrap();
    let bad = rt
        .load("audit", &handler("unreachable"), caps(HANDLER_CAPS))
        .unwrap();
    assert_eq!(invoke(&mut rt), 0, "the emitter is unaffected");
    assert_eq!(
        counters(&rt),
        [1, emit_verdict(1, 1), ARG, 4, 0, 0, 0, 0],
        "only the good handler's counter writes remain"
    );
    assert_eq!(
        rt.state().map_entries(bad),
        0,
        "the bad handler's map write undone"
    );
    assert_eq!(rt.state().buffer_bytes(bad), 0, "and its allocation freed");
    assert_eq!(rt.state().map_entries(good), 1);
    assert_eq!(rt.state().locks_held(), 0);
    let faults: Vec<_> = rt.faults().entries().cloned().collect();
    assert_eq!(faults.len(), 1, "{faults:?}");
    let fault = &faults[0];
    assert_eq!(
        (fault.point.as_str(), fault.graft, fault.cause, fault.action),
        ("audit", bad, AbortCause::Unreachable, FaultAction::Aborted)
    );
    let stats = rt.stats(a).unwrap();
    assert_eq!((stats.commits, stats.total_aborts()), (1, 0));
    // The second failure reaches the point's K = 2: the handler is unloaded.
    invoke(&mut rt);
    assert_eq!(rt.faults().last().unwrap().action, FaultAction::Unloaded);
    assert!(rt.list().iter().all(|g| g.id != bad));
    invoke(&mut rt);
    assert_eq!(
        rt.state().counter(1),
        Some(2 * emit_verdict(1, 1) + emit_verdict(1, 0))
    );
    assert_eq!(rt.stats(a).unwrap().commits, 3);
}

#[test]
fn an_emitter_abort_undoes_what_its_handlers_committed() {
    let mut rt = runtime(200_000, &["audit"]);
    let a = load_emitter(&mut rt, "unreachable");
    let b = rt.load("audit", &handler(""), caps(HANDLER_CAPS)).unwrap();
    rt.state().set_counter(5, 55);
    let before = snapshot(&rt, &[a, b]);
    assert_eq!(
        invoke(&mut rt),
        DEFAULT,
        "the default serves the aborted call"
    );
    assert_eq!(
        snapshot(&rt, &[a, b]),
        before,
        "the handler's commit was undone with the emitter"
    );
    assert_eq!(
        rt.stats(b).unwrap().commits,
        1,
        "the handler did commit (nested)"
    );
    let fault = rt.faults().last().unwrap();
    assert_eq!((fault.graft, fault.cause), (a, AbortCause::Unreachable));
}

/// An event point `name` whose handlers take `(i64)` and may emit `emits`.
fn event(name: &str, emits: &[&str]) -> PointSpec {
    let mut spec = PointSpec::event(name, &[ValType::I64], &[], 2);
    spec.emits = emits.iter().map(|e| e.to_string()).collect();
    spec
}

/// A handler that adds 1 to counter `counter`, emits its event 0 and adds
/// the verdict to counter `counter + 4`.
fn relay(counter: i32) -> Vec<u8> {
    compiled(&format!(
        r#"(module
             (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
             (import "rootstock" "emit" (func $emit (param i32 i32 i32 i64) (result i64)))
             (memory (export "memory") 1)
             (func (export "graft_main") (param i64)
               (drop (call $add (i32.const {counter}) (i64.const 1)))
               (drop (call $add (i32.const {}) (call $emit (i32.const 0) (i32.const 0) (i32.const 0) (local.get 0))))))"#,
        counter + 4
    ))
}

fn dispatch(rt: &mut Runtime, point: &str) -> Vec<(GraftId, Result<Vals, AbortCause>)> {
    rt.dispatch(point, &mut b"HOST".to_vec(), &[Val::I64(ARG)])
}

#[test]
fn self_emit_and_cycles_are_refused_as_reentrancy() {
    let mut rt = Runtime::new(8, Limits::default(), Rc::new(Ticks::default()));
    // A handler emitting the event it handles.
    rt.declare(event("loop", &["loop"])).unwrap();
    let h = rt.load("loop", &relay(0), caps("counters,events")).unwrap();
    let before = snapshot(&rt, &[h]);
    let outcomes = dispatch(&mut rt, "loop");
    assert!(matches!(outcomes[..], [(id, Err(AbortCause::Reentrancy))] if id == h));
    assert_eq!(snapshot(&rt, &[h]), before, "state unchanged");
    assert_eq!(rt.faults().last().unwrap().cause, AbortCause::Reentrancy);
    assert_eq!(rt.stats(h).unwrap().calls, 1, "entered once, never again");
    // A cycle: ping's handler emits pong, whose handler emits ping again.
    rt.declare(event("ping", &["pong"])).unwrap();
    rt.declare(event("pong", &["ping"])).unwrap();
    let ping = rt.load("ping", &relay(1), caps("counters,events")).unwrap();
    let pong = rt.load("pong", &relay(2), caps("counters,events")).unwrap();
    let outcomes = dispatch(&mut rt, "ping");
    assert!(
        matches!(outcomes[..], [(id, Ok(_))] if id == ping),
        "{outcomes:?}"
    );
    let fault = rt.faults().last().unwrap();
    assert_eq!((fault.graft, fault.cause), (pong, AbortCause::Reentrancy));
    let c = counters(&rt);
    assert_eq!((c[1], c[2]), (1, 0), "ping committed; pong's write undone");
    assert_eq!((c[5], c[6]), (emit_verdict(0, 1), 0), "ping saw pong abort");
    assert_eq!(rt.state().locks_held(), 0);
}

#[test]
fn chains_of_emits_are_bounded_in_depth() {
    let mut rt = Runtime::new(8, Limits::default(), Rc::new(Ticks::default()));
    let names = ["e0", "e1", "e2", "e3", "e4", "e5"];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let next: &[&str] = names.get(i + 1).map_or(&[], core::slice::from_ref);
        rt.declare(event(name, next)).unwrap();
        // Counters 0..4 count handlers 0..4; handler 5 writes counter 3 too.
        let relay = relay(i.min(3) as i32);
        ids.push(rt.load(name, &relay, caps("counters,events")).unwrap());
    }
    dispatch(&mut rt, "e0");
    let fault = rt.faults().last().unwrap();
    assert_eq!(
        (fault.graft, fault.cause),
        (ids[4], AbortCause::ResourceLimit),
        "the fifth nested emit is refused"
    );
    assert_eq!(rt.stats(ids[5]).unwrap().calls, 0, "e5 never ran");
    assert_eq!(
        counters(&rt)[..4],
        [1, 1, 1, 1],
        "e0..e3 committed, e4 undone"
    );
}

#[test]
fn the_emitter_pays_for_its_handlers_fuel() {
    let spin = compiled(r#"(module (func (export "graft_main") (param i64) (loop (br 0))))"#);
    let emit = "(i32.const 0) (i32.const 0) (i32.const 4) (i64.const 7)";
    // A rich emitter survives its handler running out of (its own) fuel.
    let mut rt = runtime(1_000_000, &["audit"]);
    let a = rt
        .load("policy", &emitter(emit, ""), caps(EMITTER_CAPS))
        .unwrap();
    rt.load("audit", &spin, Capabilities::NONE).unwrap();
    assert_eq!(invoke(&mut rt), 0);
    assert_eq!(rt.state().counter(1), Some(emit_verdict(0, 1)));
    assert_eq!(rt.faults().last().unwrap().cause, AbortCause::FuelExhausted);
    assert!(
        rt.stats(a).unwrap().fuel_used >= 50_000,
        "charged to the emitter"
    );
    // A poor one cannot afford it: it aborts too, and nothing is kept.
    let mut rt = runtime(20_000, &["audit"]);
    let a = rt
        .load("policy", &emitter(emit, ""), caps(EMITTER_CAPS))
        .unwrap();
    let s2 = rt.load("audit", &spin, Capabilities::NONE).unwrap();
    let before = snapshot(&rt, &[a, s2]);
    assert_eq!(invoke(&mut rt), DEFAULT);
    assert_eq!(snapshot(&rt, &[a, s2]), before);
    let causes: Vec<_> = rt.faults().entries().map(|f| (f.graft, f.cause)).collect();
    assert_eq!(
        causes,
        [
            (s2, AbortCause::FuelExhausted),
            (a, AbortCause::FuelExhausted)
        ]
    );
}

#[test]
fn emit_needs_the_events_capability_named_at_load() {
    let mut rt = runtime(200_000, &["audit"]);
    let module = emitter(
        "(i32.const 0) (i32.const 0) (i32.const 4) (i64.const 7)",
        "",
    );
    let error = rt
        .load("policy", &module, caps("counters,locks"))
        .unwrap_err();
    assert_eq!(
        error,
        LoadError::ForbiddenImport {
            module: "rootstock".into(),
            name: "emit".into()
        }
    );
    assert!(error.to_string().contains("rootstock.emit"));
    // Outside a transaction (a start function) emit is refused too.
    let start = compiled(
        r#"(module
             (import "rootstock" "emit" (func $emit (param i32 i32 i32 i64) (result i64)))
             (memory (export "memory") 1)
             (func $s (drop (call $emit (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0))))
             (start $s)
             (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
    );
    assert!(matches!(
        rt.load("policy", &start, caps("events")),
        Err(LoadError::Instantiate(_))
    ));
    assert!(rt.list().is_empty());
}

#[test]
fn bad_indices_and_ranges_are_bad_arguments_and_change_nothing() {
    let emits = ["audit", "nowhere", "policy", "narrow"];
    let cases = [
        (
            "(i32.const 4) (i32.const 0) (i32.const 4) (i64.const 7)",
            "index past the list",
        ),
        (
            "(i32.const -1) (i32.const 0) (i32.const 4) (i64.const 7)",
            "negative index",
        ),
        (
            "(i32.const 1) (i32.const 0) (i32.const 4) (i64.const 7)",
            "undeclared point",
        ),
        (
            "(i32.const 2) (i32.const 0) (i32.const 4) (i64.const 7)",
            "a replace point",
        ),
        (
            "(i32.const 3) (i32.const 0) (i32.const 4) (i64.const 0x100000000)",
            "arg too wide for (i32)",
        ),
        (
            "(i32.const 0) (i32.const 131070) (i32.const 4) (i64.const 7)",
            "range past memory",
        ),
        (
            "(i32.const 0) (i32.const 0) (i32.const -1) (i64.const 7)",
            "negative length",
        ),
        (
            "(i32.const 0) (i32.const 0) (i32.const 65537) (i64.const 7)",
            "longer than the cap",
        ),
    ];
    for (emit, why) in cases {
        let mut rt = runtime(200_000, &emits);
        rt.declare(PointSpec::event("narrow", &[ValType::I32], &[], 1))
            .unwrap();
        let a = rt
            .load("policy", &emitter(emit, ""), caps(EMITTER_CAPS))
            .unwrap();
        let b = rt.load("audit", &handler(""), caps(HANDLER_CAPS)).unwrap();
        let before = snapshot(&rt, &[a, b]);
        assert_eq!(invoke(&mut rt), DEFAULT, "{why}");
        assert_eq!(snapshot(&rt, &[a, b]), before, "{why}: state unchanged");
        let fault = rt.faults().last().unwrap();
        assert_eq!(
            (fault.graft, fault.cause),
            (a, AbortCause::BadArgument),
            "{why}"
        );
        assert_eq!(rt.stats(b).unwrap().calls, 0, "{why}: no handler ran");
    }
}

#[test]
fn the_sdk_decodes_emit_verdicts_as_the_runtime_encodes_them() {
    for (committed, aborted) in [(0, 0), (1, 0), (0, 1), (3, 2), (u32::MAX, 7), (7, u32::MAX)] {
        let decoded = graft_sdk::Emitted::from_raw(emit_verdict(committed, aborted));
        assert_eq!((decoded.committed, decoded.aborted), (committed, aborted));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary `emit` arguments never panic the host, and a refused emit
    /// leaves the host state as it was.
    #[test]
    fn arbitrary_emit_arguments_are_contained(
        point in -1i32..3,
        ptr in -2i32..140_000,
        len in -2i32..70_000,
        arg: i64,
    ) {
        let mut rt = runtime(200_000, &["audit"]);
        let emit = format!("(i32.const {point}) (i32.const {ptr}) (i32.const {len}) (i64.const {arg})");
        let a = rt.load("policy", &emitter(&emit, ""), caps(EMITTER_CAPS)).unwrap();
        let b = rt.load("audit", &handler(""), caps(HANDLER_CAPS)).unwrap();
        let before = snapshot(&rt, &[a, b]);
        if invoke(&mut rt) == DEFAULT {
            prop_assert_eq!(snapshot(&rt, &[a, b]), before);
        } else {
            prop_assert_eq!(rt.state().counter(2), Some(arg));
        }
    }
}
