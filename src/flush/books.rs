//! The flusher's books: every count handed over by lighttpd's thread and
//! not yet known to be in the table, shared (behind a lock) between the
//! flusher thread and the handle lighttpd's thread holds.
//!
//! They are also where memory is bounded during a long outage: the rows a
//! report adds stay below `max_hosts` per day, but an outage of days keeps
//! adding days. Past [`PendingLimit::rows`], the waiting rows go to the
//! spool file (and come back from it when the database does), or, without
//! a spool file, the smallest are folded into the `_other` row of their
//! day: their bytes stay, their vhosts do not.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::admission::OVERFLOW;
use crate::counters::{Batch, Counters, Summary};
use crate::spool::{self, Claimed, Replay};

/// How many rows may wait in memory, and where the rest go.
#[derive(Debug, Clone, Default)]
pub struct PendingLimit {
    pub rows: usize,
    pub spool: Option<PathBuf>,
}

impl PendingLimit {
    /// Two days' worth of rows for `max_hosts` (each day also has its
    /// `_other` row): an outage across one midnight stays in memory.
    pub fn for_hosts(max_hosts: usize, spool: Option<PathBuf>) -> PendingLimit {
        PendingLimit {
            rows: 2 * (max_hosts + 1),
            spool,
        }
    }
}

/// Everything handed to the flusher and not yet in the table.
#[derive(Debug, Default)]
pub(super) struct Books {
    /// Not yet in a batch.
    pub(super) waiting: Counters,
    /// Being delivered; retried unchanged until the database has it.
    pub(super) inflight: Option<Batch>,
    /// Batches with ids, delivered before new counts: those read from the
    /// spool of an earlier run, and the halves of a batch the table
    /// refused for a row in it.
    pub(super) queued: VecDeque<Batch>,
    /// Spool files of earlier runs: read a portion at a time into
    /// `queued`, retired once read and delivered.
    pub(super) claimed: VecDeque<Claimed>,
}

impl Books {
    pub(super) fn new(replay: Replay) -> Books {
        Books {
            claimed: replay.claimed.into(),
            ..Books::default()
        }
    }

    /// Counts from lighttpd's thread join those waiting for a batch.
    pub(super) fn hand_over(&mut self, counts: Counters) {
        self.waiting.merge(counts);
    }

    /// Empties the books: (waiting, batches with ids, claimed spools whose
    /// unread rest is not in the batches).
    pub(super) fn undelivered(&mut self) -> (Counters, Vec<Batch>, Vec<Claimed>) {
        let mut batches: Vec<Batch> = self.inflight.take().into_iter().collect();
        batches.extend(self.queued.drain(..));
        (
            self.waiting.take(),
            batches,
            self.claimed.drain(..).collect(),
        )
    }

    pub(super) fn is_empty(&self) -> bool {
        self.inflight.is_none()
            && self.queued.is_empty()
            && self.claimed.is_empty()
            && self.waiting.is_empty()
    }

    /// Rows and bytes in memory waiting for the database.
    pub(super) fn pending_summary(&self) -> Summary {
        let mut summary = self.waiting.summary();
        for batch in self.inflight.iter().chain(&self.queued) {
            summary += Counters::summary_of(&batch.rows);
        }
        summary
    }

    /// Rows in memory waiting for the database.
    pub(super) fn pending_rows(&self) -> usize {
        self.waiting.row_count()
            + self.inflight.as_ref().map_or(0, |b| b.rows.len())
            + self.queued.iter().map(|b| b.rows.len()).sum::<usize>()
    }

