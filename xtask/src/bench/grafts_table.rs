//! The Markdown of VINO's table as measured in the image: each figure
//! beside the host's and VINO's, the spread of every in-image figure over
//! boots and batches, and the in-image targets.

use serde_json::Value;

use crate::bench::verdict;

/// The first in-image targets (the wasmi interpreter's), nanoseconds.
pub const NULL_GRAFT_TARGET_NS: f64 = 2000.0;
pub const ABORT10_TARGET_NS: f64 = 4000.0;

/// Native grafts' targets: the null graft in the image and on the host (ns),
/// each sample within `SAMPLE_FACTOR` × its native body plus the null
/// graft, and the stream cipher within `CIPHER_FACTOR` × its native body.
pub const NATIVE_NULL_TARGET_NS: f64 = 500.0;
pub const NATIVE_NULL_HOST_TARGET_NS: f64 = 60.0;
pub const SAMPLE_FACTOR: f64 = 3.0;
pub const CIPHER_FACTOR: f64 = 5.0;

/// What the wasmi interpreter measured on this kind of machine before the
/// graft engine compiled ahead of time (TCG, release, µs unless said).
const INTERPRETER: &str = "null graft 1.9–2.2 in the image and 0.12 on the host; \
    a sample call 5–14 against native bodies of 0.01–0.1; the 4 KiB stream cipher 4171 against 13.5 native (300×)";

/// VINO's figures (OSDI '96, from shared/ANCHORS.md), µs, per sample column.
const VINO_BEGIN_COMMIT: [&str; 4] = ["36+28", "52+34", "38+30", "32+32"];
const VINO_ABORT: [&str; 4] = ["29", "27", "33", "36"];
const VINO_LOCK: [&str; 4] = ["33", "34", "33", "—"];
const VINO_GRAFT: [&str; 4] = ["2", "160", "35", "166"];
const VINO_INDIRECTION: [&str; 4] = ["1", "1", "1", "—"];
const VINO_SFI: [&str; 4] = ["3", "26", "5", "187"];
const VINO_TOTAL: [&str; 4] = ["103", "307", "142", "417"];

fn ns(table: &Value, key: &str) -> f64 {
    table[key].as_f64().unwrap_or(f64::NAN)
}

/// Per-sample values of `key` in `table["samples"]`.
fn per_sample(table: &Value, key: &str) -> Vec<f64> {
    let rows = table["samples"].as_array().cloned().unwrap_or_default();
    let mut values: Vec<f64> = rows
        .iter()
        .map(|s| s[key].as_f64().unwrap_or(f64::NAN))
        .collect();
    values.resize(4, f64::NAN);
    values
}

fn us(ns: f64) -> String {
    if ns.is_nan() {
        "—".into()
    } else if ns >= 100_000.0 {
        format!("{:.0}", ns / 1000.0)
    } else {
        format!("{:.3}", ns / 1000.0)
    }
}

/// The rows of VINO's table for one measured table: (path, per sample ns, VINO).
fn rows(t: &Value) -> Vec<(&'static str, Vec<f64>, [&'static str; 4])> {
    let graft = per_sample(t, "graft_ns");
    let native = per_sample(t, "native_ns");
    let indirection = ns(t, "via_point_ns") - ns(t, "direct_ns");
    let total = graft
        .iter()
        .map(|g| g + ns(t, "begin_commit_ns") + ns(t, "lock_ns") + indirection)
        .collect();
    vec![
        (
            "transaction begin + commit",
            vec![ns(t, "begin_commit_ns"); 4],
            VINO_BEGIN_COMMIT,
        ),
        (
            "abort (10 undo records)",
            vec![ns(t, "abort10_ns"); 4],
            VINO_ABORT,
        ),
        ("lock", vec![ns(t, "lock_ns"); 4], VINO_LOCK),
        (
            "graft (sandbox entry, body, exit)",
            graft.clone(),
            VINO_GRAFT,
        ),
        ("indirection", vec![indirection; 4], VINO_INDIRECTION),
        (
            "SFI (graft − native body)",
            graft.iter().zip(&native).map(|(g, n)| g - n).collect(),
            VINO_SFI,
        ),
        ("native body", native, ["", "", "", ""]),
        ("**total**", total, VINO_TOTAL),
    ]
}

