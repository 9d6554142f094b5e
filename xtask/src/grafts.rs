//! Graft tooling: compiling the graft crates under `grafts/samples/` to
//! WebAssembly (`target/grafts/<name>.wasm`), and each module on to the
//! images' machine code (`target/grafts/<name>.cwasm`, the artifact an
//! envelope carries), with their sizes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The graft crates: every directory under `grafts/samples/`, as
/// (package name, file stem).
pub fn crates() -> anyhow::Result<Vec<(String, String)>> {
    graft_fixtures::samples::crates(&crate::root()).map_err(anyhow::Error::msg)
}

/// `cargo build --release --target wasm32-unknown-unknown` run in `dir`
/// (whose `.cargo/config.toml` applies) with `args`.
fn cargo_wasm(dir: &Path, args: &[&OsStr]) -> anyhow::Result<()> {
    crate::setup::targets()?;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"]);
    if !cargo
        .args(args)
        .status()
        .context("cannot run cargo")?
        .success()
    {
        bail!("building the grafts failed (see the compiler's messages above)");
    }
    Ok(())
}

/// Builds every graft into `out` (a directory), using `target_dir` for
/// cargo, the same way the tests' modules are built
/// (`graft_fixtures::samples`).
pub fn build_into(out: &Path, target_dir: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    crate::setup::targets()?;
    let target_dir = target_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = graft_fixtures::samples::build(cargo, &crate::root(), &target_dir)
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(out)?;
    let mut paths = Vec::new();
    for (stem, from) in built {
        let to = out.join(format!("{stem}.wasm"));
        std::fs::copy(&from, &to).with_context(|| format!("no {}", from.display()))?;
        let wasm = std::fs::read(&to)?;
        let artifact = write_artifact(out, &stem, &wasm)?;
        eprintln!(
            "graft: {:<20} {:>6} bytes of WebAssembly, {:>7} bytes compiled",
            stem,
            wasm.len(),
            artifact
        );
        paths.push(to);
    }
    write_artifact(out, "null-graft", graft_runtime::testing::NULL_GRAFT)?;
    Ok(paths)
}

/// Builds the graft crate in `dir` (a package with a `cdylib` library, in
/// a workspace of its own or this one) for wasm32, release; returns the
/// module's path.
pub fn build_crate(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is a directory but not a graft crate (it has no Cargo.toml)",
            dir.display()
        );
    }
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "{} is not a graft crate: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let (package, library) =
        graft_library(&metadata, &manifest.canonicalize()?).with_context(|| {
            format!(
                "{} is not a graft crate: it has no library of crate-type \"cdylib\" \
                 (`cargo xtask graft new` makes one)",
                dir.display()
            )
        })?;
    eprintln!(
        "graft: building {package} ({}) for wasm32-unknown-unknown",
        dir.display()
    );
    cargo_wasm(dir, &[OsStr::new("--manifest-path"), manifest.as_os_str()])?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo metadata names no target directory")?;
    let wasm = Path::new(target)
        .join("wasm32-unknown-unknown/release")
        .join(format!("{library}.wasm"));
    if !wasm.is_file() {
        bail!("cargo built no {}", wasm.display());
    }
    Ok(wasm)
}

/// The package whose manifest is `manifest` in `cargo metadata`'s output
/// and its `cdylib` library's name, if it has one.
fn graft_library(metadata: &serde_json::Value, manifest: &Path) -> Option<(String, String)> {
    let packages = metadata["packages"].as_array()?;
    let package = packages.iter().find(|p| {
        p["manifest_path"]
            .as_str()
            .is_some_and(|m| Path::new(m) == manifest)
    })?;
    let library = package["targets"].as_array()?.iter().find(|t| {
        t["crate_types"]
            .as_array()
            .is_some_and(|types| types.iter().any(|k| k == "cdylib"))
    })?;
    Some((
        package["name"].as_str()?.to_string(),
        library["name"].as_str()?.replace('-', "_"),
    ))
}

/// Compiles `wasm` for the images to `out/<stem>.cwasm`; returns its size.
fn write_artifact(out: &Path, stem: &str, wasm: &[u8]) -> anyhow::Result<usize> {
    let artifact = crate::keys::compile(wasm).with_context(|| format!("graft {stem}"))?;
    let path = out.join(format!("{stem}.cwasm"));
    std::fs::write(&path, &artifact).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(artifact.len())
}

