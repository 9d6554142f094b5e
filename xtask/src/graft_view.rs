//! Rendering the image's graft control replies for people: tables for
//! `list` and `log`, a block per graft for `stats`, one sentence for `load`,
//! `replace` and `unload`.
//!
//! The replies are JSON the kernel writes; this module is tolerant of it.
//! A row missing a field shows `-`; a reply without the expected shape at
//! all (a newer kernel, a different image) is printed as pretty JSON, and a
//! reply that is not JSON is printed as it came. Rendering never fails.

use serde_json::Value;

/// Which request a reply answers (it decides the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Load,
    /// Replacing the graft with this id.
    Replace(u32),
    Unload,
    Confirm,
    List,
    Stats,
    Log,
}

/// The text to print for an `ok` reply's JSON `text`.
pub fn render(view: View, text: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let shaped = match view {
        View::Load => loaded(&json, None),
        View::Replace(old) => loaded(&json, Some(old)),
        View::Unload => unloaded(&json),
        View::Confirm => json
            .get("graft")
            .map(|_| format!("graft {} confirmed: it stays", field(&json, "graft"))),
        View::List => list(&json),
        View::Stats => stats(&json),
        View::Log => log(&json),
    };
    shaped.unwrap_or_else(|| serde_json::to_string_pretty(&json).unwrap_or_else(|_| text.into()))
}

/// A field as text: strings bare, numbers as they are, missing as `-`.
fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn loaded(json: &Value, old: Option<u32>) -> Option<String> {
    json.get("graft")?;
    // A replace reply names the graft it replaced; else say the one asked for.
    let what = match (old, json.get("replaced")) {
        (None, _) => "loaded at".to_string(),
        (Some(_), Some(replaced)) if !replaced.is_null() => {
            format!("replaced graft {} at", field(json, "replaced"))
        }
        (Some(old), _) => format!("replaced graft {old} at"),
    };
    let mut line = format!(
        "graft {} {what} {} ({} bytes)",
        field(json, "graft"),
        field(json, "point"),
        field(json, "bytes")
    );
    if json.get("confirm_ms").is_some() {
        line.push_str(&format!(
            "; unloaded in {} ms unless `cargo xtask graft confirm {}`",
            field(json, "confirm_ms"),
            field(json, "graft")
        ));
    }
    Some(line)
}

fn unloaded(json: &Value) -> Option<String> {
    json.get("graft")?;
    let mut line = format!(
        "graft {} unloaded from {}",
        field(json, "graft"),
        field(json, "point")
    );
    if json.get("revocation").is_some() {
        line.push_str(&format!(" (revocation: {})", field(json, "revocation")));
    }
    Some(line)
}

/// Columns: header, right-aligned?
fn table(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([name.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, right), width))| {
                if *right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(columns.iter().map(|(name, _)| *name).collect())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn list(json: &Value) -> Option<String> {
    let grafts = json.get("grafts")?.as_array()?;
    let mut out = if grafts.is_empty() {
        "no grafts loaded".to_string()
    } else {
        let rows: Vec<Vec<String>> = grafts
            .iter()
            .map(|g| {
                ["id", "point", "bytes", "calls", "commits", "aborts"]
                    .iter()
                    .map(|k| field(g, k))
                    .collect()
            })
            .collect();
        table(
            &[
                ("ID", true),
                ("POINT", false),
                ("BYTES", true),
                ("CALLS", true),
                ("COMMITS", true),
                ("ABORTS", true),
            ],
            &rows,
        )
    };
    if let Some(points) = json.get("points").and_then(Value::as_array) {
        let rows: Vec<Vec<String>> = points
            .iter()
            .map(|p| {
                ["name", "kind", "grafts"]
                    .iter()
                    .map(|k| field(p, k))
                    .collect()
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(
            &[("GRAFT POINT", false), ("KIND", false), ("GRAFTS", true)],
            &rows,
        ));
    }
    Some(out)
}

/// A duration in nanoseconds, short.
fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.1} s", ns as f64 / 1e9),
    }
}

