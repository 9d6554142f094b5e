//! `target/bench/kv.md` and `kv.json`.

use std::fmt::Write as _;

use super::{CLIENTS, Crash, DIRTY_MIB, LOADS, MEMORY, Network, System};
use crate::bench::{median, out_dir, spread, verdict};
use crate::qemu::Accel;

/// The target: at least twice the Linux guest's requests/s.
const TARGET: f64 = 2.0;
/// What Unikraft reported for Redis (ANCHORS.md), quoted beside each ratio.
const REFERENCE_RATIO: &str = "Unikraft reported 1.7× for GET at -P 16, KVM";

/// Medians over runs: (SET, GET) requests/s at pipeline depth `pipeline`.
fn at(system: &System, pipeline: usize) -> Option<(f64, f64)> {
    let runs = &system.runs.iter().find(|d| d.pipeline == pipeline)?.samples;
    Some((
        median(runs.iter().map(|r| r.0))?,
        median(runs.iter().map(|r| r.1))?,
    ))
}

fn cell(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.0}"))
}

/// How the run was set up.
pub struct Setup<'a> {
    pub accel: Accel,
    pub why: &'a str,
    pub network: Network,
    pub runs: usize,
    /// The release `kv` image, stripped.
    pub image_bytes: Option<u64>,
    /// The host's load averages (`/proc/loadavg`) before and after.
    pub load: [String; 2],
}

