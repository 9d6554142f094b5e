//! `bench kv`: `redis-benchmark` (`-t set,get`, 50 clients, `-P 16` and
//! `-P 1`) against the release `kv` image (durability `rio`, and for
//! comparison `durability=write-through`), side by side in one run with
//! Debian's `redis-server` in a Linux guest on the same QEMU configuration
//! and as a host process for scale; then the warm-reboot time (kernel
//! panic → serving again, from the host) and the recovery of N MiB of
//! dirty cache after a crash (the guest's own timing of verify + write
//! back, and the host's panic → serving).
//!
//! Throughput runs are taken in turns — `kv`'s run 1, the Linux guest's,
//! host redis's, then run 2 of each — with both VMs up throughout, so that
//! whatever else the host does weighs on every system alike (an idle `kv`
//! halts; an idle Linux guest costs its timer ticks). For throughput the
//! clients reach the guests through host tap devices (`rsbench0`,
//! 10.0.3.1/24, for `kv` at 10.0.3.2; `rsbench1`, 10.0.4.0/24, for Linux),
//! created on first use (root). QEMU's user network is the fallback when no tap can be made:
//! its forwarded ports accept with a listen backlog of 1, so a burst of 50
//! connections sees SYN retransmissions of a second and more, which
//! dominates short runs for every system alike. The crash measurements
//! use one connection at a time and run on the user network.

mod costs;
mod linux;
mod report;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::net::vm::{Vm, free_port};
use crate::qemu::{Accel, Qemu};

/// Guest RAM (the same for both guests, as in `bench net`).
pub const MEMORY: &str = "128M";
/// `redis-benchmark -c`.
pub const CLIENTS: usize = 50;
/// (`-P`, requests per run): runs last ~10 s or more under TCG, so that
/// clients delayed by slirp's listen backlog of 1 still join early.
pub const LOADS: [(usize, u64); 2] = [(16, 300_000), (1, 50_000)];
/// Dirty-cache sizes for the recovery measurement, MiB (the cache holds
/// about 7.5 MiB).
pub const DIRTY_MIB: [u64; 4] = [1, 2, 4, 7];
const BOOT_LIMIT: Duration = Duration::from_secs(180);
pub(crate) const KV_READY: &str = "kv: ready on";

/// One system's throughput: per pipeline depth, every run's (SET, GET)
/// requests per second.
#[derive(Debug, Default)]
pub struct System {
    pub name: &'static str,
    pub runs: Vec<Depth>,
    pub errors: Vec<String>,
}

/// One pipeline depth's runs: requests per run and every run's (SET, GET)
/// requests per second.
#[derive(Debug)]
pub struct Depth {
    pub pipeline: usize,
    pub requests: u64,
    pub samples: Vec<(f64, f64)>,
}

/// One crash's recovery, as the guest and the host saw it.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Dirty data the crash left in the cache, KiB.
    pub dirty_kib: u64,
    /// Guest: cache open (verify every block, write dirty ones back), µs.
    pub recovery_us: u64,
    /// Guest: log replay, µs.
    pub replay_us: u64,
    /// Host: panic sent → `kv: ready` on the console, ms.
    pub ready_ms: f64,
    /// Host: panic sent → a new connection's PING answered, ms.
    pub serving_ms: f64,
}

/// How clients reach a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Host tap devices ([`TAPS`]), one per guest running at the same
    /// time: no address translation in between.
    Tap,
    /// QEMU's user network with a forwarded port.
    User,
}

/// The tap devices: `rsbench0` (10.0.3.1/24, its guest 10.0.3.2) and
/// `rsbench1` (10.0.4.1/24, 10.0.4.2), so that `kv` and the Linux guest
/// can run side by side.
pub const TAPS: [&str; 2] = ["rsbench0", "rsbench1"];

/// The host's and the guest's address on tap `lane`.
fn tap_addresses(lane: usize) -> (String, [u8; 4]) {
    let net = 3 + lane as u8;
    (format!("10.0.{net}.1/24"), [10, 0, net, 2])
}

impl Network {
    pub fn describe(self) -> &'static str {
        match self {
            Network::Tap => {
                "host tap devices (`-netdev tap`; each guest 10.0.N.2 from the host's 10.0.N.1)"
            }
            Network::User => "QEMU's user network (`-netdev user`, a host port forwarded)",
        }
    }
}

/// Creates (or finds) the tap devices; `Network::User` if that fails.
fn choose_network() -> Network {
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ready = TAPS.iter().enumerate().all(|(lane, tap)| {
        let (host, _) = tap_addresses(lane);
        (ip(&["link", "show", tap]) || ip(&["tuntap", "add", "dev", tap, "mode", "tap"]))
            && ip(&["addr", "replace", &host, "dev", tap])
            && ip(&["link", "set", tap, "up"])
    });
    if ready {
        Network::Tap
    } else {
        eprintln!("bench kv: no tap device (needs root and /dev/net/tun): using the user network");
        Network::User
    }
}

