//! Making a fresh machine ready: rustup targets and Debian packages
//! (QEMU, client tools), installed only when missing, never waiting for input.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Rust targets the workspace builds for.
pub const TARGETS: [&str; 2] = ["x86_64-unknown-none", "wasm32-unknown-unknown"];

/// Tools the subcommands need, with the Debian package that provides each.
pub const TOOLS: [(&str, &str); 6] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("curl", "curl"),
    ("wrk", "wrk"),
    ("redis-cli", "redis-tools"),
    ("strip", "binutils"),
    ("gdb", "gdb"),
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn installed_targets() -> String {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Installs the Rust targets if missing.
pub fn targets() -> anyhow::Result<()> {
    let installed = installed_targets();
    let missing: Vec<&str> = TARGETS
        .into_iter()
        .filter(|t| !installed.contains(t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: rustup target add {}", missing.join(" "));
    let status = Command::new("rustup")
        .args(["target", "add"])
        .args(&missing)
        .stdin(Stdio::null())
        .status()
        .context("cannot run rustup; install Rust with rustup first")?;
    if !status.success() {
        bail!("`rustup target add {}` failed", missing.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure each of `tools` is on PATH, installing its Debian package if not.
pub fn tools(tools: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| tools.contains(tool) && !have(tool))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

fn apt_install(missing: &[&str]) -> anyhow::Result<()> {
    let command = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!("missing packages; run: sudo apt-get update && sudo {command}");
    }
    eprintln!("setup: {command}");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend(missing);
    // A stale package list is the usual reason an install fails: refresh once.
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    if !installed {
        bail!("`{command}` failed; run it by hand to see why");
    }
    Ok(())
}

/// Everything: targets and every tool.
pub fn all() -> anyhow::Result<()> {
    targets()?;
    let every: Vec<&str> = TOOLS.iter().map(|(tool, _)| *tool).collect();
    tools(&every)
}

/// Makes sure Debian `packages` are installed (by package, not by tool).
pub fn packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}