/// ` (VINO's figure)`, or nothing where VINO has none.
fn reference(vino: &str) -> String {
    if vino.is_empty() {
        String::new()
    } else {
        format!(" ({vino})")
    }
}

/// The rows of VINO's table as measured on the host (µs), VINO's figure
/// beside each: the body of the report's host section.
pub fn host_rows(host: &Value) -> String {
    let mut md = String::new();
    for (name, values, vino) in rows(host) {
        md.push_str(&format!("| {name} |"));
        for (value, vino) in values.iter().zip(vino) {
            md.push_str(&format!(" {}{} |", us(*value), reference(vino)));
        }
        md.push('\n');
    }
    md
}

/// The Markdown section: the in-image table (host and VINO beside each
/// figure), the spread of every in-image figure, and the targets.
pub fn section(mode: &str, image: &Value, host: &Value) -> String {
    let boots = image["runs"].as_u64().unwrap_or(1);
    let batches = image["batches"].as_u64().unwrap_or(0);
    let batch_ms = image["batch_ns"].as_f64().unwrap_or(f64::NAN) / 1e6;
    let mut md = format!(
        "## In the image ({mode})\n\n\
         The `graftbench` image, release build, booted under QEMU 7.2 ({mode}, `-cpu max`, one vCPU), \
         measures on the kernel clock (TSC, `unikernel::arch::clock_now`); {boots} boots, each figure \
         the **median over the boots of the median of {batches} batches** of about {batch_ms:.0} ms (the \
         iteration count per batch is found by a warm-up). The native bodies are the samples' own functions compiled into the image, so SFI is \
         graft − native, both in the image. Indirection is an empty graft point against a direct call \
         of a default that returns nothing, as on the host (the same measurement, `graft_bench`). \
         Each cell: **in image** / host (release, native CPU) \
         (VINO, OSDI '96, from shared/ANCHORS.md), µs per graft invocation.\n\n\
         | path | read-ahead | page eviction | scheduling | encryption |\n|---|---:|---:|---:|---:|\n"
    );
    for ((name, inside, vino), (_, outside, _)) in rows(image).into_iter().zip(rows(host)) {
        md.push_str(&format!("| {name} |"));
        for i in 0..4 {
            md.push_str(&format!(
                " **{}** / {}{} |",
                us(inside[i]),
                us(outside[i]),
                reference(vino[i])
            ));
        }
        md.push('\n');
    }
    md.push_str(&spread(image));
    let (null, abort10) = (ns(image, "null_graft_ns"), ns(image, "abort10_ns"));
    md.push_str(&format!(
        "\nTargets in the image ({mode}): null graft begin→call→validate→commit ≤ 2 µs: **{}** \
         ({:.3} µs; host {:.3} µs); abort with 10 undo records ≤ 4 µs: **{}** ({:.3} µs; host {:.3} µs).\n\n",
        verdict(null <= NULL_GRAFT_TARGET_NS),
        null / 1000.0,
        ns(host, "null_graft_ns") / 1000.0,
        verdict(abort10 <= ABORT10_TARGET_NS),
        abort10 / 1000.0,
        ns(host, "abort10_ns") / 1000.0,
    ));
    md.push_str(&native_targets(mode, image, host));
    if image["instructions"].is_object() {
        md.push_str(&instructions(&image["instructions"]));
    }
    md
}

