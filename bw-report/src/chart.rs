//! What `chart` (and the chart in `html`) shows, computed from the rows:
//! which vhosts get a series of their own (the biggest, in `top`'s order),
//! the rest folded into "others", one value per day of the range (zero on
//! days without rows), the stacked bars, and the axes' ticks and labels.
//! No drawing here: render/chart.rs draws a [`Chart`].

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};

use crate::dates::Range;
use crate::report::{self, DayBytes};
use crate::units;

/// Vhosts with a colour of their own when `--limit` is not given. With
/// "others" that is nine colours: about as many as the eye tells apart in
/// one stacked bar (categorical palettes stop near ten), and a legend that
/// fits beside the plot at 600 pixels high.
pub const DEFAULT_LIMIT: u32 = 8;

/// At most this many intervals on the byte axis (5 or 6 grid lines).
const MAX_Y_INTERVALS: f64 = 6.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub range: Range,
    /// Every day of the range, also those without rows.
    pub days: Vec<NaiveDate>,
    /// Biggest first (the order of `top`), "others" last when there are any.
    pub series: Vec<Series>,
    pub y_axis: YAxis,
    /// The days that get a label under the x axis: index into `days`, text.
    pub x_labels: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The vhost, or `others (N vhosts)`.
    pub name: String,
    /// The fold of the vhosts past the limit (a vhost may be called
    /// "others" too, so the name does not tell).
    pub others: bool,
    /// Bytes in + out on each day of `Chart::days`.
    pub per_day: Vec<u64>,
}

/// The byte axis: from 0 to `top`, with labelled ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct YAxis {
    pub top: f64,
    /// Position in bytes and label, from 0 up to `top`, all in one unit.
    pub ticks: Vec<(f64, String)>,
}

/// One piece of a stacked bar: `series` on day `day`, from `low` to
/// `high` bytes (the series below it end at `low`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub series: usize,
    pub day: usize,
    pub low: u64,
    pub high: u64,
}

impl Chart {
    /// No bytes on any day: drawn as "no traffic".
    pub fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.per_day.iter().all(|&b| b == 0))
    }

    /// The bars, bottom up, one segment per day and series with bytes
    /// (nothing for a zero: an empty day is an empty bar).
    pub fn segments(&self) -> Vec<Segment> {
        let mut segments = Vec::new();
        for day in 0..self.days.len() {
            let mut low = 0u64;
            for (series, s) in self.series.iter().enumerate() {
                let bytes = s.per_day[day];
                if bytes > 0 {
                    let high = low.saturating_add(bytes);
                    segments.push(Segment {
                        series,
                        day,
                        low,
                        high,
                    });
                    low = high;
                }
            }
        }
        segments
    }
}

/// The chart of `rows` over `range`: the `limit` biggest vhosts (by total
/// over the range, ties by name, as `top` orders them) and "others".
pub fn build(rows: &[DayBytes], range: &Range, limit: usize) -> Chart {
    let days: Vec<NaiveDate> = range.days().collect();
    let top = report::top(report::vhost_totals(rows), None);
    let mut series: Vec<Series> = top
        .rows
        .iter()
        .take(limit)
        .map(|r| Series {
            name: r.bytes.vhost.clone(),
            others: false,
            per_day: vec![0; days.len()],
        })
        .collect();
    let own: HashMap<&str, usize> = top
        .rows
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, r)| (r.bytes.vhost.as_str(), i))
        .collect();
    let folded = top.rows.len().saturating_sub(limit);
    let others = (folded > 0).then_some(series.len());
    if folded > 0 {
        series.push(Series {
            name: format!(
                "others ({folded} vhost{})",
                if folded == 1 { "" } else { "s" }
            ),
            others: true,
            per_day: vec![0; days.len()],
        });
    }
    for row in rows {
        let day = usize::try_from((row.day - range.from).num_days()).ok();
        let which = own.get(row.vhost.as_str()).copied().or(others);
        if let (Some(day), Some(which)) = (day.filter(|&d| d < days.len()), which) {
            let bytes = &mut series[which].per_day[day];
            *bytes = bytes.saturating_add(row.bytes_in.saturating_add(row.bytes_out));
        }
    }
    let biggest_day = (0..days.len())
        .map(|d| {
            series
                .iter()
                .fold(0u64, |sum, s| sum.saturating_add(s.per_day[d]))
        })
        .max()
        .unwrap_or(0);
    Chart {
        range: *range,
        x_labels: x_labels(&days),
        y_axis: y_axis(biggest_day),
        days,
        series,
    }
}

