//! VINO's overhead table, measured where the graft host runs: the
//! transaction mechanics (begin + commit, begin + abort, abort with ten
//! undo records, a lock), an empty graft point against a direct call
//! (indirection), a null graft (begin → call → validate → commit), and a
//! call of each of the four sample grafts beside its body compiled
//! natively, so that graft − native is what the sandbox costs (VINO's SFI
//! row).
//!
//! The clock is passed in (the `graftbench` image gives the TSC-based
//! kernel clock; a host test gives a fake one), and so are the sample
//! modules and their native bodies: this module knows the points, contexts
//! and arguments (the same as `grafts/runtime/benches/overhead.rs`), not
//! where the bytes come from. Every figure is the median over
//! [`Plan::batches`] batches of the per-iteration time; a batch repeats the
//! operation as often as fits in [`Plan::batch_ns`] (found by a warm-up
//! that doubles the count), so the same plan suits a fast host and TCG.
//!
//! Artifacts (modules compiled for where this runs: the image's target
//! by `cargo xtask build graftbench`, the host's by the host benchmark) are
//! installed with [`graft_runtime::Runtime::load`] directly: what is measured is a
//! call, not the signed-envelope border, which runs once per load. The
//! null graft is [`graft_runtime::testing::NULL_GRAFT`] compiled.
//!
//! This crate is a test fixture: product images never link it.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use graft_runtime::{Capabilities, PointSpec, Val, ValType, Vals};
use serde_json::{Value, json};

use graft_host::GraftHost;

/// How each figure is measured.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Batches per figure (the median is reported, with p10 and p90).
    pub batches: usize,
    /// Target length of one batch, in clock nanoseconds.
    pub batch_ns: u64,
    /// Most iterations in one batch.
    pub max_iterations: u32,
}

impl Plan {
    /// Inside an image under emulation: 15 batches of about 20 ms.
    pub const IMAGE: Plan = Plan {
        batches: 15,
        batch_ns: 20_000_000,
        max_iterations: 1 << 20,
    };
    /// On the host: 15 batches of about 20 ms, up to 4 Mi iterations each.
    pub const HOST: Plan = Plan {
        batches: 15,
        batch_ns: 20_000_000,
        max_iterations: 1 << 22,
    };
}

/// One figure: per-iteration nanoseconds over the batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub median_ns: f64,
    pub p10_ns: f64,
    pub p90_ns: f64,
    /// Iterations per batch.
    pub iterations: u32,
}

impl Figure {
    fn json(&self) -> Value {
        json!({
            "median_ns": self.median_ns,
            "p10_ns": self.p10_ns,
            "p90_ns": self.p90_ns,
            "iterations": self.iterations,
        })
    }
}

fn elapsed(now: &dyn Fn() -> u64, iterations: u32, f: &mut impl FnMut()) -> u64 {
    let start = now();
    for _ in 0..iterations {
        f();
    }
    now().saturating_sub(start)
}

/// Measures `f` under `plan` on the clock `now` (nanoseconds).
pub fn measure(now: &dyn Fn() -> u64, plan: Plan, mut f: impl FnMut()) -> Figure {
    // Warm-up (and, under TCG, translation): double until a batch is long enough.
    let mut iterations = 1u32;
    loop {
        let took = elapsed(now, iterations, &mut f);
        if took >= plan.batch_ns || iterations >= plan.max_iterations {
            break;
        }
        let doubled = u64::from(iterations) * 2;
        let scaled = (u64::from(iterations) * plan.batch_ns)
            .checked_div(took)
            .map_or(doubled, |n| n.clamp(1, doubled));
        iterations = u32::try_from(scaled.max(u64::from(iterations) + 1))
            .unwrap_or(u32::MAX)
            .min(plan.max_iterations);
    }
    let mut batches: Vec<f64> = (0..plan.batches.max(1))
        .map(|_| elapsed(now, iterations, &mut f) as f64 / f64::from(iterations))
        .collect();
    batches.sort_by(f64::total_cmp);
    let at = |p: usize| batches[(batches.len() - 1) * p / 100];
    Figure {
        median_ns: at(50),
        p10_ns: at(10),
        p90_ns: at(90),
        iterations,
    }
}

