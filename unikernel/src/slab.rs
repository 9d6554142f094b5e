//! A slab: values in a `Vec` addressed by (index, generation) keys, so a
//! stale key (its value removed, the slot reused) is recognised instead of
//! reaching the wrong value. Used for tasks and timers: constant-time
//! insert, lookup and removal, and far less code than a map.

use alloc::vec::Vec;

/// A key into a [`Slab`]: slot index and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub index: u32,
    pub generation: u32,
}

/// Values addressed by [`Key`]s.
pub struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slab<T> {
    pub const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key the next [`insert`](Self::insert) will use.
    pub fn next_key(&self) -> Key {
        match self.free.last() {
            Some(&index) => Key {
                index,
                generation: self.slots[index as usize].0,
            },
            None => Key {
                index: self.slots.len() as u32,
                generation: 0,
            },
        }
    }

    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.1 = Some(value);
                Key {
                    index,
                    generation: slot.0,
                }
            }
            None => {
                self.slots.push((0, Some(value)));
                Key {
                    index: self.slots.len() as u32 - 1,
                    generation: 0,
                }
            }
        }
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some((generation, value)) if *generation == key.generation => value.as_mut(),
            _ => None,
        }
    }

    /// The key of the value in slot `index`, if the slot holds one.
    pub fn key_at(&self, index: u32) -> Option<Key> {
        match self.slots.get(index as usize) {
            Some((generation, Some(_))) => Some(Key {
                index,
                generation: *generation,
            }),
            _ => None,
        }
    }

    pub fn contains(&self, key: Key) -> bool {
        matches!(self.slots.get(key.index as usize), Some((g, Some(_))) if *g == key.generation)
    }

    /// Removes and returns the value; the key (and copies of it) go stale.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let (generation, value) = self.slots.get_mut(key.index as usize)?;
        if *generation != key.generation {
            return None;
        }
        let value = value.take()?;
        *generation = generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        for index in 0..self.slots.len() {
            let key = Key {
                index: index as u32,
                generation: self.slots[index].0,
            };
            self.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        assert_eq!(
            slab.next_key(),
            Key {
                index: 1,
                generation: 0
            }
        );
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None);
        let c = slab.insert("c");
        assert_eq!(c.index, a.index, "slot reused");
        assert_ne!(c, a);
        assert_eq!(slab.get_mut(a), None);
        assert_eq!(slab.get_mut(c).copied(), Some("c"));
        assert!(slab.contains(b) && !slab.contains(a));
        assert_eq!(slab.len(), 2);
        slab.clear();
        assert!(slab.is_empty() && !slab.contains(b) && !slab.contains(c));
    }
}
