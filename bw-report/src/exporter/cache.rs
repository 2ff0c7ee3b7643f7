//! What a scrape serves, reading as few rows as it can: the days before a
//! window of recent days are summed once and kept, the window is read at
//! every scrape, and the kept sums are redone when the window moves (on
//! the first scrape of a new day). Pure logic: rows come through [`Rows`]
//! and the date is passed in, so the tests drive it with a fake table and
//! a fake calendar.
//!
//! Why counters never go down while rows only grow: each scrape serves
//! kept(before cutoff, summed at some time) + live(from cutoff, now). The
//! live part only grows. When the cutoff moves from c to c', the new kept
//! part holds the rows before c as they are now (at least what was kept)
//! plus the days c..c' as they are now (at least what was last read live).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

/// What some rows of one vhost add up to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows: u64,
    pub newest_day: Option<NaiveDate>,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        // Saturating: a sum past 2^64 bytes is not a real table.
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.rows = self.rows.saturating_add(other.rows);
        self.newest_day = self.newest_day.max(other.newest_day);
    }
}

/// One vhost's rows of the window, and today's bytes among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub vhost: String,
    pub sums: Sums,
    pub today_in: u64,
    pub today_out: u64,
}

/// The two reads a scrape needs from the table.
pub trait Rows {
    type Error;
    /// Per vhost, its rows of the days before `cutoff`.
    fn before(&mut self, cutoff: NaiveDate) -> Result<Vec<(String, Sums)>, Self::Error>;
    /// Per vhost, its rows from `cutoff` on, with `today`'s bytes.
    fn since(&mut self, cutoff: NaiveDate, today: NaiveDate) -> Result<Vec<Recent>, Self::Error>;
}

/// What one vhost shows: all its days, and today.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub total_in: u64,
    pub total_out: u64,
    pub today_in: u64,
    pub today_out: u64,
}

/// The table as one scrape sees it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// By vhost name (names read alike once made UTF-8 are one vhost: a
    /// label set twice would make Prometheus refuse the whole scrape).
    pub vhosts: BTreeMap<String, Figures>,
    pub rows: u64,
    pub newest_day: Option<NaiveDate>,
}

/// The kept sums of the days before `cutoff`.
#[derive(Debug)]
struct Kept {
    cutoff: NaiveDate,
    per_vhost: BTreeMap<String, Sums>,
}

/// The sums kept between scrapes.
#[derive(Debug)]
pub struct Books {
    recent_days: u32,
    kept: Option<Kept>,
}

impl Books {
    /// `recent_days`: the days before today that every scrape reads again.
    pub fn new(recent_days: u32) -> Books {
        Books {
            recent_days,
            kept: None,
        }
    }

    /// The first day every scrape reads: `recent_days` before today.
    pub fn cutoff(&self, today: NaiveDate) -> NaiveDate {
        today
            .checked_sub_days(Days::new(u64::from(self.recent_days)))
            .unwrap_or(NaiveDate::MIN)
    }

    /// The day the kept sums stop before, once there are some.
    pub fn kept_until(&self) -> Option<NaiveDate> {
        self.kept.as_ref().map(|k| k.cutoff)
    }

    /// The table as of now: the kept sums (redone first if the window has
    /// moved) and the window read afresh. On an error the kept sums stay
    /// as they were, for the next scrape.
    pub fn scrape<R: Rows>(
        &mut self,
        rows: &mut R,
        today: NaiveDate,
    ) -> Result<Snapshot, R::Error> {
        let cutoff = self.cutoff(today);
        if self.kept_until() != Some(cutoff) {
            let mut per_vhost = BTreeMap::new();
            for (vhost, sums) in rows.before(cutoff)? {
                per_vhost
                    .entry(vhost)
                    .or_insert_with(Sums::default)
                    .add(&sums);
            }
            self.kept = Some(Kept { cutoff, per_vhost });
        }
        let recent = rows.since(cutoff, today)?;
        let kept = self.kept.as_ref().map(|k| &k.per_vhost);
        Ok(merge(kept.into_iter().flatten(), recent))
    }
}

/// Kept and live sums per vhost, added up.
fn merge<'a>(kept: impl Iterator<Item = (&'a String, &'a Sums)>, recent: Vec<Recent>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut all = Sums::default();
    for (vhost, sums) in kept {
        add_to(&mut snapshot, vhost.clone(), sums, (0, 0));
        all.add(sums);
    }
    for r in recent {
        all.add(&r.sums);
        add_to(&mut snapshot, r.vhost, &r.sums, (r.today_in, r.today_out));
    }
    snapshot.rows = all.rows;
    snapshot.newest_day = all.newest_day;
    snapshot
}

