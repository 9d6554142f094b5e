//! `bench grafts`, over the network: HTTP requests/s of the `http` image
//! with no graft, with the compiled-in packet filter (`block=8081`, the
//! `net::DropPorts` policy) and with the same filter as a graft
//! (`target/grafts/packet-filter.wasm` loaded on `net.rx` through the
//! control port, signed with the development key). The three guests run
//! side by side and wrk visits them in turn, run by run (each run starting
//! with the next), so a drift in the host's load falls on all three alike. After the runs the filter is
//! checked to be in force: port 8081 must answer only the unfiltered guest.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::net::load::{self, WrkReport};
use super::net::vm::{Vm, free_port};
use super::net::{MEMORY, WRK_SECONDS};
use crate::bench::{median, verdict};
use crate::graft_client::Client;
use crate::qemu::{Accel, Qemu};

/// wrk loads (connections), the main one first.
pub const LOADS: [usize; 2] = [32, 1];
/// The target: the graft's req/s over the compiled-in filter's.
pub const TARGET_RATIO: f64 = 0.95;
/// Measured runs per setup and load (after a warm-up).
pub const RUNS: usize = 5;
/// The interpreter's ratio (wasmi, before grafts were compiled ahead of time).
const INTERPRETER_RATIO: &str = "0.68–0.81×";
const READY: &str = "http: serving on";
const BLOCKED: u16 = 8081;
const GRANT: &str = "context,counters";

/// One configuration of the `http` image.
struct Setup {
    name: &'static str,
    append: &'static str,
    graft: bool,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "no graft",
        append: "port=80,8081",
        graft: false,
    },
    Setup {
        name: "compiled-in filter (block=8081)",
        append: "port=80,8081 block=8081",
        graft: false,
    },
    Setup {
        name: "filter as a graft (packet-filter.wasm on net.rx)",
        append: "port=80,8081",
        graft: true,
    },
];

struct Guest {
    /// Kept running until dropped.
    _vm: Vm,
    /// Host ports forwarded to guest 80, 8081 and the control port.
    web: SocketAddr,
    blocked: SocketAddr,
    control: SocketAddr,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn boot(elf: &std::path::Path, accel: Accel, setup: &Setup) -> anyhow::Result<Guest> {
    let (web, blocked, control) = (free_port()?, free_port()?, free_port()?);
    let control_port = crate::images::control_port("http").context("http has a control port")?;
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    qemu.append = setup.append.into();
    qemu.forwards = vec![(web, 80), (blocked, BLOCKED), (control, control_port)];
    let vm = Vm::start(qemu.command()?, READY, Duration::from_secs(180))?;
    Ok(Guest {
        _vm: vm,
        web: local(web),
        blocked: local(blocked),
        control: local(control),
    })
}

/// Loads the packet filter on `net.rx`; the graft's id.
fn load_filter(guest: &Guest) -> anyhow::Result<u64> {
    let module = crate::root().join("target/grafts/packet-filter.wasm");
    let module = std::fs::read(&module).with_context(|| format!("{}", module.display()))?;
    let envelope = crate::keys::seal("net.rx", GRANT, &module)?;
    let mut client = Client::connect(&guest.control.to_string())?;
    let reply = client.load("net.rx", &envelope)?.json()?;
    reply["graft"].as_u64().context("no graft id in the reply")
}

/// The filter's counters after the runs: (calls, commits, aborts, frames dropped).
fn filter_stats(guest: &Guest) -> anyhow::Result<Value> {
    let mut client = Client::connect(&guest.control.to_string())?;
    let stats = client.stats(Some("net.rx"))?.json()?;
    let graft = &stats["grafts"][0];
    Ok(json!({
        "calls": graft["calls"],
        "commits": graft["commits"],
        "guarded_out": graft["guarded_out"],
        "aborts": graft["aborts"].as_object().map(|a| a.values().filter_map(Value::as_u64).sum::<u64>()),
        "dropped": stats["counters"][0],
    }))
}

/// Whether one `GET /hello.txt` to `addr` is answered within `limit`.
fn answered(addr: SocketAddr, limit: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(limit));
    if stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}