/// Whether `sample` (one row of `samples`) is within its target against
/// the null graft `null`: (graft, bound, within).
fn sample_target(sample: &Value, null: f64) -> (f64, f64, bool) {
    let (graft, native) = (
        sample["graft_ns"].as_f64().unwrap_or(f64::NAN),
        sample["native_ns"].as_f64().unwrap_or(f64::NAN),
    );
    let bound = if sample["module"] == "stream-cipher" {
        CIPHER_FACTOR * native
    } else {
        SAMPLE_FACTOR * native + null
    };
    (graft, bound, graft <= bound)
}

/// The native-graft targets, in the image and on the host, with the
/// interpreter's figures beside them.
fn native_targets(mode: &str, image: &Value, host: &Value) -> String {
    let (null, host_null) = (ns(image, "null_graft_ns"), ns(host, "null_graft_ns"));
    let mut md = format!(
        "Native-graft targets ({mode}): null graft ≤ {:.1} µs in the image: **{}** ({:.3} µs), \
         ≤ {:.2} µs on the host: **{}** ({:.3} µs). Each sample ≤ {SAMPLE_FACTOR}× its native body + the null \
         graft, the stream cipher ≤ {CIPHER_FACTOR}× its native body (in the image / on the host):\n\n\
         | sample | image: graft / bound | | host: graft / bound | |\n|---|---:|---|---:|---|\n",
        NATIVE_NULL_TARGET_NS / 1000.0,
        verdict(null <= NATIVE_NULL_TARGET_NS),
        null / 1000.0,
        NATIVE_NULL_HOST_TARGET_NS / 1000.0,
        verdict(host_null <= NATIVE_NULL_HOST_TARGET_NS),
        host_null / 1000.0,
    );
    let host_samples = host["samples"].as_array().cloned().unwrap_or_default();
    for (i, sample) in image["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (graft, bound, ok) = sample_target(sample, null);
        let on_host = host_samples.get(i).unwrap_or(&Value::Null);
        let (host_graft, host_bound, host_ok) = sample_target(on_host, host_null);
        md.push_str(&format!(
            "| {} | {} / {} | **{}** | {} / {} | **{}** |\n",
            sample["graft"].as_str().unwrap_or("?"),
            us(graft),
            us(bound),
            verdict(ok),
            us(host_graft),
            us(host_bound),
            verdict(host_ok),
        ));
    }
    md.push_str(&format!(
        "\nThe interpreter before (wasmi): {INTERPRETER}.\n\n"
    ));
    md
}

/// The table of one boot under `-icount shift=0`, where the kernel clock
/// counts guest instructions: what each operation costs on any host.
fn instructions(table: &Value) -> String {
    let count = |v: f64| format!("{v:.0}");
    let mut md = format!(
        "Guest instructions per operation (one boot under `-icount shift=0`, TCG: the TSC counts \
         instructions, so these do not depend on the host's load): null graft {}, begin + commit {}, \
         abort with 10 undo records {}, lock {}.\n\n\
         | sample | graft | native body | graft − null graft | graft / native |\n|---|---:|---:|---:|---:|\n",
        count(ns(table, "null_graft_ns")),
        count(ns(table, "begin_commit_ns")),
        count(ns(table, "abort10_ns")),
        count(ns(table, "lock_ns")),
    );
    let null = ns(table, "null_graft_ns");
    for sample in table["samples"].as_array().into_iter().flatten() {
        let graft = sample["graft_ns"].as_f64().unwrap_or(f64::NAN);
        let native = sample["native_ns"].as_f64().unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} |\n",
            sample["graft"].as_str().unwrap_or("?"),
            count(graft),
            count(native),
            count(graft - null),
            graft / native
        ));
    }
    md.push('\n');
    md
}

