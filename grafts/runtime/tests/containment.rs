//! The hostile corpus: one module per misbehaviour, each loaded on a point
//! with a compiled-in default. Each test proves containment: the cause is
//! reported exactly, the host state after the call equals the state
//! before, every resource is released, and the default serves the call.

use std::rc::Rc;

use graft_runtime::testing::Ticks;
use graft_runtime::{
    AbortCause, Capabilities, FaultAction, Limits, LoadError, PointSpec, Revocation, Runtime, Val,
    ValType,
};

const POINT: &str = "sched.pick";
const DEFAULT: i32 = -7;

fn runtime() -> Runtime {
    let mut rt = Runtime::new(4, Limits::default(), Rc::new(Ticks::default()));
    let mut spec = PointSpec::replace(POINT, &[ValType::I32], &[ValType::I32]);
    spec.fuel = 50_000;
    spec.max_failures = 2;
    // Results must be a valid index below the argument (the ready count).
    spec.validator = |results| matches!(results, [Val::I32(i)] if *i >= 0 && *i < 1000);
    rt.declare(spec).unwrap();
    rt
}

fn compiled(text: &str) -> Vec<u8> {
    let module = wat::parse_str(text).expect("test module is valid WAT");
    graft_runtime::compile(&module, graft_runtime::Target::Native).expect("test module compiles")
}

/// Calls the point with context `ctx`; returns the result and the context after.
fn call(rt: &mut Runtime, ctx: &[u8]) -> (i32, Vec<u8>) {
    let mut context = ctx.to_vec();
    let out = rt.invoke(POINT, &mut context, &[Val::I32(5)], |_| {
        vec![Val::I32(DEFAULT)]
    });
    (out[0].i32().unwrap(), context)
}

fn snapshot(rt: &Runtime) -> (Vec<Option<i64>>, usize) {
    let state = rt.state();
    (
        (0..4).map(|i| state.counter(i)).collect(),
        state.locks_held(),
    )
}

/// Loads `text`, calls it, and checks containment of `cause`.
fn contained(text: &str, capabilities: &str, cause: AbortCause) -> Runtime {
    let mut rt = runtime();
    let id = rt
        .load(
            POINT,
            &compiled(text),
            Capabilities::parse(capabilities).unwrap(),
        )
        .unwrap();
    let before = snapshot(&rt);
    let (result, context) = call(&mut rt, b"ABCDEFGH");
    assert_eq!(
        result, DEFAULT,
        "the compiled-in default serves the aborted call"
    );
    assert_eq!(context, b"ABCDEFGH", "context writes undone");
    assert_eq!(snapshot(&rt), before, "counters and locks as before");
    assert_eq!(rt.state().buffer_bytes(id), 0, "allocations freed");
    assert_eq!(rt.state().map_entries(id), 0, "map writes undone");
    let fault = rt.faults().last().expect("a fault is logged").clone();
    assert_eq!(
        (fault.graft, fault.cause, fault.action),
        (id, cause, FaultAction::Aborted)
    );
    assert_eq!(rt.stats(id).unwrap().aborts_by(cause), 1);
    rt
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    contained(
        r#"(module (func (export "graft_main") (param i32) (result i32) (loop (br 0)) (i32.const 0)))"#,
        "",
        AbortCause::FuelExhausted,
    );
}

#[test]
fn out_of_bounds_memory_access_traps() {
    contained(
        r#"(module (memory 1)
             (func (export "graft_main") (param i32) (result i32) (i32.load (i32.const 70000))))"#,
        "",
        AbortCause::OutOfBounds,
    );
}

#[test]
fn linear_memory_blow_up_is_a_resource_limit() {
    // memory.grow past the cap returns -1; the module then hits unreachable.
    contained(
        r#"(module (memory 1)
             (func (export "graft_main") (param i32) (result i32)
               (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
               (i32.const 0)))"#,
        "",
        AbortCause::Unreachable,
    );
    // A module that asks for too much memory up front is refused at load.
    let mut rt = runtime();
    let error = rt.load(POINT, &compiled(r#"(module (memory 100) (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#), Capabilities::NONE);
    assert!(matches!(error, Err(LoadError::Instantiate(_))), "{error:?}");
}

#[test]
fn deep_recursion_overflows_the_stack_safely() {
    contained(
        r#"(module (func $f (export "graft_main") (param i32) (result i32)
             (call $f (i32.add (local.get 0) (i32.const 1)))))"#,
        "",
        AbortCause::StackOverflow,
    );
}

#[test]
fn divide_by_zero_traps() {
    contained(
        r#"(module (func (export "graft_main") (param i32) (result i32) (i32.div_s (i32.const 1) (i32.const 0))))"#,
        "",
        AbortCause::DivideByZero,
    );
}