/// The image's log2 latency histogram (bucket bounds:
/// [`graft_runtime::stats::bucket_bounds`]), of the sampled calls.
fn histogram(buckets: &[Value]) -> Vec<String> {
    let counts: Vec<u64> = buckets.iter().map(|b| b.as_u64().unwrap_or(0)).collect();
    let (Some(first), Some(last)) = (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) else {
        return vec!["  latency: no calls measured".into()];
    };
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut lines = vec![format!(
        "  latency (one call in {} timed):",
        graft_runtime::stats::LATENCY_EVERY
    )];
    for (i, &count) in counts.iter().enumerate().take(last + 1).skip(first) {
        let (low, high) = graft_runtime::stats::bucket_bounds(i);
        let bar = "█".repeat(((count * 40).div_ceil(most)) as usize);
        let line = format!(
            "    {:>9} – {:<9} {count:>8} {bar}",
            duration(low),
            duration(high)
        );
        lines.push(line.trim_end().to_string());
    }
    lines
}

fn stats(json: &Value) -> Option<String> {
    let grafts = json.get("grafts")?.as_array()?;
    let mut blocks = Vec::new();
    if grafts.is_empty() {
        blocks.push("no grafts loaded".to_string());
    }
    for graft in grafts {
        let mut lines = vec![format!(
            "graft {} at {}",
            field(graft, "id"),
            field(graft, "point")
        )];
        lines.push(format!(
            "  calls {}, commits {}, guarded out {}, fuel {}",
            field(graft, "calls"),
            field(graft, "commits"),
            field(graft, "guarded_out"),
            field(graft, "fuel")
        ));
        let aborts = match graft.get("aborts") {
            Some(Value::Object(causes)) => {
                let nonzero: Vec<String> = causes
                    .iter()
                    .filter(|(_, n)| n.as_u64() != Some(0))
                    .map(|(cause, n)| format!("{cause} {n}"))
                    .collect();
                if nonzero.is_empty() {
                    "none".to_string()
                } else {
                    nonzero.join(", ")
                }
            }
            Some(other) => other.to_string(),
            None => "-".into(),
        };
        lines.push(format!("  aborts: {aborts}"));
        if let Some(buckets) = graft.get("latency_ns_log2").and_then(Value::as_array) {
            lines.extend(histogram(buckets));
        }
        blocks.push(lines.join("\n"));
    }
    if let Some(counters) = json.get("counters").and_then(Value::as_array)
        && !counters.is_empty()
    {
        let mut lines = vec!["counters:".to_string()];
        if counters.iter().all(Value::is_number) {
            // The kernel's shared counters, by index: show the ones in use.
            let used: Vec<String> = counters
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_f64() != Some(0.0))
                .map(|(i, n)| format!("[{i}] {n}"))
                .collect();
            lines[0] = if used.is_empty() {
                format!("counters: all {} zero", counters.len())
            } else {
                format!("counters: {}", used.join(", "))
            };
        }
        for counter in counters.iter().filter(|c| !c.is_number()) {
            lines.push(match counter {
                Value::Object(fields) => {
                    let parts: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => format!("{k} {s}"),
                            other => format!("{k} {other}"),
                        })
                        .collect();
                    format!("  {}", parts.join(", "))
                }
                other => format!("  {other}"),
            });
        }
        blocks.push(lines.join("\n"));
    }
    Some(blocks.join("\n\n"))
}

