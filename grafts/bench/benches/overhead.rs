//! VINO's overhead table on the host: the same measurement as the
//! `graftbench` image (`graft_bench`), on std's clock; prints one
//! JSON object that `cargo xtask bench grafts` turns into the report.

use std::rc::Rc;
use std::time::Instant;

use graft_bench::{self as bench, Modules, Plan};
use graft_host::GraftHost;

fn main() {
    let compile =
        |wasm: &[u8]| graft_runtime::compile(wasm, graft_runtime::Target::Native).unwrap();
    let module = |name: &str| compile(graft_fixtures::wasm(name));
    let null = compile(graft_runtime::testing::NULL_GRAFT);
    let (readahead, evict) = (module("strided-readahead"), module("keep-hot"));
    let (sched, cipher) = (module("priority-sched"), module("stream-cipher"));
    let modules = Modules {
        readahead: &readahead,
        evict: &evict,
        sched: &sched,
        cipher: &cipher,
    };
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let clock = Rc::new(graft_runtime::testing::Ticks::default());
    let mut host = GraftHost::new(clock, graft_control::TrustedKeys::default());
    let samples = bench::samples(modules, bench::natives());
    match bench::run(&mut host, &now, Plan::HOST, &null, samples) {
        Ok(table) => println!("{table}"),
        Err(e) => {
            eprintln!("overhead: {e}");
            std::process::exit(1);
        }
    }
}
