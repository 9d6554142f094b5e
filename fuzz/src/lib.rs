//! Fuzz targets for every parser of untrusted bytes in Rootstock, each
//! runnable on its own, on the host, outside any image.
//!
//! | target | parser | where the bytes come from |
//! |---|---|---|
//! | `control` | [`graft_control::Decoder`], [`graft_control::Response::decode`] | the control channel (TCP 7070, serial) |
//! | `envelope` | [`graft_control::Envelope::parse`] and `verify` | the body of a `load`/`replace` |
//! | `resp` | `kv::resp::parse`, then `kv::Command::parse` | a `kv` client |
//! | `http` | `http::request::parse` | an `http` client |
//! | `artifact` | `graft_host::GraftHost::install`: envelope, signature, engine, then the graft runtime's artifact loader (Wasmtime's `Module::deserialize`, import and export checks, instantiation) | a signed envelope, and the artifact inside it |
//!
//! Each target is a function from bytes to nothing ([`Target::check`])
//! that panics when a property breaks. The properties:
//!
//! - **never a panic** on any input;
//! - **bounded memory**: `cargo xtask fuzz` runs each target under a
//!   memory limit (AFL++'s `-m`), so an allocation sized by a length field
//!   that nobody checked is a crash;
//! - **an error that says what was wrong**: every refusal has a message
//!   that is non-empty, one line and short (and for RESP, the exact prefix
//!   Redis clients expect);
//! - **decode(encode(x)) = x** wherever an encoder exists: control
//!   commands and responses, envelopes (seal, then parse), RESP requests
//!   (their arguments encoded as multibulk);
//! - **nothing changes on refusal** (`artifact`: the graft list, the fault
//!   log and the replay guard are as they were).
//!
//! Part of each target's input picks a mode: raw bytes for the parser, or
//! bytes read through [`arbitrary::Unstructured`] into a well-formed value
//! (a list of commands, an envelope's fields, a request) whose encoding is
//! decoded and compared. Mutations of one are thus structured inputs for
//! the other.
//!
//! # The engine: AFL++ through `cargo afl`, on stable Rust
//!
//! `cargo afl build` (the `cargo-afl` crate, afl.rs) instruments every
//! crate with LLVM's sancov pass (`-C passes=sancov-module`, a stable
//! option) and links AFL++'s runtime; `afl-fuzz` then mutates the seed
//! corpus (`fuzz/corpus/<target>/`) and keeps every input that reaches new
//! edges. That works on the stable toolchain this workspace pins, so the
//! fuzzing is coverage-guided; `cargo-fuzz` (libFuzzer) was not used since
//! its sanitizer flags need nightly. `cargo xtask setup` installs
//! `cargo-afl` and builds AFL++. The instrumented build lives in
//! `target/afl` (its flags differ from the plain build's, and sharing a
//! directory would rebuild Wasmtime every time one switches).
//!
//! Built without `cargo afl` (no `cfg(fuzzing)`), the same binary replays
//! inputs: `rootstock-fuzz <target> FILE...` runs each file once through the
//! target, which is how a crash is reproduced (`cargo xtask fuzz <target>
//! --reproduce FILE` does it) and how the unit tests run the seed corpus.
//!
//! What this crate must never do: fuzz a copy of a parser. Every target
//! calls the parser the image links, through its public path.

use std::path::{Path, PathBuf};

pub mod targets;

/// Named inputs: a seed corpus.
pub type Seeds = Vec<(String, Vec<u8>)>;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name on the command line (`cargo xtask fuzz <name>`).
    pub name: &'static str,
    /// Runs one input; panics if a property breaks.
    pub check: fn(&[u8]),
    /// The memory limit, MiB, that the fuzzer runs it under.
    pub memory_mb: u32,
    /// The time an input may take, ms, before it counts as a hang.
    pub timeout_ms: u32,
    /// The seed inputs, from the target's folder of `fuzz/corpus/`.
    pub seeds: fn(&Path) -> Result<Seeds, String>,
}

/// Every target, in the order `--all` runs them.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "control",
        check: targets::control::check,
        memory_mb: 256,
        timeout_ms: 1_000,
        seeds: targets::read_dir,
    },
    Target {
        name: "envelope",
        check: targets::envelope::check,
        memory_mb: 256,
        timeout_ms: 1_000,
        seeds: targets::envelope::seeds,
    },
    Target {
        name: "resp",
        check: targets::resp::check,
        memory_mb: 256,
        timeout_ms: 1_000,
        seeds: targets::read_dir,
    },
    Target {
        name: "http",
        check: targets::http::check,
        memory_mb: 256,
        timeout_ms: 1_000,
        seeds: targets::read_dir,
    },
    Target {
        name: "artifact",
        check: targets::artifact::check,
        memory_mb: 1_024,
        timeout_ms: 5_000,
        seeds: targets::artifact::seeds,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.into_iter().find(|t| t.name == name)
}

/// The checked-in seed corpus of `target`.
pub fn corpus(target: &Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target.name)
}

/// The names of every target, comma-separated (for error messages).
pub fn names() -> String {
    TARGETS.map(|t| t.name).join(", ")
}

/// Runs `target` under AFL++'s fork server: one input per iteration, a
/// panic is a crash.
#[cfg(fuzzing)]
pub fn fuzz(target: Target) {
    afl::fuzz(true, |data: &[u8]| (target.check)(data));
}

/// Panics with `what` unless `message` is an error message a person can
/// act on: non-empty, one line, at most a few hundred bytes.
pub fn says_what(message: &str, what: &str) {
    assert!(!message.trim().is_empty(), "{what}: an empty error message");
    assert!(
        !message.contains('\n'),
        "{what}: a message of several lines: {message:?}"
    );
    assert!(
        message.len() <= 512,
        "{what}: a message of {} bytes",
        message.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_of_every_target_keeps_its_properties() {
        for target in TARGETS {
            let seeds = (target.seeds)(&corpus(&target)).expect("the seeds load");
            assert!(seeds.len() >= 3, "{}: {} seeds", target.name, seeds.len());
            for (name, bytes) in seeds {
                eprintln!("{}: {name}", target.name);
                (target.check)(&bytes);
            }
        }
    }

    #[test]
    fn each_target_has_a_corpus_folder_and_each_folder_is_a_target() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut folders: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut names = TARGETS.map(|t| t.name.to_string()).to_vec();
        names.sort();
        assert_eq!(folders, names);
    }

    #[test]
    fn an_unhelpful_message_is_a_broken_property() {
        let fails = |message: &'static str| {
            std::panic::catch_unwind(|| says_what(message, "test")).is_err()
        };
        assert!(!fails("bad graft point name"));
        assert!(fails(""));
        assert!(fails("  "));
        assert!(fails("two\nlines"));
        assert!(fails(&*"x".repeat(600).leak()));
        assert!(target("nope").is_none());
        assert_eq!(target("resp").map(|t| t.name), Some("resp"));
    }
}