/// What one configuration measured: per load, its wrk runs.
struct Measured {
    runs: Vec<(usize, Vec<WrkReport>)>,
    errors: Vec<String>,
    extra: Value,
}

fn rps(measured: &Measured, connections: usize) -> Option<f64> {
    let (_, runs) = measured.runs.iter().find(|(c, _)| *c == connections)?;
    median(runs.iter().map(|r| r.requests_per_sec))
}

/// Boots the three configurations, measures them in turn, checks the filter.
pub fn measure(elf: &std::path::Path, accel: Accel) -> anyhow::Result<Value> {
    let mut guests = Vec::new();
    let mut measured: Vec<Measured> = Vec::new();
    for setup in &SETUPS {
        eprintln!("bench grafts: http image, {}", setup.name);
        let mut m = Measured {
            runs: LOADS.iter().map(|&c| (c, Vec::new())).collect(),
            errors: Vec::new(),
            extra: json!({}),
        };
        let guest = boot(elf, accel, setup).and_then(|guest| {
            if setup.graft {
                let id = load_filter(&guest).context("loading the packet filter")?;
                m.extra["graft"] = json!(id);
            }
            Ok(guest)
        });
        match guest {
            Ok(guest) => guests.push(Some(guest)),
            Err(e) => {
                m.errors.push(format!("{e:#}"));
                guests.push(None);
            }
        }
        measured.push(m);
    }
    for (li, &connections) in LOADS.iter().enumerate() {
        for run in 0..=RUNS {
            // Each run starts with the next setup, so none is always last.
            for i in (0..guests.len()).map(|k| (k + run) % guests.len()) {
                let Some(guest) = &guests[i] else { continue };
                let url = format!("http://{}/hello.txt", guest.web);
                // Run 0 is a warm-up (connections opened, code translated under TCG).
                let seconds = if run == 0 { 1 } else { WRK_SECONDS };
                match load::wrk(&url, connections, seconds) {
                    Ok(_) if run == 0 => {}
                    Ok(report) => {
                        eprintln!(
                            "bench grafts: {} -c{connections} run {run}: {:.0} req/s",
                            SETUPS[i].name, report.requests_per_sec
                        );
                        measured[i].runs[li].1.push(report);
                    }
                    Err(e) => measured[i]
                        .errors
                        .push(format!("wrk -c{connections}: {e:#}")),
                }
            }
        }
    }
    for (i, guest) in guests.iter().enumerate() {
        let Some(guest) = guest else { continue };
        let served = answered(guest.blocked, Duration::from_secs(3));
        measured[i].extra["port_8081_served"] = json!(served);
        if SETUPS[i].graft {
            match filter_stats(guest) {
                Ok(stats) => measured[i].extra["filter"] = stats,
                Err(e) => measured[i].errors.push(format!("stats: {e:#}")),
            }
        }
        if served == (i != 0) {
            measured[i].errors.push(format!(
                "port 8081 was {} after the runs: the filter is not what this row says",
                if served { "served" } else { "not served" }
            ));
        }
    }
    drop(guests);
    Ok(to_json(&measured))
}

fn to_json(measured: &[Measured]) -> Value {
    let rows: Vec<Value> = SETUPS
        .iter()
        .zip(measured)
        .map(|(setup, m)| {
            let loads: Vec<Value> = m
                .runs
                .iter()
                .map(|(c, runs)| {
                    json!({
                        "connections": c,
                        "median_rps": rps(m, *c),
                        "median_p50_us": median(runs.iter().map(|r| r.p50_us)),
                        "runs_rps": runs.iter().map(|r| r.requests_per_sec).collect::<Vec<_>>(),
                        "errors": runs.iter().map(|r| r.errors).sum::<u64>(),
                    })
                })
                .collect();
            json!({
                "setup": setup.name,
                "cmdline": setup.append,
                "loads": loads,
                "checks": m.extra,
                "problems": m.errors,
            })
        })
        .collect();
    json!({ "runs": RUNS, "seconds": WRK_SECONDS, "statistic": "median", "setups": rows })
}

