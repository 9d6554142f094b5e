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
