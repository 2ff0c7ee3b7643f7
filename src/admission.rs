//! The cap on distinct hosts: Host headers are chosen by clients, so a
//! client sending random names must not grow memory or the table without
//! bound. Each lighttpd process admits the first `max_hosts` hosts it sees
//! on a day; they keep their own rows all day (a real site already counted
//! stays exact during a flood), and every further host's bytes go to one
//! overflow row, [`OVERFLOW`]: never dropped. The admitted set starts over
//! with each day, so memory stays bounded by the cap.

use crate::day::Day;
use crate::fnv::fnv1a64;
use crate::hostkey::KeyMaker;
use crate::hosts::{same_bytes, HostTable, Vacant};

/// Row key for the bytes of hosts beyond the cap.
pub const OVERFLOW: &str = "_other";

/// Bits in the sketch that estimates how many distinct hosts overflowed
/// (linear counting: about 2% error up to ~100k hosts, 8 KiB).
const SKETCH_BITS: usize = 1 << 16;

/// The hosts admitted on one day, each under a number (its index in the
/// tally's per-day counts). [`OVERFLOW`] is number 0 on every day, outside
/// the cap.
///
/// One table holds two kinds of names, each mapped to a number: keys (what
/// the key rule makes of a host), and the host names lighttpd parsed for
/// requests (authorities). Most authorities are their own key (lighttpd
/// lower-cases and validates them), and one entry serves both; one that
/// differs from its key (`Example.org:8080`) gets an entry of its own
/// while there is room for [`Admission::max_aliases`] of them. A request
/// whose authority was seen that day then costs one lookup, without the
/// key rule.
pub struct Admission {
    cap: usize,
    day: Option<Day>,
    names: HostTable<Numbers>,
    /// Each number's entry in `names` (its key).
    keys: Vec<u32>,
    /// Entries that are authorities only.
    aliases: usize,
    overflow: Overflow,
}

/// What a name in the table stands for, as a key and as an authority
/// (`NONE`: not that). The two can differ: an authority whose bytes are
/// also another host's key, but whose key is not itself (`a\\x01`), maps
/// to a row other than that key's.
#[derive(Debug, Clone, Copy)]
struct Numbers {
    as_key: u32,
    as_authority: u32,
}

const NONE: u32 = u32::MAX;

/// Number of the [`OVERFLOW`] row on every day.
pub const OVERFLOW_ID: u32 = 0;

/// Where [`Admission::admit`] puts a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Its own row (or the overflow row for a host named [`OVERFLOW`]),
    /// already numbered.
    Known(u32),
    /// Its own row, numbered just now: the next number.
    New(u32),
    /// Beyond the cap: the overflow row.
    Overflowed,
}

impl Admitted {
    pub fn id(self) -> u32 {
        match self {
            Admitted::Known(id) | Admitted::New(id) => id,
            Admitted::Overflowed => OVERFLOW_ID,
        }
    }
}

/// What went to [`OVERFLOW`] on the current day.
#[derive(Debug, Clone)]
pub struct Overflow {
    pub day: Option<Day>,
    pub requests: u64,
    sketch: Vec<u64>,
}

impl Overflow {
    fn new() -> Self {
        Overflow {
            day: None,
            requests: 0,
            sketch: vec![0; SKETCH_BITS / 64],
        }
    }

    fn record(&mut self, host: &[u8]) {
        self.requests += 1;
        let bit = (fnv1a64(host) as usize) % SKETCH_BITS;
        self.sketch[bit / 64] |= 1 << (bit % 64);
    }

    /// Estimated number of distinct hosts that overflowed.
    pub fn hosts(&self) -> u64 {
        let set: u32 = self.sketch.iter().map(|w| w.count_ones()).sum();
        let zero = SKETCH_BITS as f64 - f64::from(set);
        if zero < 1.0 {
            return SKETCH_BITS as u64 * 10; // saturated: "very many"
        }
        (-(SKETCH_BITS as f64) * (zero / SKETCH_BITS as f64).ln()).round() as u64
    }
}

impl Admission {
    pub fn new(cap: usize) -> Self {
        let mut a = Admission {
            cap,
            day: None,
            names: HostTable::new(),
            keys: Vec::new(),
            aliases: 0,
            overflow: Overflow::new(),
        };
        a.start_day(None);
        a
    }

    /// The day the admitted hosts are for (`None` before the first).
    pub fn day(&self) -> Option<Day> {
        self.day
    }

    /// A new day (or a clock step back): everyone starts over, and the
    /// numbers given out before mean nothing any more.
    pub fn start_day(&mut self, day: Option<Day>) {
        self.day = day;
        self.names.clear();
        self.keys.clear();
        self.aliases = 0;
        if let Err(v) = self.names.find(OVERFLOW.as_bytes()) {
            let numbers = Numbers {
                as_key: OVERFLOW_ID,
                as_authority: OVERFLOW_ID,
            };
            self.keys
                .push(self.names.insert(v, OVERFLOW.as_bytes(), numbers));
        }
        self.overflow = Overflow {
            day,
            ..Overflow::new()
        };
    }