fn load_rps(http: &Value, setup: usize, connections: usize) -> Option<f64> {
    http["setups"][setup]["loads"]
        .as_array()?
        .iter()
        .find(|l| l["connections"].as_u64() == Some(connections as u64))?["median_rps"]
        .as_f64()
}

fn load_runs(http: &Value, setup: usize, connections: usize) -> Vec<f64> {
    http["setups"][setup]["loads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["connections"].as_u64() == Some(connections as u64))
        .flat_map(|l| l["runs_rps"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_f64())
        .collect()
}

/// The Markdown section for `measure`'s JSON.
pub fn section(mode: &str, http: &Value) -> String {
    let mut md = format!(
        "## HTTP with a packet filter ({mode})\n\n\
         The `http` image (release, QEMU {mode}, {MEMORY} RAM, user networking) serving `/hello.txt` \
         on ports 80 and 8081; wrk on the host, one thread, against port 80; **median of {RUNS} runs \
         of {WRK_SECONDS} s** per load, after a 1 s warm-up, the three guests running side by side and \
         visited in turn (each run starting with the next). The filter drops TCP to port 8081, so \
         every frame passes through it. Cells: median req/s (lowest–highest run).\n\n\
         | setup | req/s, 32 connections | req/s, 1 connection | ratio to compiled-in (32 / 1) | wrk errors | 8081 served after |\n\
         |---|---:|---:|---:|---:|---|\n"
    );
    let fmt = |i: usize, c: usize| {
        let Some(median) = load_rps(http, i, c) else {
            return "—".to_string();
        };
        let runs = load_runs(http, i, c);
        let (low, high) = runs
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        format!("**{median:.0}** ({low:.0}–{high:.0})")
    };
    let ratio = |s: usize, c: usize| Some(load_rps(http, s, c)? / load_rps(http, 1, c)?);
    for (i, setup) in http["setups"].as_array().into_iter().flatten().enumerate() {
        let errors: u64 = setup["loads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["errors"].as_u64())
            .sum();
        let r = |c| ratio(i, c).map_or("—".into(), |r| format!("{r:.2}×"));
        md.push_str(&format!(
            "| {} (`{}`) | {} | {} | {} / {} | {errors} | {} |\n",
            setup["setup"].as_str().unwrap_or("?"),
            setup["cmdline"].as_str().unwrap_or(""),
            fmt(i, 32),
            fmt(i, 1),
            r(32),
            r(1),
            setup["checks"]["port_8081_served"]
                .as_bool()
                .map_or("—", |s| if s { "yes" } else { "no" }),
        ));
    }
    let filter = &http["setups"][2]["checks"]["filter"];
    if !filter.is_null() {
        md.push_str(&format!(
            "\nThe graft after the runs: {} calls, {} commits, {} guarded out (not IPv4/TCP), {} aborts; \
             frames to 8081 dropped (host counter 0): {}.\n",
            filter["calls"], filter["commits"], filter["guarded_out"], filter["aborts"], filter["dropped"]
        ));
    }
    for setup in http["setups"].as_array().into_iter().flatten() {
        for problem in setup["problems"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "\n- {}: {}\n",
                setup["setup"].as_str().unwrap_or("?"),
                problem.as_str().unwrap_or("?")
            ));
        }
    }
    let check = |c: usize| match ratio(2, c) {
        Some(r) => format!("**{}** ({r:.2}×)", verdict(r >= TARGET_RATIO)),
        None => "**MISS** (not measured)".into(),
    };
    md.push_str(&format!(
        "\nTarget: the filter as a graft ≥ {TARGET_RATIO}× the compiled-in filter's req/s: \
         32 connections {}; 1 connection {} (the interpreter: {INTERPRETER_RATIO}).\n\n",
        check(32),
        check(1)
    ));
    md
}
