//! Graft tooling: compiling graft modules to WebAssembly and the host-side graft benchmarks.
//! (Placeholder: owned by the graft-runtime work; `main.rs` only calls the functions below.)

use std::path::PathBuf;

/// Compiles every graft module under `grafts/` to `.wasm` and returns their paths.
pub fn build_modules(_release: bool) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::bail!("graft modules cannot be built yet")
}

/// Runs the host-side graft benchmarks and writes the overhead table under `target/bench/`.
pub fn bench() -> anyhow::Result<()> {
    anyhow::bail!("the graft benchmark is not written yet")
}
