//! Finding and building images: every crate under `images/` is one.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The target images are built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// Names of all images (directories under `images/` with a Cargo.toml).
pub fn all() -> anyhow::Result<Vec<String>> {
    let dir = crate::root().join("images");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Where `cargo build` puts an image's ELF.
pub fn elf_path(name: &str, release: bool, target_dir: Option<&std::path::Path>) -> PathBuf {
    let target = target_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    target
        .join(TARGET)
        .join(if release { "release" } else { "debug" })
        .join(name)
}

/// Builds `names` (all at once) and returns their ELF paths.
pub fn build(
    names: &[String],
    release: bool,
    target_dir: Option<&std::path::Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    let known = all()?;
    for name in names {
        if !known.contains(name) {
            bail!(
                "no image named `{name}`; the images are: {}",
                known.join(", ")
            );
        }
    }
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(crate::root())
        .args(["build", "--target", TARGET]);
    if release {
        cargo.arg("--release");
    }
    if let Some(dir) = target_dir {
        cargo.arg("--target-dir").arg(dir);
    }
    for name in names {
        cargo.args(["-p", name]);
    }
    let status = cargo.status().context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building {} failed (see the compiler's messages above)",
            names.join(", ")
        );
    }
    Ok(names
        .iter()
        .map(|n| elf_path(n, release, target_dir))
        .collect())
}

/// Size of the file `path` would be after `strip` (loadable bytes only):
/// the end of the last section with contents in the file.
pub fn stripped_size(path: &std::path::Path) -> anyhow::Result<u64> {
    let out = std::env::temp_dir().join(format!("rootstock-strip-{}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .status()
        .context("cannot run `strip` (install binutils)")?;
    if !status.success() {
        bail!("strip failed on {}", path.display());
    }
    let size = std::fs::metadata(&out)?.len();
    let _ = std::fs::remove_file(&out);
    Ok(size)
}
