//! The Linux peer for `bench kv`: the Debian cloud kernel of
//! `bench::linux` with an initramfs that brings up virtio-net (modules, as in
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

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::bench::linux::{self, file};
use crate::bench::net::nginx::libraries;

/// What the init prints when redis answers.
pub const READY_LINE: &str = "linux: redis ready";

/// The Redis server binary on the host (see the module comment).
pub const REDIS: &str = "/usr/bin/redis-check-rdb";

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
    let dirs = ["usr/bin"];
    let files = vec![
        file("bin/busybox", 0o755, busybox),
        file("init", 0o755, INIT.as_bytes().to_vec()),
        file("usr/bin/redis-server", 0o755, redis),
        file("etc/passwd", 0o644, b"root:x:0:0:root:/:/bin/sh\n".to_vec()),
    ];
    linux::write_net_initramfs(&path, kernel, &dirs, files, &libraries)?;
    Ok(path)
}

/// The Linux guest's QEMU command (see [`linux::net_command`]).
/// `append` may set the address (`rsip=A.B.C.D/N`, `rsgw=A.B.C.D|none`;
/// default: QEMU's user network).
pub fn command(qemu: crate::qemu::Qemu, append: &str) -> anyhow::Result<Command> {
    let kernel = linux::kernel()?;
    let initrd = initramfs(&kernel)?;
    linux::net_command(qemu, &initrd, append)
}