pub fn write(
    setup: &Setup<'_>,
    systems: &[System; 4],
    reboots: &Result<Vec<Crash>, String>,
    dirty: &[Result<Crash, String>],
) -> anyhow::Result<()> {
    let &Setup {
        accel,
        why,
        network,
        runs,
        image_bytes,
        ref load,
    } = setup;
    let mode = accel.name().to_uppercase();
    let [ours, _, linux, _] = systems;
    let mut md = format!(
        "# kv: Rootstock beside Redis in a Linux guest\n\n\
         Mode: **{mode}** ({why}). Both guests: QEMU `-M microvm`, {MEMORY} RAM, one vCPU, \
         `virtio-net-device` on {}; `redis-benchmark` (Debian's `redis-tools`) on the host. Rootstock runs the release `kv` image with a 64 MiB \
         virtio-blk disk, durability `rio`: every SET is appended to the log in the protected \
         cache before it is acknowledged; \"write-through\" is the same image booted with \
         `durability=write-through`, which acknowledges a SET only once it is on the disk and \
         the disk has flushed (one flush per batch of pipelined requests; fewer requests per \
         run). The Linux guest is Debian's cloud kernel running \
         Debian's `redis-server` in memory only (`--save \"\" --appendonly no`: no persistence \
         at all). \"host redis\" is the same server as a host process, for scale.\n\n\
         ## Throughput\n\n`redis-benchmark -c {CLIENTS} -t set,get -P N -n R --csv`; \
         {runs} run(s) per depth after a warm-up run; medians, requests/s. Host load \
         averages (1, 5, 15 min) at the start: {}; at the end: {} (other work on the host \
         lowers every figure). `kv`, the Linux guest and host redis are measured in turns \
         (run 1 of each, then run 2, ...) with both VMs up throughout, so that other load \
         weighs on all three alike; write-through is measured afterwards, alone.\n\n\
         | system | -P | requests per run | SET | SET min–max | GET | GET min–max |\n|---|---:|---:|---:|---:|---:|---:|\n",
        network.describe(),
        load[0],
        load[1],
    );
    for system in systems {
        for depth in &system.runs {
            let (pipeline, requests) = (depth.pipeline, depth.requests);
            let m = at(system, pipeline);
            let range = |f: fn(&(f64, f64)) -> f64| {
                spread(depth.samples.iter().map(f))
                    .map_or("—".into(), |(lo, hi)| format!("{lo:.0}–{hi:.0}"))
            };
            writeln!(
                md,
                "| {} | {pipeline} | {requests} | {} | {} | {} | {} |",
                system.name,
                cell(m.map(|m| m.0)),
                range(|s| s.0),
                cell(m.map(|m| m.1)),
                range(|s| s.1),
            )?;
        }
    }
    let mut ratios = Vec::new();
    for (pipeline, _) in LOADS {
        if let (Some(o), Some(l)) = (at(ours, pipeline), at(linux, pipeline)) {
            let (set, get) = (o.0 / l.0, o.1 / l.1);
            ratios.push((pipeline, set, get));
            writeln!(
                md,
                "\nRootstock / Linux guest at -P {pipeline}: SET **{set:.2}×**, GET **{get:.2}×** \
                 — target ≥ {TARGET}×: {} ({mode}; {REFERENCE_RATIO}).",
                verdict(set >= TARGET && get >= TARGET)
            )?;
        }
    }

    md.push_str("\n## Warm reboot: kernel panic → serving again\n\n");
    match reboots {
        Ok(crashes) if !crashes.is_empty() => {
            let ready = median(crashes.iter().map(|c| c.ready_ms)).unwrap_or(f64::NAN);
            let serving = median(crashes.iter().map(|c| c.serving_ms)).unwrap_or(f64::NAN);
            let recovery = median(crashes.iter().map(|c| c.recovery_us as f64));
            writeln!(
                md,
                "`DEBUG PANIC` (fault-injection build of `kv`, release) after 64 KiB of SETs, \
                 {} times on one VM; medians. Host-side: from sending the command to `kv: ready` \
                 on the console **{ready:.0} ms**, to a new connection's `PING` answered \
                 **{serving:.0} ms** ({mode}). Guest-side cache recovery (verify every cached \
                 block, write back the dirty ones): {} µs.",
                crashes.len(),
                cell(recovery)
            )?;
        }
        Ok(_) => md.push_str("No samples.\n"),
        Err(e) => writeln!(md, "Not measured: {e}")?,
    }

    md.push_str(
        "\n## Recovery of N MiB of dirty cache\n\n\
         A fresh `kv` and disk per size; N MiB of SETs (4 KiB values, pipelined, each \
         acknowledged), then `DEBUG PANIC`. The guest times the cache's recovery (checksums of \
         every cached block, dirty blocks written to the disk, disk flush) and the log replay \
         that rebuilds the keyspace; the host times panic → serving.\n\n\
         | SETs written | dirty in cache at the crash | cache recovery | log replay | panic → serving |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    for (mib, result) in DIRTY_MIB.iter().zip(dirty) {
        match result {
            Ok(c) => writeln!(
                md,
                "| {mib} MiB | {:.2} MiB | {:.1} ms | {:.1} ms | {:.0} ms |",
                c.dirty_kib as f64 / 1024.0,
                c.recovery_us as f64 / 1000.0,
                c.replay_us as f64 / 1000.0,
                c.serving_ms
            )?,
            Err(e) => writeln!(md, "| {mib} MiB | not measured: {e} | | | |")?,
        }
    }

    md.push_str(&crate::bench::not_measured(
        systems.iter().map(|s| (s.name, s.errors.as_slice())),
    ));
    md.push_str(
        "\n## Reading these figures\n\n\
         Under TCG both guests' work is emulated; compare ratios from the same run, not \
         absolute numbers across machines. Through QEMU's user network (the fallback when no \
         tap device can be made) forwarded ports accept with a listen backlog of 1, so some of \
         redis-benchmark's 50 connections join seconds late for every system alike. The crash \
         measurements always use the user network (one connection at a time).\n\n\
         Reference (Unikraft EuroSys '21, KVM, i7-9700K, 30 connections, pipeline 16): Redis on \
         Unikraft GET 2.68M/s vs a Linux guest's 1.54M/s on QEMU (1.7×).\n",
    );
    let get16 = ratios.iter().find(|r| r.0 == 16).map(|r| r.2);
    writeln!(
        md,
        "\n## Beside the reference figures\n\n\
         | | Rootstock kv (this run, {mode}) | reference (Unikraft EuroSys '21, KVM) |\n\
         |---|---:|---:|\n\
         | GET, -P 16, ÷ Linux guest on the same QEMU | {} | Unikraft redis 1.7× (2.68M/s ÷ 1.54M/s) |\n\
         | image, stripped | {} | Unikraft redis 1.11 MB |",
        get16.map_or("—".into(), |r| format!("{r:.2}×")),
        image_bytes.map_or("—".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0)),
    )?;

    let dir = out_dir();
    std::fs::write(dir.join("kv.md"), &md)?;
    let json = serde_json::json!({
        "mode": mode,
        "image_bytes": image_bytes,
        "host_load": load,
        "reference": {
            "source": "Unikraft EuroSys '21 (KVM, i7-9700K, 30 connections, pipeline 16)",
            "get_ratio_vs_linux_guest": 1.7,
            "redis_image_bytes": 1_110_000,
        },
        "why": why,
        "network": format!("{network:?}"),
        "memory": MEMORY,
        "clients": CLIENTS,
        "systems": systems.iter().map(|s| serde_json::json!({
            "name": s.name,
            "runs": s.runs.iter().map(|d| serde_json::json!({
                "pipeline": d.pipeline,
                "requests": d.requests,
                "set_rps": d.samples.iter().map(|x| x.0).collect::<Vec<_>>(),
                "get_rps": d.samples.iter().map(|x| x.1).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "ratios": ratios.iter().map(|(p, s, g)| serde_json::json!({
            "pipeline": p, "set": s, "get": g
        })).collect::<Vec<_>>(),
        "warm_reboots": match reboots {
            Ok(c) => serde_json::json!(c.iter().map(crash_json).collect::<Vec<_>>()),
            Err(e) => serde_json::json!({ "error": e }),
        },
        "dirty_recovery": DIRTY_MIB.iter().zip(dirty).map(|(mib, r)| match r {
            Ok(c) => serde_json::json!({ "written_mib": mib, "crash": crash_json(c) }),
            Err(e) => serde_json::json!({ "written_mib": mib, "error": e }),
        }).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("kv.json"), serde_json::to_string_pretty(&json)?)?;
    println!("{md}");
    eprintln!("bench kv: report in {}", dir.join("kv.md").display());
    Ok(())
}

fn crash_json(c: &Crash) -> serde_json::Value {
    serde_json::json!({
        "dirty_kib": c.dirty_kib,
        "recovery_us": c.recovery_us,
        "replay_us": c.replay_us,
        "ready_ms": c.ready_ms,
        "serving_ms": c.serving_ms,
    })
}
