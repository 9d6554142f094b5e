//! The Linux peer: the Debian cloud kernel of `bench::linux` with an
//! initramfs that brings up virtio-net (its drivers are modules in that
//! kernel) and runs nginx on port 80 and busybox's `nc -ll -e cat` echo
//! server on port 7.
//!
//! One difference from the Rootstock guests' QEMU command line is forced:
//! microvm keeps ACPI on, because Debian's cloud kernel is built without
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` and finds virtio-mmio devices only
//! through ACPI. Machine, memory, accelerator and netdev stay the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::nginx;
use crate::bench::linux::{self, file};

/// What the init prints when both servers are up.
pub const READY_LINE: &str = "linux: net ready";

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

/// The networked initramfs (built once, cached).
pub fn initramfs(kernel: &Path) -> anyhow::Result<PathBuf> {
    let path = crate::root().join("target/bench/linux/initrd-net.gz");
    if path.exists() {
        return Ok(path);
    }
    crate::setup::packages(&["busybox-static"])?;
    let busybox = std::fs::read("/bin/busybox").context("no /bin/busybox (busybox-static)")?;
    let nginx_binary = nginx::binary()?;
    let dirs = ["etc/nginx", "www", "usr/sbin", "var", "var/nginx"];
    let libraries = nginx::libraries(&nginx_binary)?;
    let files = vec![
        file("bin/busybox", 0o755, busybox),
        file("init", 0o755, INIT.as_bytes().to_vec()),
        file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
        ),
        file(
            "etc/group",
            0o644,
            b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        ),
        file(
            "etc/nginx/nginx.conf",
            0o644,
            nginx::config("80", "/www", "/var/nginx").into_bytes(),
        ),
        file("www/hello.txt", 0o644, nginx::HELLO.as_bytes().to_vec()),
        file("usr/sbin/nginx", 0o755, std::fs::read(&nginx_binary)?),
    ];
    linux::write_net_initramfs(&path, kernel, &dirs, files, &libraries)?;
    Ok(path)
}

/// The Linux guest's QEMU command (see [`linux::net_command`]).
pub fn command(qemu: crate::qemu::Qemu) -> anyhow::Result<Command> {
    let kernel = linux::kernel()?;
    let initrd = initramfs(&kernel)?;
    linux::net_command(qemu, &initrd, "")
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
