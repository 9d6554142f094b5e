//! The soak's guarantee on every test run: `http` and `kv` under steady
//! load for a minute while 100 graft operations churn through both control
//! channels (hostile modules among them) and `kv` warm-reboots twice; no
//! request fails outside the reboots' windows, no acknowledged write is
//! lost, neither heap grows by more than 5%, and every graft operation
//! ends as it must. `cargo xtask bench soak` is the long run.

mod kv;

use xtask::bench::soak::report::Report;
use xtask::bench::soak::{Options, soak};
use xtask::qemu::Accel;

#[test]
fn a_minute_of_load_churn_and_warm_reboots_leaks_and_fails_nothing() {
    let options = Options {
        minutes: 1.0,
        churns: 100,
        reboots: 2,
        release: false,
        accel: Accel::Tcg,
    };
    let soak = soak(options, &tests::image("http"), &kv::fault_image())
        .unwrap_or_else(|e| panic!("the soak did not run to its end: {e:#}"));
    let report = Report::new(&soak);
    let json = xtask::bench::out_dir().join("soak-test.json");
    std::fs::write(&json, report.json().to_string()).expect("writing the soak's samples");
    let missed = report.missed();
    assert!(missed.is_empty(), "{missed:?}\n{}", report.markdown());
}
