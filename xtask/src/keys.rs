//! The development signing key: the Ed25519 key `cargo xtask` signs graft
//! envelopes with, and the one every image it builds trusts.
//!
//! The key is made on first use and kept at `target/graft-keys/dev.key`
//! under the workspace root (or wherever `ROOTSTOCK_GRAFT_KEY` points; a
//! relative path is taken from the workspace root, so `cargo xtask`, the
//! integration tests and the image builds all find the same file). The file
//! holds the 32-byte seed as 64 hex digits, mode 0600. It is a development
//! key: anyone who can read `target/` can sign grafts for images built here.
//! A production image trusts other keys, passed in `ROOTSTOCK_GRAFT_KEYS`.
//!
//! Sequence numbers are microseconds since the UNIX epoch, made strictly
//! increasing within the process, so every envelope sealed here is fresh to
//! an image's replay guard (which keeps the last sequence per key) even after
//! the image restarts or the clock is read twice in one microsecond.
//!
//! This module never prints the secret and never overwrites a key file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ed25519_compact::{KeyPair, SecretKey, Seed};

/// Environment variable naming the key file (a path).
pub const KEY_ENV: &str = "ROOTSTOCK_GRAFT_KEY";

/// Where the development key lives by default, under the workspace root.
pub const DEFAULT_KEY: &str = "target/graft-keys/dev.key";

/// The key file in use: `ROOTSTOCK_GRAFT_KEY` if set (relative to the
/// workspace root), `target/graft-keys/dev.key` otherwise.
pub fn key_path() -> PathBuf {
    match std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) {
        Some(path) => crate::root().join(path),
        None => crate::root().join(DEFAULT_KEY),
    }
}

/// The development key pair, created (and announced on stderr) on first use.
pub fn dev_key() -> anyhow::Result<KeyPair> {
    key_at(&key_path())
}

/// The development public key as 64 hex digits (what images trust).
pub fn public_hex() -> anyhow::Result<String> {
    Ok(hex::encode(dev_key()?.pk.as_ref()))
}

/// Compiles the WebAssembly `module` to machine code for the images and
/// seals the artifact for graft point `point` with capability grant
/// `grant`, signed with the development key under a fresh sequence number.
pub fn seal(point: &str, grant: &str, module: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = dev_key()?;
    seal_with(&key.sk, next_sequence(), point, grant, module)
}

/// [`seal`] with any key and sequence: for tests that need a wrong key or a
/// replayed sequence number.
pub fn seal_with(
    key: &SecretKey,
    sequence: u64,
    point: &str,
    grant: &str,
    module: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let artifact = compile(module)?;
    seal_artifact(key, sequence, point, grant, &artifact)
}

/// Compiles a WebAssembly module for the images (`x86_64-unknown-none`).
pub fn compile(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    graft_runtime::compile(module, graft_runtime::Target::Image)
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// Seals an artifact already compiled for the images with the
/// development key under a fresh sequence number.
pub fn seal_compiled(point: &str, grant: &str, artifact: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = dev_key()?;
    seal_artifact(&key.sk, next_sequence(), point, grant, artifact)
}

/// Seals an artifact already compiled for the images.
pub fn seal_artifact(
    key: &SecretKey,
    sequence: u64,
    point: &str,
    grant: &str,
    artifact: &[u8],
) -> anyhow::Result<Vec<u8>> {
    graft_control::envelope::seal(key, sequence, point, grant, graft_runtime::ENGINE, artifact)
        .map_err(|error| anyhow::anyhow!("cannot seal a graft for `{point}`: {error}"))
}

/// A sequence number for the next envelope: microseconds since the UNIX
/// epoch, and always above the last one this process handed out.
pub fn next_sequence() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let fresh = |last: u64| now.max(last.saturating_add(1));
    // `fetch_update` retries on contention; the closure always returns Some.
    let last = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(fresh(last)))
        .unwrap_or_else(|last| last);
    fresh(last)
}

/// The key pair stored at `path`, created there (announced on stderr) if
/// the file does not exist yet.
pub fn key_at(path: &Path) -> anyhow::Result<KeyPair> {
    let (key, created) = load_or_create(path)?;
    if created {
        let shown = path.strip_prefix(crate::root()).unwrap_or(path);
        eprintln!(
            "graft: created development key {} (public {}…)",
            shown.display(),
            &hex::encode(key.pk.as_ref())[..16]
        );
    }
    Ok(key)
}

