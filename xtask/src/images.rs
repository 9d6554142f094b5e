//! Finding and building images: every crate under `images/` (the
//! product images) and under `tests/images/` (the test images the
//! integration tests boot) is one.
//!
//! Every build passes `ROOTSTOCK_GRAFT_KEYS` (the public keys the image
//! accepts grafts from; the kernel reads it with `option_env!`, so cargo
//! rebuilds when it changes): the development key from [`crate::keys`],
//! followed by any keys the user set in that variable. A deployment build
//! sets `ROOTSTOCK_GRAFT_DEV_KEY=off`: the image then trusts only the keys
//! in `ROOTSTOCK_GRAFT_KEYS`, and refuses grafts signed with the
//! development key ([`build_trusting`] does the same from code). Every build also
//! passes `ROOTSTOCK_GRAFTS_DIR`, the directory of the compiled grafts, for
//! images that embed them (`graftbench`); those grafts are compiled first.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The target images are built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// The folders holding image crates: product images, then test images.
pub const DIRS: [&str; 2] = ["images", "tests/images"];

/// Names of all images, product and test (directories under [`DIRS`] with
/// a Cargo.toml), sorted.
pub fn all() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in DIRS {
        names.extend(in_dir(dir)?);
    }
    names.sort();
    Ok(names)
}

/// Names of the product images (crates under `images/`), sorted.
pub fn products() -> anyhow::Result<Vec<String>> {
    let mut names = in_dir(DIRS[0])?;
    names.sort();
    Ok(names)
}

/// Crates directly under `dir` (relative to the workspace root).
fn in_dir(dir: &str) -> anyhow::Result<Vec<String>> {
    let dir = crate::root().join(dir);
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect())
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

/// Environment variable carrying the keys an image trusts into its build.
pub const KEYS_ENV: &str = "ROOTSTOCK_GRAFT_KEYS";

/// Environment variable naming the directory of compiled graft modules
/// (absolute), for images that embed them with `include_bytes!`.
pub const GRAFTS_ENV: &str = "ROOTSTOCK_GRAFTS_DIR";

/// Whether `image` embeds the sample grafts (they are compiled first).
pub fn needs_grafts(image: &str) -> bool {
    image == "graftbench"
}

/// Compiles the grafts for an image build and returns their directory:
/// `target/grafts/`, or `<target_dir>/grafts/` for a separate target dir.
fn build_grafts(target_dir: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    match target_dir {
        None => {
            crate::grafts::build_modules()?;
            Ok(crate::root().join("target/grafts"))
        }
        Some(dir) => {
            let dir = std::path::absolute(dir)?;
            crate::grafts::build_into(&dir.join("grafts"), Some(&dir))?;
            Ok(dir.join("grafts"))
        }
    }
}

/// The graft control port inside the guest, for images that take grafts
/// over the network (`echo` stays the smallest networked image: no graft
/// runtime; `schedtest` takes grafts on its serial console).
pub fn control_port(image: &str) -> Option<u16> {
    match image {
        "http" | "kv" => Some(7070),
        _ => None,
    }
}

/// The value of `ROOTSTOCK_GRAFT_KEYS` for an image build: the development
/// public key, then the user's keys if the variable is set. When the
/// development key cannot be made this warns and the image trusts only the
/// user's keys (or none: it then refuses every graft, and still builds).
/// For anyone building images with their own cargo command.
pub fn trusted_keys() -> Option<String> {
    let user = std::env::var(KEYS_ENV).ok();
    if std::env::var(DEV_KEY_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        return merge_keys(None, user.as_deref());
    }
    let dev = match crate::keys::public_hex() {
        Ok(hex) => Some(hex),
        Err(error) => {
            eprintln!(
                "build: warning: no development graft key ({error:#}); \
                 the image will not accept grafts signed by `cargo xtask graft`"
            );
            None
        }
    };
    merge_keys(dev.as_deref(), user.as_deref())
}

/// `off` in this variable leaves the development key out of an image's
/// trusted keys (a deployment build).
pub const DEV_KEY_ENV: &str = "ROOTSTOCK_GRAFT_DEV_KEY";

