//! `bench net`: TCP round-trip latency and HTTP throughput of Rootstock's
//! `echo` and `http` images, side by side in one run with a Linux guest
//! (nginx and a busybox echo server) on the same QEMU configuration, and
//! with the same servers as host processes for scale; plus the `http`
//! image's stripped size and the least guest RAM it serves in.
//!
//! The clients run on the host against a forwarded port of QEMU's user
//! network (`-netdev user,hostfwd=...`), so every figure includes QEMU's
//! slirp on both sides of the comparison; the ratios are what matter.

pub mod costs;
pub mod linux;
pub mod load;
pub mod native;
pub mod nginx;
mod report;
pub mod vm;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::qemu::{Accel, Qemu};
use load::WrkReport;
use vm::{Vm, free_port};

/// Guest RAM for the comparison (the same for every guest).
pub const MEMORY: &str = "128M";
/// Timed round trips per system (after [`WARMUP`] untimed ones).
pub const ROUNDS: usize = 10_000;
pub const WARMUP: usize = 1_000;
/// Boots per guest for the round trips (the report gives the median over
/// boots and their spread).
pub const RTT_BOOTS: usize = 3;
/// wrk: connections, runs per load, seconds per run.
pub const LOADS: [usize; 2] = [1, 32];
pub const WRK_RUNS: usize = 3;
pub const WRK_SECONDS: u64 = 5;
/// Guest RAM sizes tried for the `http` image's floor, MiB, largest first.
pub const FLOOR_TRIES: [u32; 8] = [32, 16, 8, 6, 5, 4, 3, 2];

pub(crate) const ECHO_READY: &str = "echo: listening on";
pub(crate) const HTTP_READY: &str = "http: serving on";
pub(crate) const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// One system's measurements.
#[derive(Debug, Default)]
pub struct System {
    pub name: &'static str,
    /// Round-trip times, microseconds, in the order measured (all boots).
    pub rtt_us: Vec<f64>,
    /// Per boot: the p50 round trip (µs) and the host's 1-minute load then.
    pub rtt_boots: Vec<(f64, f64)>,
    /// Per load (connections): every wrk run.
    pub http: Vec<(usize, Vec<WrkReport>)>,
    /// Why a part could not be measured.
    pub errors: Vec<String>,
}

impl System {
    fn new(name: &'static str) -> System {
        System {
            name,
            ..System::default()
        }
    }

    fn measure_rtt(&mut self, addr: anyhow::Result<SocketAddr>) {
        match addr.and_then(|addr| load::round_trips(addr, WARMUP, ROUNDS)) {
            Ok(samples) => {
                let mut sorted = samples.clone();
                sorted.sort_by(f64::total_cmp);
                let p50 = crate::bench::percentile(&sorted, 50.0);
                eprintln!(
                    "bench net: {} round trips, boot {}: p50 {p50:.0} us",
                    self.name,
                    self.rtt_boots.len() + 1
                );
                self.rtt_boots.push((p50, host_load()));
                self.rtt_us.extend(samples);
            }
            Err(e) => self.errors.push(format!("round trips: {e:#}")),
        }
    }

    fn measure_http(&mut self, addr: anyhow::Result<SocketAddr>) {
        let addr = match addr {
            Ok(addr) => addr,
            Err(e) => return self.errors.push(format!("HTTP: {e:#}")),
        };
        let url = format!("http://{addr}/hello.txt");
        for connections in LOADS {
            // Warm-up: connections opened, code paths translated (TCG).
            let _ = load::wrk(&url, connections, 1);
            let mut runs = Vec::new();
            for run in 0..WRK_RUNS {
                match load::wrk(&url, connections, WRK_SECONDS) {
                    Ok(report) => {
                        eprintln!(
                            "bench net: {} -c{connections} run {}: {:.0} req/s, p50 {:.0} us",
                            self.name,
                            run + 1,
                            report.requests_per_sec,
                            report.p50_us
                        );
                        runs.push(report);
                    }
                    Err(e) => self.errors.push(format!("wrk -c{connections}: {e:#}")),
                }
            }
            self.http.push((connections, runs));
        }
    }
}

fn guest(
    elf: &std::path::Path,
    accel: Accel,
    memory: &str,
    port: u16,
    ready: &str,
) -> anyhow::Result<(Vm, SocketAddr)> {
    let host = free_port()?;
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = memory.into();
    qemu.forwards = vec![(host, port)];
    let vm = Vm::start(qemu.command()?, ready, BOOT_LIMIT)?;
    Ok((vm, SocketAddr::from(([127, 0, 0, 1], host))))
}