fn log(json: &Value) -> Option<String> {
    let faults = json.get("faults")?.as_array()?;
    if faults.is_empty() {
        return Some("no faults".into());
    }
    let rows: Vec<Vec<String>> = faults
        .iter()
        .map(|f| {
            let at = match f.get("at_ns").and_then(Value::as_u64) {
                Some(ns) => format!("{:.6}", ns as f64 / 1e9),
                None => "-".into(),
            };
            vec![
                at,
                field(f, "point"),
                field(f, "graft"),
                field(f, "cause"),
                field(f, "action"),
            ]
        })
        .collect();
    Some(table(
        &[
            ("TIME (s)", true),
            ("POINT", false),
            ("GRAFT", true),
            ("CAUSE", false),
            ("ACTION", false),
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_replace_and_unload_are_one_sentence() {
        let reply = r#"{"graft":3,"point":"net.rx","bytes":1023}"#;
        assert_eq!(
            render(View::Load, reply),
            "graft 3 loaded at net.rx (1023 bytes)"
        );
        assert_eq!(
            render(View::Replace(2), reply),
            "graft 3 replaced graft 2 at net.rx (1023 bytes)"
        );
        assert_eq!(
            render(
                View::Replace(2),
                r#"{"graft":4,"point":"net.rx","bytes":9,"replaced":3}"#
            ),
            "graft 4 replaced graft 3 at net.rx (9 bytes)"
        );
        assert_eq!(
            render(
                View::Unload,
                r#"{"graft":3,"point":"net.rx","revocation":"clean"}"#
            ),
            "graft 3 unloaded from net.rx (revocation: clean)"
        );
    }

    #[test]
    fn list_is_a_table_of_grafts_and_points() {
        let reply = r#"{"grafts":[{"id":3,"point":"net.rx","bytes":1023,"calls":10,"commits":9,"aborts":1},
            {"id":12,"point":"sched.pick","bytes":88,"calls":123456,"commits":123456}],
            "points":[{"name":"net.rx","kind":"event","grafts":1},{"name":"sched.pick","kind":"replace","grafts":1}]}"#;
        let text = render(View::List, reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  POINT       BYTES   CALLS  COMMITS  ABORTS");
        assert_eq!(lines[1], " 3  net.rx       1023      10        9       1");
        assert_eq!(lines[2], "12  sched.pick     88  123456   123456       -");
        assert_eq!(lines[4], "GRAFT POINT  KIND     GRAFTS");
        assert_eq!(lines[5], "net.rx       event         1");
        assert_eq!(
            render(View::List, r#"{"grafts":[],"points":[]}"#)
                .lines()
                .next(),
            Some("no grafts loaded")
        );
    }

    #[test]
    fn stats_show_aborts_by_cause_and_a_latency_histogram() {
        let reply = r#"{"grafts":[{"id":3,"point":"net.rx","calls":10,"commits":9,"guarded_out":2,
            "fuel":4500,"aborts":{"fuel-exhausted":1,"out-of-bounds":0},
            "latency_ns_log2":[0,0,0,0,0,0,0,0,0,0,4,0,6,0]}],
            "counters":[0,7,0,-2]}"#;
        let text = render(View::Stats, reply);
        assert!(text.starts_with("graft 3 at net.rx\n"), "{text}");
        assert!(text.contains("calls 10, commits 9, guarded out 2, fuel 4500"));
        assert!(text.contains("aborts: fuel-exhausted 1\n"), "{text}");
        // Bucket 10 is [2^15, 2^16) ns, bucket 12 [2^17, 2^18) ns.
        assert!(text.contains("32.8 µs – 65.5 µs"), "{text}");
        assert!(text.contains("131.1 µs – 262.1 µs"), "{text}");
        assert_eq!(text.matches('█').count(), 27 + 40, "{text}");
        assert!(text.ends_with("\n\ncounters: [1] 7, [3] -2"), "{text}");
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text}");
        let named = render(
            View::Stats,
            r#"{"grafts":[],"counters":[{"name":"dropped","value":7}]}"#,
        );
        assert_eq!(
            named,
            "no grafts loaded\n\ncounters:\n  name dropped, value 7"
        );
        let idle = render(
            View::Stats,
            r#"{"grafts":[{"id":1,"point":"p","aborts":{"trap":0},"latency_ns_log2":[0,0]}],"counters":[0,0]}"#,
        );
        assert!(idle.ends_with("counters: all 2 zero"), "{idle}");
        assert!(idle.contains("aborts: none"), "{idle}");
        assert!(idle.contains("no calls measured"), "{idle}");
        assert!(idle.contains("calls -, commits -"), "{idle}");
    }

    #[test]
    fn the_log_is_one_line_per_fault() {
        let reply = r#"{"faults":[{"at_ns":12345678901,"point":"net.rx","graft":3,"cause":"fuel-exhausted","action":"unloaded"},
            {"at_ns":5,"point":"sched.pick","graft":4,"cause":"invalid-return","action":"aborted"}]}"#;
        let text = render(View::Log, reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "12.345679  net.rx          3  fuel-exhausted  unloaded"
        );
        assert!(lines[2].starts_with(" 0.000000  sched.pick"));
        assert_eq!(render(View::Log, r#"{"faults":[]}"#), "no faults");
    }

    #[test]
    fn unexpected_replies_are_shown_as_they_are() {
        assert_eq!(
            render(View::List, r#"{"version":2}"#),
            "{\n  \"version\": 2\n}"
        );
        assert_eq!(render(View::Log, "not json"), "not json");
        assert_eq!(
            render(View::Stats, r#"{"grafts":7}"#),
            "{\n  \"grafts\": 7\n}"
        );
    }
}
