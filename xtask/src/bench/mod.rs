//! `cargo xtask bench <what>...`: measurements, never pass/fail tests.
//!
//! Each benchmark writes Markdown and JSON (and an SVG plot where there is a
//! distribution) under `target/bench/`, prints the reference figures from
//! `shared/ANCHORS.md` beside ours, and checks its targets as PASS or MISS
//! without failing the command on a miss (except `soak`, whose targets are
//! guarantees). Every timing names its mode.

pub mod boot;
pub mod boot_costs;
pub mod costs;
pub mod exits;
pub mod grafts_http;
pub mod grafts_image;
pub mod grafts_table;
pub mod kv;
pub mod linux;
pub mod net;
pub mod report;
pub mod size;
pub mod soak;

use std::path::PathBuf;

/// What can be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Stripped size of every image.
    Size,
    /// Launch → ready and guest entry → main, beside a Linux guest.
    Boot,
    /// Graft overheads (VINO's table on the host and in the image; HTTP with a filter graft).
    Grafts,
    /// TCP round trip and HTTP throughput beside a Linux guest and the host; RAM floor.
    Net,
    /// redis-benchmark against `kv` beside Redis in a Linux guest; warm reboot and recovery.
    Kv,
    /// Only what transfers to KVM, no timings: guest instructions and
    /// exit-class events per boot phase and per request (part of boot, net
    /// and kv too).
    Exits,
    /// `http` and `kv` for `--minutes` under load, graft churn and warm
    /// reboots: nothing may leak or fail (a missed target fails the command).
    Soak,
}

/// `bench exits`: the instruction and exit-event counts of `boot`, `net`
/// and `kv` without their timings (appended to the same reports).
pub fn exits_only(accel: crate::qemu::Accel) -> anyhow::Result<()> {
    let (accel, why) = accel.resolve();
    eprintln!("bench exits: accel {} ({why})", accel.name().to_uppercase());
    boot::costs(accel)?;
    let elves = crate::images::build(&["echo".to_string(), "http".to_string()], true, None)?;
    net::costs::run(&elves[0], &elves[1], accel)?;
    kv::costs(accel)
}

/// Where reports go.
pub fn out_dir() -> PathBuf {
    let dir = crate::root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Median and other order statistics of a sample.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of a sample, ignoring NaNs (runs that measured nothing);
/// `None` when nothing is left. The one definition every report uses.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(percentile(&values, 50.0))
}

/// The smallest and largest value of a sample (NaNs ignored), for the
/// min–max spread every timing table carries.
pub fn spread(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| !v.is_nan())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// PASS or MISS.
/// A report's "Not measured" section: each system's errors, one line
/// each, or nothing when every figure was measured.
pub fn not_measured<'a>(errors: impl IntoIterator<Item = (&'a str, &'a [String])>) -> String {
    let lines: Vec<String> = errors
        .into_iter()
        .flat_map(|(name, errors)| errors.iter().map(move |e| format!("- {name}: {e}")))
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n## Not measured\n\n{}\n", lines.join("\n"))
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_measured_lists_each_systems_errors_or_nothing() {
        let errors = ["boot timed out".to_string(), "wrk failed".to_string()];
        let md = super::not_measured([("Rootstock", &errors[..]), ("Linux guest", &[][..])]);
        assert_eq!(
            md,
            "\n## Not measured\n\n- Rootstock: boot timed out\n- Rootstock: wrk failed\n"
        );
        assert_eq!(super::not_measured([("Rootstock", &[][..])]), "");
    }
}
