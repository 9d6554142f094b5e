//! Signed graft envelopes.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RSGRAFT3` |
//! | 32 | signer's Ed25519 public key |
//! | 8 | sequence number (strictly increasing per key: no replays) |
//! | 1 | length `p` of the graft point's name (1..=64) |
//! | p | graft point name (ASCII letters, digits, `.`, `_`, `-`) |
//! | 1 | length `g` of the grant (0..=128) |
//! | g | capabilities the loader grants, comma-separated names (`context,maps`) |
//! | 1 | length `e` of the engine's name (1..=64) |
//! | e | the graft engine the artifact was compiled for (printable ASCII) |
//! | 4 | length `m` of the artifact (1..=[`MAX_ARTIFACT`]) |
//! | m | the graft's artifact: its module compiled to machine code |
//! | 64 | Ed25519 signature of every byte above |
//!
//! The signature vouches for machine code, as MiSFIT's did in VINO: the
//! host compiles the graft when it signs it, and the image runs what was
//! signed. Binding the point name and sequence into the signed bytes means
//! an artifact signed for one point cannot be loaded on another, and a
//! captured envelope cannot be sent again; binding the engine's name means
//! an image refuses code compiled for another engine version or
//! configuration, and says so. The grant is signed too: whoever carries
//! the envelope cannot widen what the signer allowed. The image intersects
//! the grant with what the point permits (its policy may narrow it further);
//! the names are checked there, against the runtime's capability table.

use ed25519_compact::{PublicKey, Signature};

/// Envelope magic and version.
pub const MAGIC: &[u8; 8] = b"RSGRAFT3";
/// Largest artifact accepted, in bytes.
pub const MAX_ARTIFACT: usize = 512 * 1024;
/// Longest engine name.
pub const MAX_ENGINE: usize = 64;
/// Longest graft point name.
pub const MAX_POINT_NAME: usize = 64;
/// Longest grant (capability list).
pub const MAX_GRANT: usize = 128;
/// Bytes an envelope adds around its module, point name and grant.
pub const OVERHEAD: usize = 8 + 32 + 8 + 1 + 1 + 1 + 4 + 64;
/// Largest envelope accepted.
pub const MAX_ENVELOPE: usize = OVERHEAD + MAX_POINT_NAME + MAX_GRANT + MAX_ENGINE + MAX_ARTIFACT;

/// Why an envelope was refused. Every variant is the sender's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not an envelope (wrong magic) or cut short.
    Malformed(&'static str),
    /// The artifact is larger than [`MAX_ARTIFACT`] (or empty).
    ArtifactSize(usize),
    /// The engine name is empty, too long or not printable ASCII.
    BadEngine,
    /// The point name is empty, too long or has characters outside the set.
    BadPointName,
    /// The grant is too long or has characters outside `a-z`, `-`, `,`.
    BadGrant,
    /// The signer's key is not one this image trusts.
    UntrustedKey,
    /// The signature does not match the contents (tampered, or wrong key).
    BadSignature,
    /// The sequence number is not above the last one accepted from this key.
    Replayed { sequence: u64, last: u64 },
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EnvelopeError::Malformed(what) => write!(f, "malformed envelope: {what}"),
            EnvelopeError::ArtifactSize(n) => {
                write!(f, "artifact size {n} bytes is outside 1..={MAX_ARTIFACT}")
            }
            EnvelopeError::BadEngine => write!(
                f,
                "bad engine name (1 to {MAX_ENGINE} bytes of printable ASCII)"
            ),
            EnvelopeError::BadPointName => write!(f, "bad graft point name"),
            EnvelopeError::BadGrant => write!(
                f,
                "bad capability grant (at most {MAX_GRANT} bytes of a-z, '-' and ',')"
            ),
            EnvelopeError::UntrustedKey => write!(f, "signed by a key this image does not trust"),
            EnvelopeError::BadSignature => {
                write!(
                    f,
                    "bad signature: the envelope was altered or signed with another key"
                )
            }
            EnvelopeError::Replayed { sequence, last } => write!(
                f,
                "replayed envelope: sequence {sequence} is not above the last accepted ({last})"
            ),
        }
    }
}

