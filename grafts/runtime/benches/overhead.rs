//! VINO's overhead table, measured on the host: prints one JSON object
//! (nanoseconds per operation, medians of repeated batches) that
//! `cargo xtask bench grafts` turns into the report.

use std::cell::Cell;
use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use grafts::{Capabilities, Clock, HostState, Limits, PointSpec, Runtime, Val, ValType};

struct Tsc(Cell<u64>);
impl Clock for Tsc {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
}

/// Median over 15 batches of the per-iteration time of `f`, in ns.
fn measure(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

fn module(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/grafts/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask grafts)", path.display()))
}

fn state() -> HostState {
    HostState::new(16, Limits::default(), Rc::new(Tsc(Cell::new(0))))
}

struct Sample {
    name: &'static str,
    point: PointSpec,
    module: &'static str,
    caps: &'static str,
    context: Vec<u8>,
    args: Vec<Val>,
    native: Box<dyn FnMut()>,
}

fn samples() -> Vec<Sample> {
    let sched_ctx: Vec<u8> = [(1u8, 0u8), (5, 1), (5, 2), (5, 1)]
        .iter()
        .flat_map(|&(p, g)| [p, g, 0, 0])
        .collect();
    let evict_ctx: Vec<u8> = [3u64, 9, 100, 2]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    let mut cipher_block = vec![7u8; 4096];
    let mut cipher_point = PointSpec::replace("cache.filter", &[ValType::I64], &[ValType::I32]);
    cipher_point.fuel = 5_000_000;
    let mut last_group = 255u8;
    vec![
        Sample {
            name: "read-ahead",
            point: PointSpec::replace("cache.readahead", &[ValType::I64], &[ValType::I64]),
            module: "strided-readahead",
            caps: "maps",
            context: Vec::new(),
            args: vec![Val::I64(40)],
            native: Box::new(|| {
                black_box(graft_strided_readahead::prefetch(black_box(40), 33, 7));
            }),
        },
        Sample {
            name: "page eviction",
            point: PointSpec::replace("cache.evict", &[ValType::I32], &[ValType::I32]),
            module: "keep-hot",
            caps: "context",
            context: evict_ctx.clone(),
            args: vec![Val::I32(4)],
            native: Box::new(move || {
                let blocks = evict_ctx
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
                black_box(graft_keep_hot::victim(blocks));
            }),
        },
        Sample {
            name: "scheduling",
            point: PointSpec::replace("sched.pick", &[ValType::I32], &[ValType::I32]),
            module: "priority-sched",
            caps: "context,maps",
            context: sched_ctx.clone(),
            args: vec![Val::I32(4)],
            native: Box::new(move || {
                let tasks = sched_ctx.chunks(4).map(|t| (t[0], t[1]));
                if let Some(i) = graft_priority_sched::choose(tasks, last_group) {
                    last_group = sched_ctx[i * 4 + 1];
                }
                black_box(last_group);
            }),
        },
        Sample {
            name: "encryption",
            point: cipher_point,
            module: "stream-cipher",
            caps: "context,context-write",
            context: vec![7u8; 4096],
            args: vec![Val::I64(9)],
            native: Box::new(move || {
                graft_stream_cipher::apply(9, 0, &mut cipher_block);
                black_box(&cipher_block);
            }),
        },
    ]
}

fn main() {
    // Transaction mechanics, independent of any graft.
    let mut s = state();
    let begin_commit = measure(200_000, || {
        s.begin(1);
        s.commit();
    });
    let begin_abort = measure(200_000, || {
        s.begin(1);
        s.abort();
    });
    let abort10 = measure(100_000, || {
        s.begin(1);
        for i in 0..10 {
            let _ = s.counter_add(i, 1);
        }
        s.abort();
    });
    let lock = measure(200_000, || {
        s.begin(1);
        let _ = s.lock(3);
        s.commit();
    }) - begin_commit;

    // Indirection: a graft point with no graft vs calling the default directly.
    let mut rt = Runtime::new(4, Limits::default(), Rc::new(Tsc(Cell::new(0))));
    rt.declare(PointSpec::replace(
        "empty",
        &[ValType::I32],
        &[ValType::I32],
    ))
    .unwrap();
    let default = |args: &[Val]| vec![Val::I32(args[0].i32().unwrap_or(0) + 1)];
    let mut ctx = Vec::new();
    let direct = measure(1_000_000, || {
        black_box(default(black_box(&[Val::I32(1)])));
    });
    let empty = rt.point_id("empty").unwrap();
    let via_point = measure(1_000_000, || {
        black_box(rt.invoke_at(empty, &mut ctx, black_box(&[Val::I32(1)]), default));
    });

    // A null graft: begin → call → validate → commit.
    let null = wat::parse_str(
        r#"(module (func (export "graft_main") (param i32) (result i32) (local.get 0)))"#,
    )
    .unwrap();
    rt.declare(PointSpec::replace("null", &[ValType::I32], &[ValType::I32]))
        .unwrap();
    rt.load("null", &null, Capabilities::NONE).unwrap();
    let null_graft = measure(200_000, || {
        black_box(rt.invoke("null", &mut ctx, &[Val::I32(1)], default));
    });

    let mut rows = Vec::new();
    for mut sample in samples() {
        let mut rt = Runtime::new(4, Limits::default(), Rc::new(Tsc(Cell::new(0))));
        let name = sample.point.name.clone();
        rt.declare(sample.point).unwrap();
        rt.load(
            &name,
            &module(sample.module),
            Capabilities::parse(sample.caps).unwrap(),
        )
        .unwrap();
        let iterations = if sample.name == "encryption" {
            2_000
        } else {
            100_000
        };
        let mut context = sample.context.clone();
        let graft = measure(iterations, || {
            black_box(rt.invoke(&name, &mut context, &sample.args, |_| vec![Val::I32(0)]));
        });
        let native = measure(iterations, &mut *sample.native);
        rows.push(format!(
            r#"{{"graft":"{}","module":"{}","bytes":{},"graft_ns":{graft:.1},"native_ns":{native:.1}}}"#,
            sample.name,
            sample.module,
            module(sample.module).len()
        ));
    }
    println!(
        r#"{{"begin_commit_ns":{begin_commit:.1},"begin_abort_ns":{begin_abort:.1},"abort10_ns":{abort10:.1},"lock_ns":{lock:.1},"direct_ns":{direct:.2},"via_point_ns":{via_point:.2},"null_graft_ns":{null_graft:.1},"samples":[{}]}}"#,
        rows.join(",")
    );
}
