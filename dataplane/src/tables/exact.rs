//! A fixed-capacity open-addressing hash table (linear probing, backward-shift
//! deletion) owned by one worker: no locks, no atomics, no allocation after
//! creation. Keys are hashed with a per-table random multiplier so that spoofed
//! sources cannot be chosen to collide.

use super::TableError;

/// A key of an [`ExactTable`]: an IPv4 address (u32), an IPv6 address (u128), or
/// a packed prefix (u64 / u128 with the length folded in).
pub trait TableKey: Copy + Eq + Default + std::fmt::Debug {
    /// 64 well-mixed bits for a multiplier `m` (odd) and `seed`.
    fn hash(&self, m: u64, seed: u64) -> u64;
}

/// A quick hash of a 128-bit key (an address) with `salt`: its halves folded
/// and multiplied by the golden ratio, the high bits the best mixed. For small
/// per-worker structures whose slots need not be unpredictable; tables an
/// attacker could aim at use [`TableKey::hash`], keyed.
#[inline(always)]
pub fn fold_hash(key: u128, salt: u64) -> u64 {
    ((key as u64) ^ ((key >> 64) as u64) ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn mix(x: u64, m: u64, seed: u64) -> u64 {
    // A keyed splitmix64 finaliser: every output bit depends on every input bit
    // (neighbouring addresses land far apart, whatever the multiplier), and with a
    // random key the slot of an address cannot be predicted by whoever picks it.
    let mut h = (x ^ seed).wrapping_mul(m);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl TableKey for u32 {
    #[inline(always)]
    fn hash(&self, m: u64, seed: u64) -> u64 {
        mix(u64::from(*self), m, seed)
    }
}

impl TableKey for u64 {
    #[inline(always)]
    fn hash(&self, m: u64, seed: u64) -> u64 {
        mix(*self, m, seed)
    }
}

impl TableKey for u128 {
    #[inline(always)]
    fn hash(&self, m: u64, seed: u64) -> u64 {
        let (high, low) = ((*self >> 64) as u64, *self as u64);
        // IPv4-mapped keys (`::ffff:a.b.c.d`, most traffic) have an upper half
        // of zero: one keyed mix of the lower half is as unpredictable, at half
        // the latency of two in a chain. Every key taking this path has the same
        // upper half, so taking it makes no two keys collide.
        if high == 0 {
            return mix(low, m, seed);
        }
        mix(low ^ mix(high, m, seed.rotate_left(17)), m, seed)
    }
}

/// A slot of the probed array: the key and where its value lives (index + 1;
/// 0 = empty slot). Values are kept apart, densely, so probe sequences read as
/// few cache lines as possible (eight IPv4 slots per line) and the sparse slot
/// array costs 8 bytes per slot rather than the size of a value.
#[derive(Clone, Copy, Debug, Default)]
struct Tag<K> {
    key: K,
    used: u32,
}

/// Random 64-bit values for hashing, from the OS.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process and perturbed per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish()
}

/// A preallocated hash table from `K` to `V`.
#[derive(Debug)]
pub struct ExactTable<K, V> {
    tags: Box<[Tag<K>]>,
    /// `capacity` values; `free` holds the indices not in use.
    values: Box<[V]>,
    free: Vec<u32>,
    probe: Probe,
    len: usize,
    capacity: usize,
}

/// A copy with the same room: a derived clone would give the free list only
/// the room its entries take, and freeing a slot in the copy would allocate.
impl<K: Clone, V: Clone> Clone for ExactTable<K, V> {
    fn clone(&self) -> Self {
        ExactTable {
            tags: self.tags.clone(),
            values: self.values.clone(),
            free: with_room(&self.free),
            probe: self.probe,
            len: self.len,
            capacity: self.capacity,
        }
    }
}

/// A copy of `v` with the room `v` has (not only what its contents take).
pub(crate) fn with_room<T: Clone>(v: &Vec<T>) -> Vec<T> {
    let mut copy = Vec::with_capacity(v.capacity());
    copy.extend_from_slice(v);
    copy
}

impl<K: TableKey, V: Copy + Default> ExactTable<K, V> {
    /// A table for up to `capacity` entries. The slot array is four times that
    /// (rounded up to a power of two): at most 25% full, an unsuccessful lookup
    /// (the common case: legitimate traffic) ends within one cache line.
    pub fn with_capacity(capacity: usize) -> Self {
        let (probe, capacity) = Probe::for_capacity(capacity);
        ExactTable {
            tags: vec![Tag::default(); probe.slots()].into_boxed_slice(),
            values: vec![V::default(); capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            probe,
            len: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The NUMA node of the slot array (its middle page), if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        crate::cpu::memory_node(&self.tags[self.tags.len() / 2])
    }

    /// Memory held by the slots, in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.tags)
            + std::mem::size_of_val(&*self.values)
            + self.free.capacity() * 4
    }

    #[inline(always)]
    fn home(&self, key: &K) -> usize {
        self.probe.home(key)
    }

    /// The slot index holding `key`, if any.
    #[inline(always)]
    fn find(&self, key: &K, mut i: usize) -> Option<usize> {
        loop {
            let tag = &self.tags[i];
            if tag.used == 0 {
                return None;
            }
            if tag.key == *key {
                return Some(i);
            }
            i = self.probe.next(i);
        }
    }

    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key, self.home(key))
            .map(|i| &self.values[self.tags[i].used as usize - 1])
    }

    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.find(key, self.home(key)) {
            Some(i) => Some(&mut self.values[self.tags[i].used as usize - 1]),
            None => None,
        }
    }

    /// Where `key`'s value is kept, for [`ExactTable::value_mut`]: the place
    /// stays the key's until it is removed or the table cleared.
    #[inline]
    pub fn place_of(&self, key: &K) -> Option<u32> {
        self.find(key, self.home(key))
            .map(|i| self.tags[i].used - 1)
    }

    /// The place of `key`'s value, inserting `value` first if the key is new
    /// (refused beyond the capacity).
    pub fn place_or_insert(&mut self, key: K, value: V) -> Result<u32, TableError> {
        if let Some(place) = self.place_of(&key) {
            return Ok(place);
        }
        self.insert(key, value)?;
        self.place_of(&key).ok_or(TableError::Full {
            capacity: self.capacity,
        })
    }

    /// The value at a place from [`ExactTable::place_of`].
    #[inline(always)]
    pub fn value_mut(&mut self, place: u32) -> Option<&mut V> {
        self.values.get_mut(place as usize)
    }

    /// Insert or replace. A new key beyond the capacity is refused.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, TableError> {
        let mut i = self.home(&key);
        loop {
            let tag = &mut self.tags[i];
            if tag.used == 0 {
                let Some(index) = self.free.pop() else {
                    return Err(TableError::Full {
                        capacity: self.capacity,
                    });
                };
                *tag = Tag {
                    key,
                    used: index + 1,
                };
                self.values[index as usize] = value;
                self.len += 1;
                return Ok(None);
            }
            if tag.key == key {
                let index = tag.used as usize - 1;
                return Ok(Some(std::mem::replace(&mut self.values[index], value)));
            }
            i = self.probe.next(i);
        }
    }

    /// Remove a key; later entries of its probe run shift back so no tombstone is
    /// left and lookups never slow down with churn.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let hole = self.find(key, self.home(key))?;
        let index = self.tags[hole].used - 1;
        let removed = std::mem::take(&mut self.values[index as usize]);
        // Within capacity by construction: every index popped is pushed back once.
        self.free.push(index);
        self.probe
            .shift_back(&mut self.tags, hole, |t| t.used == 0, |t| t.key);
        self.len -= 1;
        Some(removed)
    }

    /// Every (key, value), in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.tags
            .iter()
            .filter(|t| t.used != 0)
            .map(|t| (&t.key, &self.values[t.used as usize - 1]))
    }

    /// Remove every entry for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let doomed: Vec<K> = self
            .iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            self.remove(&k);
        }
    }

    pub fn clear(&mut self) {
        self.tags.fill(Tag::default());
        self.values.fill(V::default());
        self.free.clear();
        self.free.extend((0..self.capacity as u32).rev());
        self.len = 0;
    }
}