#[test]
fn invalid_return_is_refused_by_the_validator() {
    contained(
        r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 5000)))"#,
        "",
        AbortCause::InvalidReturn,
    );
}

#[test]
fn trap_midway_after_accessor_writes_undoes_all_of_them() {
    contained(
        r#"(module
             (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
             (import "rootstock" "map_put" (func $put (param i32 i64 i64)))
             (import "rootstock" "ctx_write" (func $w (param i32 i32 i32) (result i32)))
             (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "zzzz")
             (func (export "graft_main") (param i32) (result i32)
               (drop (call $add (i32.const 0) (i64.const 10)))
               (drop (call $add (i32.const 3) (i64.const -4)))
               (call $put (i32.const 0) (i64.const 1) (i64.const 2))
               (drop (call $w (i32.const 2) (i32.const 0) (i32.const 4)))
               (drop (call $alloc (i32.const 512)))
               unreachable))"#,
        "counters,maps,context,context-write,buffers",
        AbortCause::Unreachable,
    );
}

#[test]
fn lock_hog_times_out_and_releases() {
    // The host holds lock 2: the graft waits, times out, and is aborted
    // holding nothing (lock 1, which it did take, is released).
    let mut rt = runtime();
    rt.state().host_lock(2, true);
    let module = compiled(
        r#"(module (import "rootstock" "lock" (func $lock (param i32)))
             (func (export "graft_main") (param i32) (result i32)
               (call $lock (i32.const 1)) (call $lock (i32.const 2)) (i32.const 0)))"#,
    );
    let id = rt
        .load(POINT, &module, Capabilities::parse("locks").unwrap())
        .unwrap();
    assert_eq!(call(&mut rt, b"").0, DEFAULT);
    assert_eq!(rt.faults().last().unwrap().cause, AbortCause::LockTimeout);
    assert_eq!(rt.state().locks_held(), 1, "only the host's lock remains");
    rt.state().host_lock(2, false);
    assert_eq!(
        call(&mut rt, b"").0,
        0,
        "with the lock free the graft commits"
    );
    assert_eq!(rt.state().locks_held(), 0, "two-phase: released at commit");
    assert_eq!(rt.stats(id).unwrap().commits, 1);
}

#[test]
fn allocation_leak_hits_the_limit_and_unload_frees_everything() {
    let mut rt = runtime();
    let module = compiled(
        r#"(module (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
             (func (export "graft_main") (param i32) (result i32)
               (drop (call $alloc (i32.const 20000))) (i32.const 0)))"#,
    );
    let id = rt
        .load(POINT, &module, Capabilities::parse("buffers").unwrap())
        .unwrap();
    // Three commits keep 60,000 bytes; the fourth exceeds 64 KiB.
    for _ in 0..3 {
        assert_eq!(call(&mut rt, b"").0, 0);
    }
    assert_eq!(rt.state().buffer_bytes(id), 60_000);
    assert_eq!(call(&mut rt, b"").0, DEFAULT);
    assert_eq!(rt.faults().last().unwrap().cause, AbortCause::ResourceLimit);
    assert_eq!(
        rt.state().buffer_bytes(id),
        60_000,
        "the aborted allocation is gone"
    );
    rt.unload(POINT, id).unwrap();
    assert_eq!(
        rt.state().buffer_bytes(id),
        0,
        "unload frees what the graft kept"
    );
}

