//! Names to numbers for the hosts of one day: an open-addressing table
//! whose keys live back to back in one buffer. The request path looks a
//! host up here once, and a new name costs a copy of its bytes into the
//! buffer, not an allocation of its own.
//!
//! Host names are chosen by clients, so the table must not degrade to a
//! linear search under names crafted to collide. The hash is keyed with
//! random numbers drawn once per process (from std's `RandomState`, which
//! reads the operating system's randomness), so collisions cannot be
//! computed offline. The fast hash is a folded multiply, not a proven
//! pseudo-random function; so as not to rest the defence on it, a lookup
//! or insertion that walks more than [`MAX_PROBES`] slots switches the
//! table, for the rest of the process, to SipHash-1-3 with random keys
//! (std's `HashMap` defence) and re-hashes every key. With at most half the
//! slots in use, an honest run of that length has a probability far below
//! anything observable (expected probes: 2.5 for a miss).

use std::hash::{BuildHasher, RandomState};

/// A probe sequence longer than this switches the table to SipHash.
pub const MAX_PROBES: usize = 64;

/// Slots of a table's first allocation.
const FIRST_SLOTS: usize = 64;

pub struct HostTable<V> {
    hasher: Hasher,
    /// 0: empty; else the index of an entry, plus one. Length: a power of
    /// two, at least twice the number of entries.
    slots: Vec<u32>,
    entries: Vec<Entry<V>>,
    /// Every key, back to back.
    keys: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Entry<V> {
    hash: u64,
    start: usize,
    len: u32,
    /// What the key maps to.
    value: V,
}

enum Hasher {
    Fast([u64; 3]),
    Sip(RandomState),
    /// Tests: a fast hash broken on purpose (every key collides).
    #[cfg(test)]
    Broken,
}

/// Where a missing key would go (from [`HostTable::find`]), for
/// [`HostTable::insert`] without hashing it again.
#[derive(Debug, Clone, Copy)]
pub struct Vacant {
    hash: u64,
    /// Whether SipHash computed `hash` (a table can switch between a
    /// lookup and the insertion that follows it).
    by_siphash: bool,
}

impl<V: Copy> Default for HostTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Copy> HostTable<V> {
    pub fn new() -> Self {
        let random = RandomState::new();
        HostTable {
            hasher: Hasher::Fast([0u64, 1, 2].map(|i| random.hash_one(i))),
            slots: Vec::new(),
            entries: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a probe sequence ever grew too long (tests, log lines).
    pub fn uses_siphash(&self) -> bool {
        matches!(self.hasher, Hasher::Sip(_))
    }

    /// The index of `key`'s entry, or where it would go.
    #[inline(always)]
    pub fn find(&mut self, key: &[u8]) -> Result<u32, Vacant> {
        let hash = self.hash(key);
        match self.walk(hash, key) {
            Some(found) => found,
            None => {
                // Too long a walk: the fast hash is being attacked (or
                // very unlucky).
                self.switch_to_siphash();
                let hash = self.hash(key);
                self.walk(hash, key).unwrap_or(Err(self.vacant(hash)))
            }
        }
    }

    /// The probe sequence of `hash`: the key's entry, or the hash for
    /// an insertion; `None` when the fast hash walked more than
    /// [`MAX_PROBES`] slots (SipHash walks as far as it takes).
    #[inline(always)]
    fn walk(&self, hash: u64, key: &[u8]) -> Option<Result<u32, Vacant>> {
        let size = self.slots.len();
        let limit = if self.uses_siphash() || size <= MAX_PROBES {
            size
        } else {
            MAX_PROBES
        };
        let mask = size.wrapping_sub(1);
        let mut at = hash as usize;
        for _ in 0..limit {
            at &= mask;
            match self.slots.get(at) {
                Some(0) | None => return Some(Err(self.vacant(hash))),
                Some(&slot) if self.entry_is(slot - 1, hash, key) => return Some(Ok(slot - 1)),
                Some(_) => at += 1,
            }
        }
        // At most half the slots are used: a walk round the whole table
        // cannot happen, but a miss would be the right answer.
        (limit == size).then_some(Err(self.vacant(hash)))
    }

    /// Adds `key` with `value`; `key` is what [`HostTable::find`]
    /// reported missing (with no insertion since). Returns the entry's
    /// index: the number of entries before it.
    pub fn insert(&mut self, vacant: Vacant, key: &[u8], value: V) -> u32 {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = if vacant.by_siphash == self.uses_siphash() {
            vacant.hash
        } else {
            // The table switched since: this key's hash was the old one.
            self.hash(key)
        };
        let id = u32::try_from(self.entries.len()).expect("fewer than 2^32 hosts");
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.entries.push(Entry {
            hash,
            start,
            len: u32::try_from(key.len()).expect("keys under 4 GiB"),
            value,
        });
        if !self.place(id, hash) {
            self.switch_to_siphash();
        }
        id
    }

    pub fn value(&self, index: u32) -> V {
        self.entries[index as usize].value
    }

    pub fn value_mut(&mut self, index: u32) -> &mut V {
        &mut self.entries[index as usize].value
    }

    /// The key of entry `index`.
    pub fn key(&self, index: u32) -> &[u8] {
        let e = self.entries[index as usize];
        &self.keys[e.start..e.start + e.len as usize]
    }

    /// Empties the table, keeping a modest allocation and the hasher.
    pub fn clear(&mut self) {
        let keep = FIRST_SLOTS.max((self.slots.len() / 4).min(4096));
        self.entries.clear();
        self.entries.shrink_to(keep / 2);
        self.keys.clear();
        self.keys.shrink_to(keep * 16);
        self.slots.clear();
        self.slots.shrink_to(keep);
        self.slots.resize(keep.next_power_of_two(), 0);
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        match &self.hasher {
            Hasher::Fast(seed) => fast_hash(seed, key),
            Hasher::Sip(state) => state.hash_one(key),
            #[cfg(test)]
            Hasher::Broken => 7,
        }
    }

    fn vacant(&self, hash: u64) -> Vacant {
        Vacant {
            hash,
            by_siphash: self.uses_siphash(),
        }
    }

    /// Whether entry `index` has `key`.
    #[inline]
    fn entry_is(&self, index: u32, hash: u64, key: &[u8]) -> bool {
        match self.entries.get(index as usize) {
            Some(e) if e.hash == hash && e.len as usize == key.len() => self
                .keys
                .get(e.start..e.start + key.len())
                .is_some_and(|k| same_bytes(k, key)),
            _ => false,
        }
    }

    /// Puts entry `id` in the first free slot of its sequence; false if
    /// that walk was longer than [`MAX_PROBES`] (it is placed anyway).
    fn place(&mut self, id: u32, hash: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        let mut probes = 0;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
            probes += 1;
        }
        self.slots[at] = id + 1;
        probes <= MAX_PROBES
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        self.rebuild(size);
    }

    /// Re-places every entry into `size` slots, by the hashes stored.
    fn rebuild(&mut self, size: usize) {
        self.slots.clear();
        self.slots.resize(size, 0);
        let mut long = false;
        for id in 0..self.entries.len() {
            let hash = self.entries[id].hash;
            long |= !self.place(id as u32, hash);
        }
        if long {
            self.switch_to_siphash();
        }
    }

    #[cold]
    #[inline(never)]
    fn switch_to_siphash(&mut self) {
        if self.uses_siphash() {
            return; // keyed SipHash: nothing stronger to switch to
        }
        self.hasher = Hasher::Sip(RandomState::new());
        for id in 0..self.entries.len() {
            let e = self.entries[id];
            let hash = self.hash(&self.keys[e.start..e.start + e.len as usize]);
            self.entries[id].hash = hash;
        }
        self.rebuild(self.slots.len().max(FIRST_SLOTS));
    }
}

/// `a == b` for the short strings host names are, without a call into
/// libc's `memcmp` (about 20 instructions of call and dispatch for a
/// 13-byte host): 8 bytes at a time, the last word overlapping.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Never panics: `get` and `unwrap_or` instead of indexing (the ranges
    // are in bounds anyway: at + 8 <= n for both, which have length n).
    let word = |s: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(s.get(at..at + 8)?.try_into().ok()?))
    };
    let mut at = 0;
    let same = |at: usize| matches!((word(a, at), word(b, at)), (Some(x), Some(y)) if x == y);
    while at + 8 < n {
        if !same(at) {
            return false;
        }
        at += 8;
    }
    same(n - 8)
}

