//! Signed graft envelopes: [`Envelope::parse`] and [`Envelope::verify`].
//!
//! Modes: (0) raw bytes: a parse that succeeds read exactly the fields it
//! returns (the fields, encoded again, are the signed bytes), and an
//! envelope that verifies is exactly what the key sealed; (1) well-formed
//! fields, sealed with the fuzzing key: parse returns them and verify
//! accepts, and any one byte changed is refused.

use arbitrary::Unstructured;
use ed25519_compact::{KeyPair, Seed};
use graft_control::envelope::{MAGIC, MAX_GRANT, seal};
use graft_control::{Envelope, MAX_ENGINE, TrustedKeys};

use super::{mode, point_name};

/// The key the fuzzer signs with (the envelope's seeds are signed by it).
pub fn key() -> KeyPair {
    KeyPair::from_seed(Seed::new([0x5e; 32]))
}

pub fn check(data: &[u8]) {
    match mode(data, 2) {
        (0, bytes) => raw(bytes),
        (_, bytes) => sealed(bytes),
    }
}

/// The fields of an envelope.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields {
    pub sequence: u64,
    pub point: String,
    pub grant: String,
    pub engine: String,
    pub artifact: Vec<u8>,
}

impl Fields {
    fn of(envelope: &Envelope) -> Fields {
        Fields {
            sequence: envelope.sequence,
            point: envelope.point.into(),
            grant: envelope.grant.into(),
            engine: envelope.engine.into(),
            artifact: envelope.artifact.into(),
        }
    }

    /// Well-formed fields (`artifact` at most `max_artifact` bytes).
    pub fn arbitrary(u: &mut Unstructured, max_artifact: usize) -> arbitrary::Result<Fields> {
        let text = |u: &mut Unstructured, chars: &[u8], len: usize| -> arbitrary::Result<String> {
            (0..len)
                .map(|_| u.choose(chars).map(|&c| char::from(c)))
                .collect()
        };
        let printable: Vec<u8> = (b'!'..=b'~').collect();
        let grant_len = u.int_in_range(0..=MAX_GRANT)?;
        let engine_len = u.int_in_range(1..=MAX_ENGINE)?;
        Ok(Fields {
            sequence: u.arbitrary()?,
            point: point_name(u)?,
            grant: text(u, b"abcdefghijklmnopqrstuvwxyz-,", grant_len)?,
            engine: text(u, &printable, engine_len)?,
            artifact: {
                let len = u.int_in_range(1..=max_artifact)?;
                let mut bytes = u.bytes(len.min(u.len()))?.to_vec();
                if bytes.is_empty() {
                    bytes.push(0);
                }
                bytes
            },
        })
    }

    /// Sealed with the fuzzing key.
    pub fn seal(&self) -> Vec<u8> {
        seal(
            &key().sk,
            self.sequence,
            &self.point,
            &self.grant,
            &self.engine,
            &self.artifact,
        )
        .expect("well-formed fields seal")
    }
}

/// The bytes the signature covers, for `signer` and `fields`.
fn signed_bytes(signer: &[u8; 32], fields: &Fields) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(signer);
    out.extend_from_slice(&fields.sequence.to_le_bytes());
    for field in [&fields.point, &fields.grant, &fields.engine] {
        out.push(field.len() as u8);
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(&(fields.artifact.len() as u32).to_le_bytes());
    out.extend_from_slice(&fields.artifact);
    out
}

fn trusted() -> TrustedKeys {
    TrustedKeys::new([*key().pk])
}

fn raw(bytes: &[u8]) {
    match Envelope::parse(bytes) {
        Ok(envelope) => {
            let fields = Fields::of(&envelope);
            let signed = signed_bytes(&envelope.signer, &fields);
            assert_eq!(
                bytes.len(),
                signed.len() + 64,
                "the parse read other bytes than its fields"
            );
            assert_eq!(&bytes[..signed.len()], signed, "the parse misread a field");
            // Exactly these bytes: one more or one fewer is not an envelope.
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(
                Envelope::parse(&longer).is_err(),
                "a trailing byte was accepted"
            );
            let shorter = &bytes[..bytes.len() - 1];
            assert!(
                Envelope::parse(shorter).is_err(),
                "a cut-short envelope was accepted"
            );
            match envelope.verify(&trusted()) {
                Ok(()) => assert_eq!(
                    fields.seal(),
                    bytes,
                    "a verified envelope is what was sealed"
                ),
                Err(error) => crate::says_what(&error.to_string(), "a refused signature"),
            }
        }
        Err(error) => crate::says_what(&error.to_string(), "a refused envelope"),
    }
}

fn sealed(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok(fields) = Fields::arbitrary(&mut u, 4096) else {
        return;
    };
    let sealed = fields.seal();
    let envelope = Envelope::parse(&sealed).expect("a sealed envelope parses");
    assert_eq!(Fields::of(&envelope), fields, "parse(seal(fields))");
    assert_eq!(
        envelope.verify(&trusted()),
        Ok(()),
        "a sealed envelope verifies"
    );
    // One byte changed, anywhere: refused, by the parse or the signature.
    let (Ok(at), Ok(flip)) = (u.choose_index(sealed.len()), u.int_in_range(1..=255u8)) else {
        return;
    };
    let mut tampered = sealed;
    tampered[at] ^= flip;
    let outcome = Envelope::parse(&tampered).and_then(|e| e.verify(&trusted()));
    assert!(
        outcome.is_err(),
        "byte {at} changed (^{flip:#x}) went unnoticed"
    );
}

/// The checked-in seeds, and envelopes sealed with the fuzzing key (raw,
/// mode 0), whose signatures would otherwise have to be checked in.
pub fn seeds(dir: &std::path::Path) -> Result<crate::Seeds, String> {
    let mut seeds = super::read_dir(dir)?;
    for (name, grant) in [("sealed", "context,maps"), ("sealed-no-grant", "")] {
        let fields = Fields {
            sequence: 7,
            point: "net.rx".into(),
            grant: grant.into(),
            engine: graft_runtime::ENGINE.into(),
            artifact: b"\x7fELF artifact bytes".to_vec(),
        };
        let mut bytes = vec![0];
        bytes.extend_from_slice(&fields.seal());
        seeds.push((name.into(), bytes));
    }
    Ok(seeds)
}
