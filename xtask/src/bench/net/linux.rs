//! The Linux peer: the foundation bench's Debian cloud kernel with an
//! initramfs that brings up virtio-net (its drivers are modules in that
//! kernel) and runs nginx on port 80 and busybox's `nc -ll -e cat` echo
//! server on port 7.
//!
//! One difference from the Rootstock guests' QEMU command line is forced:
//! microvm keeps ACPI on, because Debian's cloud kernel is built without
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` and finds virtio-mmio devices only
//! through ACPI. Machine, memory, accelerator and netdev stay the same.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::nginx;
use crate::bench::linux;

/// What the init prints when both servers are up.
pub const READY_LINE: &str = "linux: net ready";

/// virtio-net's modules in load order.
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
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&
    ip route add default via 10.0.2.2 || { echo "linux: no network"; poweroff -f; }
nc -ll -p 7 -e /bin/cat &
/usr/sbin/nginx -c /etc/nginx/nginx.conf &
sleep 1
echo "linux: net ready"
while true; do sleep 3600; done
"#;

fn modules_dir(kernel: &Path) -> anyhow::Result<PathBuf> {
    // .../root/boot/vmlinuz-VERSION → .../root/lib/modules/VERSION/kernel
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

/// The networked initramfs (built once, cached).
pub fn initramfs(kernel: &Path) -> anyhow::Result<PathBuf> {
    let path = crate::root().join("target/bench/linux/initrd-net.gz");
    if path.exists() {
        return Ok(path);
    }
    crate::setup::packages(&["busybox-static"])?;
    let busybox = std::fs::read("/bin/busybox").context("no /bin/busybox (busybox-static)")?;
    let nginx_binary = nginx::binary()?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut dirs: Vec<String> = [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "etc/nginx",
        "www",
        "usr",
        "usr/sbin",
        "lib",
        "lib/modules",
        "var",
        "var/nginx",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    let libraries = nginx::libraries(&nginx_binary)?;
    for lib in &libraries {
        let mut parent = lib.parent();
        while let Some(p) = parent.filter(|p| p != &Path::new("/")) {
            dirs.push(
                p.to_str()
                    .context("library path")?
                    .trim_start_matches('/')
                    .to_string(),
            );
            parent = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    entries.extend(dirs.iter().map(|d| dir(d)));
    entries.push(file("bin/busybox", 0o755, busybox));
    entries.push(file("init", 0o755, INIT.as_bytes().to_vec()));
    entries.push(file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
    ));
    entries.push(file(
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
    ));
    entries.push(file(
        "etc/nginx/nginx.conf",
        0o644,
        nginx::config("80", "/www", "/var/nginx").into_bytes(),
    ));
    entries.push(file(
        "www/hello.txt",
        0o644,
        nginx::HELLO.as_bytes().to_vec(),
    ));
    entries.push(file("usr/sbin/nginx", 0o755, std::fs::read(&nginx_binary)?));
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

/// The Linux guest's QEMU command: `qemu`'s, with ACPI on (see above),
/// the initramfs and a serial console.
pub fn command(mut qemu: crate::qemu::Qemu) -> anyhow::Result<Command> {
    let kernel = linux::kernel()?;
    let initrd = initramfs(&kernel)?;
    qemu.elf = kernel;
    qemu.append = "console=ttyS0 quiet panic=-1".into();
    // Under TCG the kernel's quick TSC calibration against the PIT
    // sometimes fails, and with no other reference clock on microvm the
    // boot then hangs: give it the (host's) TSC rate, which TCG passes through.
    if let Some(khz) = host_tsc_khz() {
        qemu.append.push_str(&format!(" tsc_early_khz={khz}"));
    }
    let template = qemu.command()?;
    let mut command = Command::new(template.get_program());
    let mut acpi_replaced = false;
    for arg in template.get_args() {
        if arg == "microvm,acpi=off" {
            command.arg("microvm");
            acpi_replaced = true;
        } else {
            command.arg(arg);
        }
    }
    if !acpi_replaced {
        bail!("the QEMU command line has no `-M microvm,acpi=off` to adapt for Linux");
    }
    command.arg("-initrd").arg(initrd);
    Ok(command)
}

/// The host CPU's clock in kHz, from /proc/cpuinfo.
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::super::{load, vm};
    use super::*;

    /// Boots the Linux peer and checks both servers (slow: run by hand with
    /// `cargo test -p xtask -- --ignored linux_peer`).
    #[test]
    #[ignore]
    fn linux_peer_serves_echo_and_http() {
        let (echo, http) = (vm::free_port().unwrap(), vm::free_port().unwrap());
        let mut qemu = crate::qemu::Qemu::new("unused");
        qemu.memory = super::super::MEMORY.into();
        qemu.forwards = vec![(echo, 7), (http, 80)];
        let command = command(qemu).unwrap();
        let guest = vm::Vm::start(command, READY_LINE, Duration::from_secs(180)).unwrap();
        let rtt = load::round_trips(SocketAddr::from(([127, 0, 0, 1], echo)), 10, 100).unwrap();
        assert_eq!(rtt.len(), 100, "{}", guest.console());
        let mut stream = load::connect(SocketAddr::from(([127, 0, 0, 1], http))).unwrap();
        stream
            .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "{reply}\n{}",
            guest.console()
        );
        assert!(reply.ends_with(nginx::HELLO), "{reply}");
    }
}