/// The slot arithmetic of a linear-probing table at most a quarter full (so
/// that a lookup that misses, legitimate traffic's, ends within a line): its
/// size, the keyed hash that gives a key's home slot, the probe's steps and
/// backward-shift deletion.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    mask: usize,
    multiplier: u64,
    seed: u64,
}

impl Probe {
    /// The probing of a table for `capacity` entries (clamped to what a u32
    /// index holds), and that capacity.
    pub(super) fn for_capacity(capacity: usize) -> (Probe, usize) {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1);
        let probe = Probe {
            mask: (capacity * 4).next_power_of_two() - 1,
            multiplier: random_u64() | 1,
            seed: random_u64(),
        };
        (probe, capacity)
    }

    /// Slots in the table.
    pub(super) fn slots(&self) -> usize {
        self.mask + 1
    }

    #[inline(always)]
    pub(super) fn home<K: TableKey>(&self, key: &K) -> usize {
        (key.hash(self.multiplier, self.seed) >> 20) as usize & self.mask
    }

    #[inline(always)]
    pub(super) fn next(&self, i: usize) -> usize {
        (i + 1) & self.mask
    }

    /// Empty slot `hole` of `slots`, whose entry was just removed: the
    /// entries after it in its probe run move back into it, so that no
    /// tombstone is left and lookups never slow down with churn. `empty`
    /// tells an empty slot, `key` an entry's key.
    pub(super) fn shift_back<S: Copy + Default, K: TableKey>(
        &self,
        slots: &mut [S],
        mut hole: usize,
        empty: impl Fn(&S) -> bool,
        key: impl Fn(&S) -> K,
    ) {
        let mut i = hole;
        loop {
            i = self.next(i);
            if empty(&slots[i]) {
                break;
            }
            // Move slot i into the hole if its home is not in (hole, i] cyclically.
            let distance_home = i.wrapping_sub(self.home(&key(&slots[i]))) & self.mask;
            let distance_hole = i.wrapping_sub(hole) & self.mask;
            if distance_home >= distance_hole {
                slots[hole] = slots[i];
                hole = i;
            }
        }
        slots[hole] = S::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn insert_get_remove() {
        let mut t: ExactTable<u32, u32> = ExactTable::with_capacity(4);
        assert_eq!(t.insert(0, 10), Ok(None), "key 0 is a valid key");
        assert_eq!(t.insert(7, 70), Ok(None));
        assert_eq!(t.insert(7, 71), Ok(Some(70)));
        assert_eq!(t.get(&7), Some(&71));
        assert_eq!(t.get(&0), Some(&10));
        assert_eq!(t.get(&8), None);
        assert_eq!(t.insert(1, 1), Ok(None));
        assert_eq!(t.insert(2, 2), Ok(None));
        assert_eq!(t.insert(3, 3), Err(TableError::Full { capacity: 4 }));
        assert_eq!(t.insert(2, 22), Ok(Some(2)), "replacing works when full");
        assert_eq!(t.remove(&7), Some(71));
        assert_eq!(t.remove(&7), None);
        assert_eq!(t.insert(3, 3), Ok(None), "room again after a removal");
        assert_eq!(t.len(), 4);
    }

    proptest! {
        #[test]
        fn agrees_with_hashmap(ops in proptest::collection::vec((0u8..3, 0u32..64, any::<u32>()), 1..400)) {
            let mut t: ExactTable<u32, u32> = ExactTable::with_capacity(40);
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => {
                        let r = t.insert(k, v);
                        if model.contains_key(&k) || model.len() < 40 {
                            prop_assert_eq!(r, Ok(model.insert(k, v)));
                        } else {
                            prop_assert_eq!(r, Err(TableError::Full { capacity: 40 }));
                        }
                    }
                    1 => prop_assert_eq!(t.remove(&k), model.remove(&k)),
                    _ => prop_assert_eq!(t.get(&k), model.get(&k)),
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for k in 0..64 {
                prop_assert_eq!(t.get(&k), model.get(&k));
            }
        }

        #[test]
        fn wide_keys_agree_with_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u128..32), 1..200)) {
            let mut t: ExactTable<u128, ()> = ExactTable::with_capacity(32);
            let mut model = std::collections::HashSet::new();
            for (insert, k) in ops {
                let k = k << 100 | k;
                if insert {
                    t.insert(k, ()).expect("capacity is the key space");
                    model.insert(k);
                } else {
                    prop_assert_eq!(t.remove(&k).is_some(), model.remove(&k));
                }
            }
            for (k, _) in t.iter() {
                prop_assert!(model.contains(k));
            }
            prop_assert_eq!(t.len(), model.len());
        }
    }
}
