//! Requests counted while they run (`bw_counter.count_in_progress`): what
//! each long request has had counted so far, so that a report adds only
//! what it moved since, and its end adds only the remainder.
//!
//! At a report the hooks walk every request lighttpd is serving and call
//! [`InProgress::progress`] with its totals so far (the access log's
//! `%I`/`%O` as they stand). A request gets a record here only then, the
//! first time a report finds it running; its `plugin_ctx` slot holds the
//! record's [`Token`]. A request that starts and ends between two reports
//! never has one, and its end costs one test of [`InProgress::is_empty`]
//! (see `hooks.rs`).
//!
//! A token alone is not trusted: each record also keeps the request's
//! identity (its address and lighttpd's start time of the request), so a
//! token left behind in a reused request structure matches nothing. And a
//! record that a report does not find again (its request ended without
//! the module seeing it end) is dropped at [`InProgress::end_report`]:
//! what was counted of it stays counted, and nothing more is.
//!
//! Pure Rust, no FFI: unit-tested here.

use crate::counters::Traffic;

/// What a request's `plugin_ctx` slot holds: a record's index plus one
/// (so that 0, lighttpd's null, means none).
pub type Token = usize;

/// Which request a record belongs to: its address and when lighttpd
/// started it (`r->start_hp`). Two live requests never share an address,
/// and a request structure lighttpd reuses starts again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub address: usize,
    pub start_secs: i64,
    pub start_nanos: i64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    identity: Identity,
    /// What the tally has had of this request so far.
    counted: Traffic,
    /// The report that last found the request running.
    seen: u64,
}

/// The records, reused through a free list: memory in proportion to the
/// most long requests ever open at once, not to requests served.
#[derive(Debug, Default)]
pub struct InProgress {
    records: Vec<Option<Record>>,
    free: Vec<usize>,
    live: usize,
    report: u64,
}

impl InProgress {
    pub fn new() -> Self {
        InProgress::default()
    }

    /// True while no request has a record: a request's end need not look.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How many requests have a record.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Before a report's walk.
    pub fn begin_report(&mut self) {
        self.report += 1;
    }

    /// A request the walk found running, whose counters stand at `total`,
    /// with `token` in its slot. Returns the token to leave in the slot and
    /// what to count now (nothing when it moved no byte since).
    pub fn progress(
        &mut self,
        token: Token,
        identity: Identity,
        total: Traffic,
    ) -> (Token, Option<Traffic>) {
        let report = self.report;
        if let Some(record) = self.record_mut(token, identity) {
            let now = since(total, record.counted);
            // Counters only grow; should one ever read lower, the bytes
            // already counted stay, and counting resumes above them.
            record.counted = Traffic {
                bytes_in: record.counted.bytes_in.max(total.bytes_in),
                bytes_out: record.counted.bytes_out.max(total.bytes_out),
            };
            record.seen = report;
            return (token, (now != Traffic::default()).then_some(now));
        }
        if total == Traffic::default() {
            // Nothing to remember; a stale token is cleared.
            return (0, None);
        }
        let record = Record {
            identity,
            counted: total,
            seen: report,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.records[i] = Some(record);
                i
            }
            None => {
                self.records.push(Some(record));
                self.records.len() - 1
            }
        };
        self.live += 1;
        (index + 1, Some(total))
    }

    /// After a report's walk: drops the records of requests it did not
    /// find (ended unseen); returns how many.
    pub fn end_report(&mut self) -> usize {
        let report = self.report;
        let mut dropped = 0;
        for (i, slot) in self.records.iter_mut().enumerate() {
            if slot.is_some_and(|r| r.seen != report) {
                *slot = None;
                self.free.push(i);
                dropped += 1;
            }
        }
        self.live -= dropped;
        dropped
    }

    /// At a request's end: what reports counted of it already (nothing if
    /// `token` is not its record), the record released.
    pub fn finish(&mut self, token: Token, identity: Identity) -> Traffic {
        let Some(record) = self.record_mut(token, identity) else {
            return Traffic::default();
        };
        let counted = record.counted;
        self.records[token - 1] = None;
        self.free.push(token - 1);
        self.live -= 1;
        counted
    }

    /// Everything a request moved less what was counted of it already:
    /// what its end adds.
    pub fn remainder(total: Traffic, counted: Traffic) -> Traffic {
        since(total, counted)
    }

    fn record_mut(&mut self, token: Token, identity: Identity) -> Option<&mut Record> {
        let record = self.records.get_mut(token.checked_sub(1)?)?.as_mut()?;
        (record.identity == identity).then_some(record)
    }
}

