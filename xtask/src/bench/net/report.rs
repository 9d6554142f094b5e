//! `target/bench/net.md`, `net.json` and `net.svg` (the round-trip
//! distributions).

use std::fmt::Write as _;

use super::load::WrkReport;
use super::{FloorTry, LOADS, MEMORY, ROUNDS, System, WARMUP, WRK_RUNS, WRK_SECONDS};
use crate::bench::{median, out_dir, percentile, report, spread, verdict};
use crate::qemu::Accel;

const SIZE_TARGET: u64 = 300 * 1024;
const FLOOR_TARGET_MIB: u32 = 4;

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Medians over wrk runs: (req/s, p50 µs, p99 µs, errors summed).
fn wrk_summary(runs: &[WrkReport]) -> Option<(f64, f64, f64, u64)> {
    Some((
        median(runs.iter().map(|r| r.requests_per_sec))?,
        median(runs.iter().map(|r| r.p50_us))?,
        median(runs.iter().map(|r| r.p99_us))?,
        runs.iter().map(|r| r.errors).sum(),
    ))
}

fn http_at(system: &System, connections: usize) -> Option<(f64, f64, f64, u64)> {
    system
        .http
        .iter()
        .find(|(c, _)| *c == connections)
        .and_then(|(_, runs)| wrk_summary(runs))
}

/// The median over boots of each boot's p50 (the host process: its one run).
fn rtt_p50(system: &System) -> Option<f64> {
    median(system.rtt_boots.iter().map(|b| b.0))
}

