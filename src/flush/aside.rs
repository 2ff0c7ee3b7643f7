//! What is left when a flusher stops: into the spool file if there is one,
//! else (and for what the spool file did not take) every row into the
//! error log, and a line that says which. Runs in the flusher process at
//! its stop, and in lighttpd's process for counts that never reached a
//! flusher process (it could not be started, or ended first).

use crate::config::Config;
use crate::counters::{Batch, Counters, Row, Summary, Traffic};
use crate::log::LogQueue;
use crate::spool::{self, Claimed};

use super::{BatchIds, Stopped};

/// Everything a stopped flusher did not deliver, set aside (a batch for
/// the waiting counts, under a new id).
pub fn set_aside_stopped(config: Option<&Config>, why: &str, stopped: Stopped) -> Vec<String> {
    let mut batches = stopped.batches;
    push_waiting(&mut batches, stopped.waiting);
    if batches.is_empty() {
        return Vec::new();
    }
    set_aside(config, why, &batches, stopped.claimed)
}

/// Counts that never reached a flusher, set aside under a new batch id.
pub fn set_aside_counts(config: Option<&Config>, why: &str, waiting: Counters) -> Vec<String> {
    let mut batches = Vec::new();
    push_waiting(&mut batches, waiting);
    if batches.is_empty() {
        return Vec::new();
    }
    set_aside(config, why, &batches, Vec::new())
}

fn push_waiting(batches: &mut Vec<Batch>, waiting: Counters) {
    if !waiting.is_empty() {
        batches.push(Batch {
            id: BatchIds::new().next_id(),
            rows: waiting.rows(),
        });
    }
}

/// Each batch keeps its id: one whose COMMIT got no answer may be in the
/// table already, and the ledger tells.
fn set_aside(
    config: Option<&Config>,
    why: &str,
    batches: &[Batch],
    claimed: Vec<Claimed>,
) -> Vec<String> {
    let rows: Vec<(&str, &Row)> = batches
        .iter()
        .flat_map(|b| b.rows.iter().map(|r| (b.id.as_str(), r)))
        .collect();
    let ledger = match config {
        Some(c) => format!("ledger table {}", c.db.ledger),
        None => "ledger table".to_string(),
    };
    let mut lines = Vec::new();
    let mut not_kept = &rows[..];
    if let Some(path) = config.and_then(|c| c.spool_file.as_ref()) {
        match spool::keep(path, batches, claimed) {
            Ok(()) => {
                lines.push(format!(
                    "{why}: wrote {} to spool file {} ({} batch(es), each under its id, so \
                     that the {ledger} lets each in once); they are delivered at the next \
                     start",
                    summary_of(&rows),
                    path.display(),
                    batches.len()
                ));
                return lines;
            }
            Err(e) => {
                let (kept, rest) = rows.split_at(e.records_written.min(rows.len()));
                lines.push(if kept.is_empty() {
                    format!("cannot write spool file {}: {}", path.display(), e.error)
                } else {
                    format!(
                        "{why}: wrote {} to spool file {}, then writing failed: {}; the \
                         rest is below",
                        summary_of(kept),
                        path.display(),
                        e.error
                    )
                });
                lines.extend(e.left.iter().map(|left| {
                    format!(
                        "the unreplayed rest of an earlier spool stays in {} for the next \
                         start",
                        left.display()
                    )
                }));
                not_kept = rest;
            }
        }
    }
    if not_kept.is_empty() {
        return lines;
    }
    lines.push(format!(
        "{why}: could not deliver {}; lost unless added by hand (a batch whose id is in the \
         {ledger} is in the table already):",
        summary_of(not_kept)
    ));
    for (id, row) in not_kept {
        lines.push(format!(
            "undelivered: vhost {} day {} in {} out {} batch {id}",
            row.host, row.day, row.traffic.bytes_in, row.traffic.bytes_out
        ));
    }
    lines
}

/// The queued lines, and one for any the queue dropped.
pub fn take_log(log: &LogQueue) -> Vec<String> {
    let drained = log.drain();
    let mut lines = drained.lines;
    if drained.dropped > 0 {
        lines.push(format!(
            "{} further log lines were dropped (log queue full)",
            drained.dropped
        ));
    }
    lines
}

/// Sizes of rows, for log lines.
fn summary_of(rows: &[(&str, &Row)]) -> Summary {
    Summary {
        rows: rows.len(),
        traffic: rows
            .iter()
            .fold(Traffic::default(), |sum, (_, r)| sum + r.traffic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;

    #[test]
    fn without_a_spool_every_row_goes_to_the_log_under_one_batch_id() {
        let mut waiting = Counters::new();
        let t = |i, o| Traffic {
            bytes_in: i,
            bytes_out: o,
        };
        waiting.add("a", Day(20_420), t(1, 2));
        waiting.add("b", Day(20_420), t(3, 4));
        let lines = set_aside_counts(None, "database unavailable at shutdown", waiting);
        let id = lines[1].rsplit(' ').next().unwrap();
        assert_eq!(
            lines,
            vec![
                "database unavailable at shutdown: could not deliver 4 bytes in, 6 bytes out in 2 \
                 rows; lost unless added by hand (a batch whose id is in the ledger table is in \
                 the table already):"
                    .to_string(),
                format!("undelivered: vhost a day 2025-11-28 in 1 out 2 batch {id}"),
                format!("undelivered: vhost b day 2025-11-28 in 3 out 4 batch {id}"),
            ]
        );
        assert!(set_aside_counts(None, "x", Counters::new()).is_empty());
    }
}