/// Reads the key at `path`, or makes a new one there; says which.
///
/// Creation is race-free between processes (parallel test binaries, an
/// image build beside a `graft load`): the seed is written to a private
/// temporary file which is then hard-linked into place, so whoever links
/// first wins and everyone else reads the winner's key.
pub fn load_or_create(path: &Path) -> anyhow::Result<(KeyPair, bool)> {
    if path.exists() {
        return read_key(path).map(|key| (key, false));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} for the graft key", dir.display()))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("no randomness for a new graft key: {e}"))?;
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let temporary = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id(),
        ATTEMPT.fetch_add(1, Ordering::Relaxed)
    ));
    write_private(&temporary, &format!("{}\n", hex::encode(seed)))
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok((KeyPair::from_seed(Seed::new(seed)), true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(path).map(|key| (key, false))
        }
        Err(e) => {
            // No hard links here (some file systems): create it directly.
            write_new_private(path, &format!("{}\n", hex::encode(seed)))
                .with_context(|| format!("cannot create the graft key {} ({e})", path.display()))?;
            Ok((KeyPair::from_seed(Seed::new(seed)), true))
        }
    }
}

fn read_key(path: &Path) -> anyhow::Result<KeyPair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the graft key {}", path.display()))?;
    match parse_seed(text.trim()) {
        Some(seed) => Ok(KeyPair::from_seed(Seed::new(seed))),
        None => bail!(
            "{} is not a graft key (expected 64 hex digits, an Ed25519 seed); \
             delete it to have a new one made, or point {KEY_ENV} at another file",
            path.display()
        ),
    }
}

fn parse_seed(text: &str) -> Option<[u8; 32]> {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text, &mut seed).ok()?;
    Some(seed)
}

fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = private_options().create(true).truncate(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = private_options().create_new(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_control::{Envelope, EnvelopeError, ReplayGuard, TrustedKeys};

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn a_key_file_that_is_not_64_hex_digits_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(parse_seed(&good).unwrap()[..2], [0x01, 0x23]);
        assert!(parse_seed(&good.to_uppercase()).is_some());
        for bad in [
            &good[1..],
            "zz".repeat(32).as_str(),
            &format!("{good}00"),
            "",
        ] {
            assert_eq!(parse_seed(bad), None, "{bad:?}");
            let path = dir.path().join("bad.key");
            std::fs::write(&path, bad).unwrap();
            let error = key_at(&path).unwrap_err();
            assert!(format!("{error}").contains("is not a graft key"), "{error}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
    }

    #[test]
    fn a_key_is_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dev.key");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.pk, again.pk);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(
            !text.contains(&hex::encode(first.pk.as_ref())),
            "the file holds the seed"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files left behind.
        let entries = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(entries, 1);
    }

    #[test]
    fn racing_creators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|(k, _)| k.pk == keys[0].0.pk));
        assert_eq!(keys.iter().filter(|(_, created)| *created).count(), 1);
    }

    #[test]
    fn a_damaged_key_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let message = format!("{:#}", load_or_create(&path).unwrap_err());
        assert!(message.contains("delete it"), "{message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key\n");
    }

    #[test]
    fn sequence_numbers_strictly_increase() {
        let numbers: Vec<u64> = (0..10_000).map(|_| next_sequence()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(
            numbers[0] > now - 60_000_000,
            "microseconds since the epoch"
        );
        // Across threads too: no two callers get the same number.
        let mut all: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| next_sequence()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn sealed_envelopes_verify_against_the_public_hex() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_at(&dir.path().join("dev.key")).unwrap();
        let public = hex::encode(key.pk.as_ref());
        assert_eq!(public.len(), 64);
        let trusted = TrustedKeys::from_hex(&public);
        let first = seal_with(&key.sk, next_sequence(), "net.rx", "context,log", MODULE).unwrap();
        let second = seal_with(&key.sk, next_sequence(), "net.rx", "context,log", MODULE).unwrap();
        let first = Envelope::parse(&first).unwrap();
        let second = Envelope::parse(&second).unwrap();
        assert_eq!(first.verify(&trusted), Ok(()));
        assert_eq!(
            (first.point, first.grant, first.engine),
            ("net.rx", "context,log", graft_runtime::ENGINE)
        );
        let mut guard = ReplayGuard::new();
        guard.accept(&first);
        assert_eq!(guard.check(&second), Ok(()), "a later seal is fresh");
        // Another key is not trusted.
        let other = KeyPair::from_seed(Seed::new([7; 32]));
        let foreign = seal_with(&other.sk, 1, "net.rx", "", MODULE).unwrap();
        assert_eq!(
            Envelope::parse(&foreign).unwrap().verify(&trusted),
            Err(EnvelopeError::UntrustedKey)
        );
    }

    #[test]
    fn sealing_refuses_bad_names_with_the_reason() {
        let key = KeyPair::from_seed(Seed::new([1; 32]));
        let error = seal_with(&key.sk, 1, "net rx", "", MODULE).unwrap_err();
        assert!(format!("{error}").contains("bad graft point name"));
    }
}
