//! The keyspace in memory: keys, values and expiry times. It changes only
//! through [`Store::apply`], the same function that replays the log, so
//! what is served and what is recovered cannot drift apart.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::record::Op;

/// A value and when it expires (database time, milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub expires_at: Option<u64>,
}

impl Entry {
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    fn size(key: usize, value: usize) -> u64 {
        (key + value + 32) as u64
    }
}

/// The keyspace.
#[derive(Default, Debug)]
pub struct Store {
    map: BTreeMap<Vec<u8>, Entry>,
    /// Roughly what a snapshot of the live data takes in the log.
    bytes: u64,
}

impl Store {
    /// The entry for `key`, expired or not.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Keys held, counting expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys with an expiry time.
    pub fn expiring(&self) -> usize {
        self.map.values().filter(|e| e.expires_at.is_some()).count()
    }

    pub fn live_bytes(&self) -> u64 {
        self.bytes
    }

    /// Keys that are expired at `now` (at most `limit` of them).
    pub fn expired_keys(&self, now: u64, limit: usize) -> Vec<Vec<u8>> {
        self.map
            .iter()
            .filter(|(_, e)| e.expired(now))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Applies one change.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Set {
                key,
                value,
                expires_at,
            } => {
                let key_len = key.len();
                self.bytes += Entry::size(key_len, value.len());
                let new = Entry { value, expires_at };
                if let Some(old) = self.map.insert(key, new) {
                    self.bytes -= Entry::size(key_len, old.value.len());
                }
            }
            Op::Del(key) => self.remove(&key),
            Op::Expire(key, at) => {
                if let Some(entry) = self.map.get_mut(&key) {
                    entry.expires_at = at;
                }
            }
            Op::FlushAll => {
                self.map.clear();
                self.bytes = 0;
            }
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= Entry::size(key.len(), old.value.len());
        }
    }

    /// The live data at `now`, as the `SET`s that recreate it.
    pub fn snapshot(&self, now: u64) -> impl Iterator<Item = Op> + '_ {
        self.map
            .iter()
            .filter(move |(_, e)| !e.expired(now))
            .map(|(key, entry)| Op::Set {
                key: key.clone(),
                value: entry.value.clone(),
                expires_at: entry.expires_at,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn set(key: &str, value: &str, expires_at: Option<u64>) -> Op {
        Op::Set {
            key: key.into(),
            value: value.into(),
            expires_at,
        }
    }

    #[test]
    fn changes_apply_and_sizes_add_up() {
        let mut store = Store::default();
        store.apply(set("a", "1", None));
        store.apply(set("b", "22", Some(50)));
        store.apply(set("a", "333", None));
        assert_eq!(store.len(), 2);
        assert_eq!(store.live_bytes(), (1 + 3 + 32) + (1 + 2 + 32));
        store.apply(Op::Expire(b"a".to_vec(), Some(10)));
        assert_eq!(store.get(b"a").unwrap().expires_at, Some(10));
        assert_eq!(store.expired_keys(20, 10), vec![b"a".to_vec()]);
        assert_eq!(store.snapshot(20).count(), 1);
        store.apply(Op::Del(b"b".to_vec()));
        assert_eq!(store.live_bytes(), 1 + 3 + 32);
        store.apply(Op::FlushAll);
        assert!(store.is_empty());
        assert_eq!(store.live_bytes(), 0);
    }
}
