//! Per-(host, day) byte totals: where every counted byte lives until the
//! database has it. Plain Rust, no I/O.
//!
//! The seed kept two maps (host -> bytes in, host -> bytes out). Here one
//! map holds both numbers of a (host, day) pair together: they are always
//! updated, flushed and zeroed together, and one lookup per request is half
//! the work of two.

use std::collections::HashMap;
use std::ops::{Add, AddAssign};

use crate::day::Day;

/// Bytes received from and sent to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The one way counts are summed. 64-bit: 16 EiB per host and day before
/// saturating, never wrapping.
impl Add for Traffic {
    type Output = Traffic;

    fn add(self, other: Traffic) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.saturating_add(other.bytes_in),
            bytes_out: self.bytes_out.saturating_add(other.bytes_out),
        }
    }
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        *self = *self + other;
    }
}

impl Traffic {
    pub fn total(&self) -> u64 {
        self.bytes_in.saturating_add(self.bytes_out)
    }
}

/// One row of the table, as the flusher writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub host: Box<str>,
    pub day: Day,
    pub traffic: Traffic,
}

/// Rows fixed under an id for delivery: retried and spooled as a unit, so
/// the ledger can tell whether the database already has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub id: String,
    pub rows: Vec<Row>,
}

/// Counts per host, then per day. A host nearly always has one day in it
/// (two around midnight), so the days are a short vector. Rows stay where
/// they were put until the counters are taken, so a [`Slot`] found once
/// keeps naming the same (host, day) row: the request path remembers the
/// last one and skips the lookup for the next request of the same host.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    index: HashMap<Box<str>, usize>,
    hosts: Vec<HostRows>,
}

/// A host and its rows, one per day.
type HostRows = (Box<str>, Vec<(Day, Traffic)>);

/// Where a (host, day) row is in one [`Counters`], until it is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    host: usize,
    day: usize,
}

/// Equal counts, whatever order the rows were added in.
impl PartialEq for Counters {
    fn eq(&self, other: &Counters) -> bool {
        self.rows() == other.rows()
    }
}

impl Eq for Counters {}

/// Sizes, for log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: usize,
    pub traffic: Traffic,
}

