//! `bench grafts`, in the image: boots the `graftbench` image (VINO's
//! overhead table measured by `graft_bench` on the kernel's TSC
//! clock, printed as one `graftbench: {JSON}` line) [`BOOTS`] times and
//! takes, figure by figure, the median of the boots' medians — under TCG a
//! whole boot can run faster or slower than the next, which batches within
//! one boot do not show. Then it assembles the report: the host part, this
//! table ([`super::grafts_table`]) and HTTP with the packet filter
//! ([`super::grafts_http`]).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::median;
use crate::qemu::{Accel, Outcome, Qemu};

/// The line the image prints its table on.
const PREFIX: &str = "graftbench: ";
/// Boots of the image per report (timed; one more counts instructions).
pub const BOOTS: usize = 5;
/// Longest one measuring boot may take (it takes seconds under TCG).
const LIMIT: Duration = Duration::from_secs(900);

/// Boots the `graftbench` image `elf` once under `accel`; its table. With
/// `icount` (TCG only) its figures are guest instructions, not nanoseconds.
pub fn boot(elf: &std::path::Path, accel: Accel, icount: bool) -> anyhow::Result<Value> {
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.icount = icount;
    qemu.memory = "64M".into();
    let (mut child, reader) = crate::qemu::spawn_collecting(&qemu)?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("graftbench did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let console = reader.join().unwrap_or_default();
    let outcome = Outcome::from_qemu(status.code());
    if outcome != Outcome::Exited(0) {
        bail!(
            "graftbench ended with {outcome:?}{}:\n{console}",
            outcome
                .explain()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    let line = console
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(PREFIX))
        .filter(|l| l.starts_with('{'))
        .with_context(|| format!("no `{PREFIX}{{…}}` line on the console:\n{console}"))?;
    serde_json::from_str(line).context("the image's table is not JSON")
}

/// One table from several boots' tables: every `*_ns` figure (top level
/// and per sample) is the median over the boots; the boots themselves are
/// kept under `boots`.
pub fn combine(boots: &[Value]) -> Value {
    let Some(first) = boots.first() else {
        return Value::Null;
    };
    let mut table = first.clone();
    let over = |get: &dyn Fn(&Value) -> Option<f64>| {
        median(boots.iter().map(|b| get(b).unwrap_or(f64::NAN))).unwrap_or(f64::NAN)
    };
    if let Some(object) = table.as_object_mut() {
        for (key, value) in object.iter_mut() {
            if key.ends_with("_ns") && value.is_number() && key != "batch_ns" {
                *value = json!(over(&|b| b[key.as_str()].as_f64()));
            }
        }
    }
    if let Some(samples) = table["samples"].as_array_mut() {
        for (i, sample) in samples.iter_mut().enumerate() {
            for key in ["graft_ns", "native_ns"] {
                if sample[key].is_number() {
                    sample[key] = json!(over(&|b| b["samples"][i][key].as_f64()));
                }
            }
        }
    }
    table["runs"] = json!(boots.len());
    table["statistic"] = json!("median over boots of the median over batches");
    table["boots"] = json!(boots);
    table
}

/// Boots `graftbench` [`BOOTS`] times; the combined table, with the
/// instruction counts of one more boot under `-icount` (TCG) as
/// `instructions`.
pub fn measure(elf: &std::path::Path, accel: Accel) -> anyhow::Result<Value> {
    let mut boots = Vec::new();
    for run in 1..=BOOTS {
        let table = boot(elf, accel, false)?;
        eprintln!(
            "bench grafts: graftbench boot {run}/{BOOTS}: null graft {:.0} ns, abort with 10 undo records {:.0} ns",
            table["null_graft_ns"].as_f64().unwrap_or(f64::NAN),
            table["abort10_ns"].as_f64().unwrap_or(f64::NAN)
        );
        boots.push(table);
    }
    let mut table = combine(&boots);
    let counted = boot(elf, Accel::Tcg, true)?;
    eprintln!(
        "bench grafts: graftbench under -icount: null graft {:.0} instructions",
        counted["null_graft_ns"].as_f64().unwrap_or(f64::NAN)
    );
    table["instructions"] = counted;
    Ok(table)
}

/// The whole `bench grafts` report: the host part (`host_md`, `host`),
/// then the table measured in the image and HTTP with the filter, both
/// under `accel`. Returns the Markdown, the JSON, and what could not be
/// measured (already written into the report).
pub fn report(accel: Accel, host_md: String, host: Value) -> (String, Value, Vec<String>) {
    let (accel, why) = accel.resolve();
    let mode = accel.name().to_uppercase();
    eprintln!("bench grafts: in the image, accel {mode} ({why})");
    let mut failures = Vec::new();
    let mut md = host_md;
    // One cargo invocation: both images get the same graft runtime (cargo
    // unifies features, and graftbench asks for wasmi's loop dispatch).
    let images = ["graftbench".to_string(), "http".to_string()];
    let (graftbench, http) = match crate::images::build(&images, true, None) {
        Ok(elves) => (Ok(elves[0].clone()), Ok(elves[1].clone())),
        Err(e) => (Err(anyhow::anyhow!("{e:#}")), Err(e)),
    };
    let image = match graftbench.and_then(|elf| measure(&elf, accel)) {
        Ok(image) => {
            md.push('\n');
            md.push_str(&super::grafts_table::section(&mode, &image, &host));
            image
        }
        Err(e) => {
            failures.push(format!("in-image table: {e:#}"));
            md.push_str(&format!(
                "\n## In the image ({mode})\n\nNot measured: {e:#}\n\n"
            ));
            Value::Null
        }
    };
    let http = match http.and_then(|elf| super::grafts_http::measure(&elf, accel)) {
        Ok(http) => {
            md.push_str(&super::grafts_http::section(&mode, &http));
            http
        }
        Err(e) => {
            failures.push(format!("HTTP: {e:#}"));
            md.push_str(&format!(
                "## HTTP with a packet filter ({mode})\n\nNot measured: {e:#}\n"
            ));
            Value::Null
        }
    };
    let json = json!({
        "mode": mode,
        "host": host,
        "image": image,
        "http": http,
        "vino_source": "Seltzer et al., Dealing with Disaster: Surviving Misbehaving Kernel Extensions, OSDI '96 (shared/ANCHORS.md)",
    });
    (md, json, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_combine_by_their_median() {
        let boot = |n: f64, graft: f64| {
            json!({ "batch_ns": 20_000_000, "null_graft_ns": n,
                    "samples": [ { "graft_ns": graft, "native_ns": null } ] })
        };
        let table = combine(&[boot(3.0, 30.0), boot(1.0, 10.0), boot(2.0, 20.0)]);
        assert_eq!(table["null_graft_ns"], 2.0);
        assert_eq!(table["samples"][0]["graft_ns"], 20.0);
        assert_eq!(table["batch_ns"], 20_000_000);
        assert_eq!(table["runs"], 3);
        assert_eq!(table["boots"].as_array().map(Vec::len), Some(3));
    }
}
