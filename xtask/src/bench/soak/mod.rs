//! `bench soak`: proof that nothing leaks. The `http` and `kv` images run
//! side by side (QEMU, user networking) under steady load from our own
//! clients — keep-alive HTTP clients that check every response, RESP
//! clients that check every reply and remember every acknowledged SET —
//! while the graft churn ([`churn`]) loads, replaces and unloads grafts
//! through both control channels the whole time, hostile modules among
//! them, and `kv` is crashed on purpose (`DEBUG PANIC`) and warm-reboots
//! a few times. A sampler reads both images' heap bytes in use (`/stats`,
//! `INFO`), their connections and requests, and their installed grafts
//! once a second.
//!
//! Targets: no failed request outside the warm reboots' windows (from the
//! crash until `kv` answers again); no acknowledged write lost (every
//! read during the run and every key read back at the end); each image's
//! heap at the end within 5% of its level after warm-up; every churn
//! operation as expected (hostile modules aborted and unloaded, bad ones
//! refused) and no graft left at the end. Heap levels are medians of the
//! samples taken while no graft was installed in that image, so that a
//! graft's own memory does not count as a leak. Unlike the other
//! benchmarks, a missed target fails the command: this one is a guarantee.

pub mod churn;
pub mod clients;
pub mod report;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::bench::kv::{KV_READY, crash, disk, fault_image, ping};
use crate::bench::net::vm::{Vm, free_port};
use crate::graft_client::Client;
use crate::qemu::{Accel, Qemu};
use churn::{Churn, Image};
use clients::Shared;

/// Guest RAM of each image.
pub const MEMORY: &str = "128M";
/// Keep-alive HTTP clients and RESP clients.
pub const HTTP_CLIENTS: usize = 4;
pub const RESP_CLIENTS: usize = 2;
/// How far the heap at the end may be from its level after warm-up.
pub const HEAP_TOLERANCE: f64 = 0.05;
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub minutes: f64,
    /// Graft operations in all (rounded up to whole cycles).
    pub churns: usize,
    pub reboots: usize,
    pub release: bool,
    pub accel: Accel,
}

impl Options {
    /// `cargo xtask bench soak`'s run: `minutes` long, 1,000 graft
    /// operations, a warm reboot every two minutes (at least one).
    pub fn bench(minutes: f64, accel: Accel) -> Options {
        Options {
            minutes,
            churns: 1000,
            reboots: ((minutes / 2.0).round() as usize).max(1),
            release: true,
            accel,
        }
    }

    fn seconds(&self) -> f64 {
        self.minutes * 60.0
    }

    /// The warm-up, and the length of the two windows the heap is
    /// compared between: a tenth of the run, 10 s at least.
    pub fn window(&self) -> f64 {
        (self.seconds() / 10.0).max(10.0)
    }

    /// When the warm reboots happen: spread over the middle of the run,
    /// clear of the heap's windows.
    fn reboot_times(&self) -> Vec<f64> {
        let (first, last) = (0.3, 0.8);
        (0..self.reboots)
            .map(|k| {
                let at = if self.reboots == 1 {
                    0.5
                } else {
                    first + (last - first) * k as f64 / (self.reboots - 1) as f64
                };
                at * self.seconds()
            })
            .collect()
    }
}

/// One sample (seconds since the start; `None` where the image did not
/// answer). `quiet` is whether no graft was installed in that image
/// while the sample was taken.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub at: f64,
    pub http_heap: Option<u64>,
    pub http_active: Option<u64>,
    pub http_requests: Option<u64>,
    pub kv_heap: Option<u64>,
    pub kv_commands: Option<u64>,
    pub http_grafts: Option<usize>,
    pub kv_grafts: Option<usize>,
    pub http_quiet: bool,
    pub kv_quiet: bool,
    /// Requests answered so far, as the clients counted them.
    pub http_ok: u64,
    pub resp_ok: u64,
    pub failures: usize,
    pub churns: usize,
}

/// Everything the soak saw, for the report.
pub struct Soak {
    pub options: Options,
    pub samples: Vec<Sample>,
    pub failures: Vec<clients::Failure>,
    /// Warm reboots: (crash sent, answering again), seconds.
    pub reboots: Vec<(f64, f64)>,
    pub lost: Vec<String>,
    pub counts: churn::Counts,
    pub leftover_grafts: usize,
    pub duration: f64,
    /// The end of each image's console (http, kv), for a missed target.
    pub consoles: [String; 2],
}

/// Whether the sampler should call a sample quiet: set by the churn
/// around its operations.
struct Quiet {
    http: AtomicBool,
    kv: AtomicBool,
}