/// Sizes of two sets of rows together (for "pending" lines that join a
/// batch in flight and the counts waiting behind it).
impl AddAssign for Summary {
    fn add_assign(&mut self, other: Summary) {
        self.rows += other.rows;
        self.traffic += other.traffic;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes in, {} bytes out in {} row{}",
            self.traffic.bytes_in,
            self.traffic.bytes_out,
            self.rows,
            if self.rows == 1 { "" } else { "s" }
        )
    }
}

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one request's bytes. Allocates only for a host not yet in the
    /// map (and a host's second day).
    pub fn add(&mut self, host: &str, day: Day, traffic: Traffic) {
        let slot = self.insert(host, day);
        self.add_at(slot, traffic);
    }

    /// The (host, day) row, if there is one: one hash lookup.
    pub fn slot_of(&self, host: &str, day: Day) -> Option<Slot> {
        let h = *self.index.get(host)?;
        let d = self.hosts[h].1.iter().position(|(dd, _)| *dd == day)?;
        Some(Slot { host: h, day: d })
    }

    /// The (host, day) row, made (empty) if there is none.
    pub fn insert(&mut self, host: &str, day: Day) -> Slot {
        let h = match self.index.get(host) {
            Some(&h) => h,
            None => {
                self.hosts.push((host.into(), Vec::with_capacity(1)));
                self.index.insert(host.into(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        let days = &mut self.hosts[h].1;
        let d = match days.iter().position(|(dd, _)| *dd == day) {
            Some(d) => d,
            None => {
                days.push((day, Traffic::default()));
                days.len() - 1
            }
        };
        Slot { host: h, day: d }
    }

    /// Adds to the row `slot` names (a slot of these counters).
    pub fn add_at(&mut self, slot: Slot, traffic: Traffic) {
        self.hosts[slot.host].1[slot.day].1 += traffic;
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// (host, day) rows.
    pub fn row_count(&self) -> usize {
        self.hosts.iter().map(|(_, days)| days.len()).sum()
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Takes everything out, leaving this empty.
    pub fn take(&mut self) -> Counters {
        std::mem::take(self)
    }

    /// Adds all of `other` (used to put back counts the database did not
    /// take, and to join batches waiting for delivery).
    pub fn merge(&mut self, other: Counters) {
        if self.hosts.is_empty() {
            *self = other;
            return;
        }
        for (host, days) in other.hosts {
            for (day, traffic) in days {
                self.add(&host, day, traffic);
            }
        }
    }

    /// The rows in (host, day) order: every writer locks rows in the same
    /// order, so concurrent flushes cannot deadlock on lock order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .hosts
            .iter()
            .flat_map(|(host, days)| {
                days.iter().map(|(day, traffic)| Row {
                    host: host.clone(),
                    day: *day,
                    traffic: *traffic,
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.host.as_bytes(), a.day).cmp(&(b.host.as_bytes(), b.day)));
        rows
    }

    pub fn summary_of(rows: &[Row]) -> Summary {
        Summary {
            rows: rows.len(),
            traffic: rows
                .iter()
                .fold(Traffic::default(), |sum, r| sum + r.traffic),
        }
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for (_, days) in &self.hosts {
            for (_, t) in days {
                s += Summary {
                    rows: 1,
                    traffic: *t,
                };
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u64, o: u64) -> Traffic {
        Traffic {
            bytes_in: i,
            bytes_out: o,
        }
    }

    #[test]
    fn adds_per_host_and_day() {
        let mut c = Counters::new();
        c.add("a", Day(10), t(1, 2));
        c.add("a", Day(10), t(10, 20));
        c.add("a", Day(11), t(100, 200));
        c.add("b", Day(10), t(5, 0));
        let rows = c.rows();
        assert_eq!(
            rows,
            vec![
                Row {
                    host: "a".into(),
                    day: Day(10),
                    traffic: t(11, 22)
                },
                Row {
                    host: "a".into(),
                    day: Day(11),
                    traffic: t(100, 200)
                },
                Row {
                    host: "b".into(),
                    day: Day(10),
                    traffic: t(5, 0)
                },
            ]
        );
        assert_eq!(
            c.summary(),
            Summary {
                rows: 3,
                traffic: t(116, 222)
            }
        );
        assert_eq!(c.host_count(), 2);
    }

    #[test]
    fn no_32_bit_limit_and_no_wrap() {
        let mut c = Counters::new();
        let four_gib = 4u64 << 30;
        for _ in 0..3 {
            c.add("big", Day(1), t(four_gib, four_gib + 1));
        }
        assert_eq!(c.rows()[0].traffic, t(3 * four_gib, 3 * four_gib + 3));
        c.add("big", Day(1), t(u64::MAX, 0));
        assert_eq!(
            c.rows()[0].traffic.bytes_in,
            u64::MAX,
            "saturates, never wraps"
        );
    }

    #[test]
    fn take_leaves_empty_and_merge_restores() {
        let mut c = Counters::new();
        c.add("a", Day(1), t(1, 1));
        c.add("b", Day(1), t(2, 2));
        let taken = c.take();
        assert!(c.is_empty());
        c.add("a", Day(1), t(10, 10));
        c.add("c", Day(2), t(3, 3));
        c.merge(taken);
        let rows = c.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].traffic, t(11, 11));
        assert_eq!(c.summary().traffic, t(16, 16));
        let mut empty = Counters::new();
        empty.merge(c.clone());
        assert_eq!(empty, c);
    }

    #[test]
    fn summary_of_rows() {
        let rows = vec![
            Row {
                host: "a".into(),
                day: Day(1),
                traffic: t(1, 2),
            },
            Row {
                host: "c".into(),
                day: Day(1),
                traffic: t(7, 7),
            },
        ];
        assert_eq!(
            Counters::summary_of(&rows),
            Summary {
                rows: 2,
                traffic: t(8, 9)
            }
        );
    }

    #[test]
    fn rows_are_sorted_bytewise() {
        let mut c = Counters::new();
        for h in ["b", "a.example", "A", "_nohost", "a"] {
            c.add(h, Day(2), t(1, 0));
            c.add(h, Day(1), t(1, 0));
        }
        let keys: Vec<(String, i32)> = c
            .rows()
            .iter()
            .map(|r| (r.host.to_string(), r.day.0))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