/// An axis from 0 to a round number of binary units at or above `max`, in
/// steps of 1, 2 or 5 times a power of ten of the unit, every label in the
/// same unit (`0 GiB`, `0.5 GiB`, ... `3.5 GiB`).
pub fn y_axis(max: u64) -> YAxis {
    if max == 0 {
        return YAxis {
            top: 1.0,
            ticks: vec![(0.0, "0 B".into())],
        };
    }
    let (unit, unit_bytes) = units::unit_for(max);
    let unit_bytes = unit_bytes as f64;
    let size = max as f64 / unit_bytes;
    // Whole bytes only: no 0.5 B.
    let mut exponent: i32 = if unit_bytes == 1.0 { 0 } else { -2 };
    let step = loop {
        let power = 10f64.powi(exponent);
        if let Some(step) = [1.0, 2.0, 5.0]
            .iter()
            .map(|m| m * power)
            .find(|&step| (size / step).ceil() <= MAX_Y_INTERVALS)
        {
            break step;
        }
        exponent += 1;
    };
    let decimals = usize::try_from(-exponent).unwrap_or(0);
    let intervals = (size / step).ceil() as u32;
    let ticks = (0..=intervals)
        .map(|i| {
            let value = f64::from(i) * step;
            (value * unit_bytes, format!("{value:.decimals$} {unit}"))
        })
        .collect();
    YAxis {
        top: f64::from(intervals) * step * unit_bytes,
        ticks,
    }
}

/// Which days get a label under the bars, and the label: every day, every
/// other day, weekly or fortnightly from the first day while that makes
/// few enough labels to fit (a label is about 50 pixels of the plot's 790),
/// else the first of every month, or of every few months or years.
pub fn x_labels(days: &[NaiveDate]) -> Vec<(usize, String)> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Vec::new();
    };
    // The title names the range; labels across years name the year too,
    // and being longer, fewer of them fit.
    let one_year = first.year() == last.year();
    let (max_labels, format) = if one_year {
        (16, "%b %-d")
    } else {
        (10, "%Y-%m-%d")
    };
    if let Some(step) = [1, 2, 7, 14]
        .into_iter()
        .find(|&step| days.len().div_ceil(step) <= max_labels)
    {
        return days
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(i, day)| (i, day.format(format).to_string()))
            .collect();
    }
    let month = |day: &NaiveDate| i64::from(day.year()) * 12 + i64::from(day.month0());
    let months = month(last) - month(first) + 1;
    let (max_labels, format) = if one_year { (13, "%b") } else { (9, "%b %Y") };
    let every = month_steps()
        .find(|&step| (months + step - 1) / step <= max_labels)
        .unwrap_or(i64::MAX);
    let format = if every >= 12 { "%Y" } else { format };
    days.iter()
        .enumerate()
        .filter(|(_, day)| day.day() == 1 && month(day) % every == 0)
        .map(|(i, day)| (i, day.format(format).to_string()))
        .collect()
}