#[test]
fn forbidden_imports_are_refused_at_load_naming_the_import() {
    let mut rt = runtime();
    let module = compiled(
        r#"(module (import "rootstock" "counter_add" (func (param i32 i64) (result i64)))
             (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
    );
    let error = rt
        .load(POINT, &module, Capabilities::parse("maps").unwrap())
        .unwrap_err();
    assert_eq!(
        error,
        LoadError::ForbiddenImport {
            module: "rootstock".into(),
            name: "counter_add".into()
        }
    );
    assert!(error.to_string().contains("rootstock.counter_add"));
    let wasi = compiled(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
    );
    assert!(matches!(
        rt.load(POINT, &wasi, Capabilities::ALL),
        Err(LoadError::ForbiddenImport { .. })
    ));
    assert!(rt.list().is_empty(), "nothing was installed");
}

#[test]
fn wrong_signatures_are_refused_at_load() {
    let mut rt = runtime();
    let no_main =
        compiled(r#"(module (func (export "other") (param i32) (result i32) (i32.const 0)))"#);
    assert_eq!(
        rt.load(POINT, &no_main, Capabilities::ALL),
        Err(LoadError::MissingExport("graft_main"))
    );
    let wrong =
        compiled(r#"(module (func (export "graft_main") (param i64) (result i32) (i32.const 0)))"#);
    assert!(matches!(
        rt.load(POINT, &wrong, Capabilities::ALL),
        Err(LoadError::ExportSignature { .. })
    ));
    let bad_import = compiled(
        r#"(module (import "rootstock" "counter_add" (func (param i32) (result i64)))
             (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
    );
    assert!(matches!(
        rt.load(POINT, &bad_import, Capabilities::ALL),
        Err(LoadError::ImportSignature { .. })
    ));
}

#[test]
fn malformed_and_truncated_artifacts_are_clean_errors() {
    let mut rt = runtime();
    let good =
        compiled(r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 1)))"#);
    for len in (0..good.len()).step_by(61) {
        let error = rt.load(POINT, &good[..len], Capabilities::ALL).unwrap_err();
        assert!(
            matches!(error, LoadError::Invalid(_)),
            "truncated to {len}: {error:?}"
        );
    }
    // Plain WebAssembly is not an artifact: it must be compiled (and signed).
    let wasm = wat::parse_str(
        r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 1)))"#,
    )
    .unwrap();
    for bytes in [&wasm[..], b"GET / HTTP/1.1\r\n"] {
        let error = rt.load(POINT, bytes, Capabilities::ALL).unwrap_err();
        assert!(matches!(error, LoadError::Invalid(_)), "{error:?}");
        assert!(
            error.to_string().contains("not a loadable graft artifact"),
            "{error}"
        );
    }
    // An artifact for the images' target is refused here, saying why.
    let for_images = graft_runtime::compile(&wasm, graft_runtime::Target::Image).unwrap();
    let error = rt.load(POINT, &for_images, Capabilities::ALL).unwrap_err();
    assert!(matches!(error, LoadError::Invalid(_)), "{error:?}");
    let huge = vec![0u8; 300 * 1024];
    assert!(matches!(
        rt.load(POINT, &huge, Capabilities::ALL),
        Err(LoadError::TooLarge { .. })
    ));
    assert!(rt.list().is_empty());
    // And the good one still loads and serves.
    rt.load(POINT, &good, Capabilities::ALL).unwrap();
    assert_eq!(call(&mut rt, b"").0, 1);
}

#[test]
fn floating_point_is_refused_when_a_graft_is_compiled() {
    let floats = wat::parse_str(
        r#"(module (func (export "graft_main") (param i32) (result i32)
             (i32.trunc_f32_s (f32.mul (f32.convert_i32_s (local.get 0)) (f32.const 1.5)))))"#,
    )
    .unwrap();
    for target in [graft_runtime::Target::Native, graft_runtime::Target::Image] {
        let error = graft_runtime::compile(&floats, target).unwrap_err();
        assert!(error.to_string().contains("float"), "{error}");
    }
    let simd = wat::parse_str(
        r#"(module (func (export "graft_main") (param i32) (result i32)
             (i32x4.extract_lane 0 (i32x4.splat (local.get 0)))))"#,
    )
    .unwrap();
    assert!(graft_runtime::compile(&simd, graft_runtime::Target::Image).is_err());
}

#[test]
fn after_k_failures_the_graft_is_unloaded_and_the_default_serves() {
    let mut rt = runtime();
    let module =
        compiled(r#"(module (func (export "graft_main") (param i32) (result i32) unreachable))"#);
    rt.load(POINT, &module, Capabilities::NONE).unwrap();
    call(&mut rt, b"");
    assert!(rt.is_grafted(POINT));
    call(&mut rt, b"");
    assert_eq!(rt.faults().last().unwrap().action, FaultAction::Unloaded);
    assert!(!rt.is_grafted(POINT));
    assert_eq!(call(&mut rt, b"").0, DEFAULT);
}

#[test]
fn a_failing_graft_can_be_restarted_once_before_unloading() {
    let mut rt = Runtime::new(1, Limits::default(), Rc::new(Ticks::default()));
    let mut spec = PointSpec::replace(POINT, &[ValType::I32], &[ValType::I32]);
    spec.max_failures = 1;
    spec.restart = true;
    rt.declare(spec).unwrap();
    // Fails when its global counter is odd: a fresh instance starts at 0.
    let module = compiled(
        r#"(module (global $n (mut i32) (i32.const 0))
             (func (export "graft_main") (param i32) (result i32)
               (global.set $n (i32.add (global.get $n) (i32.const 1)))
               (if (i32.eq (global.get $n) (i32.const 2)) (then unreachable))
               (global.get $n)))"#,
    );
    rt.load(POINT, &module, Capabilities::NONE).unwrap();
    assert_eq!(call(&mut rt, b"").0, 1);
    assert_eq!(call(&mut rt, b"").0, DEFAULT);
    assert_eq!(rt.faults().last().unwrap().action, FaultAction::Restarted);
    assert_eq!(call(&mut rt, b"").0, 1, "a fresh instance");
    call(&mut rt, b"");
    assert_eq!(rt.faults().last().unwrap().action, FaultAction::Unloaded);
}

