//! nginx, the HTTP server the Linux peers run: Debian's package, fetched
//! with `apt-get download` and unpacked under `target/bench/linux/nginx`
//! (never installed), with the shared libraries `ldd` says it needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The file both servers answer with, byte for byte what the `http`
/// image embeds.
pub const HELLO: &str = include_str!("../../../../images/http/static/hello.txt");

fn dir() -> PathBuf {
    crate::root().join("target/bench/linux/nginx")
}

/// The unpacked `/usr/sbin/nginx`, downloaded on first use.
pub fn binary() -> anyhow::Result<PathBuf> {
    let nginx = dir().join("root/usr/sbin/nginx");
    if nginx.exists() {
        return Ok(nginx);
    }
    std::fs::create_dir_all(dir())?;
    eprintln!("bench net: fetching Debian's nginx (unpacked under target/bench/linux/nginx)");
    let status = Command::new("apt-get")
        .args(["download", "-q", "nginx"])
        .current_dir(dir())
        .stdin(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("`apt-get download nginx` failed (try `apt-get update`)");
    }
    let deb = std::fs::read_dir(dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download nginx produced no .deb")?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir().join("root"))
        .status()?;
    if !status.success() || !nginx.exists() {
        bail!("dpkg-deb -x {} gave no usr/sbin/nginx", deb.display());
    }
    Ok(nginx)
}

/// The shared libraries (and loader) `binary` links against, from the host.
pub fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            bail!(
                "{} needs a library the host lacks: {line}",
                binary.display()
            );
        }
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)".
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            libs.push(PathBuf::from(path));
        }
    }
    if libs.is_empty() {
        bail!("ldd listed no libraries for {}", binary.display());
    }
    Ok(libs)
}

/// A one-process nginx configuration serving `root` on `listen`, with
/// keep-alive and no logging; `state` is a writable directory for its pid
/// file and (unused) temporary files.
pub fn config(listen: &str, root: &str, state: &str) -> String {
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|kind| format!("  {kind}_temp_path {state}/{kind};\n"))
        .collect();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr crit;\n\
         pid {state}/nginx.pid;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n{temp}  types {{ text/plain txt; text/html html; }}\n\
         default_type application/octet-stream;\n  keepalive_timeout 65;\n  keepalive_requests 1000000;\n\
         server {{ listen {listen}; root {root}; }}\n}}\n"
    )
}
