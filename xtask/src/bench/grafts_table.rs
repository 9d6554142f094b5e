//! The Markdown of VINO's table as measured in the image: each figure
//! beside the host's and VINO's, the spread of every in-image figure over
//! boots and batches, and the in-image targets.

use serde_json::Value;

use crate::bench::verdict;

/// In-image targets, nanoseconds: a null graft within 2 µs, an abort
/// with ten undo records within 4 µs.
pub const NULL_GRAFT_TARGET_NS: f64 = 2000.0;
pub const ABORT10_TARGET_NS: f64 = 4000.0;

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
        assert!(
            md.contains("| read-ahead: graft | 6300.0 | 6000.0 | 7000.0 | 3000 |"),
            "{md}"
        );
        let two = serde_json::json!({ "runs": 2, "boots": [table.clone(), table.clone()] });
        assert!(spread(&two).contains("| null_graft | 2100.0, 2100.0 | 2000.0 | 2200.0 | 9000 |"));
    }
}
