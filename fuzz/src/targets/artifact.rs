//! The graft-artifact loader, through the path an image's control channel
//! takes: [`GraftHost::install`] (envelope, trusted key, signature, point,
//! sequence, engine, grant), then the graft runtime's load (Wasmtime's
//! `Module::deserialize`, the import and export checks, instantiation).
//!
//! Modes: (0) the bytes are an envelope as a client sent it: refused at
//! the border, nothing loaded, unless it happens to be one the fuzzing key
//! sealed; (1) the bytes pick a compiled seed (for this host, or for the
//! image's target), cut it short and append bytes to it, and the result is
//! sealed with the key the host trusts: an unaltered host artifact loads,
//! one for the image's target is refused, and whatever else is loaded or
//! refused by the runtime's checks with a [`Refusal::Load`] that says why;
//! never a panic.
//!
//! Either way a refusal changes nothing (the graft list, the fault log and
//! the replay guard, which would refuse the next sequence number had it
//! moved), and a graft that loads is listed and then unloaded.
//!
//! The seeds are the `.wat` files in `fuzz/corpus/artifact/`, compiled for
//! this host ([`seeds`]) when the fuzzer starts: an artifact is only valid
//! for the Wasmtime version and settings that built it, so compiled ones
//! are not checked in.
//!
//! Trust: an artifact is machine code, and Wasmtime's `Module::deserialize`
//! is `unsafe` for that reason: it trusts the artifact's metadata as much
//! as its code. Fed arbitrary bytes under a valid signature, it panics
//! (slice bounds in `runtime/code.rs`, "defined function should be
//! present" in `runtime/instantiate.rs`, the type registry, unwind-info
//! alignment: 14 crashes in 30 s). That is the contract, not a bug to fix
//! here: in the image only bytes that a trusted key signed get that far,
//! and the signature is what vouches for them (as MiSFIT's did for VINO).
//! So this target sends unsigned mutations through the whole border (mode
//! 0), and under a valid signature only what a signer's tooling could get
//! wrong without forging code (mode 1: a cut-short upload, trailing bytes,
//! the wrong target). Grafts are loaded, never called, and unloaded
//! without running `graft_revoke`.

use std::cell::RefCell;
use std::rc::Rc;

use graft_control::{Envelope, TrustedKeys};
use graft_host::GraftHost;
use graft_host::host::Refusal;
use graft_host::points::{self, NET_RX, SCHED_PICK};
use graft_runtime::testing::Ticks;
use graft_runtime::{GraftInfo, Target};

use super::envelope::{Fields, key};
use super::mode;

/// What the host's loader grants (as `cargo xtask graft load` does).
const GRANT: &str = "context,maps,counters,time,log";