/// The bytes of sample graft `name`, compiled afresh once per process into
/// `target/grafts-build`: a target directory of its own, so that a nested
/// cargo never waits on the lock an outer `cargo test` holds, and rebuilt
/// (incrementally) every time, so it is never stale.
pub fn sample(name: &str) -> anyhow::Result<Vec<u8>> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let out = BUILT
        .get_or_init(|| {
            let dir = crate::root().join("target/grafts-build");
            build_into(&dir.join("out"), Some(&dir))
                .map(|_| dir.join("out"))
                .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = out.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("no graft module {}", path.display()))
}

/// Compiles every graft module under `grafts/` to `.wasm` (always an
/// optimised build, the one the images are sent) and
/// returns their paths.
pub fn build_modules() -> anyhow::Result<Vec<PathBuf>> {
    build_into(&crate::root().join("target/grafts"), None)
}

/// Runs the graft benchmarks — VINO's table on the host and inside the
/// `graftbench` image, HTTP with the packet filter compiled in and as a
/// graft ([`crate::bench::grafts_image`], [`crate::bench::grafts_http`]) —
/// and writes the report under `target/bench/`.
pub fn bench(accel: crate::qemu::Accel) -> anyhow::Result<()> {
    build_modules()?;
    eprintln!("bench grafts: cargo bench -p graft-bench --bench overhead (host, release)");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(crate::root())
        .args(["bench", "-q", "-p", "graft-bench"])
        .args(["--bench", "overhead"])
        .output()
        .context("cannot run cargo bench")?;
    if !output.status.success() {
        bail!(
            "the overhead benchmark failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no result from the benchmark")?;
    let r: serde_json::Value = serde_json::from_str(line)?;
    let ns = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    let us = |v: f64| v / 1000.0;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut md = format!(
        "# Graft overhead (VINO's table)\n\nHost-side, release build, {cores} cores, {cpu}; medians of 15 batches. \
         µs per graft invocation; VINO (OSDI '96) in parentheses.\n\n\
         | path | read-ahead | page eviction | scheduling | encryption |\n|---|---:|---:|---:|---:|\n"
    );
    let samples = r["samples"].as_array().cloned().unwrap_or_default();
    let indirection = ns("via_point_ns") - ns("direct_ns");
    md.push_str(&crate::bench::grafts_table::host_rows(&r));
    md.push('\n');
    let check = |ok: bool| if ok { "PASS" } else { "MISS" };
    md.push_str(&format!(
        "Targets: null graft begin→commit ≤ 1 µs: {} ({:.3} µs); abort with 10 undo records ≤ 2 µs: {} ({:.3} µs); \
         indirection ≤ 5 ns: {} ({:.2} ns).\n\nModule sizes: {}.\n\n\
         Other extension mechanisms for scale (ANCHORS.md): eBPF ~10 ns per run of a small JIT-compiled program; \
         SPIN protected procedure call 0.13 µs (133 MHz Alpha); wasmi 2 vs Wasmtime on CoreMark 1615 vs 23186.\n",
        check(ns("null_graft_ns") <= 1000.0), us(ns("null_graft_ns")),
        check(ns("abort10_ns") <= 2000.0), us(ns("abort10_ns")),
        check(indirection <= 5.0), indirection,
        samples.iter().map(|s| format!("{} {} B", s["module"].as_str().unwrap_or("?"), s["bytes"])).collect::<Vec<_>>().join(", ")
    ));
    let md = md.replacen(
        "# Graft overhead (VINO's table)\n\n",
        "# Graft overhead (VINO's table)\n\n## On the host\n\n",
        1,
    );
    let (md, json, failures) = crate::bench::grafts_image::report(accel, md, r);
    let dir = crate::bench::out_dir();
    std::fs::write(dir.join("grafts.md"), &md)?;
    std::fs::write(dir.join("grafts.json"), json.to_string())?;
    println!("{md}");
    eprintln!("bench grafts: wrote target/bench/grafts.md and grafts.json");
    if !failures.is_empty() {
        bail!("not measured: {}", failures.join("; "));
    }
    Ok(())
}
