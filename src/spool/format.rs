//! The spool file's records: one self-describing line per (host, day)
//! delta of a batch:
//!
//! ```text
//! BWC1 <checksum> <batch id> <YYYY-MM-DD> <bytes in> <bytes out> <host>
//! ```
//!
//! `checksum` is 16 hex digits of FNV-1a 64 over the rest of the line
//! (after "<checksum> "), so a torn or edited line is recognised and
//! skipped rather than replayed wrong. The host comes last: host keys are
//! printable ASCII (see hostkey.rs) and may contain spaces. Records keep
//! their batch id, so a replay of a batch that had in fact committed is
//! recognised by the ledger and not counted twice.
//!
//! Lines starting with `#` are comments (the `.rejected` file says there
//! why the records after them were set aside).
//!
//! Pure: no file access (that is the spool's life, in `spool/mod.rs`).

use std::collections::BTreeMap;

use crate::counters::{Batch, Row, Traffic};
use crate::day::Day;
use crate::fnv::fnv1a64;

pub(crate) const MAGIC: &str = "BWC1";

/// What reading a spool found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub batches: Vec<Batch>,
    pub skipped: usize,
}

pub fn format(batches: &[Batch]) -> String {
    let mut out = String::new();
    for b in batches {
        for r in &b.rows {
            let body = format!(
                "{} {} {} {} {}",
                b.id, r.day, r.traffic.bytes_in, r.traffic.bytes_out, r.host
            );
            out.push_str(&format!(
                "{MAGIC} {:016x} {body}\n",
                fnv1a64(body.as_bytes())
            ));
        }
    }
    out
}

/// How many record lines `text` holds (whole lines that are not comments),
/// without parsing them: for the status URL.
pub fn count_records(text: &[u8]) -> usize {
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    lines.pop(); // after the last newline: empty, or a torn write
    lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count()
}

pub fn parse(text: &[u8]) -> Parsed {
    let mut by_id: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut skipped = 0;
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // A final piece without a newline is a torn write.
    let torn = lines.pop().filter(|l| !l.is_empty());
    skipped += usize::from(torn.is_some());
    for line in lines {
        // Comment lines say why the records after them were set aside
        // (a `.rejected` file shares this format).
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        match parse_line(line) {
            Some((id, row)) => {
                if !by_id.contains_key(&id) {
                    order.push(id.clone());
                }
                by_id.entry(id).or_default().push(row);
            }
            None => skipped += 1,
        }
    }
    let batches = order
        .into_iter()
        .map(|id| {
            let rows = by_id.remove(&id).unwrap_or_default();
            Batch { id, rows }
        })
        .collect();
    Parsed { batches, skipped }
}

fn parse_line(line: &[u8]) -> Option<(String, Row)> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let (sum, body) = rest.split_once(' ')?;
    if u64::from_str_radix(sum, 16).ok()? != fnv1a64(body.as_bytes()) || sum.len() != 16 {
        return None;
    }
    let mut f = body.splitn(5, ' ');
    let id = f.next()?.to_string();
    let day = parse_day(f.next()?)?;
    let bytes_in = f.next()?.parse().ok()?;
    let bytes_out = f.next()?.parse().ok()?;
    let host = f.next()?;
    if id.is_empty() || host.is_empty() {
        return None;
    }
    Some((
        id,
        Row {
            host: host.into(),
            day,
            traffic: Traffic {
                bytes_in,
                bytes_out,
            },
        },
    ))
}

fn parse_day(s: &str) -> Option<Day> {
    let mut p = s.split('-');
    let (y, m, d): (i64, i64, i64) = (
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    );
    if p.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // days_from_civil (Howard Hinnant), the inverse of Day::ymd.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = Day((era * 146_097 + doe - 719_468) as i32);
    (day.to_string() == s).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(h: &str, day: i32, i: u64, o: u64) -> Row {
        Row {
            host: h.into(),
            day: Day(day),
            traffic: Traffic {
                bytes_in: i,
                bytes_out: o,
            },
        }
    }

    fn sample() -> Vec<Batch> {
        vec![
            Batch {
                id: "h/1/2/3".into(),
                rows: vec![
                    row("a.example", 20_420, 1, 2),
                    row("odd host \\x01", 20_421, 3, 4),
                ],
            },
            Batch {
                id: "h/1/2/4".into(),
                rows: vec![row("b.example", 20_421, 5, 6)],
            },
        ]
    }

    #[test]
    fn round_trip() {
        let text = format(&sample());
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| l.starts_with("BWC1 ")));
        assert_eq!(
            parse(text.as_bytes()),
            Parsed {
                batches: sample(),
                skipped: 0
            }
        );
    }

    #[test]
    fn corrupt_and_torn_records_are_skipped_and_counted() {
        let mut text = format(&sample());
        let lines: Vec<&str> = text.lines().collect();
        let edited = lines[1].replace(" 3 4 ", " 3 5 ");
        text = format!(
            "{}\n{edited}\ngarbage line\n{}\n{}",
            lines[0],
            lines[2],
            &lines[0][..20]
        );
        let parsed = parse(text.as_bytes());
        assert_eq!(parsed.skipped, 3, "edited, garbage, torn");
        assert_eq!(parsed.batches.len(), 2);
        assert_eq!(parsed.batches[0].rows, vec![row("a.example", 20_420, 1, 2)]);
        assert_eq!(parsed.batches[1].rows, vec![row("b.example", 20_421, 5, 6)]);
    }

    #[test]
    fn comment_lines_are_not_records_and_not_damage() {
        let text = format!("# why\n{}# more\n", format(&sample()));
        let parsed = parse(text.as_bytes());
        assert_eq!(parsed.skipped, 0);
        assert_eq!(parsed.batches, sample());
    }

    #[test]
    fn days_parse_back() {
        for d in [-1, 0, 59, 20_420, 50_000] {
            assert_eq!(parse_day(&Day(d).to_string()), Some(Day(d)));
        }
        for bad in ["2026-02-30", "2026-13-01", "2026-1-1", "x", "2026-01-01-01"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
