//! The JSON texts of the management channel's `ok` replies (what
//! `cargo xtask graft … --json` prints as received).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use graft_runtime::{AbortCause, FaultAction, GraftId, Kind, Runtime};
use serde_json::{Map, Value, json};

use crate::confirm::Removal;
use crate::host::COUNTERS;

pub fn installed(id: GraftId, point: &str, bytes: usize, replaced: Option<GraftId>) -> String {
    let mut reply = json!({ "graft": id, "point": point, "bytes": bytes });
    if let Some(old) = replaced {
        reply["replaced"] = json!(old);
    }
    reply.to_string()
}

/// An [`installed`] reply for a graft on probation.
pub fn on_probation(id: GraftId, point: &str, bytes: usize, within_ms: u64) -> String {
    json!({ "graft": id, "point": point, "bytes": bytes, "confirm_ms": within_ms }).to_string()
}

pub fn confirmed(id: GraftId) -> String {
    json!({ "graft": id, "confirmed": true }).to_string()
}

pub fn unloaded(id: GraftId, point: &str, revocation: &str) -> String {
    json!({ "graft": id, "point": point, "revocation": revocation }).to_string()
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Replace => "replace",
        Kind::Event { .. } => "event",
    }
}

pub fn list(runtime: &Runtime, points: &[(String, Kind)]) -> String {
    let grafts = runtime.list();
    let rows: Vec<Value> = grafts
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "point": g.point,
                "bytes": g.module_bytes,
                "calls": g.stats.calls,
                "commits": g.stats.commits,
                "aborts": g.stats.total_aborts(),
            })
        })
        .collect();
    let points: Vec<Value> = points
        .iter()
        .map(|(name, kind)| {
            json!({
                "name": name,
                "kind": kind_name(*kind),
                "grafts": grafts.iter().filter(|g| &g.point == name).count(),
            })
        })
        .collect();
    json!({ "grafts": rows, "points": points }).to_string()
}

pub fn stats(runtime: &Runtime, point: Option<&str>) -> String {
    let state = runtime.state();
    let rows: Vec<Value> = runtime
        .list()
        .iter()
        .filter(|g| point.is_none_or(|p| g.point == p))
        .map(|g| {
            let mut aborts = Map::new();
            for &cause in AbortCause::ALL {
                aborts.insert(cause.name().into(), json!(g.stats.aborts_by(cause)));
            }
            json!({
                "id": g.id,
                "point": g.point,
                "calls": g.stats.calls,
                "commits": g.stats.commits,
                "guarded_out": g.stats.guarded_out,
                "fuel": g.stats.fuel_used,
                "aborts": aborts,
                "latency_ns_log2": g.stats.latency.to_vec(),
                "latency_timed_every": graft_runtime::stats::LATENCY_EVERY,
                "buffer_bytes": state.buffer_bytes(g.id),
                "map_entries": state.map_entries(g.id),
            })
        })
        .collect();
    let counters: Vec<i64> = (0..COUNTERS)
        .map(|i| state.counter(i).unwrap_or(0))
        .collect();
    json!({
        "grafts": rows,
        "counters": counters,
        "locks_held": state.locks_held(),
        "busy_skips": crate::host::busy_skips(),
    })
    .to_string()
}

fn action_name(action: FaultAction) -> &'static str {
    match action {
        FaultAction::Aborted => "aborted",
        FaultAction::Restarted => "restarted",
        FaultAction::Unloaded => "unloaded",
    }
}

/// The runtime's faults and the host's own removals (unconfirmed
/// grafts), in time order.
pub fn faults(runtime: &Runtime, removals: &[Removal]) -> String {
    let mut rows: Vec<(u64, Value)> = runtime
        .faults()
        .entries()
        .map(|f| {
            let row = json!({
                "at_ns": f.at_ns,
                "point": f.point,
                "graft": f.graft,
                "cause": f.cause.name(),
                "action": action_name(f.action),
            });
            (f.at_ns, row)
        })
        .collect();
    rows.extend(removals.iter().map(|r| {
        let row = json!({
            "at_ns": r.at_ns,
            "point": r.point,
            "graft": r.graft,
            "cause": "unconfirmed",
            "action": "unloaded",
        });
        (r.at_ns, row)
    }));
    rows.sort_by_key(|(at, _)| *at);
    let rows: Vec<Value> = rows.into_iter().map(|(_, row)| row).collect();
    json!({ "faults": rows }).to_string()
}
