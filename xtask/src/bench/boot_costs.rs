//! `bench boot`'s costs that transfer to KVM: for every image, guest
//! instructions from the PVH entry to `main` and per boot phase, and the
//! exit-class events before the image's first line of output.
//!
//! Each image boots twice under `-icount shift=0`, so that the kernel's
//! TSC counts instructions:
//! - with `bootphases` on its command line, the kernel prints its phase
//!   table (busy cycles at the end of each phase: page tables, heap, APIC,
//!   `main`, virtio-net, network up) once the image first idles or exits,
//!   after the phases it measures;
//! - with the default command line and QEMU's exit events traced, the
//!   events before the console shows the image's ready line are the boot's
//!   (the serial output is rebuilt from the trace to find that line), and
//!   the serial bytes among them are what the kernel printed before it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::exits::{self, Counts, Probe};
use crate::qemu::{Accel, Qemu};

/// The images and the line each prints when it is ready.
pub const IMAGES: [(&str, &str); 4] = [
    ("hello", "Hello from Rootstock!"),
    ("echo", "echo: listening on"),
    ("http", "http: serving on"),
    ("kv", "kv: ready on"),
];

const LIMIT: Duration = Duration::from_secs(120);

/// One image's boot.
pub struct ImageBoot {
    pub image: &'static str,
    /// (phase, busy cycles since entry = instructions under icount).
    pub phases: Vec<(String, u64)>,
    /// Events before the ready line, and serial bytes printed before it.
    pub before_ready: Result<(Counts, usize), String>,
}

/// Boots `qemu` until `ready` appears (and `settle` after it, or until it
/// exits); returns the console.
fn boot(qemu: &Qemu, ready: &str, settle: Duration) -> anyhow::Result<String> {
    let (mut child, reader) = crate::qemu::spawn_collecting(qemu)?;
    let start = Instant::now();
    let probe = qemu.trace.clone().context("no trace log")?;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        let trace = std::fs::read_to_string(&probe).unwrap_or_default();
        let text: Vec<u8> = exits::serial_bytes(&trace)
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        if String::from_utf8_lossy(&text).contains(ready) {
            std::thread::sleep(settle);
            let _ = child.kill();
            break;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            anyhow::bail!("no {ready:?} within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait()?;
    Ok(reader.join().unwrap_or_default())
}

fn parse_phases(console: &str) -> Vec<(String, u64)> {
    console
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("boot phase ")?;
            let (name, rest) = rest.split_once(": ")?;
            let cycles = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_string(), cycles))
        })
        .collect()
}

fn qemu_for(elf: &Path, image: &str, accel: Accel) -> anyhow::Result<Qemu> {
    let mut qemu = Qemu::new(elf);
    qemu.accel = accel;
    qemu.memory = super::net::MEMORY.into();
    if image != "hello" {
        qemu.forwards = vec![(super::net::vm::free_port()?, 9)];
    }
    if image == "kv" {
        let disk = super::out_dir().join("kv-disks/boot-costs.img");
        crate::qemu::create_disk(&disk, 64 << 20)?;
        qemu.disk = Some(disk);
    }
    Ok(qemu)
}

fn measure(
    elf: &Path,
    image: &'static str,
    ready: &str,
    accel: Accel,
) -> anyhow::Result<ImageBoot> {
    let mut qemu = qemu_for(elf, image, accel)?;
    let _probe = Probe::attach(&mut qemu, &format!("boot-{image}-phases"))?;
    qemu.qmp = None;
    qemu.append = "bootphases".into();
    let console = boot(&qemu, ready, Duration::from_millis(1500))?;
    let phases = parse_phases(&console);

    let mut qemu = qemu_for(elf, image, accel)?;
    let probe = Probe::attach(&mut qemu, &format!("boot-{image}"))?;
    qemu.qmp = None;
    boot(&qemu, ready, Duration::ZERO)?;
    let trace = probe.trace()?;
    let before_ready = exits::before_line(&trace, ready)
        .with_context(|| format!("the trace never shows {ready:?}"))
        .map_err(|e| format!("{e:#}"));
    Ok(ImageBoot {
        image,
        phases,
        before_ready,
    })
}

