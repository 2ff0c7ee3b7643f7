//! The cap on distinct hosts: Host headers are chosen by clients, so a
//! client sending random names must not grow memory or the table without
//! bound. Each lighttpd process admits the first `max_hosts` hosts it sees
//! on a day; they keep their own rows all day (a real site already counted
//! stays exact during a flood), and every further host's bytes go to one
//! overflow row, [`OVERFLOW`]: never dropped. The admitted set starts over
//! with each day, so memory stays bounded by the cap.

use std::collections::HashSet;

use crate::day::Day;
use crate::fnv::fnv1a64;

/// Row key for the bytes of hosts beyond the cap.
pub const OVERFLOW: &str = "_other";

/// Bits in the sketch that estimates how many distinct hosts overflowed
/// (linear counting: about 2% error up to ~100k hosts, 8 KiB).
const SKETCH_BITS: usize = 1 << 16;

#[derive(Debug)]
pub struct Admission {
    cap: usize,
    day: Option<Day>,
    admitted: HashSet<Box<str>>,
    overflow: Overflow,
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

    fn record(&mut self, host: &str) {
        self.requests += 1;
        let bit = (fnv1a64(host.as_bytes()) as usize) % SKETCH_BITS;
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
        Admission {
            cap,
            day: None,
            admitted: HashSet::new(),
            overflow: Overflow::new(),
        }
    }

    /// The key to count `host` under on `day`: itself if admitted (or if
    /// there is still room), else [`OVERFLOW`]. Allocates only when a host
    /// is admitted.
    pub fn admit<'a>(&mut self, host: &'a str, day: Day) -> &'a str {
        if self.day != Some(day) {
            // A new day (or a clock step back): everyone starts over.
            self.day = Some(day);
            self.admitted.clear();
            self.admitted.shrink_to(self.cap.min(1024));
            self.overflow = Overflow {
                day: Some(day),
                ..Overflow::new()
            };
        }
        if host == OVERFLOW || self.admitted.contains(host) {
            return host;
        }
        if self.admitted.len() < self.cap {
            self.admitted.insert(host.into());
            return host;
        }
        self.overflow.record(host);
        OVERFLOW
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

    #[test]
    fn first_hosts_of_the_day_keep_their_rows() {
        let mut a = Admission::new(2);
        assert_eq!(a.admit("a", Day(1)), "a");
        assert_eq!(a.admit("b", Day(1)), "b");
        assert_eq!(a.admit("c", Day(1)), OVERFLOW);
        assert_eq!(
            a.admit("a", Day(1)),
            "a",
            "admitted hosts stay exact during a flood"
        );
        assert_eq!(a.admit("d", Day(1)), OVERFLOW);
        assert_eq!(a.admit("c", Day(1)), OVERFLOW);
        assert_eq!(a.overflow().requests, 3);
        assert_eq!(a.overflow().hosts(), 2);
        // A new day starts over.
        assert_eq!(a.admit("c", Day(2)), "c");
        assert_eq!(a.admit("d", Day(2)), "d");
        assert_eq!(a.admit("a", Day(2)), OVERFLOW);
        assert_eq!(a.overflow().requests, 1);
        assert_eq!(a.overflow().day, Some(Day(2)));
    }

    #[test]
    fn memory_is_bounded_by_the_cap() {
        let mut a = Admission::new(100);
        for i in 0..100_000 {
            let h = format!("flood-{i}.example");
            a.admit(&h, Day(7));
        }
        assert_eq!(a.admitted.len(), 100);
        assert_eq!(a.overflow().requests, 99_900);
        let est = a.overflow().hosts() as f64;
        assert!((est - 99_900.0).abs() / 99_900.0 < 0.05, "estimate {est}");
    }

    #[test]
    fn the_overflow_key_itself_is_never_refused() {
        let mut a = Admission::new(1);
        assert_eq!(a.admit("x", Day(1)), "x");
        assert_eq!(a.admit(OVERFLOW, Day(1)), OVERFLOW);
        assert_eq!(a.overflow().requests, 0);
    }
}
