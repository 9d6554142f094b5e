//! Replay protection: an envelope is accepted only if its sequence number is
//! above the last one accepted from the same key.

use alloc::vec::Vec;

use crate::envelope::{Envelope, EnvelopeError};

/// The last sequence number accepted per signing key.
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    last: Vec<([u8; 32], u64)>,
}

impl ReplayGuard {
    pub const fn new() -> ReplayGuard {
        ReplayGuard { last: Vec::new() }
    }

    /// The last sequence accepted from `key` (0: none yet).
    pub fn last(&self, key: &[u8; 32]) -> u64 {
        self.last
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |&(_, s)| s)
    }

    /// Refuses an envelope whose sequence is not fresh (changes nothing).
    pub fn check(&self, envelope: &Envelope<'_>) -> Result<(), EnvelopeError> {
        let last = self.last(&envelope.signer);
        if envelope.sequence <= last {
            return Err(EnvelopeError::Replayed {
                sequence: envelope.sequence,
                last,
            });
        }
        Ok(())
    }

    /// Records a sequence once its envelope's graft is in place (a refused
    /// load does not use up its sequence number).
    pub fn accept(&mut self, envelope: &Envelope<'_>) {
        match self.last.iter_mut().find(|(k, _)| *k == envelope.signer) {
            Some(entry) => entry.1 = entry.1.max(envelope.sequence),
            None => self.last.push((envelope.signer, envelope.sequence)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::seal;
    use ed25519_compact::{KeyPair, Seed};

    #[test]
    fn only_increasing_sequences_pass_per_key() {
        let a = KeyPair::from_seed(Seed::new([1; 32]));
        let b = KeyPair::from_seed(Seed::new([2; 32]));
        let env = |k: &KeyPair, seq| seal(&k.sk, seq, "p", "", "test-engine/1", b"m").unwrap();
        let mut guard = ReplayGuard::new();
        let first = env(&a, 5);
        let first = Envelope::parse(&first).unwrap();
        assert_eq!(guard.check(&first), Ok(()));
        guard.accept(&first);
        assert_eq!(
            guard.check(&first),
            Err(EnvelopeError::Replayed {
                sequence: 5,
                last: 5
            })
        );
        let older = env(&a, 4);
        assert!(guard.check(&Envelope::parse(&older).unwrap()).is_err());
        let newer = env(&a, 6);
        assert!(guard.check(&Envelope::parse(&newer).unwrap()).is_ok());
        // Another key has its own sequence.
        let other = env(&b, 1);
        assert!(guard.check(&Envelope::parse(&other).unwrap()).is_ok());
    }
}