fn since(total: Traffic, counted: Traffic) -> Traffic {
    Traffic {
        bytes_in: total.bytes_in.saturating_sub(counted.bytes_in),
        bytes_out: total.bytes_out.saturating_sub(counted.bytes_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bytes_in: u64, bytes_out: u64) -> Traffic {
        Traffic {
            bytes_in,
            bytes_out,
        }
    }

    fn id(address: usize, start_secs: i64) -> Identity {
        Identity {
            address,
            start_secs,
            start_nanos: 7,
        }
    }

    /// One report's walk over `running` (token, identity, total); returns
    /// the new tokens and what was counted.
    fn report(p: &mut InProgress, running: &mut [(Token, Identity, Traffic)]) -> Vec<Traffic> {
        p.begin_report();
        let mut counted = Vec::new();
        for (token, identity, total) in running.iter_mut() {
            let (next, now) = p.progress(*token, *identity, *total);
            *token = next;
            counted.extend(now);
        }
        p.end_report();
        counted
    }

    #[test]
    fn reports_count_what_moved_since_and_the_end_the_remainder() {
        let mut p = InProgress::new();
        let r = id(0x1000, 50);
        let mut running = [(0, r, t(300, 1_000))];
        assert_eq!(report(&mut p, &mut running), vec![t(300, 1_000)]);
        assert_eq!(p.len(), 1);
        running[0].2 = t(300, 5_000);
        assert_eq!(report(&mut p, &mut running), vec![t(0, 4_000)]);
        // Nothing moved: nothing counted.
        assert_eq!(report(&mut p, &mut running), vec![]);
        let counted = p.finish(running[0].0, r);
        assert_eq!(counted, t(300, 5_000));
        assert_eq!(InProgress::remainder(t(310, 9_000), counted), t(10, 4_000));
        assert!(p.is_empty());
        // The sum over the request's life is its total.
        assert_eq!(t(300, 1_000) + t(0, 4_000) + t(10, 4_000), t(310, 9_000));
    }

    #[test]
    fn a_request_that_moved_nothing_gets_no_record() {
        let mut p = InProgress::new();
        let mut running = [(0, id(0x1000, 50), t(0, 0))];
        assert_eq!(report(&mut p, &mut running), vec![]);
        assert_eq!(running[0].0, 0);
        assert!(p.is_empty());
    }

    #[test]
    fn a_request_never_found_running_ends_with_nothing_counted() {
        let mut p = InProgress::new();
        assert_eq!(p.finish(0, id(0x1000, 50)), t(0, 0));
    }

    #[test]
    fn a_token_left_in_a_reused_request_matches_nothing() {
        let mut p = InProgress::new();
        let first = id(0x1000, 50);
        let mut running = [(0, first, t(100, 100))];
        report(&mut p, &mut running);
        let token = running[0].0;
        // The same structure serves a later request (keep-alive, a pooled
        // HTTP/2 stream) with the token still in its slot.
        let second = id(0x1000, 51);
        assert_eq!(p.finish(token, second), t(0, 0), "not its record");
        // At a report it is a request of its own.
        let mut running = [(token, second, t(40, 60))];
        assert_eq!(report(&mut p, &mut running), vec![t(40, 60)]);
        assert_ne!(
            running[0].0, token,
            "the first request's record was dropped"
        );
        assert_eq!(p.len(), 1);
        // Tokens out of range or of freed records match nothing either.
        assert_eq!(p.finish(999, second), t(0, 0));
        assert_eq!(p.finish(token, first), t(0, 0));
    }

    #[test]
    fn records_not_found_by_a_report_are_dropped_and_reused() {
        let mut p = InProgress::new();
        let (a, b) = (id(0x1000, 1), id(0x2000, 1));
        let mut running = [(0, a, t(1, 1)), (0, b, t(2, 2))];
        report(&mut p, &mut running);
        assert_eq!(p.len(), 2);
        // b ended without its end being seen: the next report drops it.
        let mut only_a = [running[0]];
        only_a[0].2 = t(1, 5);
        assert_eq!(report(&mut p, &mut only_a), vec![t(0, 4)]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.finish(running[1].0, b), t(0, 0));
        // Its place serves the next request.
        let c = id(0x3000, 2);
        let mut next = [only_a[0], (0, c, t(9, 9))];
        report(&mut p, &mut next);
        assert_eq!(next[1].0, running[1].0);
        assert_eq!(p.len(), 2);
        assert_eq!(p.records.len(), 2, "no growth");
    }

    #[test]
    fn counters_that_read_lower_never_uncount() {
        let mut p = InProgress::new();
        let r = id(0x1000, 1);
        let mut running = [(0, r, t(100, 100))];
        report(&mut p, &mut running);
        running[0].2 = t(50, 150);
        assert_eq!(report(&mut p, &mut running), vec![t(0, 50)]);
        running[0].2 = t(120, 150);
        assert_eq!(report(&mut p, &mut running), vec![t(20, 0)]);
        assert_eq!(p.finish(running[0].0, r), t(120, 150));
    }
}