/// Boots every image twice (see the module comment).
pub fn measure_all(accel: Accel) -> Vec<Result<ImageBoot, String>> {
    let names: Vec<String> = IMAGES.iter().map(|(n, _)| n.to_string()).collect();
    let elves = match crate::images::build(&names, true, None) {
        Ok(elves) => elves,
        Err(e) => return vec![Err(format!("{e:#}"))],
    };
    IMAGES
        .iter()
        .zip(&elves)
        .map(|(&(image, ready), elf)| {
            eprintln!("bench boot: {image}: instructions per phase, exit events before {ready:?}");
            measure(elf, image, ready, accel).map_err(|e| format!("{image}: {e:#}"))
        })
        .collect()
}

/// The Markdown section and its JSON.
pub fn report(boots: &[Result<ImageBoot, String>]) -> (String, Value) {
    let mut md = String::from(
        "\n## Costs that transfer to KVM: instructions and exit-class events at boot\n\n\
         Release images, TCG with `-icount shift=0` (the guest's TSC counts instructions), \
         one boot each (the counts repeat to within a few instructions). Exit-class events \
         are those before the image's ready line (QEMU trace events; see `bench net`).\n\n\
         | image | entry → main, instructions | → network up | exits before ready | serial bytes before ready | APIC w / r | I/O APIC | virtio-mmio r / w | notifies |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json_rows = Vec::new();
    for boot in boots {
        let boot = match boot {
            Ok(b) => b,
            Err(e) => {
                md.push_str(&format!("| {e} | | | | | | | | |\n"));
                continue;
            }
        };
        let at = |name: &str| boot.phases.iter().find(|(n, _)| n == name).map(|p| p.1);
        let show = |v: Option<u64>| v.map_or("—".into(), |v| v.to_string());
        let (events, serial) = match &boot.before_ready {
            Ok((c, s)) => (
                format!(
                    "{:.0} | {s} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.0}",
                    c.exits(),
                    c.apic_writes,
                    c.apic_reads,
                    c.ioapic,
                    c.mmio_reads,
                    c.mmio_writes,
                    c.notifies
                ),
                *s,
            ),
            Err(e) => (format!("{e} | | | | |"), 0),
        };
        md.push_str(&format!(
            "| `{}` | {} | {} | {events} |\n",
            boot.image,
            show(at("main")),
            show(at("network up"))
        ));
        json_rows.push(json!({
            "image": boot.image,
            "phases": boot.phases.iter().map(|(n, c)| json!({"phase": n, "instructions": c})).collect::<Vec<_>>(),
            "before_ready": boot.before_ready.as_ref().map(|(c, _)| c.to_json()).unwrap_or(Value::Null),
            "serial_bytes_before_ready": serial,
        }));
    }
    md.push_str("\nPhases, instructions (each phase's own, then since entry):\n\n");
    for boot in boots.iter().flatten() {
        let mut previous = 0;
        let cells: Vec<String> = boot
            .phases
            .iter()
            .map(|(name, at)| {
                let own = at - previous;
                previous = *at;
                format!("{name} {own}")
            })
            .collect();
        md.push_str(&format!("- `{}`: {}\n", boot.image, cells.join(" · ")));
    }
    if let Some(Ok(hello)) = boots.first() {
        let main = hello.phases.iter().find(|(n, _)| n == "main").map(|p| p.1);
        let serial = hello
            .before_ready
            .as_ref()
            .map(|r| r.1)
            .unwrap_or(usize::MAX);
        md.push_str(&format!(
            "\nTarget: `hello` entry → main ≤ 20,000 instructions with 0 serial bytes before \
             main at the default log level: {} ({} instructions, {serial} bytes).\n",
            super::verdict(main.is_some_and(|m| m <= 20_000) && serial == 0),
            main.map_or("—".into(), |m| m.to_string()),
        ));
    }
    (md, Value::Array(json_rows))
}