    /// Authorities remembered apart from their keys, at most: as many as
    /// the cap allows hosts, and never fewer than 1024 (a client can send
    /// one host under many spellings, `Host: a.example:1`, `:2`...; past
    /// this number they still count right, through the key rule).
    pub fn max_aliases(&self) -> usize {
        self.cap.max(1024)
    }

    /// The row for a request whose authority is `authority` (`server_name`:
    /// its scope's, for a request without one), on the current day.
    #[inline]
    pub fn admit(&mut self, authority: &[u8], server_name: &[u8], keys: &mut KeyMaker) -> Admitted {
        if authority.is_empty() {
            return self.admit_key(keys.key(authority, server_name));
        }
        let found = self.names.find(authority);
        if let Ok(entry) = found {
            let id = self.names.value(entry).as_authority;
            if id != NONE {
                return Admitted::Known(id);
            }
        }
        let Some(key) = keys.authority_key(authority) else {
            // Its key is the scope's server.name: not remembered.
            return self.admit_key(keys.key(authority, server_name));
        };
        if same_bytes(key.as_bytes(), authority) {
            // Its own key: one entry for both.
            return match found {
                Ok(entry) => {
                    // Known as another authority's key; now as itself too.
                    let numbers = self.names.value_mut(entry);
                    numbers.as_authority = numbers.as_key;
                    Admitted::Known(numbers.as_key)
                }
                Err(vacant) => self.admit_new(vacant, key.as_bytes(), true),
            };
        }
        let admitted = self.admit_key(key);
        // Remembered under its own name, if that name is free (no key has
        // it) and there is room; the lookup above left the table as it was
        // unless a key was admitted just now.
        if admitted != Admitted::Overflowed && found.is_err() && self.aliases < self.max_aliases() {
            if let Err(vacant) = self.names.find(authority) {
                let numbers = Numbers {
                    as_key: NONE,
                    as_authority: admitted.id(),
                };
                self.names.insert(vacant, authority, numbers);
                self.aliases += 1;
            }
        }
        admitted
    }

    /// The row for `key` (a key already).
    fn admit_key(&mut self, key: &str) -> Admitted {
        match self.names.find(key.as_bytes()) {
            Ok(entry) => match self.names.value(entry).as_key {
                NONE => self.admit_name_as_key(entry),
                id => Admitted::Known(id),
            },
            Err(vacant) => self.admit_new(vacant, key.as_bytes(), false),
        }
    }

    /// A new key, if there is room; `also_authority`: the key is the
    /// request's authority too.
    fn admit_new(&mut self, vacant: Vacant, key: &[u8], also_authority: bool) -> Admitted {
        // The overflow row (number 0) does not count against the cap.
        if self.keys.len() > self.cap {
            // Keys are &str.
            self.overflow.record(key);
            return Admitted::Overflowed;
        }
        let id = self.keys.len() as u32;
        let numbers = Numbers {
            as_key: id,
            as_authority: if also_authority { id } else { NONE },
        };
        self.keys.push(self.names.insert(vacant, key, numbers));
        Admitted::New(id)
    }

    /// A key whose bytes are already in the table as an authority only.
    fn admit_name_as_key(&mut self, entry: u32) -> Admitted {
        // The overflow row (number 0) does not count against the cap.
        if self.keys.len() > self.cap {
            let key = self.names.key(entry).to_vec();
            self.overflow.record(&key);
            return Admitted::Overflowed;
        }
        let id = self.keys.len() as u32;
        self.names.value_mut(entry).as_key = id;
        self.keys.push(entry);
        self.aliases -= 1;
        Admitted::New(id)
    }

    /// The key numbered `id` on the current day.
    pub fn host(&self, id: u32) -> &str {
        let key = self
            .keys
            .get(id as usize)
            .map_or(&[][..], |&entry| self.names.key(entry));
        // Keys were &str when admitted.
        std::str::from_utf8(key).unwrap_or(OVERFLOW)
    }

    /// Hosts numbered on the current day, the overflow row included.
    pub fn numbered(&self) -> usize {
        self.keys.len()
    }