fn rootstock(echo: &std::path::Path, http: &std::path::Path, accel: Accel) -> System {
    let mut system = System::new("Rootstock");
    for boot in 0..RTT_BOOTS {
        eprintln!("bench net: Rootstock echo image, boot {}", boot + 1);
        match guest(echo, accel, MEMORY, 7, ECHO_READY) {
            Ok((_vm, addr)) => system.measure_rtt(Ok(addr)),
            Err(e) => system.measure_rtt(Err(e)),
        }
    }
    eprintln!("bench net: Rootstock http image");
    match guest(http, accel, MEMORY, 80, HTTP_READY) {
        Ok((_vm, addr)) => system.measure_http(Ok(addr)),
        Err(e) => system.measure_http(Err(e)),
    }
    system
}

fn linux_guest(accel: Accel) -> System {
    let mut system = System::new("Linux guest");
    eprintln!("bench net: Linux guest (Debian cloud kernel, nginx, busybox nc echo)");
    let started = (|| {
        let (echo_port, http_port) = (free_port()?, free_port()?);
        let mut qemu = Qemu::new("unused");
        qemu.accel = accel;
        qemu.memory = MEMORY.into();
        qemu.forwards = vec![(echo_port, 7), (http_port, 80)];
        let vm = Vm::start(linux::command(qemu)?, linux::READY_LINE, BOOT_LIMIT)?;
        anyhow::Ok((vm, echo_port, http_port))
    })();
    match started {
        Ok((_vm, echo_port, http_port)) => {
            system.measure_rtt(Ok(SocketAddr::from(([127, 0, 0, 1], echo_port))));
            system.measure_http(Ok(SocketAddr::from(([127, 0, 0, 1], http_port))));
        }
        Err(e) => system.errors.push(format!("boot: {e:#}")),
    }
    // More boots for the round trips alone.
    for boot in 1..RTT_BOOTS {
        eprintln!("bench net: Linux guest, boot {} (round trips)", boot + 1);
        let started = (|| {
            let echo_port = free_port()?;
            let mut qemu = Qemu::new("unused");
            qemu.accel = accel;
            qemu.memory = MEMORY.into();
            qemu.forwards = vec![(echo_port, 7)];
            let vm = Vm::start(linux::command(qemu)?, linux::READY_LINE, BOOT_LIMIT)?;
            anyhow::Ok((vm, echo_port))
        })();
        match started {
            Ok((_vm, port)) => system.measure_rtt(Ok(SocketAddr::from(([127, 0, 0, 1], port)))),
            Err(e) => system.errors.push(format!("boot {}: {e:#}", boot + 1)),
        }
    }
    system
}

/// The host's 1-minute load average (what else weighs on TCG).
fn host_load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn host() -> System {
    let mut system = System::new("host process");
    eprintln!("bench net: native host processes (echo thread, nginx)");
    system.measure_rtt(native::echo());
    match native::Nginx::start() {
        Ok(nginx) => {
            let addr = nginx.addr;
            system.measure_http(Ok(addr));
        }
        Err(e) => system.errors.push(format!("nginx: {e:#}")),
    }
    system
}

/// One try at the RAM floor: (MiB, served a page?, what happened).
pub type FloorTry = (u32, bool, String);

/// Boots `http` with less and less RAM until it no longer serves a GET.
fn ram_floor(http: &std::path::Path, accel: Accel) -> Vec<FloorTry> {
    let mut tries = Vec::new();
    for mib in FLOOR_TRIES {
        let result = guest(http, accel, &format!("{mib}M"), 80, HTTP_READY)
            .and_then(|(vm, addr)| get_hello(addr).map(|()| vm))
            .map(drop);
        let ok = result.is_ok();
        let note = match result {
            Ok(()) => "serves GET /hello.txt".to_string(),
            Err(e) => last_line(&format!("{e:#}")),
        };
        eprintln!("bench net: http with {mib} MiB: {note}");
        tries.push((mib, ok, note));
        if !ok {
            break;
        }
    }
    tries
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .chars()
        .take(160)
        .collect()
}

fn get_hello(addr: SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut stream = load::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    anyhow::ensure!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with(nginx::HELLO),
        "unexpected reply: {reply:?}"
    );
    Ok(())
}

pub fn run(accel: Accel) -> anyhow::Result<()> {
    let (accel, why) = accel.resolve();
    eprintln!("bench net: accel {} ({why})", accel.name().to_uppercase());
    let elves = crate::images::build(&["echo".to_string(), "http".to_string()], true, None)?;
    let (echo, http) = (&elves[0], &elves[1]);
    let size = crate::images::stripped_size(http).context("stripping the http image")?;
    let systems = [rootstock(echo, http, accel), linux_guest(accel), host()];
    let floor = ram_floor(http, accel);
    report::write(accel, why, &systems, size, &floor)?;
    costs::run(echo, http, accel)
}