/// A seed compiled: its point, its artifact for this host, for the image.
type Compiled = (&'static str, Vec<u8>, Vec<u8>);

struct Harness {
    host: GraftHost,
    /// The next sequence number the replay guard accepts.
    next: u64,
    /// The seeds, compiled.
    compiled: Vec<Compiled>,
}

impl Harness {
    fn new() -> Harness {
        let mut host = GraftHost::new(Rc::new(Ticks::default()), TrustedKeys::new([*key().pk]));
        host.declare(points::net_rx()).expect("net.rx declares");
        host.declare(points::sched_pick())
            .expect("sched.pick declares");
        let corpus = crate::corpus(&crate::target("artifact").expect("the artifact target"));
        let compiled = compile(&corpus).expect("the artifact seeds compile");
        Harness {
            host,
            next: 1,
            compiled,
        }
    }

    fn snapshot(&mut self) -> (Vec<GraftInfo>, usize) {
        let runtime = self.host.runtime();
        (runtime.list(), runtime.faults().entries().count())
    }
}

thread_local! {
    /// One host for every input (building an engine per input would be
    /// most of the time spent).
    static HARNESS: RefCell<Harness> = RefCell::new(Harness::new());
}

pub fn check(data: &[u8]) {
    HARNESS.with_borrow_mut(|harness| match mode(data, 2) {
        (0, bytes) => as_sent(harness, bytes),
        (_, bytes) => {
            signed(harness, bytes);
        }
    });
}

fn as_sent(harness: &mut Harness, bytes: &[u8]) {
    let point = Envelope::parse(bytes).map_or(NET_RX, |e| {
        if e.point == SCHED_PICK {
            SCHED_PICK
        } else {
            NET_RX
        }
    });
    let before = harness.snapshot();
    match harness.host.install(point, None, bytes) {
        Ok((graft, _)) => {
            let envelope = Envelope::parse(bytes).expect("an installed envelope parses");
            assert_eq!(
                envelope.signer,
                *key().pk,
                "installed an envelope the host does not trust"
            );
            installed(harness, point, graft, before);
            match envelope.sequence.checked_add(1) {
                Some(next) => harness.next = harness.next.max(next),
                None => *harness = Harness::new(),
            }
        }
        Err(refusal) => refused(harness, &refusal, before),
    }
}

/// Whether the artifact loaded (`None`: too few bytes to pick one).
fn signed(harness: &mut Harness, bytes: &[u8]) -> Option<bool> {
    // seed, for the image?, cut short?, [where, u16], bytes to append
    let (&[pick, image, cut_short], rest) = bytes.split_first_chunk()?;
    let (point, native, for_image) = &harness.compiled[usize::from(pick) % harness.compiled.len()];
    let built = if image & 1 == 1 { for_image } else { native };
    let (cut, appended) = match rest.split_first_chunk() {
        Some((at, appended)) if cut_short & 1 == 1 => (
            1 + usize::from(u16::from_le_bytes(*at)) % built.len(),
            appended,
        ),
        _ => (built.len(), rest),
    };
    let for_image = image & 1 == 1;
    let mut artifact = built[..cut].to_vec();
    artifact.extend_from_slice(appended);
    let unaltered = !for_image && artifact == *native;
    let point = *point;
    if artifact.len() > graft_control::MAX_ARTIFACT {
        return None; // the envelope target covers that
    }
    let fields = Fields {
        sequence: harness.next,
        point: point.into(),
        grant: GRANT.into(),
        engine: graft_runtime::ENGINE.into(),
        artifact,
    };
    let before = harness.snapshot();
    match harness.host.install(point, None, &fields.seal()) {
        Ok((graft, bytes)) => {
            assert!(
                !for_image,
                "loaded an artifact compiled for the image's target"
            );
            assert_eq!(bytes, fields.artifact.len());
            installed(harness, point, graft, before);
            harness.next += 1;
            Some(true)
        }
        Err(refusal @ Refusal::Load(_)) => {
            assert!(!unaltered, "refused an unaltered artifact: {refusal}");
            refused(harness, &refusal, before);
            Some(false)
        }
        Err(other) => panic!("a signed artifact refused before the runtime saw it: {other}"),
    }
}

fn installed(harness: &mut Harness, point: &str, graft: u32, before: (Vec<GraftInfo>, usize)) {
    let (list, _) = harness.snapshot();
    assert!(
        list.iter().any(|g| g.id == graft && g.point == point),
        "graft {graft} loaded but not listed"
    );
    // Unloaded without running it (`unload`, not `revoke`).
    harness
        .host
        .runtime()
        .unload(point, graft)
        .expect("a loaded graft unloads");
    assert_eq!(
        harness.snapshot().0,
        before.0,
        "unloading leaves the list as it was"
    );
}

fn refused(harness: &mut Harness, refusal: &Refusal, before: (Vec<GraftInfo>, usize)) {
    crate::says_what(&refusal.to_string(), "a refused graft");
    assert_eq!(
        harness.snapshot(),
        before,
        "a refusal changed the host: {refusal}"
    );
}

/// Each `.wat` module in `dir`, compiled for this host and for the image:
/// (point, host artifact, image artifact). A module whose name says
/// `sched` is for `sched.pick`, any other for `net.rx`.
fn compile(dir: &std::path::Path) -> Result<Vec<Compiled>, String> {
    let mut compiled = Vec::new();
    for (name, text) in super::read_dir(dir)? {
        if !name.ends_with(".wat") {
            continue;
        }
        let wasm = wat::parse_bytes(&text).map_err(|e| format!("{name}: {e}"))?;
        let build =
            |target| graft_runtime::compile(&wasm, target).map_err(|e| format!("{name}: {e}"));
        let point = if name.contains("sched") {
            SCHED_PICK
        } else {
            NET_RX
        };
        compiled.push((point, build(Target::Native)?, build(Target::Image)?));
    }
    Ok(compiled)
}

/// The seed inputs: each compiled seed sealed as an envelope (mode 0),
/// and choices of mode 1 (unaltered, cut short, with bytes appended, for
/// the image).
pub fn seeds(dir: &std::path::Path) -> Result<crate::Seeds, String> {
    let mut seeds = Vec::new();
    for (index, (point, native, _)) in compile(dir)?.into_iter().enumerate() {
        let fields = Fields {
            sequence: index as u64 + 1,
            point: point.into(),
            grant: GRANT.into(),
            engine: graft_runtime::ENGINE.into(),
            artifact: native,
        };
        let mut envelope = vec![0];
        envelope.extend_from_slice(&fields.seal());
        seeds.push((format!("{index}-envelope"), envelope));
        // Mode 1, then: seed, for the image?, cut short? [where], the
        // bytes to append.
        let pick = index as u8;
        seeds.push((format!("{index}-unaltered"), vec![1, pick, 0, 0]));
        seeds.push((format!("{index}-cut"), vec![1, pick, 0, 1, 0x00, 0x10]));
        seeds.push((format!("{index}-appended"), vec![1, pick, 0, 0, b'x', b'y']));
        seeds.push((format!("{index}-image"), vec![1, pick, 1, 0]));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_load_unaltered_and_are_refused_otherwise() {
        let target = crate::target("artifact").unwrap();
        let mut harness = Harness::new();
        let outcomes: Vec<(String, Option<bool>)> = seeds(&crate::corpus(&target))
            .unwrap()
            .into_iter()
            .filter(|(_, bytes)| bytes[0] == 1)
            .map(|(name, bytes)| {
                let outcome = signed(&mut harness, &bytes[1..]);
                (name, outcome)
            })
            .collect();
        assert_eq!(outcomes.len(), 12);
        for (name, outcome) in &outcomes {
            let expected = if name.ends_with("unaltered") {
                Some(true)
            } else if name.ends_with("image") || name.ends_with("cut") {
                Some(false)
            } else {
                *outcome
            };
            assert_eq!(*outcome, expected, "{name}");
        }
        let loaded = outcomes.iter().filter(|(_, o)| *o == Some(true)).count();
        assert_eq!(
            harness.next,
            loaded as u64 + 1,
            "a refusal does not use up a sequence number"
        );
    }
}