    pub fn overflow(&self) -> &Overflow {
        &self.overflow
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(a: &mut Admission, host: &str, day: i32) -> String {
        if a.day() != Some(Day(day)) {
            a.start_day(Some(Day(day)));
        }
        let id = a.admit(host.as_bytes(), b"", &mut KeyMaker::new()).id();
        a.host(id).to_string()
    }

    #[test]
    fn first_hosts_of_the_day_keep_their_rows() {
        let mut a = Admission::new(2);
        assert_eq!(admit(&mut a, "a", 1), "a");
        assert_eq!(admit(&mut a, "b", 1), "b");
        assert_eq!(admit(&mut a, "c", 1), OVERFLOW);
        assert_eq!(
            admit(&mut a, "a", 1),
            "a",
            "admitted hosts stay exact during a flood"
        );
        assert_eq!(admit(&mut a, "d", 1), OVERFLOW);
        assert_eq!(admit(&mut a, "c", 1), OVERFLOW);
        assert_eq!(a.overflow().requests, 3);
        assert_eq!(a.overflow().hosts(), 2);
        // A new day starts over.
        assert_eq!(admit(&mut a, "c", 2), "c");
        assert_eq!(admit(&mut a, "d", 2), "d");
        assert_eq!(admit(&mut a, "a", 2), OVERFLOW);
        assert_eq!(a.overflow().requests, 1);
        assert_eq!(a.overflow().day, Some(Day(2)));
    }

    #[test]
    fn numbers_are_given_in_order_after_the_overflow_row() {
        let mut a = Admission::new(3);
        a.start_day(Some(Day(1)));
        let mut keys = KeyMaker::new();
        let mut admit = |a: &mut Admission, host: &str| a.admit(host.as_bytes(), b"", &mut keys);
        assert_eq!(admit(&mut a, "x"), Admitted::New(1));
        assert_eq!(admit(&mut a, "y:8080"), Admitted::New(2));
        assert_eq!(admit(&mut a, "x"), Admitted::Known(1));
        assert_eq!(admit(&mut a, "X"), Admitted::Known(1));
        assert_eq!(admit(&mut a, "y"), Admitted::Known(2));
        assert_eq!(admit(&mut a, OVERFLOW), Admitted::Known(OVERFLOW_ID));
        assert_eq!(admit(&mut a, "z"), Admitted::New(3));
        assert_eq!(admit(&mut a, "w"), Admitted::Overflowed);
        assert_eq!(admit(&mut a, "Z."), Admitted::Known(3));
        assert_eq!(a.numbered(), 4);
        assert_eq!(a.aliases, 3, "y:8080, X and Z.");
    }

    #[test]
    fn an_authority_that_is_another_hosts_key_keeps_its_own_row() {
        // key("a\\x01") is "a\\\\x01"; "a\x01" (one byte) has the key
        // "a\\x01", the first authority's bytes.
        let mut a = Admission::new(10);
        a.start_day(Some(Day(1)));
        let mut keys = KeyMaker::new();
        let mut row = |a: &mut Admission, authority: &[u8]| {
            let id = a.admit(authority, b"", &mut keys).id();
            a.host(id).to_string()
        };
        for _ in 0..2 {
            assert_eq!(row(&mut a, b"a\\x01"), "a\\\\x01");
            assert_eq!(row(&mut a, b"a\x01"), "a\\x01");
            assert_eq!(row(&mut a, b"a\\x01"), "a\\\\x01");
        }
        let mut b = Admission::new(10);
        b.start_day(Some(Day(1)));
        for _ in 0..2 {
            assert_eq!(row(&mut b, b"a\x01"), "a\\x01");
            assert_eq!(row(&mut b, b"a\\x01"), "a\\\\x01");
        }
        // A host whose key is server.name's is never remembered by name.
        assert_eq!(b.admit(b":80", b"one.example", &mut keys).id(), 3);
        assert_eq!(b.admit(b":80", b"two.example", &mut keys).id(), 4);
    }

    #[test]
    fn spellings_of_one_host_are_remembered_up_to_a_limit() {
        let mut a = Admission::new(10);
        a.start_day(Some(Day(1)));
        let mut keys = KeyMaker::new();
        for port in 1..5000 {
            let authority = format!("a.example:{port}");
            assert_eq!(
                a.admit(authority.as_bytes(), b"", &mut keys),
                if port == 1 {
                    Admitted::New(1)
                } else {
                    Admitted::Known(1)
                }
            );
        }
        assert_eq!(a.aliases, a.max_aliases());
        assert_eq!(a.names.len(), 2 + 1024);
    }

    #[test]
    fn memory_is_bounded_by_the_cap() {
        let mut a = Admission::new(100);
        for i in 0..100_000 {
            let h = format!("flood-{i}.example");
            admit(&mut a, &h, 7);
        }
        assert_eq!(a.numbered(), 101, "100 hosts and the overflow row");
        assert_eq!(a.overflow().requests, 99_900);
        let est = a.overflow().hosts() as f64;
        assert!((est - 99_900.0).abs() / 99_900.0 < 0.05, "estimate {est}");
    }

    #[test]
    fn the_overflow_key_itself_is_never_refused() {
        let mut a = Admission::new(1);
        assert_eq!(admit(&mut a, "x", 1), "x");
        assert_eq!(admit(&mut a, OVERFLOW, 1), OVERFLOW);
        assert_eq!(a.overflow().requests, 0);
    }
}