#[test]
fn commits_make_changes_durable_and_replace_is_atomic() {
    let mut rt = runtime();
    let v1 = compiled(
        r#"(module (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
             (func (export "graft_main") (param i32) (result i32)
               (drop (call $add (i32.const 1) (i64.const 1))) (i32.const 1)))"#,
    );
    let v2 =
        compiled(r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 2)))"#);
    let id = rt
        .load(POINT, &v1, Capabilities::parse("counters").unwrap())
        .unwrap();
    assert_eq!(call(&mut rt, b"").0, 1);
    assert_eq!(rt.state().counter(1), Some(1));
    // A bad replacement changes nothing.
    assert!(
        rt.replace(POINT, id, b"garbage", Capabilities::ALL)
            .is_err()
    );
    assert_eq!(call(&mut rt, b"").0, 1);
    let new = rt.replace(POINT, id, &v2, Capabilities::ALL).unwrap();
    assert_ne!(new, id);
    assert_eq!(call(&mut rt, b"").0, 2);
    assert_eq!(rt.list().len(), 1);
}

#[test]
fn revocation_calls_the_graft_first_or_forces_it_out() {
    let mut rt = runtime();
    let polite = compiled(
        r#"(module (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
                   (import "rootstock" "buf_free" (func $free (param i32)))
             (global $h (mut i32) (i32.const -1))
             (func (export "graft_main") (param i32) (result i32)
               (global.set $h (call $alloc (i32.const 100))) (i32.const 0))
             (func (export "graft_revoke") (call $free (global.get $h))))"#,
    );
    let id = rt
        .load(POINT, &polite, Capabilities::parse("buffers").unwrap())
        .unwrap();
    call(&mut rt, b"");
    assert_eq!(rt.state().buffer_bytes(id), 100);
    assert_eq!(rt.revoke(POINT, id), Ok(Revocation::Clean));
    assert_eq!(rt.state().buffer_bytes(id), 0);
    let stubborn = compiled(
        r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 0))
             (func (export "graft_revoke") (loop (br 0))))"#,
    );
    let id = rt.load(POINT, &stubborn, Capabilities::NONE).unwrap();
    assert_eq!(
        rt.revoke(POINT, id),
        Ok(Revocation::Forced(Some(AbortCause::FuelExhausted)))
    );
    assert!(!rt.is_grafted(POINT));
}

#[test]
fn capabilities_narrowed_by_the_point_are_enforced() {
    let mut rt = Runtime::new(1, Limits::default(), Rc::new(Ticks::default()));
    let mut spec = PointSpec::replace(POINT, &[ValType::I32], &[ValType::I32]);
    spec.capabilities = Capabilities::parse("context").unwrap();
    rt.declare(spec).unwrap();
    let module = compiled(
        r#"(module (import "rootstock" "counter_add" (func (param i32 i64) (result i64)))
             (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
    );
    // The loader granted everything, the point allows only `context`.
    assert!(matches!(
        rt.load(POINT, &module, Capabilities::ALL),
        Err(LoadError::ForbiddenImport { .. })
    ));
}

#[test]
fn event_handlers_run_in_order_behind_their_guards() {
    let mut rt = Runtime::new(1, Limits::default(), Rc::new(Ticks::default()));
    rt.declare(PointSpec::event(
        "net.rx",
        &[ValType::I32],
        &[ValType::I32],
        3,
    ))
    .unwrap();
    // Handler for "port 80" only; handler for everything; a crashing one.
    let port80 = compiled(
        r#"(module (func (export "graft_guard") (param i32) (result i32) (i32.eq (local.get 0) (i32.const 80)))
                   (func (export "graft_main") (param i32) (result i32) (i32.const 1)))"#,
    );
    let all =
        compiled(r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 2)))"#);
    let crash =
        compiled(r#"(module (func (export "graft_main") (param i32) (result i32) unreachable))"#);
    let a = rt.load("net.rx", &port80, Capabilities::NONE).unwrap();
    let b = rt.load("net.rx", &all, Capabilities::NONE).unwrap();
    let c = rt.load("net.rx", &crash, Capabilities::NONE).unwrap();
    assert!(matches!(
        rt.load("net.rx", &all, Capabilities::NONE),
        Err(LoadError::PointFull(_))
    ));
    let at80 = rt.dispatch("net.rx", &mut Vec::new(), &[Val::I32(80)]);
    let ids: Vec<_> = at80
        .iter()
        .map(|(id, r)| (*id, r.as_ref().ok().map(|v| v[0].i32().unwrap())))
        .collect();
    assert_eq!(ids, [(a, Some(1)), (b, Some(2)), (c, None)]);
    let at22 = rt.dispatch("net.rx", &mut Vec::new(), &[Val::I32(22)]);
    assert_eq!(
        at22.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [b, c],
        "guard kept handler a out"
    );
    assert_eq!(rt.stats(a).unwrap().guarded_out, 1);
}