/// 1, 2, 3, 6 months, then 1, 2, 5, 10, 20, 50, ... years.
fn month_steps() -> impl Iterator<Item = i64> {
    let years = (0..16u32).flat_map(|e| [1, 2, 5].map(|m| 12 * m * 10i64.pow(e)));
    [1, 2, 3, 6].into_iter().chain(years)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn row(day: NaiveDate, vhost: &str, bytes_in: u64, bytes_out: u64) -> DayBytes {
        DayBytes {
            day,
            vhost: vhost.into(),
            bytes_in,
            bytes_out,
        }
    }

    fn january() -> Range {
        Range {
            from: d(2026, 1, 1),
            to: d(2026, 1, 31),
        }
    }

    fn names(chart: &Chart) -> Vec<&str> {
        chart.series.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn top_vhosts_get_series_and_the_rest_fold_into_others() {
        let rows = [
            row(d(2026, 1, 1), "small.example", 1, 1),
            row(d(2026, 1, 1), "big.example", 100, 900),
            row(d(2026, 1, 2), "mid.example", 50, 50),
            row(d(2026, 1, 2), "tiny.example", 0, 1),
            row(d(2026, 1, 3), "big.example", 0, 5),
            row(d(2026, 1, 3), "small.example", 3, 0),
        ];
        let chart = build(&rows, &january(), 2);
        assert_eq!(
            names(&chart),
            ["big.example", "mid.example", "others (2 vhosts)"]
        );
        assert_eq!(chart.days.len(), 31, "every day of the range");
        let first_days = |s: &Series| s.per_day[..4].to_vec();
        assert_eq!(first_days(&chart.series[0]), [1000, 0, 5, 0]);
        assert_eq!(first_days(&chart.series[1]), [0, 100, 0, 0]);
        assert_eq!(first_days(&chart.series[2]), [2, 1, 3, 0]);
        assert!(chart.series[2].others && !chart.series[0].others);
        assert!(chart
            .series
            .iter()
            .all(|s| s.per_day[3..].iter().all(|&b| b == 0)));
        assert!(!chart.is_empty());

        let all = build(&rows, &january(), 4);
        assert!(all.series.iter().all(|s| !s.others), "nothing to fold");
        let one_left = build(&rows, &january(), 3);
        assert_eq!(one_left.series[3].name, "others (1 vhost)");
    }

    #[test]
    fn ties_are_broken_by_name_and_a_vhost_called_others_stays_itself() {
        let rows = [
            row(d(2026, 1, 5), "others", 5, 5),
            row(d(2026, 1, 5), "b.example", 5, 5),
            row(d(2026, 1, 5), "a.example", 5, 5),
        ];
        let chart = build(&rows, &january(), 2);
        assert_eq!(
            names(&chart),
            ["a.example", "b.example", "others (1 vhost)"]
        );
        assert!(chart.series[2].others);
        assert_eq!(chart.series[2].per_day[4], 10);
    }

    #[test]
    fn an_empty_range_is_an_empty_chart_of_every_day() {
        let chart = build(&[], &january(), 8);
        assert!(chart.series.is_empty());
        assert_eq!(chart.days.len(), 31);
        assert!(chart.is_empty());
        assert!(chart.segments().is_empty());
        assert_eq!(chart.y_axis.ticks, [(0.0, "0 B".to_string())]);
        let idle = build(&[row(d(2026, 1, 2), "idle", 0, 0)], &january(), 8);
        assert!(idle.is_empty(), "rows of zero bytes are no traffic");
    }

    #[test]
    fn segments_stack_bottom_up_and_skip_zeros() {
        let rows = [
            row(d(2026, 1, 1), "a", 10, 0),
            row(d(2026, 1, 1), "b", 0, 4),
            row(d(2026, 1, 2), "b", 1, 1),
            row(d(2026, 1, 1), "c", 1, 0),
        ];
        let chart = build(&rows, &january(), 2);
        let seg = |series, day, low, high| Segment {
            series,
            day,
            low,
            high,
        };
        assert_eq!(
            chart.segments(),
            [
                seg(0, 0, 0, 10),
                seg(1, 0, 10, 14),
                seg(2, 0, 14, 15),
                seg(1, 1, 0, 2)
            ]
        );
        assert_eq!(chart.y_axis.top, 15.0, "the biggest day is 15 bytes");
    }

    #[test]
    fn a_range_across_years_has_every_day_in_order() {
        let range = Range {
            from: d(2025, 12, 30),
            to: d(2026, 1, 2),
        };
        let rows = [
            row(d(2026, 1, 2), "a", 1, 0),
            row(d(2025, 12, 30), "a", 2, 0),
            row(d(2025, 12, 29), "a", 64, 0),
        ];
        let chart = build(&rows, &range, 8);
        assert_eq!(
            chart.series[0].per_day,
            [2, 0, 0, 1],
            "outside the range: ignored"
        );
    }

    #[test]
    fn byte_axis_in_round_binary_units() {
        let labels = |max| -> Vec<String> {
            y_axis(max)
                .ticks
                .into_iter()
                .map(|(_, label)| label)
                .collect()
        };
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        assert_eq!(
            labels(GIB * 7 / 2),
            ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]
        );
        assert_eq!(
            labels(705 * MIB),
            ["0 MiB", "200 MiB", "400 MiB", "600 MiB", "800 MiB"]
        );
        assert_eq!(labels(1500), ["0.0 KiB", "0.5 KiB", "1.0 KiB", "1.5 KiB"]);
        assert_eq!(labels(5), ["0 B", "1 B", "2 B", "3 B", "4 B", "5 B"]);
        assert_eq!(labels(1), ["0 B", "1 B"]);
        assert_eq!(
            labels(1024),
            ["0.0 KiB", "0.2 KiB", "0.4 KiB", "0.6 KiB", "0.8 KiB", "1.0 KiB"]
        );
        let axis = y_axis(GIB * 7 / 2);
        assert_eq!(axis.top, 4.0 * GIB as f64);
        assert_eq!(axis.ticks[1].0, GIB as f64);
        for max in [1, 7, 1023, 1025, 3 * MIB + 1, u64::MAX / 3, u64::MAX] {
            let axis = y_axis(max);
            assert!(axis.top >= max as f64, "{max}: top {}", axis.top);
            assert!(axis.ticks.len() <= 7, "{max}: {:?}", axis.ticks);
            assert_eq!(axis.ticks.last().unwrap().0, axis.top);
        }
    }

    fn labels_of(from: NaiveDate, to: NaiveDate) -> Vec<(usize, String)> {
        x_labels(&Range { from, to }.days().collect::<Vec<_>>())
    }

    #[test]
    fn day_labels_fit_under_the_bars() {
        let january = labels_of(d(2026, 1, 1), d(2026, 1, 31));
        assert_eq!(january.len(), 16);
        assert_eq!(january[0], (0, "Jan 1".to_string()));
        assert_eq!(january[1], (2, "Jan 3".to_string()));
        assert_eq!(january[15], (30, "Jan 31".to_string()));
        let week = labels_of(d(2026, 3, 1), d(2026, 3, 7));
        assert_eq!(week.len(), 7);
        let quarter = labels_of(d(2026, 1, 1), d(2026, 3, 31));
        assert_eq!(quarter[1], (7, "Jan 8".to_string()), "weekly");
        let across_years = labels_of(d(2025, 12, 1), d(2026, 2, 28));
        assert_eq!(across_years[0], (0, "2025-12-01".to_string()));
        assert_eq!(across_years[3], (42, "2026-01-12".to_string()));
        assert!(across_years.len() <= 10);
        assert_eq!(
            labels_of(d(2026, 5, 5), d(2026, 5, 5)),
            [(0, "May 5".to_string())]
        );
    }

    #[test]
    fn long_ranges_are_labelled_by_month_or_year() {
        let year = labels_of(d(2025, 6, 15), d(2026, 6, 14));
        let texts: Vec<&str> = year.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["Jul 2025", "Sep 2025", "Nov 2025", "Jan 2026", "Mar 2026", "May 2026"]
        );
        assert_eq!(year[0].0, 16, "July 1 is the 17th day");
        let calendar_year = labels_of(d(2026, 1, 1), d(2026, 12, 31));
        let texts: Vec<&str> = calendar_year.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        );
        assert_eq!(calendar_year[1].0, 31);
        let decade = labels_of(d(2016, 1, 1), d(2025, 12, 31));
        let texts: Vec<&str> = decade.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["2016", "2018", "2020", "2022", "2024"]);
        let all_of_time = labels_of(d(1, 1, 1), d(9999, 12, 31));
        assert!((2..=12).contains(&all_of_time.len()), "{all_of_time:?}");
    }
}