/// The scheduling sample's context: four ready tasks `[priority, group, 0, 0]`.
pub fn sched_context() -> Vec<u8> {
    [(1u8, 0u8), (5, 1), (5, 2), (5, 1)]
        .iter()
        .flat_map(|&(p, g)| [p, g, 0, 0])
        .collect()
}

/// The eviction sample's context: four candidate blocks, LRU first.
pub fn evict_context() -> Vec<u8> {
    [3u64, 9, 100, 2]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect()
}

/// The encryption sample's block: 4 KiB.
pub fn cipher_block() -> Vec<u8> {
    vec![7u8; 4096]
}

/// The read-ahead sample's arguments: block 40, after 33 with stride 7.
pub const READAHEAD_BLOCK: i64 = 40;
/// The encryption sample's block number.
pub const CIPHER_BLOCK_NUMBER: i64 = 9;

/// The four sample modules, compiled for the engine that runs them.
pub struct Modules<'a> {
    pub readahead: &'a [u8],
    pub evict: &'a [u8],
    pub sched: &'a [u8],
    pub cipher: &'a [u8],
}

/// A native body: one run of a sample's algorithm on the same input.
pub type Native<'a> = Box<dyn FnMut() + 'a>;

/// The samples' bodies compiled into the caller (`None`: not available here).
#[derive(Default)]
pub struct Natives<'a> {
    pub readahead: Option<Native<'a>>,
    pub evict: Option<Native<'a>>,
    pub sched: Option<Native<'a>>,
    pub cipher: Option<Native<'a>>,
}

/// The samples' own algorithms, compiled into the caller, on the inputs
/// [`samples`] gives their grafts.
pub fn natives() -> Natives<'static> {
    let evict = evict_context();
    let sched = sched_context();
    let mut last_group = 255u8;
    let mut block = cipher_block();
    Natives {
        readahead: Some(Box::new(|| {
            let block = black_box(READAHEAD_BLOCK);
            black_box(graft_strided_readahead::prefetch(block, 33, 7));
        })),
        evict: Some(Box::new(move || {
            let blocks = black_box(&evict)
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
            black_box(graft_keep_hot::victim(blocks));
        })),
        sched: Some(Box::new(move || {
            let tasks = black_box(&sched).chunks(4).map(|t| (t[0], t[1]));
            if let Some(i) = graft_priority_sched::choose(tasks, last_group) {
                last_group = sched[i * 4 + 1];
            }
            black_box(last_group);
        })),
        cipher: Some(Box::new(move || {
            graft_stream_cipher::apply(CIPHER_BLOCK_NUMBER as u64, 0, &mut block);
            black_box(&block);
        })),
    }
}

/// One of VINO's four sample grafts.
pub struct Sample<'a> {
    /// VINO's column.
    pub name: &'static str,
    /// The graft crate's file stem.
    pub module_name: &'static str,
    pub module: &'a [u8],
    pub point: PointSpec,
    pub capabilities: &'static str,
    pub context: Vec<u8>,
    pub args: Vec<Val>,
    pub native: Option<Native<'a>>,
}

/// The four samples with the points, contexts and arguments of the host
/// benchmark.
pub fn samples<'a>(modules: Modules<'a>, natives: Natives<'a>) -> Vec<Sample<'a>> {
    let mut cipher_point = PointSpec::replace("cache.filter", &[ValType::I64], &[ValType::I32]);
    cipher_point.fuel = 5_000_000;
    vec![
        Sample {
            name: "read-ahead",
            module_name: "strided-readahead",
            module: modules.readahead,
            point: PointSpec::replace("cache.readahead", &[ValType::I64], &[ValType::I64]),
            capabilities: "maps",
            context: Vec::new(),
            args: vec![Val::I64(READAHEAD_BLOCK)],
            native: natives.readahead,
        },
        Sample {
            name: "page eviction",
            module_name: "keep-hot",
            module: modules.evict,
            point: PointSpec::replace("cache.evict", &[ValType::I32], &[ValType::I32]),
            capabilities: "context",
            context: evict_context(),
            args: vec![Val::I32(4)],
            native: natives.evict,
        },
        Sample {
            name: "scheduling",
            module_name: "priority-sched",
            module: modules.sched,
            point: PointSpec::replace("sched.pick", &[ValType::I32], &[ValType::I32]),
            capabilities: "context,maps",
            context: sched_context(),
            args: vec![Val::I32(4)],
            native: natives.sched,
        },
        Sample {
            name: "encryption",
            module_name: "stream-cipher",
            module: modules.cipher,
            point: cipher_point,
            capabilities: "context,context-write",
            context: cipher_block(),
            args: vec![Val::I64(CIPHER_BLOCK_NUMBER)],
            native: natives.cipher,
        },
    ]
}

