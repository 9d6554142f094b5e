//! The Linux peer for `bench kv`: the foundation bench's Debian cloud
//! kernel with an initramfs that brings up virtio-net (modules, as in
//! `bench net`) and runs Debian's `redis-server` on port 6379.
//!
//! Debian's `redis-tools` (installed by `cargo xtask setup` for the
//! clients) ships the server binary as `redis-check-rdb`; it acts by the
//! name it is started under, so the initramfs holds it as
//! `/usr/bin/redis-server`. Redis runs in memory only (`--save ""
//! --appendonly no`): the fastest configuration it has, with no
//! persistence at all (`kv` persists every write).
//!
//! As in `bench net`, microvm keeps ACPI on for Linux (Debian's cloud
//! kernel finds virtio-mmio devices only through ACPI).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::linux;
use crate::bench::net::nginx::libraries;

/// What the init prints when redis answers.
pub const READY_LINE: &str = "linux: redis ready";

/// The Redis server binary on the host (see the module comment).
pub const REDIS: &str = "/usr/bin/redis-check-rdb";

const MODULES: [&str; 6] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_mmio.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_mmio failover net_failover virtio_net; do
    insmod /lib/modules/$m.ko || echo "linux: insmod $m failed"
done
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
address=10.0.2.15/24
gateway=10.0.2.2
for word in $(cat /proc/cmdline); do
    case $word in
        rsip=*) address=${word#rsip=} ;;
        rsgw=*) gateway=${word#rsgw=} ;;
    esac
done
ip link set lo up
ip link set eth0 up && ip addr add $address dev eth0 &&
    { [ "$gateway" = none ] || ip route add default via $gateway; } ||
    { echo "linux: no network"; poweroff -f; }
/usr/bin/redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" \
    --appendonly no --dir /tmp --daemonize no --loglevel warning &
sleep 1
echo "linux: redis ready"
while true; do sleep 3600; done
"#;

type Entry = (cpio::NewcBuilder, Cursor<Vec<u8>>);

fn dir(path: &str) -> Entry {
    (
        cpio::NewcBuilder::new(path).mode(0o040755),
        Cursor::new(Vec::new()),
    )
}

fn file(path: &str, mode: u32, bytes: Vec<u8>) -> Entry {
    (
        cpio::NewcBuilder::new(path).mode(0o100000 | mode),
        Cursor::new(bytes),
    )
}

fn modules_dir(kernel: &Path) -> anyhow::Result<PathBuf> {
    let version = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("kernel file is not vmlinuz-VERSION")?;
    let root = kernel
        .parent()
        .and_then(Path::parent)
        .context("kernel outside root/boot")?;
    Ok(root.join("lib/modules").join(version).join("kernel"))
}

/// The initramfs (built once, cached under `target/bench/linux`).
pub fn initramfs(kernel: &Path) -> anyhow::Result<PathBuf> {
    let path = crate::root().join("target/bench/linux/initrd-redis.gz");
    if path.exists() {
        return Ok(path);
    }
    crate::setup::packages(&["busybox-static", "redis-tools"])?;
    let busybox = std::fs::read("/bin/busybox").context("no /bin/busybox (busybox-static)")?;
    let redis = std::fs::read(REDIS).with_context(|| format!("no {REDIS} (redis-tools)"))?;
    let libraries = libraries(Path::new(REDIS))?;
    let mut dirs: Vec<String> = ["bin", "dev", "proc", "sys", "tmp", "etc", "usr", "usr/bin"]
        .iter()
        .chain(&["lib", "lib/modules"])
        .map(|d| d.to_string())
        .collect();
    for lib in &libraries {
        let mut parent = lib.parent();
        while let Some(p) = parent.filter(|p| p != &Path::new("/")) {
            dirs.push(
                p.to_str()
                    .context("library path")?
                    .trim_start_matches('/')
                    .into(),
            );
            parent = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut entries: Vec<Entry> = dirs.iter().map(|d| dir(d)).collect();
    entries.push(file("bin/busybox", 0o755, busybox));
    entries.push(file("init", 0o755, INIT.as_bytes().to_vec()));
    entries.push(file("usr/bin/redis-server", 0o755, redis));
    entries.push(file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/:/bin/sh\n".to_vec(),
    ));
    for lib in &libraries {
        let bytes = std::fs::read(lib).with_context(|| format!("cannot read {}", lib.display()))?;
        let name = lib
            .to_str()
            .context("library path")?
            .trim_start_matches('/');
        entries.push(file(name, 0o755, bytes));
    }
    let modules = modules_dir(kernel)?;
    for module in MODULES {
        let source = modules.join(module);
        let bytes = std::fs::read(&source)
            .with_context(|| format!("the kernel has no {}", source.display()))?;
        let name = Path::new(module).file_name().unwrap().to_str().unwrap();
        entries.push(file(&format!("lib/modules/{name}"), 0o644, bytes));
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let bytes = cpio::write_cpio(entries.into_iter(), gz)?.finish()?;
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// The Linux guest's QEMU command: `qemu`'s, with ACPI on, the kernel,
/// the initramfs and a serial console (as `bench net` boots its peer).
/// `append` may set the address (`rsip=A.B.C.D/N`, `rsgw=A.B.C.D|none`;
/// default: QEMU's user network).
pub fn command(mut qemu: crate::qemu::Qemu, append: &str) -> anyhow::Result<Command> {
    let kernel = linux::kernel()?;
    let initrd = initramfs(&kernel)?;
    qemu.elf = kernel;
    qemu.append = format!("console=ttyS0 quiet panic=-1 {append}");
    if let Some(khz) = host_tsc_khz() {
        // See `bench net`: TCG's PIT calibration of the TSC can fail.
        qemu.append.push_str(&format!(" tsc_early_khz={khz}"));
    }
    let template = qemu.command()?;
    let mut command = Command::new(template.get_program());
    let mut replaced = false;
    for arg in template.get_args() {
        if arg == "microvm,acpi=off" {
            command.arg("microvm");
            replaced = true;
        } else {
            command.arg(arg);
        }
    }
    if !replaced {
        bail!("the QEMU command line has no `-M microvm,acpi=off` to adapt for Linux");
    }
    command.arg("-initrd").arg(initrd);
    Ok(command)
}

fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("cpu MHz")?
            .split(':')
            .nth(1)?
            .trim()
            .parse()
            .ok()
    })?;
    Some((mhz * 1000.0) as u64)
}