/// `qemu`'s command with the guest's network attached (on tap `lane`),
/// and the address clients connect to. `linux` selects the Linux peer's
/// command line.
fn networked(
    mut qemu: Qemu,
    network: Network,
    lane: usize,
    linux: bool,
) -> anyhow::Result<(Command, SocketAddr)> {
    let (append, addr) = match network {
        Network::Tap => {
            let (_, guest) = tap_addresses(lane);
            let address = format!("{}.{}.{}.{}/24", guest[0], guest[1], guest[2], guest[3]);
            let append = if linux {
                format!("rsip={address} rsgw=none")
            } else {
                format!("ip={address} gw=none")
            };
            (append, SocketAddr::from((guest, 6379)))
        }
        Network::User => {
            let port = free_port()?;
            qemu.forwards = vec![(port, 6379)];
            (String::new(), SocketAddr::from(([127, 0, 0, 1], port)))
        }
    };
    let mut command = if linux {
        linux::command(qemu, &append)?
    } else {
        qemu.append = format!("{} {append}", qemu.append).trim().to_string();
        qemu.command()?
    };
    if network == Network::Tap {
        let tap = TAPS[lane];
        command.args([
            "-netdev",
            &format!("tap,id=net0,ifname={tap},script=no,downscript=no"),
        ]);
        command.args(["-device", "virtio-net-device,netdev=net0"]);
    }
    Ok((command, addr))
}