pub fn write(
    accel: Accel,
    why: &str,
    systems: &[System; 3],
    size: u64,
    floor: &[FloorTry],
) -> anyhow::Result<()> {
    let mode = accel.name().to_uppercase();
    let [ours, linux, host] = systems;
    let mut md = format!(
        "# Networking: Rootstock beside a Linux guest\n\n\
         Mode: **{mode}** ({why}). Both guests: QEMU `-M microvm`, {MEMORY} RAM, one vCPU, \
         `-netdev user` with host ports forwarded, `virtio-net-device`; clients on the host through \
         the forwarded port. Rootstock runs its release `echo` and `http` images; the Linux guest \
         is Debian's cloud kernel with a busybox initramfs running nginx (Debian's package, one \
         process) and `busybox nc -ll -e cat` as echo server (microvm's ACPI stays on for it: the \
         kernel finds virtio-mmio devices only through ACPI). \"host process\" is the same \
         workload without a VM (an echo thread per connection; the same nginx), for scale.\n\n"
    );

    writeln!(
        md,
        "## TCP round trip, {}-byte messages\n\n{ROUNDS} round trips on one connection \
         (TCP_NODELAY) after {WARMUP} untimed, per boot; the guests boot {} times (the host \
         process runs once). p50: the median over boots of each boot's p50, with the boots' \
         min–max; p90, p99 and mean over every boot's round trips together.\n\n\
         | system | p50 (median of boots) | min–max over boots | p90 | p99 | mean |\n|---|---:|---:|---:|---:|---:|",
        super::load::MESSAGE,
        super::RTT_BOOTS
    )?;
    for system in systems {
        if system.rtt_us.is_empty() {
            writeln!(md, "| {} | — | — | — | — | — |", system.name)?;
            continue;
        }
        let s = sorted(&system.rtt_us);
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        let (lo, hi) = spread(system.rtt_boots.iter().map(|b| b.0)).unwrap_or((f64::NAN, f64::NAN));
        writeln!(
            md,
            "| {} | {:.0} µs | {lo:.0}–{hi:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs |",
            system.name,
            rtt_p50(system).unwrap_or(f64::NAN),
            percentile(&s, 90.0),
            percentile(&s, 99.0),
            mean
        )?;
    }
    for system in systems {
        let (Some((lo, hi)), Some(mid)) = (
            spread(system.rtt_boots.iter().map(|b| b.0)),
            rtt_p50(system),
        ) else {
            continue;
        };
        if (hi - lo) / mid > 0.2 {
            let loads: Vec<String> = system
                .rtt_boots
                .iter()
                .map(|(p50, load)| format!("{p50:.0} µs at load {load:.2}"))
                .collect();
            writeln!(
                md,
                "\n{}: the boots differ by {:.0}% ({}). The guest does the same work per round \
                 trip in every boot (its instructions and exit-class events per round trip, below, \
                 repeat to within a few percent), so the difference is the host's: under {mode} a \
                 round trip is host CPU time, shared with whatever else runs (the host's 1-minute \
                 load beside each boot) and with QEMU's own threads.",
                system.name,
                (hi - lo) / mid * 100.0,
                loads.join(", ")
            )?;
        }
    }
    let rtt_ratio = rtt_p50(ours).zip(rtt_p50(linux)).map(|(o, l)| o / l);
    match rtt_ratio {
        Some(r) => writeln!(
            md,
            "\nRootstock / Linux guest, p50: **{r:.2}** — target ≤ 0.7: {} ({mode}).",
            verdict(r <= 0.7)
        )?,
        None => writeln!(
            md,
            "\nNo ratio: a system could not be measured (see below)."
        )?,
    }

    writeln!(
        md,
        "\n## HTTP: wrk, `GET /hello.txt` ({} bytes), keep-alive\n\n\
         `wrk --threads 1 --latency`, {WRK_RUNS} runs of {WRK_SECONDS} s per load after a 1 s \
         warm-up; medians over the runs.\n\n\
         | system | connections | requests/s | min–max over runs | p50 latency | p99 latency | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        super::nginx::HELLO.len()
    )?;
    for system in systems {
        for connections in LOADS {
            let (lo, hi) = system
                .http
                .iter()
                .find(|(c, _)| *c == connections)
                .and_then(|(_, runs)| spread(runs.iter().map(|r| r.requests_per_sec)))
                .unwrap_or((f64::NAN, f64::NAN));
            match http_at(system, connections) {
                Some((rps, p50, p99, errors)) => writeln!(
                    md,
                    "| {} | {connections} | {rps:.0} | {lo:.0}–{hi:.0} | {:.2} ms | {:.2} ms | {errors} |",
                    system.name,
                    p50 / 1000.0,
                    p99 / 1000.0
                )?,
                None => writeln!(
                    md,
                    "| {} | {connections} | — | — | — | — | — |",
                    system.name
                )?,
            }
        }
    }
    let mut http_ratios = Vec::new();
    for connections in LOADS {
        if let (Some(o), Some(l)) = (http_at(ours, connections), http_at(linux, connections)) {
            let r = o.0 / l.0;
            http_ratios.push((connections, r));
            writeln!(
                md,
                "\nRootstock / Linux guest, requests/s at {connections} connection(s): **{r:.2}×** \
                 — target ≥ 2.5×: {} ({mode}).",
                verdict(r >= 2.5)
            )?;
        }
    }

    let floor_mib = floor
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(m, _, _)| *m)
        .min();
    writeln!(
        md,
        "\n## Size and memory\n\n`http` image (kernel, smoltcp, virtio-net, HTTP server, pages), \
         release, stripped: **{:.1} KiB** — target ≤ 300 KiB: {}.\n\n\
         Least guest RAM (`-m`) at which `http` boots and serves `GET /hello.txt`: **{}** — \
         target ≤ {FLOOR_TARGET_MIB} MiB: {}.\n\n| -m | result |\n|---:|---|",
        size as f64 / 1024.0,
        verdict(size <= SIZE_TARGET),
        floor_mib.map_or("none of the sizes tried".to_string(), |m| format!(
            "{m} MiB"
        )),
        verdict(floor_mib.is_some_and(|m| m <= FLOOR_TARGET_MIB)),
    )?;
    for (mib, _, note) in floor {
        writeln!(md, "| {mib} MiB | {note} |")?;
    }

    md.push_str(&crate::bench::not_measured(
        systems.iter().map(|s| (s.name, s.errors.as_slice())),
    ));
    md.push_str(
        "\n## Reading these figures\n\n\
         Every request crosses QEMU's user network (slirp) and the host's loopback twice; under \
         TCG the guests' own work is emulated as well. Compare the ratios measured in the same \
         run, not absolute numbers across machines. QEMU's user network accepts forwarded \
         connections with a listen backlog of 1, so a burst of new connections sees SYN \
         retransmissions (1 s) on the host side for both guests alike; wrk's connections are \
         opened once and kept alive.\n\n\
         Reference (Unikraft EuroSys '21, KVM, i7-9700K): nginx on Unikraft 292K requests/s vs \
         a Linux guest's 104K on QEMU (2.8×); minimum RAM: nginx 5 MB, hello 2 MB.\n\n\
         ![round-trip distributions](net.svg)\n",
    );

    // The plot shows 1,000 evenly spaced quantiles per system: the whole
    // distribution without 10,000 points each.
    let quantiles: Vec<(&str, Vec<f64>)> = systems
        .iter()
        .map(|s| {
            let sorted = sorted(&s.rtt_us);
            let points = (0..1000)
                .filter(|_| !sorted.is_empty())
                .map(|i| percentile(&sorted, i as f64 / 10.0))
                .collect();
            (s.name, points)
        })
        .collect();
    let series: Vec<(&str, &[f64])> = quantiles.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    report::histogram_svg(
        &out_dir().join("net.svg"),
        &format!("TCP round trip, 64-byte messages, {mode} (ms, 1,000 quantiles of {ROUNDS})"),
        &series,
    )?;

    let json = serde_json::json!({
        "mode": mode,
        "memory": MEMORY,
        "rounds": ROUNDS,
        "warmup": WARMUP,
        "wrk": { "runs": WRK_RUNS, "seconds": WRK_SECONDS, "loads": LOADS },
        "systems": systems.iter().map(|s| serde_json::json!({
            "name": s.name,
            "rtt_us": { "p50": rtt_p50(s),
                        "p99": (!s.rtt_us.is_empty()).then(|| percentile(&sorted(&s.rtt_us), 99.0)),
                        "samples": s.rtt_us },
            "http": s.http.iter().map(|(c, runs)| serde_json::json!({
                "connections": c,
                "runs": runs.iter().map(|r| serde_json::json!({
                    "requests_per_sec": r.requests_per_sec, "p50_us": r.p50_us,
                    "p99_us": r.p99_us, "requests": r.requests, "errors": r.errors })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "ratios": {
            "rtt_p50_rootstock_over_linux": rtt_ratio,
            "http_rps_rootstock_over_linux": http_ratios.iter()
                .map(|(c, r)| serde_json::json!({ "connections": c, "ratio": r })).collect::<Vec<_>>(),
        },
        "http_image_stripped_bytes": size,
        "ram_floor_mib": floor_mib,
        "ram_floor_tries": floor.iter().map(|(m, ok, note)|
            serde_json::json!({ "mib": m, "serves": ok, "note": note })).collect::<Vec<_>>(),
    });
    let _ = host;
    std::fs::write(out_dir().join("net.md"), &md)?;
    std::fs::write(
        out_dir().join("net.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{md}");
    eprintln!("bench net: wrote target/bench/net.md, net.json, net.svg");
    Ok(())
}
