//! Graft tooling: compiling the graft crates under `grafts/samples/` to
//! WebAssembly (`target/grafts/<name>.wasm`, with their sizes).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The graft crates: every directory under `grafts/samples/`, as
/// (package name, file stem).
pub fn crates() -> anyhow::Result<Vec<(String, String)>> {
    let dir = crate::root().join("grafts/samples");
    let mut names: Vec<(String, String)> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|dir| (format!("graft-{dir}"), dir))
        .collect();
    names.sort();
    Ok(names)
}

/// Builds every graft into `out` (a directory), using `target_dir` for cargo.
pub fn build_into(out: &Path, target_dir: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    crate::setup::targets()?;
    let crates = crates()?;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(crate::root()).args([
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
    ]);
    if let Some(dir) = target_dir {
        cargo.arg("--target-dir").arg(dir);
    }
    for (package, _) in &crates {
        cargo.args(["-p", package]);
    }
    if !cargo.status().context("cannot run cargo")?.success() {
        bail!("building the grafts failed (see the compiler's messages above)");
    }
    let built = target_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    let built = built.join("wasm32-unknown-unknown/release");
    std::fs::create_dir_all(out)?;
    let mut paths = Vec::new();
    for (package, stem) in crates {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        let to = out.join(format!("{stem}.wasm"));
        std::fs::copy(&from, &to).with_context(|| format!("no {}", from.display()))?;
        eprintln!(
            "graft: {:<20} {:>6} bytes",
            stem,
            std::fs::metadata(&to)?.len()
        );
        paths.push(to);
    }
    Ok(paths)
}

/// Compiles every graft module under `grafts/` to `.wasm` and returns their paths.
pub fn build_modules(_release: bool) -> anyhow::Result<Vec<PathBuf>> {
    build_into(&crate::root().join("target/grafts"), None)
}

/// Runs the host-side graft benchmarks and writes the overhead table under `target/bench/`.
pub fn bench() -> anyhow::Result<()> {
    bail!("the graft overhead benchmark is not written yet (see the issue note)")
}
