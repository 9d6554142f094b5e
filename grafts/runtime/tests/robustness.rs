//! Property tests: arbitrary bytes as a module, and arbitrary arguments to
//! every accessor, never panic the host; a refused load or call leaves the
//! host state unchanged, and a refusal says what was refused. (The fuzz
//! targets in `fuzz/` run the borders around it under AFL++.)

use std::rc::Rc;

use graft_runtime::testing::Ticks;
use graft_runtime::{Capabilities, GraftInfo, Limits, LoadError, PointSpec, Runtime, Val, ValType};
use proptest::prelude::*;

fn runtime() -> Runtime {
    let mut rt = Runtime::new(4, Limits::default(), Rc::new(Ticks::default()));
    let params = [ValType::I32, ValType::I32, ValType::I32, ValType::I64];
    rt.declare(PointSpec::replace("p", &params, &[ValType::I32]))
        .unwrap();
    rt
}

/// What a refused load must leave as it was: the grafts (with their
/// stats), the fault log, the host counters and the locks held.
fn snapshot(rt: &Runtime) -> (Vec<GraftInfo>, usize, Vec<Option<i64>>, usize, bool) {
    let state = rt.state();
    (
        rt.list(),
        rt.faults().entries().count(),
        (0..4).map(|i| state.counter(i)).collect(),
        state.locks_held(),
        rt.is_grafted("p"),
    )
}

/// Calls accessor `which` (0..9) with the given arguments, then returns 0.
const CALLER: &str = r#"(module
  (import "rootstock" "ctx_read" (func $read (param i32 i32 i32) (result i32)))
  (import "rootstock" "ctx_write" (func $write (param i32 i32 i32) (result i32)))
  (import "rootstock" "map_put" (func $put (param i32 i64 i64)))
  (import "rootstock" "map_get" (func $get (param i32 i64 i64) (result i64)))
  (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
  (import "rootstock" "lock" (func $lock (param i32)))
  (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
  (import "rootstock" "buf_free" (func $free (param i32)))
  (import "rootstock" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "graft_main") (param $which i32) (param $a i32) (param $b i32) (param $c i64) (result i32)
    (block $done
      (block $l8 (block $l7 (block $l6 (block $l5 (block $l4 (block $l3 (block $l2 (block $l1 (block $l0
        (br_table $l0 $l1 $l2 $l3 $l4 $l5 $l6 $l7 $l8 $done (local.get $which)))
        (drop (call $read (local.get $a) (local.get $b) (i32.wrap_i64 (local.get $c)))) (br $done))
        (drop (call $write (local.get $a) (local.get $b) (i32.wrap_i64 (local.get $c)))) (br $done))
        (call $put (local.get $a) (i64.extend_i32_s (local.get $b)) (local.get $c)) (br $done))
        (drop (call $get (local.get $a) (local.get $c) (local.get $c))) (br $done))
        (drop (call $add (local.get $a) (local.get $c))) (br $done))
        (call $lock (local.get $a)) (br $done))
        (drop (call $alloc (local.get $a))) (br $done))
        (call $free (local.get $a)) (br $done))
        (call $log (local.get $a) (local.get $b)))
    (i32.const 0)))"#;

fn caller() -> Vec<u8> {
    graft_runtime::compile(
        &wat::parse_str(CALLER).unwrap(),
        graft_runtime::Target::Native,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_module_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // The compiler is the border for module bytes: random bytes never
        // compile, and say why.
        let error = graft_runtime::compile(&bytes, graft_runtime::Target::Native).unwrap_err();
        prop_assert!(error.to_string().len() > "cannot compile the graft: ".len(), "{}", error);
        // The runtime refuses them as an artifact, as not one, and nothing changes.
        let mut rt = runtime();
        let before = snapshot(&rt);
        let refused = rt.load("p", &bytes, Capabilities::ALL).unwrap_err();
        prop_assert!(matches!(refused, LoadError::Invalid(ref why) if !why.is_empty()), "{:?}", refused);
        prop_assert!(refused.to_string().starts_with("not a loadable graft artifact: "));
        prop_assert_eq!(snapshot(&rt), before.clone());
        // A mutated valid module either fails to compile, or compiles to
        // an artifact that loads, or is refused by a load-time check with
        // nothing changed.
        let mut valid = wat::parse_str(CALLER).unwrap();
        for (i, b) in bytes.iter().enumerate().take(16) {
            let at = (usize::from(*b) * 7 + i * 13) % valid.len();
            valid[at] ^= b.wrapping_add(1);
        }
        let Ok(artifact) = graft_runtime::compile(&valid, graft_runtime::Target::Native) else {
            return Ok(());
        };
        match rt.load("p", &artifact, Capabilities::ALL) {
            Ok(id) => {
                let list = rt.list();
                prop_assert_eq!(list.len(), 1);
                prop_assert_eq!((list[0].id, list[0].point.as_str(), list[0].module_bytes), (id, "p", artifact.len()));
                prop_assert_eq!(rt.stats(id).map(|s| s.calls), Some(0));
                // The point takes one graft: a second is refused, and the
                // first stays as it was.
                let loaded = snapshot(&rt);
                let full = rt.load("p", &artifact, Capabilities::ALL).unwrap_err();
                prop_assert_eq!(full, LoadError::PointFull("p".into()));
                prop_assert_eq!(snapshot(&rt), loaded);
            }
            Err(refused) => {
                prop_assert!(
                    matches!(
                        refused,
                        LoadError::ForbiddenImport { .. }
                            | LoadError::ImportSignature { .. }
                            | LoadError::MissingExport(_)
                            | LoadError::ExportSignature { .. }
                            | LoadError::Instantiate(_)
                    ),
                    "{:?}",
                    refused
                );
                prop_assert!(!refused.to_string().is_empty());
                prop_assert_eq!(snapshot(&rt), before);
            }
        }
    }

    #[test]
    fn arbitrary_accessor_arguments_never_panic_and_aborts_change_nothing(
        calls in proptest::collection::vec((0i32..10, any::<i32>(), any::<i32>(), any::<i64>()), 1..20)
    ) {
        let mut rt = runtime();
        rt.load("p", &caller(), Capabilities::ALL).unwrap();
        let mut context = b"0123456789abcdef".to_vec();
        for (which, a, b, c) in calls {
            let before = (context.clone(), (0..4).map(|i| rt.state().counter(i)).collect::<Vec<_>>());
            let faults = rt.faults().entries().count();
            let out = rt.invoke("p", &mut context, &[Val::I32(which), Val::I32(a), Val::I32(b), Val::I64(c)], |_| vec![Val::I32(-1)]);
            let aborted = rt.faults().entries().count() > faults;
            prop_assert_eq!(out[0].i32(), Some(if aborted { -1 } else { 0 }));
            if aborted {
                let after = (context.clone(), (0..4).map(|i| rt.state().counter(i)).collect::<Vec<_>>());
                prop_assert_eq!(before, after);
            }
            if !rt.is_grafted("p") {
                // Unloaded after K failures: load it again and go on.
                rt.load("p", &caller(), Capabilities::ALL).unwrap();
            }
        }
        prop_assert_eq!(rt.state().locks_held(), 0, "no lock outlives its transaction");
    }
}