/// Every in-image figure of one boot's table, by name.
fn figures(table: &Value) -> Vec<(String, Value)> {
    let mut figures: Vec<(String, Value)> = table["figures"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for sample in table["samples"].as_array().into_iter().flatten() {
        let name = sample["graft"].as_str().unwrap_or("?");
        for (part, figure) in sample["figures"].as_object().into_iter().flatten() {
            figures.push((format!("{name}: {part}"), figure.clone()));
        }
    }
    figures
}

/// The spread table: per figure, the boots' medians and the batches' extremes.
fn spread(image: &Value) -> String {
    let boots: Vec<Vec<(String, Value)>> = image["boots"]
        .as_array()
        .map(|b| b.iter().map(figures).collect())
        .unwrap_or_else(|| vec![figures(image)]);
    let mut md = String::from(
        "\nEvery in-image figure, ns per operation: the median of each boot, and the lowest p10 and \
         highest p90 of the batches over all boots:\n\n\
         | figure | boots' medians | batch p10 (lowest) | batch p90 (highest) | iterations / batch |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let Some(first) = boots.first() else {
        return md;
    };
    for (name, figure) in first {
        let same: Vec<&Value> = boots
            .iter()
            .filter_map(|b| b.iter().find(|(n, _)| n == name).map(|(_, f)| f))
            .collect();
        let get = |k: &str| -> Vec<f64> {
            same.iter()
                .map(|f| f[k].as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let medians: Vec<String> = get("median_ns").iter().map(|v| format!("{v:.1}")).collect();
        md.push_str(&format!(
            "| {name} | {} | {:.1} | {:.1} | {} |\n",
            medians.join(", "),
            get("p10_ns").into_iter().fold(f64::INFINITY, f64::min),
            get("p90_ns").into_iter().fold(f64::NEG_INFINITY, f64::max),
            figure["iterations"]
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table_and_its_targets() {
        let table = serde_json::json!({
            "batches": 15, "batch_ns": 20_000_000,
            "begin_commit_ns": 280.0, "begin_abort_ns": 180.0, "abort10_ns": 2500.0,
            "lock_ns": 700.0, "direct_ns": 190.0, "via_point_ns": 205.0, "null_graft_ns": 2100.0,
            "figures": { "null_graft": { "median_ns": 2100.0, "p10_ns": 2000.0, "p90_ns": 2200.0, "iterations": 9000 } },
            "samples": [ { "graft": "read-ahead", "graft_ns": 6300.0, "native_ns": 17.0,
                           "figures": { "graft": { "median_ns": 6300.0, "p10_ns": 6000.0, "p90_ns": 7000.0, "iterations": 3000 } } } ],
        });
        let md = section("TCG", &table, &table);
        assert!(
            md.contains("| abort (10 undo records) | **2.500** / 2.500 (29) |"),
            "{md}"
        );
        assert!(
            md.contains("| SFI (graft − native body) | **6.283** / 6.283 (3) |"),
            "{md}"
        );
        assert!(md.contains("≤ 2 µs: **MISS** (2.100 µs"), "{md}");
        assert!(md.contains("≤ 4 µs: **PASS**"), "{md}");
        // 6.3 µs against 3 × 0.017 + 2.1: outside the native-graft bound.
        assert!(
            md.contains("≤ 0.5 µs in the image: **MISS** (2.100 µs)"),
            "{md}"
        );
        assert!(
            md.contains("| read-ahead | 6.300 / 2.151 | **MISS** |"),
            "{md}"
        );
        assert!(md.contains("The interpreter before (wasmi)"), "{md}");
        assert!(!md.contains("Guest instructions"), "{md}");
        let mut counted = table.clone();
        counted["instructions"] = table.clone();
        let md = section("TCG", &counted, &table);
        assert!(md.contains("null graft 2100, begin + commit 280"), "{md}");
        assert!(
            md.contains("| read-ahead | 6300 | 17 | 4200 | 370.59 |"),
            "{md}"
        );
        assert!(
            md.contains("| read-ahead: graft | 6300.0 | 6000.0 | 7000.0 | 3000 |"),
            "{md}"
        );
        let two = serde_json::json!({ "runs": 2, "boots": [table.clone(), table.clone()] });
        assert!(spread(&two).contains("| null_graft | 2100.0, 2100.0 | 2000.0 | 2200.0 | 9000 |"));
    }
}
