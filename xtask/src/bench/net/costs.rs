//! `bench net`'s per-request costs: `echo` round trips and `http`
//! keep-alive GETs at 1 and 32 connections, instructions and exit-class
//! events ([`crate::bench::costs`]), beside the Linux guest (busybox echo,
//! nginx) booted the same way.

use std::net::SocketAddr;
use std::path::Path;

use super::vm::{Vm, free_port};
use super::{BOOT_LIMIT, ECHO_READY, HTTP_READY, MEMORY, linux};
use crate::bench::costs::{self, Row};
use crate::bench::exits::{Counts, Probe};
use crate::qemu::{Accel, Qemu};

/// Round trips and requests per measurement.
pub const ROUNDS: usize = 2000;
pub const REQUESTS: usize = 2000;

fn probed(qemu: &mut Qemu, name: &str, guest_ports: &[u16]) -> anyhow::Result<(Probe, Vec<u16>)> {
    let probe = Probe::attach(qemu, name)?;
    let mut hosts = Vec::new();
    for &port in guest_ports {
        let host = free_port()?;
        qemu.forwards.push((host, port));
        hosts.push(host);
    }
    Ok((probe, hosts))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ours_echo(elf: &Path, accel: Accel) -> anyhow::Result<Counts> {
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    let (mut probe, ports) = probed(&mut qemu, "echo", &[7])?;
    let _vm = Vm::start(qemu.command()?, ECHO_READY, BOOT_LIMIT)?;
    costs::echo(&mut probe, local(ports[0]), ROUNDS)
}

fn ours_http(elf: &Path, accel: Accel) -> anyhow::Result<[Counts; 2]> {
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    let (mut probe, ports) = probed(&mut qemu, "http", &[80])?;
    let _vm = Vm::start(qemu.command()?, HTTP_READY, BOOT_LIMIT)?;
    let one = costs::http(&mut probe, local(ports[0]), "/hello.txt", 1, REQUESTS)?;
    let many = costs::http(&mut probe, local(ports[0]), "/hello.txt", 32, REQUESTS * 2)?;
    Ok([one, many])
}

fn linux_all(accel: Accel) -> anyhow::Result<(Counts, [Counts; 2])> {
    let mut qemu = Qemu::new("unused");
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    let (mut probe, ports) = probed(&mut qemu, "linux-net", &[7, 80])?;
    let _vm = Vm::start(linux::command(qemu)?, linux::READY_LINE, BOOT_LIMIT)?;
    let echo = costs::echo(&mut probe, local(ports[0]), ROUNDS)?;
    let one = costs::http(&mut probe, local(ports[1]), "/hello.txt", 1, REQUESTS)?;
    let many = costs::http(&mut probe, local(ports[1]), "/hello.txt", 32, REQUESTS * 2)?;
    Ok((echo, [one, many]))
}

fn text<T>(result: anyhow::Result<T>) -> Result<T, String> {
    result.map_err(|e| {
        format!("{e:#}")
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string()
    })
}

/// Measures everything and appends the table to `net.md` / `net.json`.
pub fn run(echo: &Path, http: &Path, accel: Accel) -> anyhow::Result<()> {
    eprintln!("bench net: per-request instructions and exit-class events (icount, traced)");
    let echo_ours = text(ours_echo(echo, accel));
    let http_ours = text(ours_http(http, accel));
    let linux = if costs::linux_wanted() {
        text(linux_all(accel))
    } else {
        Err("skipped (ROOTSTOCK_BENCH_OURS_ONLY)".into())
    };
    let pick = |r: &Result<[Counts; 2], String>, i: usize| r.clone().map(|v| v[i]);
    let rows = vec![
        Row {
            what: "`echo`, 64-byte round trip".into(),
            ours: echo_ours,
            linux: linux.clone().map(|l| l.0),
            target: Some(3.0),
        },
        Row {
            what: "`http`, keep-alive GET, 1 connection".into(),
            ours: pick(&http_ours, 0),
            linux: linux.clone().map(|l| l.1[0]),
            target: Some(3.0),
        },
        Row {
            what: "`http`, keep-alive GET, 32 connections".into(),
            ours: pick(&http_ours, 1),
            linux: linux.map(|l| l.1[1]),
            target: Some(1.0),
        },
    ];
    let md = costs::markdown(
        &format!(
            "Costs that transfer to KVM ({ROUNDS} round trips, {REQUESTS} GETs at 1 and {} at 32 connections)",
            REQUESTS * 2
        ),
        "round trip or request",
        &rows,
    );
    costs::append("net", &md, "costs", costs::json(&rows))
}
