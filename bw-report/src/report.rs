//! What a report says, computed from the rows: no I/O, no formatting.
//! Sorting happens here rather than in SQL so that the order is the same
//! whatever the table's collation (byte order of the vhost breaks ties).

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// Bytes of one vhost over the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostBytes {
    pub vhost: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl VhostBytes {
    /// Saturating: two signed bigint sums reach u64::MAX only past 16 EiB.
    pub fn total(&self) -> u64 {
        self.bytes_in.saturating_add(self.bytes_out)
    }
}

/// One row of the table: a vhost's bytes on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBytes {
    pub day: NaiveDate,
    pub vhost: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// `bw-report top`: the biggest vhosts, and the totals of all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub rows: Vec<TopRow>,
    /// All vhosts in the range, also those `--limit` left out.
    pub all: Totals,
    pub vhosts: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    pub bytes: VhostBytes,
    pub total: u64,
    /// Of `Top::all`'s total, 0 to 1.
    pub share: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total: u64,
}

impl Totals {
    fn add(&mut self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
        self.total = self.bytes_in.saturating_add(self.bytes_out);
    }
}

/// Sorted by total, biggest first, then by vhost; shares of the grand
/// total of every vhost, computed before `limit` cuts the list.
pub fn top(mut totals: Vec<VhostBytes>, limit: Option<usize>) -> Top {
    let mut all = Totals::default();
    for t in &totals {
        all.add(t.bytes_in, t.bytes_out);
    }
    let vhosts = totals.len();
    totals.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then_with(|| a.vhost.cmp(&b.vhost))
    });
    totals.truncate(limit.unwrap_or(usize::MAX));
    let rows = totals
        .into_iter()
        .map(|bytes| {
            let total = bytes.total();
            let share = if all.total == 0 {
                0.0
            } else {
                total as f64 / all.total as f64
            };
            TopRow {
                bytes,
                total,
                share,
            }
        })
        .collect();
    Top { rows, all, vhosts }
}

/// Each vhost's bytes summed over the rows: what `Table::totals` sums in
/// SQL, for reports that already read the rows (chart, html).
pub fn vhost_totals(rows: &[DayBytes]) -> Vec<VhostBytes> {
    let mut sums: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let sum = sums.entry(&r.vhost).or_default();
        sum.0 = sum.0.saturating_add(r.bytes_in);
        sum.1 = sum.1.saturating_add(r.bytes_out);
    }
    sums.into_iter()
        .map(|(vhost, (bytes_in, bytes_out))| VhostBytes {
            vhost: vhost.to_string(),
            bytes_in,
            bytes_out,
        })
        .collect()
}

/// By day, then vhost; and the totals of the rows.
pub fn daily(mut rows: Vec<DayBytes>) -> (Vec<DayBytes>, Totals) {
    rows.sort_by(|a, b| a.day.cmp(&b.day).then_with(|| a.vhost.cmp(&b.vhost)));
    let mut all = Totals::default();
    for r in &rows {
        all.add(r.bytes_in, r.bytes_out);
    }
    (rows, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vb(vhost: &str, bytes_in: u64, bytes_out: u64) -> VhostBytes {
        VhostBytes {
            vhost: vhost.into(),
            bytes_in,
            bytes_out,
        }
    }

    #[test]
    fn top_sorts_by_total_then_name_and_shares_are_of_everything() {
        let top = top(
            vec![
                vb("b", 10, 20),
                vb("c", 1, 1),
                vb("a", 0, 30),
                vb("d", 40, 0),
            ],
            Some(2),
        );
        let names: Vec<&str> = top.rows.iter().map(|r| r.bytes.vhost.as_str()).collect();
        assert_eq!(names, ["d", "a"]);
        assert_eq!(
            top.all,
            Totals {
                bytes_in: 51,
                bytes_out: 51,
                total: 102
            }
        );
        assert_eq!(top.vhosts, 4);
        assert!((top.rows[0].share - 40.0 / 102.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_in_range_is_an_empty_report() {
        let top = top(Vec::new(), None);
        assert!(top.rows.is_empty());
        assert_eq!(top.all, Totals::default());
        let only_zero = super::top(vec![vb("idle", 0, 0)], None);
        assert_eq!(only_zero.rows[0].share, 0.0);
    }

    #[test]
    fn daily_is_by_day_then_vhost() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 1, day).unwrap();
        let row = |day, vhost: &str| DayBytes {
            day: d(day),
            vhost: vhost.into(),
            bytes_in: 1,
            bytes_out: 2,
        };
        let (rows, all) = daily(vec![row(2, "a"), row(1, "b"), row(1, "a")]);
        let order: Vec<(u32, &str)> = rows
            .iter()
            .map(|r| (chrono::Datelike::day(&r.day), r.vhost.as_str()))
            .collect();
        assert_eq!(order, [(1, "a"), (1, "b"), (2, "a")]);
        assert_eq!(all.total, 9);
    }

    #[test]
    fn vhost_totals_sum_each_vhost_over_its_days() {
        let row = |day, vhost: &str, bytes_in, bytes_out| DayBytes {
            day: NaiveDate::from_ymd_opt(2026, 1, day).unwrap(),
            vhost: vhost.into(),
            bytes_in,
            bytes_out,
        };
        let totals = vhost_totals(&[
            row(1, "b", 1, 2),
            row(2, "a", 10, 20),
            row(3, "b", 100, 200),
            row(3, "c", u64::MAX, 0),
            row(4, "c", 1, 0),
        ]);
        assert_eq!(
            totals,
            [vb("a", 10, 20), vb("b", 101, 202), vb("c", u64::MAX, 0)]
        );
        assert!(vhost_totals(&[]).is_empty());
    }
}
