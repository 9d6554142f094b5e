//! `bench kv`'s per-request costs: instructions and exit-class events per
//! GET and per SET at `-P 1` and `-P 16` ([`crate::bench::costs`]), for
//! `kv` and for Debian's redis-server in the Linux guest, each booted once
//! more under `-icount shift=0` with the exit events traced.
//!
//! The clients reach the guests through QEMU's user network (a forwarded
//! port): its listen backlog of 1 turns a burst of connections into SYN
//! retransmissions, so `redis-benchmark` runs with [`CLIENTS`] client
//! here. Counts per request do not depend on how fast the host is.

use std::net::SocketAddr;

use super::{BOOT_LIMIT, KV_READY, MEMORY, disk, linux, ping};
use crate::bench::costs::{self, Row};
use crate::bench::exits::{Counts, Probe};
use crate::bench::net::vm::{Vm, free_port};
use crate::qemu::{Accel, Qemu};

/// `redis-benchmark -c` for the counts.
pub const CLIENTS: usize = 1;
/// (pipeline depth, requests per measurement).
pub const LOADS: [(usize, usize); 2] = [(1, 3000), (16, 30_000)];
const TESTS: [&str; 2] = ["get", "set"];

fn all(probe: &mut Probe, addr: SocketAddr) -> anyhow::Result<Vec<Counts>> {
    let mut out = Vec::new();
    for (pipeline, requests) in LOADS {
        for test in TESTS {
            out.push(costs::redis(
                probe, addr, test, pipeline, CLIENTS, requests,
            )?);
        }
    }
    Ok(out)
}

fn ours(elf: &std::path::Path, accel: Accel) -> anyhow::Result<Vec<Counts>> {
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    qemu.disk = Some(disk("costs")?);
    let mut probe = Probe::attach(&mut qemu, "kv")?;
    let port = free_port()?;
    qemu.forwards = vec![(port, 6379)];
    let _vm = Vm::start(qemu.command()?, KV_READY, BOOT_LIMIT)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    ping(addr, BOOT_LIMIT)?;
    all(&mut probe, addr)
}

fn linux_guest(accel: Accel) -> anyhow::Result<Vec<Counts>> {
    let mut qemu = Qemu::new("unused");
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    let mut probe = Probe::attach(&mut qemu, "linux-kv")?;
    let port = free_port()?;
    qemu.forwards = vec![(port, 6379)];
    let _vm = Vm::start(linux::command(qemu, "")?, linux::READY_LINE, BOOT_LIMIT)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    ping(addr, BOOT_LIMIT)?;
    all(&mut probe, addr)
}

/// Measures both and appends the table to `kv.md` / `kv.json`.
pub fn run(elf: &std::path::Path, accel: Accel) -> anyhow::Result<()> {
    eprintln!("bench kv: per-request instructions and exit-class events (icount, traced)");
    let text = |r: anyhow::Result<Vec<Counts>>| {
        r.map_err(|e| {
            format!("{e:#}")
                .lines()
                .next()
                .unwrap_or("failed")
                .to_string()
        })
    };
    let ours = text(ours(elf, accel));
    let linux = if costs::linux_wanted() {
        text(linux_guest(accel))
    } else {
        Err("skipped (ROOTSTOCK_BENCH_OURS_ONLY)".into())
    };
    let mut rows = Vec::new();
    let mut index = 0;
    for (pipeline, requests) in LOADS {
        for test in TESTS {
            let pick = |r: &Result<Vec<Counts>, String>| r.clone().map(|v| v[index]);
            rows.push(Row {
                what: format!("`kv` {}, `-P {pipeline}` ({requests})", test.to_uppercase()),
                ours: pick(&ours),
                linux: pick(&linux),
                target: (pipeline == 16).then_some(0.5),
            });
            index += 1;
        }
    }
    let md = costs::markdown(
        &format!("Costs that transfer to KVM (`redis-benchmark -c {CLIENTS}`, user network)"),
        "request",
        &rows,
    );
    costs::append("kv", &md, "costs", costs::json(&rows))
}