fn setup_error(what: &str, error: impl ToString) -> String {
    let mut message = String::from(what);
    message.push_str(": ");
    message.push_str(&error.to_string());
    message
}

/// Measures VINO's table on `host` (which must not have the points
/// `bench.empty`, `bench.null` or the samples' declared yet) and returns
/// it as JSON: the host benchmark's keys (`*_ns` medians, `samples`), and
/// under `figures` every measurement's median, p10, p90 and iterations.
pub fn run(
    host: &mut GraftHost,
    now: &dyn Fn() -> u64,
    plan: Plan,
    null_module: &[u8],
    samples: Vec<Sample<'_>>,
) -> Result<Value, String> {
    let mut figures = serde_json::Map::new();
    let mut record = |key: &str, figure: Figure| {
        figures.insert(key.into(), figure.json());
        figure.median_ns
    };

    // Transaction mechanics, on the host's own state, independent of any graft.
    let (begin_commit, begin_abort, abort10, begin_lock_commit) = {
        let runtime = host.runtime();
        let mut s = runtime.state();
        let begin_commit = measure(now, plan, || {
            s.begin(1);
            s.commit();
        });
        let begin_abort = measure(now, plan, || {
            s.begin(1);
            s.abort();
        });
        let abort10 = measure(now, plan, || {
            s.begin(1);
            for i in 0..10 {
                let _ = s.counter_add(i, 1);
            }
            s.abort();
        });
        let lock = measure(now, plan, || {
            s.begin(1);
            let _ = s.lock(3);
            s.commit();
        });
        (begin_commit, begin_abort, abort10, lock)
    };
    let begin_commit_ns = record("begin_commit", begin_commit);
    let begin_abort_ns = record("begin_abort", begin_abort);
    let abort10_ns = record("abort10", abort10);
    let lock_ns = record("begin_lock_commit", begin_lock_commit) - begin_commit_ns;

    // Indirection: a graft point with no graft vs calling the default
    // directly. This default returns no values, so that no allocation
    // (about 0.2 µs under TCG) drowns the few nanoseconds of difference.
    let bare = |_: &[Val]| Vec::new();
    let empty = host
        .declare(PointSpec::replace(
            "bench.empty",
            &[ValType::I32],
            &[ValType::I32],
        ))
        .map_err(|e| setup_error("declaring bench.empty", e))?;
    let mut context = Vec::new();
    let direct = measure(now, plan, || {
        black_box(bare(black_box(&[Val::I32(1)])));
    });
    let runtime = host.runtime();
    let via_point = measure(now, plan, || {
        black_box(runtime.invoke_at(empty, &mut context, black_box(&[Val::I32(1)]), bare));
    });
    let direct_ns = record("direct", direct);
    let via_point_ns = record("via_point", via_point);

    // A null graft: begin → call → validate → commit.
    let null = host
        .declare(PointSpec::replace(
            "bench.null",
            &[ValType::I32],
            &[ValType::I32],
        ))
        .map_err(|e| setup_error("declaring bench.null", e))?;
    let runtime = host.runtime();
    runtime
        .load("bench.null", null_module, Capabilities::NONE)
        .map_err(|e| setup_error("loading the null graft", e))?;
    // What is measured must be a commit, not an abort.
    if runtime.try_invoke_at(null, &mut context, &[Val::I32(1)]) != Some(Vals::one(Val::I32(1))) {
        return Err("the null graft did not commit its argument".into());
    }
    let null_graft = measure(now, plan, || {
        black_box(runtime.try_invoke_at(null, &mut context, &[Val::I32(1)]));
    });
    let null_graft_ns = record("null_graft", null_graft);

    let mut rows = Vec::new();
    for mut sample in samples {
        let name = sample.point.name.clone();
        let point = host
            .declare(sample.point)
            .map_err(|e| setup_error("declaring a sample's point", e))?;
        let granted = Capabilities::parse(sample.capabilities)
            .map_err(|c| setup_error("a sample's grant", c))?;
        let runtime = host.runtime();
        runtime
            .load(&name, sample.module, granted)
            .map_err(|e| setup_error(sample.module_name, e))?;
        let mut context = sample.context.clone();
        let graft = measure(now, plan, || {
            black_box(runtime.try_invoke_at(point, &mut context, &sample.args));
        });
        let native = sample.native.as_mut().map(|body| measure(now, plan, body));
        let mut row = json!({
            "graft": sample.name,
            "module": sample.module_name,
            "bytes": sample.module.len(),
            "graft_ns": graft.median_ns,
            "native_ns": native.map(|n| n.median_ns),
            "figures": { "graft": graft.json() },
        });
        if let Some(native) = native {
            row["figures"]["native"] = native.json();
        }
        rows.push(row);
    }
    Ok(json!({
        "statistic": "median",
        "batches": plan.batches,
        "batch_ns": plan.batch_ns,
        "begin_commit_ns": begin_commit_ns,
        "begin_abort_ns": begin_abort_ns,
        "abort10_ns": abort10_ns,
        "lock_ns": lock_ns,
        "direct_ns": direct_ns,
        "via_point_ns": via_point_ns,
        "null_graft_ns": null_graft_ns,
        "figures": figures,
        "samples": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::Cell;

    struct Fake;
    impl graft_runtime::Clock for Fake {
        fn now_ns(&self) -> u64 {
            0
        }
    }

    #[test]
    fn measures_the_table_with_the_clock_it_is_given() {
        // A fake clock that advances only when the measured body runs: the
        // median is exactly its per-iteration cost.
        let clock = Cell::new(0u64);
        let now = || clock.get();
        let plan = Plan {
            batches: 5,
            batch_ns: 1_000,
            max_iterations: 1 << 16,
        };
        let figure = measure(&now, plan, || clock.set(clock.get() + 100));
        assert_eq!(figure.median_ns, 100.0);
        assert_eq!(figure.iterations, 10);

        // The whole table, on std's clock, with stand-in modules of the
        // samples' signatures, compiled for this host.
        let compile = |text: &str| {
            graft_runtime::compile(
                &wat::parse_str(text).unwrap(),
                graft_runtime::Target::Native,
            )
            .unwrap()
        };
        let module = |ty: &str| {
            compile(&alloc::format!(
                r#"(module (func (export "graft_main") (param {ty}) (result {ty}) (local.get 0)))"#
            ))
        };
        let (i64_module, i32_module) = (module("i64"), module("i32"));
        let cipher = compile(
            r#"(module (func (export "graft_main") (param i64) (result i32) (i32.const 0)))"#,
        );
        let null = graft_runtime::compile(
            graft_runtime::testing::NULL_GRAFT,
            graft_runtime::Target::Native,
        )
        .unwrap();
        let modules = Modules {
            readahead: &i64_module,
            evict: &i32_module,
            sched: &i32_module,
            cipher: &cipher,
        };
        let natives = Natives {
            sched: Some(Box::new(|| {
                black_box(sched_context());
            })),
            ..Natives::default()
        };
        let mut host = GraftHost::new(Rc::new(Fake), graft_control::TrustedKeys::from_hex(""));
        let start = std::time::Instant::now();
        let now = || start.elapsed().as_nanos() as u64;
        let plan = Plan {
            batches: 3,
            batch_ns: 100_000,
            max_iterations: 1 << 16,
        };
        let table = run(&mut host, &now, plan, &null, samples(modules, natives)).unwrap();
        for key in [
            "begin_commit_ns",
            "abort10_ns",
            "null_graft_ns",
            "via_point_ns",
        ] {
            assert!(table[key].as_f64().unwrap() > 0.0, "{key}: {table}");
        }
        let rows = table["samples"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows[0]["native_ns"].is_null());
        assert!(rows[2]["native_ns"].as_f64().unwrap() > 0.0);
        assert!(rows[3]["graft_ns"].as_f64().unwrap() > 0.0);
        assert_eq!(
            table["figures"]["abort10"]["iterations"]
                .as_u64()
                .map(|n| n > 0),
            Some(true)
        );
    }
}