/// Builds `names` into `target_dir` trusting exactly `keys` (hex public
/// keys, comma-separated) and not the development key: what a deployment
/// build with `ROOTSTOCK_GRAFT_DEV_KEY=off` produces.
pub fn build_trusting(
    names: &[String],
    target_dir: &std::path::Path,
    keys: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    build_inner(
        names,
        false,
        Some(target_dir),
        &[],
        merge_keys(None, Some(keys)),
    )
}

/// `dev` first, then the user's list (without repeating `dev`).
fn merge_keys(dev: Option<&str>, user: Option<&str>) -> Option<String> {
    let user = user.map(str::trim).filter(|u| !u.is_empty());
    match (dev, user) {
        (Some(dev), Some(user)) => {
            let theirs: Vec<&str> = user
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|k| !k.is_empty() && !k.eq_ignore_ascii_case(dev))
                .collect();
            Some(
                std::iter::once(dev)
                    .chain(theirs)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
        (Some(dev), None) => Some(dev.to_string()),
        (None, user) => user.map(str::to_string),
    }
}

/// Builds `names` (all at once) and returns their ELF paths.
pub fn build(
    names: &[String],
    release: bool,
    target_dir: Option<&std::path::Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    build_with_features(names, release, target_dir, &[])
}

/// [`build`] with cargo `features` of the image crates turned on (test
/// images such as `kv` with `fault-injection`, which belong in a target
/// directory of their own).
pub fn build_with_features(
    names: &[String],
    release: bool,
    target_dir: Option<&std::path::Path>,
    features: &[&str],
) -> anyhow::Result<Vec<PathBuf>> {
    build_inner(names, release, target_dir, features, trusted_keys())
}

fn build_inner(
    names: &[String],
    release: bool,
    target_dir: Option<&std::path::Path>,
    features: &[&str],
    keys: Option<String>,
) -> anyhow::Result<Vec<PathBuf>> {
    let known = all()?;
    for name in names {
        if !known.contains(name) {
            let products = products()?;
            let tests: Vec<&String> = known.iter().filter(|n| !products.contains(n)).collect();
            bail!(
                "no image named `{name}`; the images are: {} (test images: {})",
                products.join(", "),
                tests
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let grafts = if names.iter().any(|n| needs_grafts(n)) {
        build_grafts(target_dir)?
    } else {
        crate::root().join("target/grafts")
    };
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(crate::root())
        .env(GRAFTS_ENV, &grafts)
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
    if !features.is_empty() {
        cargo.args(["--features", &features.join(",")]);
    }
    // Always set (empty: trust nothing), so a variable in the caller's
    // environment cannot add keys the build did not choose.
    cargo.env(KEYS_ENV, keys.unwrap_or_default());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_key_comes_first_and_user_keys_are_appended() {
        let dev = "a".repeat(64);
        let theirs = "b".repeat(64);
        assert_eq!(merge_keys(Some(&dev), None), Some(dev.clone()));
        assert_eq!(
            merge_keys(Some(&dev), Some(&format!(" {theirs}, {dev} "))),
            Some(format!("{dev},{theirs}"))
        );
        assert_eq!(merge_keys(None, Some(&theirs)), Some(theirs.clone()));
        assert_eq!(merge_keys(None, Some("  ")), None);
        assert_eq!(merge_keys(Some(&dev), Some("")), Some(dev));
    }

    #[test]
    fn product_and_test_images_live_in_their_own_folders() {
        let products = products().unwrap();
        let all = all().unwrap();
        for image in ["hello", "http", "echo", "kv"] {
            assert!(products.contains(&image.to_string()), "{image}");
        }
        for image in ["selftest", "riotest", "schedtest", "graftbench"] {
            assert!(!products.contains(&image.to_string()), "{image}");
            assert!(all.contains(&image.to_string()), "{image}");
        }
        assert!(products.iter().all(|p| all.contains(p)));
    }

    #[test]
    fn grafted_network_images_have_a_control_port() {
        for image in ["http", "kv"] {
            assert_eq!(control_port(image), Some(7070));
        }
        assert_eq!(control_port("hello"), None);
        assert_eq!(control_port("echo"), None);
    }
}