/// A parsed (not yet verified) envelope borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub signer: [u8; 32],
    pub sequence: u64,
    pub point: &'a str,
    /// Capability names the signer grants, comma-separated (may be empty).
    pub grant: &'a str,
    /// The engine the artifact was compiled for.
    pub engine: &'a str,
    /// The graft, compiled to machine code.
    pub artifact: &'a [u8],
    signed: &'a [u8],
    signature: [u8; 64],
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EnvelopeError> {
        if self.bytes.len() < n {
            return Err(EnvelopeError::Malformed(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], EnvelopeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
}

/// Whether `name` is a graft point name: 1 to [`MAX_POINT_NAME`] ASCII
/// letters, digits, `.`, `_` and `-` (the one rule, for envelopes, the
/// control protocol and its clients).
pub fn valid_point_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_POINT_NAME
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn valid_engine(engine: &[u8]) -> bool {
    !engine.is_empty() && engine.len() <= MAX_ENGINE && engine.iter().all(|&b| b.is_ascii_graphic())
}

fn valid_grant(grant: &[u8]) -> bool {
    grant.len() <= MAX_GRANT
        && grant
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b == b'-' || b == b',')
}

impl<'a> Envelope<'a> {
    /// Parses `bytes` (checked: never reads past the end, never trusts a length).
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        let mut r = Reader { bytes };
        if r.take(8, "too short for the magic")? != MAGIC {
            return Err(EnvelopeError::Malformed(
                "wrong magic (not a Rootstock graft envelope)",
            ));
        }
        let signer = r.array::<32>("cut short in the signer key")?;
        let sequence = u64::from_le_bytes(r.array("cut short in the sequence")?);
        let point_len = usize::from(r.array::<1>("cut short in the point name")?[0]);
        let point = r.take(point_len, "cut short in the point name")?;
        if !valid_point_name(point) {
            return Err(EnvelopeError::BadPointName);
        }
        let grant_len = usize::from(r.array::<1>("cut short in the grant")?[0]);
        let grant = r.take(grant_len, "cut short in the grant")?;
        if !valid_grant(grant) {
            return Err(EnvelopeError::BadGrant);
        }
        let engine_len = usize::from(r.array::<1>("cut short in the engine name")?[0]);
        let engine = r.take(engine_len, "cut short in the engine name")?;
        if !valid_engine(engine) {
            return Err(EnvelopeError::BadEngine);
        }
        let artifact_len =
            u32::from_le_bytes(r.array("cut short in the artifact length")?) as usize;
        if artifact_len == 0 || artifact_len > MAX_ARTIFACT {
            return Err(EnvelopeError::ArtifactSize(artifact_len));
        }
        let artifact = r.take(artifact_len, "cut short in the artifact")?;
        let signed = &bytes[..bytes.len() - r.bytes.len()];
        let signature = r.array::<64>("cut short in the signature")?;
        if !r.bytes.is_empty() {
            return Err(EnvelopeError::Malformed(
                "trailing bytes after the signature",
            ));
        }
        let point = core::str::from_utf8(point).map_err(|_| EnvelopeError::BadPointName)?;
        let grant = core::str::from_utf8(grant).map_err(|_| EnvelopeError::BadGrant)?;
        let engine = core::str::from_utf8(engine).map_err(|_| EnvelopeError::BadEngine)?;
        Ok(Envelope {
            signer,
            sequence,
            point,
            grant,
            engine,
            artifact,
            signed,
            signature,
        })
    }

    /// Checks the signer is trusted and the signature is the signer's.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<(), EnvelopeError> {
        if !trusted.contains(&self.signer) {
            return Err(EnvelopeError::UntrustedKey);
        }
        PublicKey::new(self.signer)
            .verify(self.signed, &Signature::new(self.signature))
            .map_err(|_| EnvelopeError::BadSignature)
    }
}