fn add_to(snapshot: &mut Snapshot, vhost: String, sums: &Sums, today: (u64, u64)) {
    let f = snapshot.vhosts.entry(vhost).or_default();
    f.total_in = f.total_in.saturating_add(sums.bytes_in);
    f.total_out = f.total_out.saturating_add(sums.bytes_out);
    f.today_in = f.today_in.saturating_add(today.0);
    f.today_out = f.today_out.saturating_add(today.1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// A table in memory that answers as the SQL would, and counts which
    /// rows each read touched.
    #[derive(Default)]
    struct FakeTable {
        rows: BTreeMap<(String, NaiveDate), (u64, u64)>,
        befores: Vec<NaiveDate>,
        touched_since: usize,
        down: bool,
    }

    impl FakeTable {
        fn add(&mut self, vhost: &str, day: NaiveDate, bytes_in: u64, bytes_out: u64) {
            let row = self.rows.entry((vhost.to_string(), day)).or_default();
            row.0 += bytes_in;
            row.1 += bytes_out;
        }

        fn sums_where(&self, keep: impl Fn(NaiveDate) -> bool) -> BTreeMap<String, Sums> {
            let mut out = BTreeMap::<String, Sums>::new();
            for ((vhost, day), (i, o)) in &self.rows {
                if keep(*day) {
                    let s = out.entry(vhost.clone()).or_default();
                    s.add(&Sums {
                        bytes_in: *i,
                        bytes_out: *o,
                        rows: 1,
                        newest_day: Some(*day),
                    });
                }
            }
            out
        }

        /// What every scrape should show: the whole table, summed now.
        fn truth(&self, today: NaiveDate) -> Snapshot {
            let mut vhosts = BTreeMap::new();
            for (vhost, s) in self.sums_where(|_| true) {
                let (today_in, today_out) = self
                    .rows
                    .get(&(vhost.clone(), today))
                    .copied()
                    .unwrap_or_default();
                let figures = Figures {
                    total_in: s.bytes_in,
                    total_out: s.bytes_out,
                    today_in,
                    today_out,
                };
                vhosts.insert(vhost, figures);
            }
            Snapshot {
                vhosts,
                rows: self.rows.len() as u64,
                newest_day: self.rows.keys().map(|(_, day)| *day).max(),
            }
        }
    }

    impl Rows for FakeTable {
        type Error = &'static str;

        fn before(&mut self, cutoff: NaiveDate) -> Result<Vec<(String, Sums)>, &'static str> {
            if self.down {
                return Err("down");
            }
            self.befores.push(cutoff);
            Ok(self.sums_where(|day| day < cutoff).into_iter().collect())
        }

        fn since(
            &mut self,
            cutoff: NaiveDate,
            today: NaiveDate,
        ) -> Result<Vec<Recent>, &'static str> {
            if self.down {
                return Err("down");
            }
            self.touched_since += self.rows.keys().filter(|(_, day)| *day >= cutoff).count();
            let sums = self.sums_where(|day| day >= cutoff);
            Ok(sums
                .into_iter()
                .map(|(vhost, sums)| {
                    let (today_in, today_out) = self
                        .rows
                        .get(&(vhost.clone(), today))
                        .copied()
                        .unwrap_or_default();
                    Recent {
                        vhost,
                        sums,
                        today_in,
                        today_out,
                    }
                })
                .collect())
        }
    }

    #[test]
    fn the_window_is_recent_days_before_today() {
        let books = Books::new(7);
        assert_eq!(books.cutoff(d(2026, 3, 3)), d(2026, 2, 24));
        assert_eq!(Books::new(1).cutoff(d(2026, 1, 1)), d(2025, 12, 31));
        assert_eq!(Books::new(3660).cutoff(NaiveDate::MIN), NaiveDate::MIN);
    }

    #[test]
    fn kept_and_live_sums_add_up_to_the_table() {
        let mut table = FakeTable::default();
        let today = d(2026, 3, 10);
        table.add("a", d(2025, 3, 10), 1, 10);
        table.add("a", d(2026, 3, 2), 2, 20); // just before the window
        table.add("a", d(2026, 3, 3), 4, 40); // its first day
        table.add("a", today, 8, 80);
        table.add("old-only", d(2024, 1, 1), 16, 160);
        table.add("new-only", today, 32, 320);
        let mut books = Books::new(7);
        let snapshot = books.scrape(&mut table, today).unwrap();
        assert_eq!(snapshot, table.truth(today));
        assert_eq!(
            snapshot.vhosts["a"],
            Figures {
                total_in: 15,
                total_out: 150,
                today_in: 8,
                today_out: 80
            }
        );
        assert_eq!(snapshot.vhosts["old-only"].today_in, 0);
        assert_eq!((snapshot.rows, snapshot.newest_day), (6, Some(today)));
        // Reading the window touched only its rows.
        assert_eq!(table.touched_since, 3);
    }

    #[test]
    fn the_past_is_summed_once_per_day() {
        let mut table = FakeTable::default();
        let mut books = Books::new(7);
        let day1 = d(2026, 3, 10);
        table.add("a", d(2026, 1, 1), 1, 1);
        for _ in 0..3 {
            books.scrape(&mut table, day1).unwrap();
        }
        assert_eq!(table.befores, [d(2026, 3, 3)], "one sum for three scrapes");
        let day2 = day1.succ_opt().unwrap();
        books.scrape(&mut table, day2).unwrap();
        books.scrape(&mut table, day2).unwrap();
        assert_eq!(table.befores, [d(2026, 3, 3), d(2026, 3, 4)]);
        assert_eq!(books.kept_until(), Some(d(2026, 3, 4)));
    }

    #[test]
    fn late_rows_in_the_window_show_at_once_older_ones_at_the_next_day() {
        let mut table = FakeTable::default();
        let mut books = Books::new(7);
        let today = d(2026, 3, 10);
        table.add("a", d(2026, 3, 1), 100, 100);
        table.add("a", today, 1, 1);
        let first = books.scrape(&mut table, today).unwrap();
        // Spooled counts arrive: for yesterday (in the window), and for a
        // day before it.
        table.add("a", d(2026, 3, 9), 5, 5);
        table.add("a", d(2026, 3, 1), 7, 7);
        let second = books.scrape(&mut table, today).unwrap();
        assert_eq!(second.vhosts["a"].total_in, first.vhosts["a"].total_in + 5);
        let tomorrow = today.succ_opt().unwrap();
        let third = books.scrape(&mut table, tomorrow).unwrap();
        assert_eq!(
            third,
            table.truth(tomorrow),
            "exact again once the window moved"
        );
    }

    #[test]
    fn a_failed_read_keeps_the_books_for_the_next_scrape() {
        let mut table = FakeTable::default();
        let mut books = Books::new(2);
        let today = d(2026, 3, 10);
        table.add("a", d(2026, 1, 1), 3, 3);
        books.scrape(&mut table, today).unwrap();
        table.down = true;
        let tomorrow = today.succ_opt().unwrap();
        assert_eq!(books.scrape(&mut table, tomorrow), Err("down"));
        assert_eq!(books.kept_until(), Some(d(2026, 3, 8)), "old sums kept");
        table.down = false;
        table.add("a", tomorrow, 1, 1);
        assert_eq!(
            books.scrape(&mut table, tomorrow).unwrap(),
            table.truth(tomorrow)
        );
    }

    /// Rows that only grow, scraped many times a day over weeks (and the
    /// clock set back once): every counter only grows, and each first
    /// scrape of a day is exact.
    #[test]
    fn counters_never_decrease_while_rows_only_grow() {
        let mut table = FakeTable::default();
        let mut books = Books::new(3);
        let start = d(2026, 2, 20);
        let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut dates: Vec<NaiveDate> = (0..20).map(|n| start + Days::new(n)).collect();
        dates.insert(10, dates[8]); // the clock set back a day
        for (step, today) in dates.iter().copied().enumerate() {
            for scrape in 0..4u64 {
                let step = step as u64;
                // Today's counts, late ones within and beyond the window.
                table.add("a", today, step + scrape, 1);
                table.add("b", today - Days::new(1 + scrape), 3, step);
                table.add("c", today - Days::new(5 + scrape % 2), 1, 2);
                let snapshot = books.scrape(&mut table, today).unwrap();
                if scrape == 0 {
                    // Late rows beyond the window added by the last scrape
                    // of the day before: in the sums redone today.
                    assert_eq!(snapshot, table.truth(today), "{today}");
                }
                for (vhost, f) in &snapshot.vhosts {
                    let before = seen.insert(vhost.clone(), (f.total_in, f.total_out));
                    let before = before.unwrap_or_default();
                    assert!(
                        f.total_in >= before.0 && f.total_out >= before.1,
                        "{vhost} went down on {today}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_that_read_alike_are_one_vhost() {
        let kept = [(
            "x".to_string(),
            Sums {
                bytes_in: 1,
                ..Sums::default()
            },
        )];
        let recent = vec![
            Recent {
                vhost: "x".into(),
                sums: Sums {
                    bytes_in: 2,
                    rows: 1,
                    ..Sums::default()
                },
                today_in: 2,
                today_out: 0,
            },
            Recent {
                vhost: "x".into(),
                sums: Sums {
                    bytes_in: 4,
                    rows: 1,
                    ..Sums::default()
                },
                today_in: 4,
                today_out: 0,
            },
        ];
        let snapshot = merge(kept.iter().map(|(v, s)| (v, s)), recent);
        assert_eq!(snapshot.vhosts.len(), 1);
        assert_eq!(snapshot.vhosts["x"].total_in, 7);
        assert_eq!(snapshot.vhosts["x"].today_in, 6);
        assert_eq!(snapshot.rows, 2);
    }
}