/// 64 × 64 → 128-bit multiply, halves folded together.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn word(key: &[u8], at: usize) -> u64 {
    match key.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => 0,
    }
}

#[inline(always)]
fn half_word(key: &[u8], at: usize) -> u64 {
    match key.get(at..at + 4) {
        Some(w) => u64::from(u32::from_le_bytes(w.try_into().unwrap_or_default())),
        None => 0,
    }
}

/// A keyed hash for short byte strings: the key's bytes (all of them, read
/// as at most two overlapping words when it is up to 16 bytes long) and
/// its length are mixed with the seed by folded multiplies.
#[inline]
fn fast_hash(seed: &[u64; 3], key: &[u8]) -> u64 {
    let n = key.len();
    let (mut a, mut b) = if n > 16 {
        let mut h = seed[0];
        let mut at = 0;
        while at + 16 < n {
            h = fold(word(key, at) ^ seed[1], word(key, at + 8) ^ h);
            at += 16;
        }
        (word(key, n - 16) ^ h, word(key, n - 8))
    } else if n >= 8 {
        (word(key, 0), word(key, n - 8))
    } else if n >= 4 {
        (half_word(key, 0), half_word(key, n - 4))
    } else if n > 0 {
        let byte = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
        ((byte(0) << 16) | (byte(n / 2) << 8) | byte(n - 1), 0)
    } else {
        (0, 0)
    };
    a ^= seed[1];
    b ^= seed[2];
    // The length goes into the multiplier of the last fold, not into the
    // bytes (XORed into them, it could cancel a difference in a byte).
    fold(fold(a, b) ^ seed[0], 0x9e37_79b9_7f4a_7c15 ^ n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The value of `key`, inserted as the entry's index if missing.
    fn insert(t: &mut HostTable<u32>, key: &str) -> u32 {
        match t.find(key.as_bytes()) {
            Ok(i) => t.value(i),
            Err(v) => {
                let n = t.len() as u32;
                t.insert(v, key.as_bytes(), n)
            }
        }
    }

    fn get(t: &mut HostTable<u32>, key: &[u8]) -> Option<u32> {
        t.find(key).ok().map(|i| t.value(i))
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let hosts: [&[u8]; 9] = [
            b"",
            b"a",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgi",
            b"alpha.example",
            b"alpha.examplf",
            b"blpha.example",
            b"a-rather-long-virtual-host-name.example.org",
        ];
        for a in hosts {
            for b in hosts {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
            let mut other = a.to_vec();
            for i in 0..other.len() {
                other[i] ^= 1;
                assert!(!same_bytes(a, &other), "{a:?} differs at {i}");
                other[i] ^= 1;
            }
        }
    }
    #[test]
    fn keys_get_numbers_in_order_and_keep_them() {
        let mut t = HostTable::<u32>::new();
        let names: Vec<String> = (0..5000).map(|i| format!("host-{i}.example")).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(insert(&mut t, n), i as u32);
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(get(&mut t, n.as_bytes()), Some(i as u32));
            assert_eq!(t.key(i as u32), n.as_bytes());
        }
        assert!(t.find(b"host-5000.example").is_err());
        // Values are the caller's.
        let v = t.find(b"alias.example").unwrap_err();
        assert_eq!(t.insert(v, b"alias.example", 3), 5000);
        assert_eq!(get(&mut t, b"alias.example"), Some(3));
        assert_eq!(t.key(5000), b"alias.example");
        t.clear();
        assert!(t.find(b"").is_err());
        assert_eq!(insert(&mut t, ""), 0);
        assert_eq!(get(&mut t, b""), Some(0));
        assert!(!t.uses_siphash(), "honest names never walk far");
        t.clear();
        assert!(t.is_empty());
        assert!(t.find(b"host-1.example").is_err());
        assert_eq!(insert(&mut t, "host-1.example"), 0);
    }

    #[test]
    fn every_length_and_every_byte_counts() {
        // Distinct keys of every length up to 40 that differ in one byte
        // get distinct hashes (a hash that ignored a byte would collide).
        let t = HostTable::<u32>::new();
        let mut seen = HashSet::new();
        for len in 0..=40usize {
            let base = vec![b'a'; len];
            assert!(seen.insert(t.hash(&base)), "len {len}");
            for at in 0..len {
                let mut k = base.clone();
                k[at] = b'b';
                assert!(seen.insert(t.hash(&k)), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn seeds_differ_per_table() {
        let (a, b) = (HostTable::<u32>::new(), HostTable::<u32>::new());
        assert_ne!(a.hash(b"alpha.example"), b.hash(b"alpha.example"));
    }

    #[test]
    fn colliding_keys_switch_to_siphash_and_stay_found() {
        // Every key collides, as crafted names would if the fast hash
        // were broken.
        let mut t = HostTable::<u32>::new();
        t.hasher = Hasher::Broken;
        for i in 0..200u32 {
            assert_eq!(insert(&mut t, &format!("c{i}")), i);
        }
        assert!(t.uses_siphash(), "a long walk switched the hash");
        for i in 0..200u32 {
            assert_eq!(get(&mut t, format!("c{i}").as_bytes()), Some(i));
        }
        assert!(t.find(b"c200").is_err());
        // The switch outlives a new day.
        t.clear();
        assert!(t.uses_siphash());
        assert_eq!(insert(&mut t, "x"), 0);
    }

    #[test]
    fn a_long_walk_on_lookup_switches_too() {
        let mut t = HostTable::<u32>::new();
        t.hasher = Hasher::Broken;
        // Fill below the switch by insertion, straight into slots.
        for i in 0..MAX_PROBES as u32 {
            let key = format!("k{i}");
            t.keys.extend_from_slice(key.as_bytes());
            if (t.entries.len() + 1) * 2 > t.slots.len() {
                t.grow();
            }
            t.entries.push(Entry {
                hash: 7,
                start: t.keys.len() - key.len(),
                len: key.len() as u32,
                value: i,
            });
            assert!(t.place(i, 7));
        }
        assert!(!t.uses_siphash());
        // A key not there walks past all of them.
        assert!(t.find(b"absent").is_err());
        assert!(t.uses_siphash());
        assert_eq!(get(&mut t, b"k5"), Some(5));
    }
}