/// The public keys an image accepts grafts from (compiled in).
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: alloc::vec::Vec<[u8; 32]>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> TrustedKeys {
        TrustedKeys {
            keys: keys.into_iter().collect(),
        }
    }

    /// Parses keys given as 64 hex digits each, separated by whitespace or
    /// commas (how a build passes them in); malformed entries are skipped.
    pub fn from_hex(text: &str) -> TrustedKeys {
        TrustedKeys::new(
            text.split(|c: char| c.is_whitespace() || c == ',')
                .filter_map(|hex| {
                    let hex = hex.as_bytes();
                    if hex.len() != 64 {
                        return None;
                    }
                    let mut key = [0u8; 32];
                    for (i, pair) in hex.chunks(2).enumerate() {
                        let digits = core::str::from_utf8(pair).ok()?;
                        key[i] = u8::from_str_radix(digits, 16).ok()?;
                    }
                    Some(key)
                }),
        )
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.keys.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Builds and signs an envelope (host tooling).
#[cfg(any(test, feature = "sign"))]
pub fn seal(
    secret: &ed25519_compact::SecretKey,
    sequence: u64,
    point: &str,
    grant: &str,
    engine: &str,
    artifact: &[u8],
) -> Result<alloc::vec::Vec<u8>, EnvelopeError> {
    if !valid_point_name(point.as_bytes()) {
        return Err(EnvelopeError::BadPointName);
    }
    if !valid_grant(grant.as_bytes()) {
        return Err(EnvelopeError::BadGrant);
    }
    if !valid_engine(engine.as_bytes()) {
        return Err(EnvelopeError::BadEngine);
    }
    if artifact.is_empty() || artifact.len() > MAX_ARTIFACT {
        return Err(EnvelopeError::ArtifactSize(artifact.len()));
    }
    let mut out = alloc::vec::Vec::with_capacity(
        OVERHEAD + point.len() + grant.len() + engine.len() + artifact.len(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(secret.public_key().as_ref());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.push(point.len() as u8);
    out.extend_from_slice(point.as_bytes());
    out.push(grant.len() as u8);
    out.extend_from_slice(grant.as_bytes());
    out.push(engine.len() as u8);
    out.extend_from_slice(engine.as_bytes());
    out.extend_from_slice(&(artifact.len() as u32).to_le_bytes());
    out.extend_from_slice(artifact);
    let signature = secret.sign(&out, None);
    out.extend_from_slice(signature.as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_compact::{KeyPair, Seed};

    fn key(n: u8) -> KeyPair {
        KeyPair::from_seed(Seed::new([n; 32]))
    }

    fn trusted() -> TrustedKeys {
        TrustedKeys::new([*key(1).pk])
    }

    const ARTIFACT: &[u8] = b"\x7fELF artifact bytes";
    const ENGINE: &str = "test-engine/1";
    const GRANT: &str = "context,counters";

    #[test]
    fn a_sealed_envelope_parses_and_verifies() {
        let bytes = seal(&key(1).sk, 7, "net.rx", GRANT, ENGINE, ARTIFACT).unwrap();
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(
            (
                envelope.sequence,
                envelope.point,
                envelope.grant,
                envelope.artifact
            ),
            (7, "net.rx", GRANT, ARTIFACT)
        );
        assert_eq!(envelope.verify(&trusted()), Ok(()));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let bytes = seal(&key(1).sk, 7, "net.rx", GRANT, ENGINE, ARTIFACT).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x20;
            let outcome = Envelope::parse(&tampered).and_then(|e| e.verify(&trusted()));
            assert!(outcome.is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn a_wrong_key_is_refused_even_with_a_valid_signature() {
        let bytes = seal(&key(2).sk, 7, "net.rx", GRANT, ENGINE, ARTIFACT).unwrap();
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(
            envelope.verify(&trusted()),
            Err(EnvelopeError::UntrustedKey)
        );
        // Claiming a trusted signer while signing with another key.
        let mut forged = bytes.clone();
        forged[8..40].copy_from_slice(&*key(1).pk);
        let forged = Envelope::parse(&forged).unwrap();
        assert_eq!(forged.verify(&trusted()), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn truncations_and_garbage_are_clean_errors() {
        let bytes = seal(&key(1).sk, 7, "net.rx", GRANT, ENGINE, ARTIFACT).unwrap();
        for len in 0..bytes.len() {
            assert!(matches!(
                Envelope::parse(&bytes[..len]),
                Err(EnvelopeError::Malformed(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Envelope::parse(&longer),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(Envelope::parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn limits_and_names_are_enforced() {
        let sk = key(1).sk;
        assert_eq!(
            seal(&sk, 1, "net rx", GRANT, ENGINE, ARTIFACT),
            Err(EnvelopeError::BadPointName)
        );
        assert_eq!(
            seal(&sk, 1, "", GRANT, ENGINE, ARTIFACT),
            Err(EnvelopeError::BadPointName)
        );
        let huge = alloc::vec![0u8; MAX_ARTIFACT + 1];
        assert_eq!(
            seal(&sk, 1, "p", GRANT, ENGINE, &huge),
            Err(EnvelopeError::ArtifactSize(MAX_ARTIFACT + 1))
        );
        // A length field claiming more than the limit is refused before reading.
        let mut bytes = seal(&sk, 1, "p", GRANT, ENGINE, ARTIFACT).unwrap();
        let at = 8 + 32 + 8 + 1 + 1 + 1 + GRANT.len() + 1 + ENGINE.len();
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Envelope::parse(&bytes).unwrap_err(),
            EnvelopeError::ArtifactSize(u32::MAX as usize)
        );
    }

    #[test]
    fn the_engine_name_is_carried_signed_and_checked() {
        let sk = key(1).sk;
        let bytes = seal(&sk, 1, "p", GRANT, ENGINE, ARTIFACT).unwrap();
        assert_eq!(Envelope::parse(&bytes).unwrap().engine, ENGINE);
        for bad in ["", "has space", &"e".repeat(MAX_ENGINE + 1)] {
            assert_eq!(
                seal(&sk, 1, "p", GRANT, bad, ARTIFACT),
                Err(EnvelopeError::BadEngine)
            );
        }
        // Relabelling the engine in transit breaks the signature.
        let mut relabelled = bytes.clone();
        let at = 8 + 32 + 8 + 1 + 1 + 1 + GRANT.len() + 1;
        relabelled[at] = b'b';
        let envelope = Envelope::parse(&relabelled).unwrap();
        assert_ne!(envelope.engine, ENGINE);
        assert_eq!(
            envelope.verify(&trusted()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn the_grant_is_signed_and_checked() {
        let sk = key(1).sk;
        let empty = seal(&sk, 1, "p", "", ENGINE, ARTIFACT).unwrap();
        assert_eq!(Envelope::parse(&empty).unwrap().grant, "");
        assert_eq!(
            seal(&sk, 1, "p", "maps;log", ENGINE, ARTIFACT),
            Err(EnvelopeError::BadGrant)
        );
        let long = "a".repeat(MAX_GRANT + 1);
        assert_eq!(
            seal(&sk, 1, "p", &long, ENGINE, ARTIFACT),
            Err(EnvelopeError::BadGrant)
        );
        // Widening the grant in transit breaks the signature.
        let mut bytes = seal(&sk, 1, "p", "maps", ENGINE, ARTIFACT).unwrap();
        let at = 8 + 32 + 8 + 1 + 1 + 1;
        bytes[at..at + 4].copy_from_slice(b"logs");
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(envelope.grant, "logs");
        assert_eq!(
            envelope.verify(&trusted()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn trusted_keys_parse_from_hex() {
        let hex: alloc::string::String = key(1)
            .pk
            .iter()
            .map(|b| alloc::format!("{b:02x}"))
            .collect();
        let keys = TrustedKeys::from_hex(&alloc::format!("{hex}, zz {}", &hex[..10]));
        assert!(keys.contains(&key(1).pk));
        assert!(!keys.contains(&key(2).pk));
        assert!(TrustedKeys::from_hex("").is_empty());
    }
}
