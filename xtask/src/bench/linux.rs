//! The Linux guest the benchmarks compare against: Debian's cloud kernel
//! (`linux-image-cloud-amd64`) and a minimal busybox initramfs, fetched with
//! `apt-get download` and unpacked under `target/bench/linux/` (never
//! installed on the host), booted with the same QEMU configuration as our
//! images.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The line the guest's init prints when it is ready.
pub const READY_LINE: &str = "linux: init reached";

fn cache() -> PathBuf {
    crate::root().join("target/bench/linux")
}

fn apt_download(package: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("`apt-get download {package}` failed (try `apt-get update`)");
    }
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(package) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download {package} produced no .deb"))
}

/// The versioned kernel package the meta package depends on.
fn kernel_package() -> anyhow::Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-cloud-amd64"])
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: ").map(str::to_string))
        .filter(|p| p.starts_with("linux-image-"))
        .context("cannot resolve linux-image-cloud-amd64 (run apt-get update)")
}

/// The kernel's bzImage, downloading and unpacking it on first use.
pub fn kernel() -> anyhow::Result<PathBuf> {
    let dir = cache();
    std::fs::create_dir_all(&dir)?;
    if let Some(found) = find_vmlinuz(&dir) {
        return Ok(found);
    }
    let package = kernel_package()?;
    eprintln!("bench: fetching {package} (unpacked under target/bench/linux, not installed)");
    let deb = apt_download(&package, &dir)?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root"))
        .status()?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    find_vmlinuz(&dir).context("the kernel package has no /boot/vmlinuz-*")
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("root/boot"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// A gzipped newc initramfs: static busybox and an init that prints
/// [`READY_LINE`] and reboots (QEMU runs with `-no-reboot`, so it exits).
pub fn initramfs() -> anyhow::Result<PathBuf> {
    let path = cache().join("initrd-boot.gz");
    if path.exists() {
        return Ok(path);
    }
    crate::setup::packages(&["busybox-static"])?;
    let busybox = std::fs::read("/bin/busybox").context("no /bin/busybox (busybox-static)")?;
    let init =
        format!("#!/bin/busybox sh\n/bin/busybox echo \"{READY_LINE}\"\n/bin/busybox reboot -f\n");
    let entries = vec![
        (
            cpio::NewcBuilder::new("bin").mode(0o040755),
            Cursor::new(Vec::new()),
        ),
        (
            cpio::NewcBuilder::new("bin/busybox").mode(0o100755),
            Cursor::new(busybox),
        ),
        (
            cpio::NewcBuilder::new("init").mode(0o100755),
            Cursor::new(init.into_bytes()),
        ),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let bytes = cpio::write_cpio(entries.into_iter(), gz)?.finish()?;
    std::fs::create_dir_all(cache())?;
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// One initramfs entry: a cpio header and its contents.
pub type Entry = (cpio::NewcBuilder, Cursor<Vec<u8>>);

/// A directory entry for an initramfs.
pub fn dir(path: &str) -> Entry {
    (
        cpio::NewcBuilder::new(path).mode(0o040755),
        Cursor::new(Vec::new()),
    )
}

/// A regular file entry for an initramfs.
pub fn file(path: &str, mode: u32, bytes: Vec<u8>) -> Entry {
    (
        cpio::NewcBuilder::new(path).mode(0o100000 | mode),
        Cursor::new(bytes),
    )
}

/// virtio-net's modules in load order (relative to [`modules_dir`]).
pub const NET_MODULES: [&str; 6] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_mmio.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

/// The kernel's module tree: `.../root/boot/vmlinuz-VERSION` →
/// `.../root/lib/modules/VERSION/kernel`.
pub fn modules_dir(kernel: &Path) -> anyhow::Result<PathBuf> {
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

/// Initramfs entries for [`NET_MODULES`], as `lib/modules/NAME.ko`.
pub fn net_module_entries(kernel: &Path) -> anyhow::Result<Vec<Entry>> {
    let modules = modules_dir(kernel)?;
    let mut entries = Vec::new();
    for module in NET_MODULES {
        let source = modules.join(module);
        let bytes = std::fs::read(&source)
            .with_context(|| format!("the kernel has no {}", source.display()))?;
        let name = Path::new(module)
            .file_name()
            .and_then(|n| n.to_str())
            .context("module name")?;
        entries.push(file(&format!("lib/modules/{name}"), 0o644, bytes));
    }
    Ok(entries)
}

/// Directories every Linux peer's initramfs has.
const ROOT_DIRS: [&str; 9] = [
    "bin",
    "dev",
    "proc",
    "sys",
    "tmp",
    "etc",
    "usr",
    "lib",
    "lib/modules",
];

/// Writes a gzipped initramfs for a networked Linux peer to `path`: the
/// directories [`ROOT_DIRS`], `dirs` and every parent of `libraries`, then `files`, the
/// shared libraries themselves (at their own paths) and the kernel's
/// virtio-net modules ([`net_module_entries`]).
pub fn write_net_initramfs(
    path: &Path,
    kernel: &Path,
    dirs: &[&str],
    files: Vec<Entry>,
    libraries: &[PathBuf],
) -> anyhow::Result<()> {
    let in_root = |p: &Path| -> anyhow::Result<String> {
        Ok(p.to_str()
            .context("library path")?
            .trim_start_matches('/')
            .to_string())
    };
    let mut all_dirs: Vec<String> = ROOT_DIRS
        .iter()
        .chain(dirs)
        .map(|d| d.to_string())
        .collect();
    for lib in libraries {
        let mut parent = lib.parent();
        while let Some(p) = parent.filter(|p| p != &Path::new("/")) {
            all_dirs.push(in_root(p)?);
            parent = p.parent();
        }
    }
    all_dirs.sort();
    all_dirs.dedup();
    let mut entries: Vec<Entry> = all_dirs.iter().map(|d| dir(d)).collect();
    entries.extend(files);
    for lib in libraries {
        let bytes = std::fs::read(lib).with_context(|| format!("cannot read {}", lib.display()))?;
        entries.push(file(&in_root(lib)?, 0o755, bytes));
    }
    entries.extend(net_module_entries(kernel)?);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let bytes = cpio::write_cpio(entries.into_iter(), gz)?.finish()?;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The host CPU's clock in kHz, from /proc/cpuinfo.
pub fn host_tsc_khz() -> Option<u64> {
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

/// The networked Linux guest's QEMU command: `qemu`'s, with the Debian
/// kernel, `initrd`, a serial console and `append`, and ACPI on (Debian's
/// cloud kernel is built without `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` and
/// finds virtio-mmio devices only through ACPI). Machine, memory,
/// accelerator, netdev, icount and tracing stay as `qemu` has them.
///
/// Under TCG the kernel's quick TSC calibration against the PIT sometimes
/// fails, and with no other reference clock on microvm the boot then
/// hangs: it is given the TSC rate, the host's (which TCG passes through)
/// or 1 GHz under `-icount shift=0` (one tick per instruction).
pub fn net_command(
    mut qemu: crate::qemu::Qemu,
    initrd: &Path,
    append: &str,
) -> anyhow::Result<Command> {
    qemu.elf = kernel()?;
    qemu.append = format!("console=ttyS0 quiet panic=-1 {append}");
    let khz = if qemu.icount {
        Some(1_000_000)
    } else {
        host_tsc_khz()
    };
    if let Some(khz) = khz {
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
