//! What the tables of `examples/schema.sql` can hold, for the rows that do
//! not come from this process's own counting (a spool file can hold
//! anything that is well formed), and the ids of the batches split to find
//! a row the table refuses.

use crate::counters::{Batch, Row};
use crate::hostkey::MAX_KEY_LEN;

/// `batch varchar(128)` of the ledger table.
pub const MAX_BATCH_ID_CHARS: usize = 128;
/// `in` and `out` are signed `bigint`.
pub const MAX_BYTES: u64 = i64::MAX as u64;
/// MySQL's `DATE` range.
const YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// Why `row` of batch `batch_id` cannot go into the tables, if it cannot.
pub fn misfit(batch_id: &str, row: &Row) -> Option<String> {
    let (year, _, _) = row.day.ymd();
    if batch_id.chars().count() > MAX_BATCH_ID_CHARS {
        Some(format!(
            "its batch id is longer than the ledger's {MAX_BATCH_ID_CHARS} characters"
        ))
    } else if row.host.len() > MAX_KEY_LEN {
        Some(format!("its vhost is longer than {MAX_KEY_LEN} bytes"))
    } else if row.traffic.bytes_in > MAX_BYTES || row.traffic.bytes_out > MAX_BYTES {
        Some(format!(
            "a count is larger than a bigint can hold ({MAX_BYTES})"
        ))
    } else if !YEARS.contains(&year) {
        Some("its day is outside MySQL's DATE range (years 1000 to 9999)".to_string())
    } else {
        None
    }
}

/// The two halves of a batch the table refused for a row in it: each
/// under an id of its own, derived from the batch's so that retrying a
/// half is recognised by the ledger like any batch. Ids name the rows'
/// range in the first batch (`<id>~<first>-<last>`), so splitting a half
/// again does not make them longer.
pub fn halves(batch: &Batch) -> (Batch, Batch) {
    let (root, offset) = match batch.id.rsplit_once('~') {
        Some((root, range)) => match range.split_once('-').map(|(a, _)| a.parse::<usize>()) {
            Some(Ok(first)) => (root, first),
            _ => (batch.id.as_str(), 0),
        },
        None => (batch.id.as_str(), 0),
    };
    let mid = batch.rows.len() / 2;
    let part = |rows: &[Row], first: usize| Batch {
        id: format!(
            "{root}~{}-{}",
            offset + first,
            offset + first + rows.len() - 1
        ),
        rows: rows.to_vec(),
    };
    (part(&batch.rows[..mid], 0), part(&batch.rows[mid..], mid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Traffic;
    use crate::day::Day;

    fn row(host: &str, day: i32, bytes_in: u64) -> Row {
        Row {
            host: host.into(),
            day: Day(day),
            traffic: Traffic {
                bytes_in,
                bytes_out: 1,
            },
        }
    }

    #[test]
    fn what_the_tables_cannot_hold() {
        let ok = row("a.example", 20_420, 1);
        assert_eq!(misfit("h/1/2/3", &ok), None);
        assert_eq!(misfit(&"i".repeat(128), &ok), None);
        assert!(misfit(&"i".repeat(129), &ok).unwrap().contains("batch id"));
        assert_eq!(misfit("id", &row(&"h".repeat(255), 20_420, 1)), None);
        assert!(misfit("id", &row(&"h".repeat(256), 20_420, 1))
            .unwrap()
            .contains("vhost"));
        assert_eq!(misfit("id", &row("a", 20_420, MAX_BYTES)), None);
        assert!(misfit("id", &row("a", 20_420, MAX_BYTES + 1))
            .unwrap()
            .contains("bigint"));
        // 10000-01-01 and 0999-12-31.
        assert!(misfit("id", &row("a", 2_932_897, 1))
            .unwrap()
            .contains("DATE"));
        assert!(misfit("id", &row("a", -354_286, 1))
            .unwrap()
            .contains("DATE"));
        assert_eq!(misfit("id", &row("a", 2_932_896, 1)), None, "9999-12-31");
    }

    #[test]
    fn halves_cover_the_rows_under_ids_that_do_not_grow() {
        let batch = Batch {
            id: "web1/42/1700/7".into(),
            rows: (0..5).map(|i| row(&format!("h{i}"), 1, 1)).collect(),
        };
        let (a, b) = halves(&batch);
        assert_eq!((a.id.as_str(), a.rows.len()), ("web1/42/1700/7~0-1", 2));
        assert_eq!((b.id.as_str(), b.rows.len()), ("web1/42/1700/7~2-4", 3));
        assert_eq!([a.rows.clone(), b.rows.clone()].concat(), batch.rows);
        let (c, d) = halves(&b);
        assert_eq!(c.id, "web1/42/1700/7~2-2");
        assert_eq!(d.id, "web1/42/1700/7~3-4");
        assert_eq!(d.rows, batch.rows[3..]);
    }
}