struct Guests {
    http: Vm,
    web: SocketAddr,
    http_control: SocketAddr,
    kv: Vm,
    redis: SocketAddr,
    kv_control: SocketAddr,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn boot(options: &Options, http_elf: &Path, kv_elf: &Path) -> anyhow::Result<Guests> {
    let (web, http_control) = (free_port()?, free_port()?);
    let mut qemu = Qemu::new(http_elf);
    qemu.accel = options.accel;
    qemu.memory = MEMORY.into();
    qemu.forwards = vec![(web, 80), (http_control, 7070)];
    let http = Vm::start(qemu.command()?, "http: serving on", BOOT_LIMIT)?;
    let (redis, kv_control) = (free_port()?, free_port()?);
    let mut qemu = Qemu::new(kv_elf);
    qemu.accel = options.accel;
    qemu.memory = MEMORY.into();
    qemu.forwards = vec![(redis, 6379), (kv_control, 7070)];
    qemu.disk = Some(disk("soak")?);
    qemu.no_reboot = false;
    let kv = Vm::start(qemu.command()?, KV_READY, BOOT_LIMIT)?;
    ping(local(redis), BOOT_LIMIT)?;
    Ok(Guests {
        http,
        web: local(web),
        http_control: local(http_control),
        kv,
        redis: local(redis),
        kv_control: local(kv_control),
    })
}

/// The number after `field:` in an `INFO` text.
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

fn graft_count(client: &mut Option<Client>, addr: SocketAddr) -> Option<usize> {
    let result = (|| {
        let session = match client {
            Some(session) => session,
            None => client.insert(Client::connect(&addr.to_string())?),
        };
        let list = session.list()?.json()?;
        anyhow::Ok(list["grafts"].as_array().map_or(0, Vec::len))
    })();
    if result.is_err() {
        *client = None;
    }
    result.ok()
}

/// Samples both images every [`SAMPLE_EVERY`] until stopped.
fn sampler(
    shared: Arc<Shared>,
    quiet: Arc<Quiet>,
    guests: (SocketAddr, SocketAddr, SocketAddr, SocketAddr),
    churns: Arc<Mutex<usize>>,
) -> Vec<Sample> {
    let (web, redis, http_control, kv_control) = guests;
    let (mut http_session, mut kv_session) = (None, None);
    let mut samples = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let started = shared.now();
        let was_quiet = (
            quiet.http.load(Ordering::SeqCst),
            quiet.kv.load(Ordering::SeqCst),
        );
        let mut sample = Sample {
            at: started,
            ..Sample::default()
        };
        let stats: Option<Value> = clients::connect(web)
            .and_then(|mut stream| clients::http_get(&mut stream, "/stats"))
            .ok()
            .and_then(|body| serde_json::from_slice(&body).ok());
        if let Some(stats) = stats {
            sample.http_heap = stats["heap"]["used_bytes"].as_u64();
            sample.http_active = stats["active_connections"].as_u64();
            sample.http_requests = stats["requests"].as_u64();
        }
        let info = clients::connect(redis)
            .and_then(|mut stream| clients::resp(&mut stream, &["INFO"]))
            .ok()
            .flatten();
        if let Some(info) = info {
            sample.kv_heap = info_field(&info, "used_memory");
            sample.kv_commands = info_field(&info, "total_commands_processed");
        }
        sample.http_grafts = graft_count(&mut http_session, http_control);
        sample.kv_grafts = graft_count(&mut kv_session, kv_control);
        sample.http_quiet = was_quiet.0 && quiet.http.load(Ordering::SeqCst);
        sample.kv_quiet = was_quiet.1 && quiet.kv.load(Ordering::SeqCst);
        sample.http_ok = shared.http_ok.load(Ordering::Relaxed);
        sample.resp_ok = shared.resp_ok.load(Ordering::Relaxed);
        sample.failures = shared.failures.lock().unwrap().len();
        sample.churns = *churns.lock().unwrap();
        samples.push(sample);
        let next = started + SAMPLE_EVERY.as_secs_f64();
        while shared.now() < next && !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    samples
}

/// Runs the soak on the `http` image `http_elf` and the `kv` image
/// `kv_elf` (built with `fault-injection`, for `DEBUG PANIC`).
pub fn soak(options: Options, http_elf: &Path, kv_elf: &Path) -> anyhow::Result<Soak> {
    let guests = boot(&options, http_elf, kv_elf)?;
    let expected = {
        let mut stream = std::io::BufReader::new(crate::bench::net::load::connect(guests.web)?);
        clients::http_get(&mut stream, "/hello.txt").context("the first GET /hello.txt")?
    };
    let mut churn = Churn::new(
        guests.http_control.to_string(),
        guests.kv_control.to_string(),
    )?;
    let shared = Shared::new();
    let quiet = Arc::new(Quiet {
        http: AtomicBool::new(true),
        kv: AtomicBool::new(true),
    });
    let churns_done = Arc::new(Mutex::new(0usize));
    let mut http_threads = Vec::new();
    for _ in 0..HTTP_CLIENTS {
        let (shared, expected) = (shared.clone(), expected.clone());
        let web = guests.web;
        http_threads.push(std::thread::spawn(move || {
            clients::http_client(shared, web, expected)
        }));
    }
    let mut resp_threads = Vec::new();
    for client in 0..RESP_CLIENTS {
        let (shared, redis) = (shared.clone(), guests.redis);
        resp_threads.push(std::thread::spawn(move || {
            clients::resp_client(shared, redis, client)
        }));
    }
    let sampler = {
        let (shared, quiet, churns) = (shared.clone(), quiet.clone(), churns_done.clone());
        let addrs = (
            guests.web,
            guests.redis,
            guests.http_control,
            guests.kv_control,
        );
        std::thread::spawn(move || sampler(shared, quiet, addrs, churns))
    };
    let total = options.churns.div_ceil(churn::CYCLE) * churn::CYCLE;
    let seconds = options.seconds();
    let mut reboot_at = options.reboot_times().into_iter().peekable();
    let mut reboots = Vec::new();
    while churn.done() < total || shared.now() < seconds {
        let now = shared.now();
        if reboot_at.peek().is_some_and(|&at| now >= at) && churn.at_cycle_start() {
            reboot_at.next();
            let start = shared.now();
            let crashed = crash(&guests.kv, guests.redis);
            reboots.push((start, shared.now()));
            churn.kv_rebooted();
            crashed.context("warm reboot of kv")?;
            eprintln!(
                "bench soak: warm reboot {} at {start:.0} s: serving again after {:.1} s",
                reboots.len(),
                shared.now() - start
            );
            continue;
        }
        let due = seconds * churn.done() as f64 / total as f64;
        if churn.done() < total && now >= due {
            quiet.http.store(false, Ordering::SeqCst);
            quiet.kv.store(false, Ordering::SeqCst);
            churn.step();
            quiet
                .http
                .store(churn.installed(Image::Http) == 0, Ordering::SeqCst);
            quiet
                .kv
                .store(churn.installed(Image::Kv) == 0, Ordering::SeqCst);
            *churns_done.lock().unwrap() = churn.done();
            if churn.done() % 100 == 0 {
                eprintln!(
                    "bench soak: {} of {total} graft operations at {now:.0} s",
                    churn.done()
                );
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let duration = shared.now();
    shared.stop.store(true, Ordering::SeqCst);
    for thread in http_threads {
        let _ = thread.join();
    }
    let mut lost = Vec::new();
    for (client, thread) in resp_threads.into_iter().enumerate() {
        let mut model = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a RESP client panicked"))?;
        clients::final_check(guests.redis, client, &mut model).context("reading every key back")?;
        lost.extend(model.lost);
    }
    let samples = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    let mut leftover_grafts = 0;
    for addr in [guests.http_control, guests.kv_control] {
        let list = Client::connect(&addr.to_string())?.list()?.json()?;
        leftover_grafts += list["grafts"].as_array().map_or(0, Vec::len);
    }
    let failures = shared.failures.lock().unwrap().clone();
    let tail = |console: String| {
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let consoles = [tail(guests.http.console()), tail(guests.kv.console())];
    drop(guests);
    Ok(Soak {
        options,
        samples,
        failures,
        reboots,
        lost,
        counts: churn.counts,
        leftover_grafts,
        duration,
        consoles,
    })
}

/// `cargo xtask bench soak`: the soak, its report under `target/bench/`
/// (`soak.md`, `soak.json`, `soak.svg`); an error if a target is missed.
pub fn run(minutes: f64, accel: Accel) -> anyhow::Result<()> {
    // Auto means TCG here: nested KVM is slower than TCG on the machines
    // this runs on, and the soak's figures are compared across runs.
    let (accel, why) = match accel {
        Accel::Auto => (Accel::Tcg, "the soak's default"),
        other => other.resolve(),
    };
    eprintln!(
        "bench soak: accel {} ({why}), {minutes} minutes",
        accel.name().to_uppercase()
    );
    crate::grafts::build_modules()?;
    let options = Options::bench(minutes, accel);
    let http = crate::images::build(&["http".to_string()], options.release, None)?.remove(0);
    let soak = soak(options, &http, &fault_image(options.release)?)?;
    let report = report::Report::new(&soak);
    let dir = crate::bench::out_dir();
    std::fs::write(dir.join("soak.md"), report.markdown())?;
    std::fs::write(dir.join("soak.json"), report.json().to_string())?;
    report::plot(&dir.join("soak.svg"), &soak)?;
    println!("{}", report.markdown());
    eprintln!("bench soak: wrote target/bench/soak.md, soak.json and soak.svg");
    let missed = report.missed();
    anyhow::ensure!(
        missed.is_empty(),
        "soak targets missed: {}",
        missed.join("; ")
    );
    Ok(())
}
