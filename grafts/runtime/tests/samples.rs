//! The Rust sample and hostile grafts (built from `grafts/samples/` by the
//! SDK), run in the runtime against a model of the host state: each sample
//! changes behaviour the way it should, each hostile one is contained.
//!
//! The `.wasm` modules come from `graft_fixtures`, compiled from the
//! samples' current sources.

use std::rc::Rc;

use graft_runtime::testing::Ticks;
use graft_runtime::{AbortCause, Capabilities, Limits, PointSpec, Runtime, Val, ValType};

fn module(name: &str) -> Vec<u8> {
    graft_runtime::compile(graft_fixtures::wasm(name), graft_runtime::Target::Native)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn runtime(spec: PointSpec) -> Runtime {
    let mut rt = Runtime::new(4, Limits::default(), Rc::new(Ticks::default()));
    rt.declare(spec).unwrap();
    rt
}

#[test]
fn packet_filter_drops_only_the_blocked_port_and_counts() {
    let mut rt = runtime(PointSpec::event(
        "net.rx",
        &[ValType::I32],
        &[ValType::I32],
        4,
    ));
    let id = rt
        .load(
            "net.rx",
            &module("packet-filter"),
            Capabilities::parse("context,counters").unwrap(),
        )
        .unwrap();
    let mut verdict = |frame: Vec<u8>| {
        let len = frame.len() as i32;
        let mut ctx = frame;
        rt.dispatch("net.rx", &mut ctx, &[Val::I32(len)])
            .into_iter()
            .map(|(_, r)| r.unwrap()[0].i32().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(verdict(graft_fixtures::tcp_frame(8081)), [1]);
    assert_eq!(verdict(graft_fixtures::tcp_frame(80)), [0]);
    let mut udp = graft_fixtures::tcp_frame(8081);
    udp[23] = 17;
    assert_eq!(
        verdict(udp),
        Vec::<i32>::new(),
        "the guard skips non-TCP frames"
    );
    assert_eq!(rt.state().counter(0), Some(1));
    assert_eq!(rt.stats(id).unwrap().guarded_out, 1);
}

#[test]
fn priority_scheduler_changes_the_order_and_rotates_groups() {
    let mut rt = runtime(PointSpec::replace(
        "sched.pick",
        &[ValType::I32],
        &[ValType::I32],
    ));
    rt.load(
        "sched.pick",
        &module("priority-sched"),
        Capabilities::parse("context,maps").unwrap(),
    )
    .unwrap();
    // (priority, group) per ready task; the default policy would pick 0.
    let mut ctx: Vec<u8> = [(1, 0), (5, 1), (5, 2), (5, 1)]
        .iter()
        .flat_map(|&(p, g)| [p, g, 0, 0])
        .collect();
    let mut picks = Vec::new();
    for _ in 0..3 {
        let out = rt.invoke("sched.pick", &mut ctx, &[Val::I32(4)], |_| {
            vec![Val::I32(0)]
        });
        picks.push(out[0].i32().unwrap());
    }
    assert_eq!(picks, [1, 2, 1]);
}

#[test]
fn keep_hot_eviction_spares_the_hot_set() {
    let mut rt = runtime(PointSpec::replace(
        "cache.evict",
        &[ValType::I32],
        &[ValType::I32],
    ));
    rt.load(
        "cache.evict",
        &module("keep-hot"),
        Capabilities::parse("context").unwrap(),
    )
    .unwrap();
    let blocks: [u64; 4] = [3, 9, 100, 2];
    let mut ctx: Vec<u8> = blocks.iter().flat_map(|b| b.to_le_bytes()).collect();
    let out = rt.invoke("cache.evict", &mut ctx, &[Val::I32(4)], |_| {
        vec![Val::I32(0)]
    });
    assert_eq!(
        out[0].i32(),
        Some(2),
        "LRU would evict hot block 3; the graft evicts block 100"
    );
}

#[test]
fn strided_readahead_predicts_what_sequential_would_miss() {
    let mut rt = runtime(PointSpec::replace(
        "cache.readahead",
        &[ValType::I64],
        &[ValType::I64],
    ));
    rt.load(
        "cache.readahead",
        &module("strided-readahead"),
        Capabilities::parse("maps").unwrap(),
    )
    .unwrap();
    let sequential = |b: i64| b + 1;
    let mut hits = (0, 0);
    let mut prefetched = -1;
    for block in (0..20).map(|i| 5 + i * 7) {
        if block == prefetched {
            hits.0 += 1;
        }
        if block == sequential(block - 7) {
            hits.1 += 1;
        }
        let out = rt.invoke(
            "cache.readahead",
            &mut Vec::new(),
            &[Val::I64(block)],
            |_| vec![Val::I64(-1)],
        );
        prefetched = out[0].i64().unwrap();
    }
    // Two accesses teach the stride; from the fourth block on every one was prefetched.
    assert_eq!(
        hits,
        (17, 0),
        "the graft prefetched 17 of 20 strided blocks, sequential none"
    );
}

#[test]
fn stream_cipher_round_trips_and_changes_the_bytes() {
    let mut spec = PointSpec::replace("cache.filter", &[ValType::I64], &[ValType::I32]);
    spec.fuel = 5_000_000; // a 4 KiB block, byte by byte
    let mut rt = runtime(spec);
    rt.load(
        "cache.filter",
        &module("stream-cipher"),
        Capabilities::parse("context,context-write").unwrap(),
    )
    .unwrap();
    let plain: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 251) as u8).collect();
    let mut block = plain.clone();
    rt.invoke("cache.filter", &mut block, &[Val::I64(9)], |_| {
        vec![Val::I32(-1)]
    });
    assert_ne!(block, plain);
    rt.invoke("cache.filter", &mut block, &[Val::I64(9)], |_| {
        vec![Val::I32(-1)]
    });
    assert_eq!(block, plain);
}

#[test]
fn rust_hostile_grafts_are_contained() {
    let mut rt = runtime(PointSpec::replace("p", &[ValType::I32], &[ValType::I32]));
    let spin = rt
        .load("p", &module("hostile-spin"), Capabilities::NONE)
        .unwrap();
    let out = rt.invoke("p", &mut Vec::new(), &[Val::I32(1)], |_| vec![Val::I32(-1)]);
    assert_eq!(out[0].i32(), Some(-1));
    assert_eq!(
        rt.faults().last().map(|f| f.cause),
        Some(AbortCause::FuelExhausted)
    );
    rt.unload("p", spin).unwrap();
    let id = rt
        .load(
            "p",
            &module("hostile-partial"),
            Capabilities::parse("counters,maps").unwrap(),
        )
        .unwrap();
    rt.state().set_counter(0, 11);
    let out = rt.invoke("p", &mut Vec::new(), &[Val::I32(1)], |_| vec![Val::I32(-1)]);
    assert_eq!(out[0].i32(), Some(-1));
    assert_eq!(
        rt.faults().last().map(|f| f.cause),
        Some(AbortCause::Unreachable)
    );
    let counters = {
        let state = rt.state();
        (state.counter(0), state.counter(1))
    };
    assert_eq!(counters, (Some(11), Some(0)));
    assert_eq!(rt.state().map_entries(id), 0);
}

#[test]
fn the_sdk_matches_the_abi_table() {
    let bytes = module("abi-check");
    let spec = || PointSpec::replace("p", &[ValType::I32], &[ValType::I32]);
    // Every binding's name and signature is accepted...
    let mut rt = runtime(spec());
    rt.load("p", &bytes, Capabilities::ALL)
        .expect("the SDK's imports match the ABI table");
    // ...and every accessor of the table is really imported: without its
    // capability the load is refused, naming it.
    for accessor in graft_runtime::abi::ACCESSORS {
        let mut rt = runtime(spec());
        let error = rt
            .load("p", &bytes, Capabilities::ALL.without(accessor.capability))
            .unwrap_err();
        assert!(
            matches!(error, graft_runtime::LoadError::ForbiddenImport { .. }),
            "{}: {error:?}",
            accessor.name
        );
    }
}