fn redis_benchmark(addr: SocketAddr, pipeline: usize, requests: u64) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("redis-benchmark")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-c", &CLIENTS.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &requests.to_string(), "-t", "set,get", "--csv"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run redis-benchmark (redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |test: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("\"{test}\",\"")))
            .and_then(|rest| rest.split('"').next()?.parse::<f64>().ok())
    };
    match (rps("SET"), rps("GET")) {
        (Some(set), Some(get)) => Ok((set, get)),
        _ => bail!(
            "redis-benchmark gave no SET/GET figures: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Where a started system listens (or why it did not start).
fn addr<T>(started: &anyhow::Result<(T, SocketAddr)>) -> anyhow::Result<SocketAddr> {
    match started {
        Ok((_, addr)) => Ok(*addr),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    }
}

/// `runs` runs of each of [`LOADS`] for every system that started, taken
/// in turns (system A's run 1, system B's run 1, A's run 2, ...), so that
/// whatever else the host is doing weighs on all of them alike. Each
/// system's request counts are [`LOADS`]' multiplied by its scale (a fast
/// host process needs more to last, a write-through guest fewer).
fn measure(
    systems: Vec<(&'static str, anyhow::Result<SocketAddr>, f64)>,
    runs: usize,
) -> Vec<System> {
    let scaled = |requests: u64, scale: f64| ((requests as f64 * scale) as u64).max(1000);
    let mut results: Vec<(System, Option<(SocketAddr, f64)>)> = systems
        .into_iter()
        .map(|(name, addr, scale)| {
            let mut system = System {
                name,
                ..System::default()
            };
            let addr = match addr {
                Ok(addr) => Some((addr, scale)),
                Err(e) => {
                    system.errors.push(format!("start: {e:#}"));
                    None
                }
            };
            (system, addr)
        })
        .collect();
    // Warm-up: code paths translated (TCG), the key created.
    for (_, addr) in &results {
        if let Some((addr, scale)) = *addr {
            let _ = redis_benchmark(addr, 16, scaled(20_000, scale));
        }
    }
    for (pipeline, requests) in LOADS {
        for (system, addr) in &mut results {
            if let Some((_, scale)) = *addr {
                system.runs.push(Depth {
                    pipeline,
                    requests: scaled(requests, scale),
                    samples: Vec::new(),
                });
            }
        }
        for run in 0..runs {
            for (system, addr) in &mut results {
                let Some((addr, _)) = *addr else { continue };
                let depth = system.runs.last_mut().expect("pushed above");
                match redis_benchmark(addr, pipeline, depth.requests) {
                    Ok((set, get)) => {
                        eprintln!(
                            "bench kv: {} -P {pipeline} run {}: SET {set:.0}/s, GET {get:.0}/s",
                            system.name,
                            run + 1
                        );
                        depth.samples.push((set, get));
                    }
                    Err(e) => system.errors.push(format!("-P {pipeline}: {e:#}")),
                }
            }
        }
    }
    results.into_iter().map(|(system, _)| system).collect()
}

/// A new, empty raw disk for `kv`.
pub(crate) fn disk(name: &str) -> anyhow::Result<PathBuf> {
    let dir = super::out_dir().join("kv-disks");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.img"));
    let _ = std::fs::remove_file(&path);
    crate::qemu::create_disk(&path, 64 << 20)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path)
}

/// Boots `kv` (warm reboots allowed) on a fresh disk.
fn kv(
    elf: &Path,
    accel: Accel,
    disk_name: &str,
    network: Network,
    append: &str,
) -> anyhow::Result<(Vm, SocketAddr)> {
    let mut qemu = Qemu::new(elf);
    qemu.append = append.into();
    qemu.accel = accel;
    qemu.memory = MEMORY.into();
    qemu.disk = Some(disk(disk_name)?);
    qemu.no_reboot = false;
    let (command, addr) = networked(qemu, network, 0, false)?;
    let vm = Vm::start(command, KV_READY, BOOT_LIMIT)?;
    ping(addr, BOOT_LIMIT)?;
    Ok((vm, addr))
}

struct NativeRedis(Child);

impl Drop for NativeRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn native_redis() -> anyhow::Result<(NativeRedis, SocketAddr)> {
    let dir = super::out_dir().join("kv-native");
    std::fs::create_dir_all(&dir)?;
    let server = dir.join("redis-server");
    if !server.exists() {
        std::os::unix::fs::symlink(linux::REDIS, &server)?;
    }
    let port = free_port()?;
    let child = Command::new(&server)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--loglevel", "warning", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", server.display()))?;
    let redis = NativeRedis(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    ping(addr, Duration::from_secs(10))?;
    Ok((redis, addr))
}

/// Waits until a new connection's PING gets `+PONG`.
pub(crate) fn ping(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let answered = (|| {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            stream.set_read_timeout(Some(Duration::from_millis(500)))?;
            stream.write_all(b"PING\r\n")?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply)?;
            anyhow::Ok(&reply == b"+PONG\r\n")
        })();
        if answered.unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("no PONG from {addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `kv` with `DEBUG PANIC`, built into its own target directory (the
/// benchmarked image itself has no fault injection).
pub(crate) fn fault_image(release: bool) -> anyhow::Result<PathBuf> {
    let dir = crate::root().join("target/kv-fault");
    let built = crate::images::build_with_features(
        &["kv".to_string()],
        release,
        Some(&dir),
        &["fault-injection"],
    )
    .context("building kv with fault injection")?;
    Ok(built[0].clone())
}

/// Writes `bytes` of distinct keys (4 KiB values, pipelined) and waits for
/// every reply.
fn fill(addr: SocketAddr, bytes: u64) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let value = vec![b'x'; 4096];
    let count = bytes.div_ceil(value.len() as u64 + 64);
    let mut wire = Vec::new();
    for i in 0..count {
        let key = format!("fill:{i}");
        wire.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");
    }
    let mut reader = stream.try_clone()?;
    let writer = std::thread::spawn(move || stream.write_all(&wire));
    let expected = count as usize * 5;
    let mut got = Vec::with_capacity(expected);
    let mut chunk = [0u8; 4096];
    while got.len() < expected {
        let n = reader.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "kv closed the connection while filling");
        got.extend_from_slice(&chunk[..n]);
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    anyhow::ensure!(
        got == b"+OK\r\n".repeat(count as usize),
        "not every SET was acknowledged"
    );
    Ok(())
}

/// Crashes `kv` with `DEBUG PANIC` and times its return.
pub(crate) fn crash(vm: &Vm, addr: SocketAddr) -> anyhow::Result<Crash> {
    let readies = vm.console().matches(KV_READY).count();
    let mut stream = TcpStream::connect(addr)?;
    let start = Instant::now();
    stream.write_all(b"DEBUG PANIC\r\n")?;
    while vm.console().matches(KV_READY).count() == readies {
        anyhow::ensure!(
            start.elapsed() < BOOT_LIMIT,
            "no warm reboot:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let ready_ms = start.elapsed().as_secs_f64() * 1e3;
    ping(addr, BOOT_LIMIT)?;
    let serving_ms = start.elapsed().as_secs_f64() * 1e3;
    let console = vm.console();
    let line = console
        .lines()
        .rfind(|l| l.starts_with("kv: cache recovered"))
        .context("no recovery line on the console")?;
    let number_before = |suffix: &str| -> anyhow::Result<u64> {
        let head = line.split(suffix).next().context("recovery line format")?;
        let digits = head
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("");
        digits
            .parse()
            .with_context(|| format!("no number before {suffix:?} in {line:?}"))
    };
    anyhow::ensure!(line.contains(", 0 lost)"), "blocks lost: {line}");
    let recovery_us = number_before(" us; log replayed")?;
    let replay_us = number_before(" us; durability")?;
    let dirty_kib = number_before(" KiB,")?;
    Ok(Crash {
        dirty_kib,
        recovery_us,
        replay_us,
        ready_ms,
        serving_ms,
    })
}

/// Warm reboots with a little data (1,000 keys), `samples` times.
fn warm_reboots(elf: &Path, accel: Accel, samples: usize) -> anyhow::Result<Vec<Crash>> {
    let (vm, addr) = kv(elf, accel, "reboot", Network::User, "")?;
    let mut crashes = Vec::new();
    for i in 0..samples {
        fill(addr, 64 * 1024)?;
        let crash = crash(&vm, addr)?;
        eprintln!(
            "bench kv: warm reboot {}: ready after {:.0} ms, serving after {:.0} ms",
            i + 1,
            crash.ready_ms,
            crash.serving_ms
        );
        crashes.push(crash);
    }
    Ok(crashes)
}

/// For each size: a fresh `kv` and disk, that much dirty data, a crash.
fn dirty_recoveries(elf: &Path, accel: Accel) -> Vec<Result<Crash, String>> {
    DIRTY_MIB
        .iter()
        .map(|&mib| {
            let result = (|| {
                let (vm, addr) = kv(elf, accel, &format!("dirty-{mib}"), Network::User, "")?;
                fill(addr, mib << 20)?;
                crash(&vm, addr)
            })();
            match &result {
                Ok(c) => eprintln!(
                    "bench kv: {mib} MiB written: {} KiB dirty recovered in {} us (+ replay {} us); \
                     serving after {:.0} ms",
                    c.dirty_kib, c.recovery_us, c.replay_us, c.serving_ms
                ),
                Err(e) => eprintln!("bench kv: {mib} MiB: {e:#}"),
            }
            result.map_err(|e| format!("{e:#}"))
        })
        .collect()
}

/// The first three fields of `/proc/loadavg`.
fn host_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn run(runs: usize, accel: Accel) -> anyhow::Result<()> {
    let (accel, why) = accel.resolve();
    eprintln!("bench kv: accel {} ({why})", accel.name().to_uppercase());
    crate::setup::packages(&["redis-tools"])?;
    let elf = crate::images::build(&["kv".to_string()], true, None)?.remove(0);
    let image_bytes = crate::images::stripped_size(&elf).ok();
    let load_before = host_load();
    let faulty = fault_image(true)?;

    let network = choose_network();
    eprintln!(
        "bench kv: Rootstock kv (release) and the Linux guest (Debian cloud kernel, \
         redis-server) side by side, through {}; redis-server as a host process",
        network.describe()
    );
    let ours = kv(&elf, accel, "throughput", network, "");
    let linux = (|| {
        let mut qemu = Qemu::new("unused");
        qemu.accel = accel;
        qemu.memory = MEMORY.into();
        let (command, addr) = networked(qemu, network, 1, true)?;
        let vm = Vm::start(command, linux::READY_LINE, BOOT_LIMIT)?;
        ping(addr, BOOT_LIMIT)?;
        anyhow::Ok((vm, addr))
    })();
    let host = native_redis();
    let mut systems = measure(
        vec![
            ("Rootstock kv", addr(&ours), 1.0),
            ("Linux guest redis", addr(&linux), 1.0),
            ("host redis", addr(&host), 10.0),
        ],
        runs,
    );
    drop((ours, linux, host));
    // For comparison, alone: every SET on the disk (and the disk flushed)
    // before its reply.
    eprintln!("bench kv: Rootstock kv with durability=write-through");
    let through = kv(
        &elf,
        accel,
        "write-through",
        network,
        "durability=write-through",
    );
    systems.extend(measure(
        vec![("Rootstock kv, write-through", addr(&through), 0.1)],
        runs,
    ));
    drop(through);
    let [ours, linux, host, through]: [System; 4] = systems
        .try_into()
        .map_err(|_| anyhow::anyhow!("four systems measured"))?;

    let reboots = warm_reboots(&faulty, accel, runs.max(5)).map_err(|e| format!("{e:#}"));
    let dirty = dirty_recoveries(&faulty, accel);
    let setup = report::Setup {
        accel,
        why,
        network,
        runs,
        image_bytes,
        load: [load_before, host_load()],
    };
    report::write(&setup, &[ours, through, linux, host], &reboots, &dirty)?;
    costs::run(&elf, accel)
}

/// `bench exits`' part: the per-request counts alone.
pub fn costs(accel: Accel) -> anyhow::Result<()> {
    crate::setup::packages(&["redis-tools"])?;
    let elf = crate::images::build(&["kv".to_string()], true, None)?.remove(0);
    costs::run(&elf, accel)
}