    /// Keeps the rows in memory within `limit`; returns what it did, for
    /// the log. The batch in flight (under its id: its COMMIT outcome may
    /// be unknown) and the waiting rows (under a new id) go to the spool,
    /// written whole or not at all while the books are locked, so that a
    /// stop finds every row either here or on disk. Without a spool, or if
    /// it cannot take them, the smallest waiting rows are folded.
    pub(super) fn bound(
        &mut self,
        limit: &PendingLimit,
        id: impl FnOnce() -> String,
    ) -> Option<Bound> {
        let pending = self.pending_rows();
        if pending <= limit.rows {
            return None;
        }
        if let Some(path) = &limit.spool {
            let inflight = self.inflight.take();
            let waiting = (!self.waiting.is_empty()).then(|| Batch {
                id: id(),
                rows: self.waiting.take().rows(),
            });
            let batches: Vec<Batch> = inflight.iter().chain(waiting.iter()).cloned().collect();
            if spool::keep_whole(path, &batches).is_ok() {
                let rows: Vec<_> = batches
                    .iter()
                    .flat_map(|b| b.rows.iter().cloned())
                    .collect();
                return Some(Bound::Spilled {
                    pending,
                    summary: Counters::summary_of(&rows),
                    path: path.clone(),
                });
            }
            // Nothing of it is on disk: all of it back, as it was.
            self.inflight = inflight;
            for row in waiting.iter().flat_map(|b| b.rows.iter()) {
                self.waiting.add(&row.host, row.day, row.traffic);
            }
        }
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.fold(pending, limit.rows / 2))
    }

    /// Folds the smallest waiting rows into the `_other` row of their day
    /// until at most `target` rows are pending.
    fn fold(&mut self, pending: usize, target: usize) -> Bound {
        let mut rows = self.waiting.take().rows();
        rows.sort_by_key(|r| r.traffic.total());
        let excess = pending.saturating_sub(target).min(rows.len());
        let mut kept = Counters::new();
        for (i, row) in rows.iter().enumerate() {
            let host = if i < excess { OVERFLOW } else { &*row.host };
            kept.add(host, row.day, row.traffic);
        }
        self.waiting = kept;
        Bound::Folded {
            pending,
            folded: excess,
        }
    }
}

/// What [`Books::bound`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bound {
    Spilled {
        pending: usize,
        summary: crate::counters::Summary,
        path: PathBuf,
    },
    Folded {
        pending: usize,
        folded: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Traffic;
    use crate::day::Day;
    use crate::testdir::TestDir;

    /// `n` rows: hosts h0.. over two days, host i with i bytes in.
    fn waiting(n: u64) -> Books {
        let mut books = Books::default();
        for i in 0..n {
            let traffic = Traffic {
                bytes_in: i,
                bytes_out: 1,
            };
            books
                .waiting
                .add(&format!("h{i}"), Day(1 + (i % 2) as i32), traffic);
        }
        books
    }

    #[test]
    fn below_the_limit_nothing_happens() {
        let mut books = waiting(6);
        let limit = PendingLimit::for_hosts(2, None);
        assert_eq!(limit.rows, 6);
        assert_eq!(books.bound(&limit, || unreachable!()), None);
        assert_eq!(books.pending_rows(), 6);
    }

    #[test]
    fn without_a_spool_the_smallest_rows_fold_into_other_and_no_byte_is_lost() {
        let mut books = waiting(10);
        let before = books.waiting.summary();
        let bound = books.bound(&PendingLimit::for_hosts(2, None), || unreachable!());
        assert_eq!(
            bound,
            Some(Bound::Folded {
                pending: 10,
                folded: 7
            })
        );
        let rows = books.waiting.rows();
        let hosts: Vec<&str> = rows.iter().map(|r| &*r.host).collect();
        assert_eq!(
            hosts,
            ["_other", "_other", "h7", "h8", "h9"],
            "the largest keep their rows"
        );
        assert_eq!(books.waiting.summary().traffic, before.traffic);
    }

    #[test]
    fn with_a_spool_the_waiting_rows_go_there_under_an_id() {
        let dir = TestDir::new("books-spill");
        let spool = dir.join("spool");
        let mut books = waiting(10);
        let limit = PendingLimit::for_hosts(2, Some(spool.clone()));
        let bound = books.bound(&limit, || "spill/1".to_string());
        assert!(
            matches!(bound, Some(Bound::Spilled { pending: 10, .. })),
            "{bound:?}"
        );
        assert!(books.waiting.is_empty());
        let text = std::fs::read(&spool).unwrap();
        let parsed = spool::format::parse(&text);
        assert_eq!(parsed.batches.len(), 1);
        assert_eq!(parsed.batches[0].id, "spill/1");
        assert_eq!(parsed.batches[0].rows.len(), 10);
    }
}
