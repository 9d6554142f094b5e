//! The graft-artifact loader, through the path an image's control channel
//! takes: [`GraftHost::install`] (envelope, trusted key, signature, point,
//! sequence, engine, grant), then the graft runtime's load (Wasmtime's
//! `Module::deserialize`, the import and export checks, instantiation).
//!
//! Modes: (0) the bytes are an envelope as a client sent it: refused at
//! the border, nothing loaded, unless it happens to be one the fuzzing key
//! sealed; (1) the bytes are an artifact, sealed with the key the host
//! trusts: loaded, or refused by the runtime's checks with a
//! [`Refusal::Load`] that says why; never a panic.
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
//! Trust: an artifact is machine code; the image runs whatever a trusted
//! key signed. What the signature cannot vouch for is the loader itself:
//! a truncated or altered artifact (a signer's mistake, a bug in the
//! tooling) must be refused and never take the image down. Mutated code
//! bytes are only loaded here, never called (graft points are not invoked,
//! and grafts are unloaded without running `graft_revoke`).

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

struct Harness {
    host: GraftHost,
    /// The next sequence number the replay guard accepts.
    next: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut host = GraftHost::new(Rc::new(Ticks::default()), TrustedKeys::new([*key().pk]));
        host.declare(points::net_rx()).expect("net.rx declares");
        host.declare(points::sched_pick())
            .expect("sched.pick declares");
        Harness { host, next: 1 }
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

/// Whether the artifact loaded (`None`: it cannot be sealed).
fn signed(harness: &mut Harness, bytes: &[u8]) -> Option<bool> {
    let (point, artifact) = match bytes.split_first() {
        Some((pick, rest)) if pick % 2 == 1 => (SCHED_PICK, rest),
        Some((_, rest)) => (NET_RX, rest),
        None => return None,
    };
    let fields = Fields {
        sequence: harness.next,
        point: point.into(),
        grant: GRANT.into(),
        engine: graft_runtime::ENGINE.into(),
        artifact: artifact.to_vec(),
    };
    if artifact.is_empty() || artifact.len() > graft_control::MAX_ARTIFACT {
        return None; // the envelope target covers that
    }
    let before = harness.snapshot();
    match harness.host.install(point, None, &fields.seal()) {
        Ok((graft, bytes)) => {
            assert_eq!(bytes, artifact.len());
            installed(harness, point, graft, before);
            harness.next += 1;
            Some(true)
        }
        Err(refusal @ Refusal::Load(_)) => {
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

/// The seed inputs: each `.wat` module in `dir` compiled for this host,
/// as an artifact to sign (mode 1) and as a sealed envelope (mode 0).
pub fn seeds(dir: &std::path::Path) -> Result<crate::Seeds, String> {
    let mut seeds = Vec::new();
    let mut sequence = 1;
    for (name, text) in super::read_dir(dir)? {
        if !name.ends_with(".wat") {
            continue;
        }
        let wasm = wat::parse_bytes(&text).map_err(|e| format!("{name}: {e}"))?;
        let artifact =
            graft_runtime::compile(&wasm, Target::Native).map_err(|e| format!("{name}: {e}"))?;
        let point = if name.contains("sched") {
            SCHED_PICK
        } else {
            NET_RX
        };
        let pick = u8::from(point == SCHED_PICK);
        let mut as_artifact = vec![1, pick];
        as_artifact.extend_from_slice(&artifact);
        seeds.push((format!("{name}.artifact"), as_artifact));
        let fields = Fields {
            sequence,
            point: point.into(),
            grant: GRANT.into(),
            engine: graft_runtime::ENGINE.into(),
            artifact,
        };
        sequence += 1;
        let mut as_envelope = vec![0];
        as_envelope.extend_from_slice(&fields.seal());
        seeds.push((format!("{name}.envelope"), as_envelope));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_artifacts_load_and_cut_ones_are_refused() {
        let target = crate::target("artifact").unwrap();
        let seeds = seeds(&crate::corpus(&target)).unwrap();
        let mut harness = Harness::new();
        let artifacts: Vec<&[u8]> = seeds
            .iter()
            .filter(|(name, _)| name.ends_with(".artifact"))
            .map(|(_, bytes)| &bytes[1..])
            .collect();
        assert_eq!(artifacts.len(), 3);
        for artifact in artifacts {
            assert_eq!(signed(&mut harness, artifact), Some(true));
            let cut = &artifact[..artifact.len() / 2];
            assert_eq!(signed(&mut harness, cut), Some(false));
        }
        assert_eq!(
            harness.next, 4,
            "a refusal does not use up a sequence number"
        );
    }
}
