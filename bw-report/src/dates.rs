//! Which days a report covers. "Today" is passed in, so the defaults are
//! tested without a clock.

use chrono::{Datelike, NaiveDate};

use crate::error::Error;

/// Inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// `--to` defaults to today, `--from` to the first day of `--to`'s
    /// month: without either, the current month so far.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Range, Error> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
        if from > to {
            return Err(Error::Usage(format!(
                "--from {from} is after --to {to}: the range would be empty"
            )));
        }
        Ok(Range { from, to })
    }

    /// Every day of the range, in order, also those without a row.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |day| *day <= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn default_is_the_current_month_so_far() {
        let r = Range::resolve(None, None, d(2026, 3, 17)).unwrap();
        assert_eq!((r.from, r.to), (d(2026, 3, 1), d(2026, 3, 17)));
        let r = Range::resolve(None, None, d(2026, 3, 1)).unwrap();
        assert_eq!((r.from, r.to), (d(2026, 3, 1), d(2026, 3, 1)));
    }

    #[test]
    fn one_end_given() {
        let today = d(2026, 3, 17);
        let r = Range::resolve(None, Some(d(2025, 12, 31)), today).unwrap();
        assert_eq!((r.from, r.to), (d(2025, 12, 1), d(2025, 12, 31)));
        let r = Range::resolve(Some(d(2025, 11, 5)), None, today).unwrap();
        assert_eq!((r.from, r.to), (d(2025, 11, 5), today));
    }

    #[test]
    fn from_after_to_is_a_usage_error() {
        let today = d(2026, 3, 17);
        let e = Range::resolve(Some(d(2026, 3, 18)), None, today).unwrap_err();
        assert!(
            matches!(e, Error::Usage(ref m) if m.contains("--from 2026-03-18 is after --to 2026-03-17"))
        );
        assert!(Range::resolve(Some(today), Some(today), today).is_ok());
    }

    #[test]
    fn days_cover_the_range_across_months_and_years() {
        let r = Range {
            from: d(2024, 12, 30),
            to: d(2025, 1, 2),
        };
        let days: Vec<NaiveDate> = r.days().collect();
        assert_eq!(
            days,
            [
                d(2024, 12, 30),
                d(2024, 12, 31),
                d(2025, 1, 1),
                d(2025, 1, 2)
            ]
        );
        let leap = Range {
            from: d(2024, 2, 28),
            to: d(2024, 3, 1),
        };
        assert_eq!(leap.days().count(), 3);
        let one = Range {
            from: d(2026, 1, 1),
            to: d(2026, 1, 1),
        };
        assert_eq!(one.days().collect::<Vec<_>>(), [d(2026, 1, 1)]);
    }
}
