//! Every graft's maps (the `map_get`/`map_put` accessors): one hash table
//! keyed by graft, map and key, so a lookup is one hash and one probe,
//! beside the entry count of each map, which bounds it.
//!
//! The hasher has a fixed seed: the image has no entropy to spare at boot,
//! and it needs none here. A graft that picks colliding keys slows only
//! its own calls, and never by more than its map's entry limit allows.

use hashbrown::HashMap;

use crate::GraftId;

type FixedState = foldhash::fast::FixedState;

#[derive(Default)]
pub(crate) struct Maps {
    entries: HashMap<(GraftId, i32, i64), i64, FixedState>,
    /// Entries in each graft's map (absent: none).
    counts: HashMap<(GraftId, i32), usize, FixedState>,
}

impl Maps {
    pub fn get(&self, graft: GraftId, map: i32, key: i64) -> Option<i64> {
        self.entries.get(&(graft, map, key)).copied()
    }

    /// How many entries `graft`'s map `map` holds.
    pub fn len(&self, graft: GraftId, map: i32) -> usize {
        self.counts.get(&(graft, map)).copied().unwrap_or(0)
    }

    /// Sets `key → value`, or removes `key` (`None`); returns the old value.
    pub fn set(&mut self, graft: GraftId, map: i32, key: i64, value: Option<i64>) -> Option<i64> {
        let old = match value {
            Some(value) => self.entries.insert((graft, map, key), value),
            None => self.entries.remove(&(graft, map, key)),
        };
        match (old.is_some(), value.is_some()) {
            (false, true) => *self.counts.entry((graft, map)).or_default() += 1,
            (true, false) => {
                if let Some(count) = self.counts.get_mut(&(graft, map)) {
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&(graft, map));
                    }
                }
            }
            _ => {}
        }
        old
    }

    /// Forgets every map of `graft`.
    pub fn release(&mut self, graft: GraftId) {
        self.entries.retain(|&(owner, _, _), _| owner != graft);
        self.counts.retain(|&(owner, _), _| owner != graft);
    }

    /// Entries in all of `graft`'s maps.
    pub fn entries_of(&self, graft: GraftId) -> usize {
        self.counts
            .iter()
            .filter(|((owner, _), _)| *owner == graft)
            .map(|(_, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Maps;

    #[test]
    fn counts_follow_inserts_overwrites_and_removals() {
        let mut maps = Maps::default();
        assert_eq!(maps.set(1, 0, 7, Some(70)), None);
        assert_eq!(maps.set(1, 0, 7, Some(71)), Some(70));
        assert_eq!(maps.set(1, 0, 8, Some(80)), None);
        assert_eq!(maps.set(2, 0, 7, Some(1)), None);
        assert_eq!((maps.len(1, 0), maps.len(2, 0), maps.len(1, 1)), (2, 1, 0));
        assert_eq!(maps.get(1, 0, 7), Some(71));
        assert_eq!(maps.set(1, 0, 7, None), Some(71));
        assert_eq!(maps.set(1, 0, 7, None), None);
        assert_eq!((maps.len(1, 0), maps.entries_of(1)), (1, 1));
        maps.release(1);
        assert_eq!((maps.get(1, 0, 8), maps.entries_of(1)), (None, 0));
        assert_eq!(maps.get(2, 0, 7), Some(1));
    }
}
