//! The tally: every byte this lighttpd process counted since its last
//! report, per (host, day). The request path ends here.
//!
//! Lives on lighttpd's thread and is touched by no other: counting takes no
//! lock, does no I/O, and allocates nothing for a host already seen that
//! day. The current day's hosts are numbered once ([`Admission`]) and
//! their counts kept in a vector by number, so a known host costs one
//! lookup and an addition, and the numbers survive reports. At a report
//! ([`Tally::take`]) the non-zero counts go to the flusher as [`Counters`]
//! and counting continues.

use crate::admission::{Admission, Admitted, OVERFLOW};
use crate::counters::{Counters, Traffic};
use crate::day::Day;
use crate::day::{Calendar, LocalZone, Zone};
use crate::hostkey::KeyMaker;
use crate::hosts::same_bytes;
use crate::request::Counted;

/// How often, at most, the overflow line is repeated while hosts overflow.
const OVERFLOW_LOG_EVERY_SECS: i64 = 60;

pub struct Tally<Z: Zone = LocalZone> {
    /// The current day's hosts (`admission.day()`), numbered.
    admission: Admission,
    /// Counted since the last take, by host number, for the current day.
    today: Vec<Traffic>,
    /// Counted since the last take, by account number
    /// (`bw_counter.account`), for the current day.
    accounts_today: Vec<Traffic>,
    /// Account names by number: rows of their own, outside `max_hosts`.
    accounts: Vec<String>,
    /// Whether `today` or `accounts_today` holds anything not yet taken.
    today_counted: bool,
    /// Counts for other days (a day that ended since the last take) and
    /// counts put back: rare, so kept by name.
    elsewhere: Counters,
    /// The row the previous request went to, by the host lighttpd parsed
    /// for it: keep-alive connections and busy sites send many requests
    /// for one host in a row, and those skip the key rule and the lookup.
    last: Option<LastRow>,
    keys: KeyMaker,
    calendar: Calendar<Z>,
    /// Overflowed requests already reported, and when (monotonic seconds).
    overflow_logged: (u64, i64),
    /// Overflowed requests and estimated hosts of the days closed so far.
    overflow_closed: (u64, u64),
}

impl Tally<LocalZone> {
    pub fn new(max_hosts: usize) -> Self {
        Tally::with_zone(LocalZone, max_hosts)
    }
}

impl<Z: Zone> Tally<Z> {
    pub fn with_zone(zone: Z, max_hosts: usize) -> Self {
        Tally {
            admission: Admission::new(max_hosts),
            today: Vec::new(),
            accounts_today: Vec::new(),
            accounts: Vec::new(),
            today_counted: false,
            elsewhere: Counters::new(),
            last: None,
            keys: KeyMaker::new(),
            calendar: Calendar::new(zone),
            overflow_logged: (0, i64::MIN),
            overflow_closed: (0, 0),
        }
    }

    /// The cap on distinct hosts per day (`bw_counter.max_hosts`), set
    /// before the first request.
    pub fn set_max_hosts(&mut self, max_hosts: usize) {
        self.close_day();
        self.admission = Admission::new(max_hosts);
    }

    /// The account names (`bw_counter.account`), by number, set before
    /// the first request.
    pub fn set_accounts(&mut self, accounts: &[String]) {
        self.close_day();
        self.accounts = accounts.to_vec();
        self.accounts_today = vec![Traffic::default(); accounts.len()];
    }

    /// Adds a request whose scope counts it under account number `id`
    /// (known from the configuration: no key rule, no lookup, and no
    /// place under `max_hosts`).
    pub fn count_account(&mut self, id: u32, traffic: Traffic, now: i64) {
        let day = self.calendar.day(now);
        if self.admission.day() != Some(day) {
            self.enter_day(day);
        }
        if let Some(t) = self.accounts_today.get_mut(id as usize) {
            *t += traffic;
            self.today_counted = true;
        }
    }

    /// Reads the time zone once before the first request (`localtime_r`
    /// reads the zone file on first use).
    pub fn warm_up(&mut self, now: i64) {
        self.calendar.day(now);
    }

    /// The common case, inlined into the hook: the request is for the row
    /// of the previous one (same host bytes, and its second lies in the
    /// day last computed). Adds it and returns true; else touches nothing
    /// and returns false, and [`Tally::count`] must be called.
    ///
    /// Cannot panic (the hook calls it outside its panic guard): compares,
    /// unaligned word reads through `get`, saturating additions.
    #[inline(always)]
    pub fn count_same_row(&mut self, request: &Counted<'_>) -> bool {
        let Some(day) = self.calendar.cached(request.now) else {
            return false;
        };
        match &mut self.last {
            Some(last) if last.day == day && same_bytes(&last.authority, request.authority) => {
                last.traffic += request.traffic;
                true
            }
            _ => false,
        }
    }

    /// Adds one counted request to its (host, day).
    pub fn count(&mut self, request: Counted<'_>) {
        if self.count_same_row(&request) {
            return;
        }
        let day = self.calendar.day(request.now);
        self.count_elsewhere(request, day);
    }

    /// Adds a request for which [`Tally::count_same_row`] just returned
    /// false (the hook's path: it does not compare again).
    pub fn count_other_row(&mut self, request: Counted<'_>) {
        let day = self.calendar.day(request.now);
        self.count_elsewhere(request, day);
    }

    /// A request for another row than the previous one.
    #[inline(always)]
    fn count_elsewhere(&mut self, request: Counted<'_>, day: Day) {
        self.settle_last();
        if self.admission.day() != Some(day) {
            self.enter_day(day);
        }
        let admitted = self
            .admission
            .admit(request.authority, request.server_name, &mut self.keys);
        let id = admitted.id();
        if let Admitted::New(_) = admitted {
            self.today.push(Traffic::default());
        }
        // Numbers are given in order and `today` grows with them (and has
        // the overflow row's from the day's start), so this never misses.
        if let Some(t) = self.today.get_mut(id as usize) {
            *t += request.traffic;
            self.today_counted = true;
        }
        // Not for a request without a host (its key is server.name's), nor
        // one that overflowed the cap (each such request is counted for
        // the overflow line).
        if admitted != Admitted::Overflowed && !request.authority.is_empty() {
            self.remember(request.authority, day, id);
        }
    }

    /// Adds what the remembered row gathered into its row in `today`.
    fn settle_last(&mut self) {
        if let Some(last) = &mut self.last {
            let gathered = std::mem::take(&mut last.traffic);
            if gathered != Traffic::default() {
                if let Some(t) = self.today.get_mut(last.id as usize) {
                    *t += gathered;
                    self.today_counted = true;
                }
            }
        }
    }

    fn remember(&mut self, authority: &[u8], day: Day, id: u32) {
        let last = self.last.get_or_insert_with(LastRow::default);
        // Reuses its buffer: no allocation once it has held the longest
        // host seen.
        last.authority.clear();
        last.authority.extend_from_slice(authority);
        last.day = day;
        last.id = id;
        last.traffic = Traffic::default();
    }

    /// Closes the current day and starts `day`, keeping the closed day's
    /// overflow figures for [`Tally::overflow_since_start`].
    fn enter_day(&mut self, day: Day) {
        self.close_day();
        let overflow = self.admission.overflow();
        self.overflow_closed.0 += overflow.requests;
        self.overflow_closed.1 += overflow.hosts();
        self.admission.start_day(Some(day));
    }

    /// Requests counted under the overflow row since this tally started,
    /// and about how many hosts they were for (summed per day).
    pub fn overflow_since_start(&self) -> (u64, u64) {
        let today = self.admission.overflow();
        (
            self.overflow_closed.0 + today.requests,
            self.overflow_closed.1 + today.hosts(),
        )
    }

    /// Moves the current day's counts to `elsewhere` and forgets its
    /// numbers (which the remembered row uses): before a new day starts.
    fn close_day(&mut self) {
        self.settle_last();
        self.last = None;
        self.move_today();
        self.today.clear();
        // The overflow row's number, for the day about to start.
        self.today.push(Traffic::default());
    }

    /// Moves the non-zero counts of `today` into `elsewhere`, leaving
    /// zeros (the numbers stay valid).
    fn move_today(&mut self) {
        if !self.today_counted {
            return;
        }
        self.today_counted = false;
        let Some(day) = self.admission.day() else {
            return;
        };
        for (id, t) in self.today.iter_mut().enumerate() {
            let t = std::mem::take(t);
            if t != Traffic::default() {
                self.elsewhere.add(self.admission.host(id as u32), day, t);
            }
        }
        // An account named like a host key adds to the same row.
        for (name, t) in self.accounts.iter().zip(&mut self.accounts_today) {
            let t = std::mem::take(t);
            if t != Traffic::default() {
                self.elsewhere.add(name, day, t);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.elsewhere.is_empty()
            && !self.today_counted
            && self
                .last
                .as_ref()
                .is_none_or(|l| l.traffic == Traffic::default())
    }

    /// Everything counted since the last take, leaving the tally empty.
    pub fn take(&mut self) -> Counters {
        self.settle_last();
        self.move_today();
        self.elsewhere.take()
    }

    /// Calls `f` with every row counted since the last take (for the
    /// status URL; touches nothing). A row may come more than once (the
    /// remembered row's share, other days): `f` adds.
    pub fn for_each_pending(&self, mut f: impl FnMut(&str, Traffic)) {
        let nonzero = |t: &Traffic| *t != Traffic::default();
        if let Some(last) = self.last.as_ref().filter(|l| nonzero(&l.traffic)) {
            f(self.admission.host(last.id), last.traffic);
        }
        for (id, t) in self.today.iter().enumerate().filter(|(_, t)| nonzero(t)) {
            f(self.admission.host(id as u32), *t);
        }
        for (name, t) in self.accounts.iter().zip(&self.accounts_today) {
            if nonzero(t) {
                f(name, *t);
            }
        }
        for row in self.elsewhere.rows() {
            f(&row.host, row.traffic);
        }
    }

    /// Counts that could not be handed over come back.
    pub fn put_back(&mut self, counts: Counters) {
        self.elsewhere.merge(counts);
    }

    /// At most one line a minute (`now`: monotonic seconds) while hosts
    /// overflow `max_hosts`.
    pub fn overflow_line(&mut self, now: i64) -> Option<String> {
        let overflow = self.admission.overflow();
        let (logged_requests, logged_at) = self.overflow_logged;
        let fresh_day = overflow.requests < logged_requests;
        let nothing_new = overflow.requests == logged_requests;
        let too_soon = now.saturating_sub(logged_at) < OVERFLOW_LOG_EVERY_SECS;
        if overflow.requests == 0 || (!fresh_day && (nothing_new || too_soon)) {
            return None;
        }
        self.overflow_logged = (overflow.requests, now);
        let day = overflow.day.map(|d| d.to_string()).unwrap_or_default();
        Some(format!(
            "bw_counter.max_hosts = {} reached on {day}: {} requests for about {} more hosts \
             counted under {OVERFLOW} so far today",
            self.admission.cap(),
            overflow.requests,
            overflow.hosts()
        ))
    }
}

/// The previous request's host as lighttpd parsed it, its day, and the
/// number of the row it was counted in.
#[derive(Debug, Default)]
struct LastRow {
    authority: Vec<u8>,
    day: Day,
    /// The host's number on `day`.
    id: u32,
    /// Bytes of requests for this row not yet added to it (the fast path
    /// adds here, without indexing into the counters).
    traffic: Traffic,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::alloc_count;
    use crate::counters::Traffic;

    /// A zone without offset, so that tests need not know the machine's.
    pub struct Utc;
    impl Zone for Utc {
        fn utc_offset(&self, _: i64) -> i32 {
            0
        }
    }

    pub fn req(host: &'static str, i: u64, o: u64, now: i64) -> Counted<'static> {
        Counted {
            authority: host.as_bytes(),
            server_name: b"",
            traffic: Traffic {
                bytes_in: i,
                bytes_out: o,
            },
            now,
        }
    }

    /// 2026-11-28 23:59:59 UTC.
    pub const LAST_SECOND: i64 = 1_795_910_399;

    /// The rows of `c` as "host day in out", in (host, day) order.
    fn shown(c: &Counters) -> Vec<String> {
        c.rows()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.host, r.day, r.traffic.bytes_in, r.traffic.bytes_out
                )
            })
            .collect()
    }

    #[test]
    fn requests_land_on_the_day_they_finished() {
        let mut t = Tally::with_zone(Utc, 10);
        t.count(req("a.example:80", 100, 1000, LAST_SECOND));
        t.count(req("a.example", 1, 10, LAST_SECOND + 1));
        t.count(req("", 5, 5, LAST_SECOND + 1));
        let shown = shown(&t.take());
        assert_eq!(
            shown,
            vec![
                "_nohost 2026-11-29 5 5",
                "a.example 2026-11-28 100 1000",
                "a.example 2026-11-29 1 10"
            ]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn counting_a_known_host_does_not_allocate() {
        let mut t = Tally::with_zone(Utc, 10);
        t.count(req("shop.example.com:443", 10, 10, LAST_SECOND));
        t.count(req("Mixed.Case.example", 10, 10, LAST_SECOND));
        let before = alloc_count::this_thread();
        for i in 0..1000 {
            t.count(req("shop.example.com:443", i, i, LAST_SECOND));
            t.count(req("shop.example.com", 1, 1, LAST_SECOND));
            t.count(req("Mixed.Case.example", 1, 1, LAST_SECOND)); // escaped into the scratch buffer
        }
        assert_eq!(
            alloc_count::this_thread() - before,
            0,
            "allocations on the request path"
        );
        t.count(req("new.example", 1, 1, LAST_SECOND));
        assert!(
            alloc_count::this_thread() > before,
            "the counter does see allocations"
        );
    }

    #[test]
    fn hosts_beyond_the_cap_are_counted_under_other_and_logged_once_a_minute() {
        let mut t = Tally::with_zone(Utc, 1);
        t.count(req("a", 1, 1, LAST_SECOND));
        assert_eq!(t.overflow_line(0), None, "no overflow yet");
        t.count(req("b", 2, 2, LAST_SECOND));
        t.count(req("c", 3, 3, LAST_SECOND));
        let line = t.overflow_line(10).expect("a line");
        assert_eq!(
            line,
            "bw_counter.max_hosts = 1 reached on 2026-11-28: 2 requests for about 2 more hosts \
             counted under _other so far today"
        );
        t.count(req("d", 1, 1, LAST_SECOND));
        assert_eq!(t.overflow_line(20), None, "at most one a minute");
        assert!(t.overflow_line(70).is_some());
        assert_eq!(t.overflow_line(200), None, "nothing new");
        let hosts: Vec<String> = t.take().rows().iter().map(|r| r.host.to_string()).collect();
        assert_eq!(hosts, vec!["_other", "a"]);
    }

    #[test]
    fn the_previous_requests_row_is_reused_only_when_it_is_the_same_row() {
        let mut t = Tally::with_zone(Utc, 10);
        for _ in 0..3 {
            t.count(req("a.example", 1, 10, LAST_SECOND));
            t.count(req("a.example:80", 2, 20, LAST_SECOND)); // same key, other authority
            t.count(req("a.example", 4, 40, LAST_SECOND + 1)); // same authority, next day
            t.count(req("", 8, 80, LAST_SECOND)); // no host: server.name's key
        }
        let taken = t.take();
        // After a take, counting goes on into fresh counts.
        t.count(req("a.example", 100, 1000, LAST_SECOND + 1));
        assert_eq!(
            shown(&taken),
            vec![
                "_nohost 2026-11-28 24 240",
                "a.example 2026-11-28 9 90",
                "a.example 2026-11-29 12 120"
            ]
        );
        assert_eq!(shown(&t.take()), vec!["a.example 2026-11-29 100 1000"]);
    }

    #[test]
    fn every_request_past_the_cap_is_counted_for_the_overflow_line() {
        let mut t = Tally::with_zone(Utc, 1);
        t.count(req("a", 1, 1, LAST_SECOND));
        for _ in 0..5 {
            t.count(req("b", 1, 1, LAST_SECOND));
        }
        let line = t.overflow_line(100).expect("overflow");
        assert!(
            line.contains(": 5 requests for about 1 more hosts"),
            "{line}"
        );
    }

    #[test]
    fn numbers_outlive_a_take_and_end_with_the_day() {
        let mut t = Tally::with_zone(Utc, 10);
        let rows = |t: &mut Tally<Utc>| shown(&t.take());
        t.count(req("a", 1, 2, LAST_SECOND));
        t.count(req("b", 3, 4, LAST_SECOND));
        t.count(req("b", 3, 4, LAST_SECOND)); // the remembered row
        assert_eq!(rows(&mut t), ["a 2026-11-28 1 2", "b 2026-11-28 6 8"]);
        assert!(t.is_empty());
        // The remembered row still names b's number after the take.
        t.count(req("b", 10, 10, LAST_SECOND));
        assert!(!t.is_empty());
        t.count(req("a", 1, 1, LAST_SECOND));
        assert_eq!(rows(&mut t), ["a 2026-11-28 1 1", "b 2026-11-28 10 10"]);
        // Midnight between two takes: yesterday's counts keep their day,
        // and today numbers hosts afresh.
        t.count(req("b", 5, 5, LAST_SECOND));
        t.count(req("c", 7, 7, LAST_SECOND + 1));
        t.count(req("b", 1, 1, LAST_SECOND + 1));
        t.count(req("b", 1, 1, LAST_SECOND + 1));
        assert_eq!(
            rows(&mut t),
            ["b 2026-11-28 5 5", "b 2026-11-29 2 2", "c 2026-11-29 7 7"]
        );
        assert!(t.take().is_empty());
    }

    #[test]
    fn counts_put_back_join_the_new_ones() {
        let mut t = Tally::with_zone(Utc, 10);
        t.count(req("a", 1, 2, LAST_SECOND));
        let taken = t.take();
        t.count(req("a", 10, 20, LAST_SECOND));
        t.put_back(taken);
        assert_eq!(
            t.take().summary().traffic,
            Traffic {
                bytes_in: 11,
                bytes_out: 22
            }
        );
    }

    #[test]
    fn accounts_are_rows_of_their_own_outside_the_cap_and_split_by_day() {
        let mut t = Tally::with_zone(Utc, 1);
        t.set_accounts(&["shop".to_string(), "b.example".to_string()]);
        let traffic = |i, o| Traffic {
            bytes_in: i,
            bytes_out: o,
        };
        t.count(req("a.example", 1, 1, LAST_SECOND));
        t.count_account(0, traffic(10, 100), LAST_SECOND);
        // The cap (1 host) is full, yet an account still has its row; an
        // account named like a host adds to that host's row.
        t.count_account(1, traffic(20, 200), LAST_SECOND);
        t.count(req("b.example", 2, 2, LAST_SECOND));
        t.count_account(0, traffic(3, 30), LAST_SECOND + 1);
        t.count(req("a.example", 4, 4, LAST_SECOND + 1));
        assert!(!t.is_empty());
        assert_eq!(
            shown(&t.take()),
            [
                "_other 2026-11-28 2 2",
                "a.example 2026-11-28 1 1",
                "a.example 2026-11-29 4 4",
                "b.example 2026-11-28 20 200",
                "shop 2026-11-28 10 100",
                "shop 2026-11-29 3 30",
            ]
        );
        assert!(t.is_empty());
        t.count_account(0, traffic(5, 50), LAST_SECOND + 2);
        assert_eq!(shown(&t.take()), ["shop 2026-11-29 5 50"]);
    }

    #[test]
    fn pending_rows_are_seen_without_being_taken() {
        let mut t = Tally::with_zone(Utc, 10);
        t.set_accounts(&["shop".to_string()]);
        t.count(req("a.example", 1, 2, LAST_SECOND));
        t.count(req("a.example", 1, 2, LAST_SECOND));
        t.count(req("b.example", 5, 5, LAST_SECOND));
        t.count_account(
            0,
            Traffic {
                bytes_in: 7,
                bytes_out: 7,
            },
            LAST_SECOND,
        );
        t.count(req("b.example", 1, 1, LAST_SECOND + 1));
        let mut seen = std::collections::BTreeMap::new();
        t.for_each_pending(|host, traffic| *seen.entry(host.to_string()).or_default() += traffic);
        let expected: Vec<(String, Traffic)> =
            [("a.example", 2, 4), ("b.example", 6, 6), ("shop", 7, 7)]
                .iter()
                .map(|&(h, i, o)| {
                    (
                        h.to_string(),
                        Traffic {
                            bytes_in: i,
                            bytes_out: o,
                        },
                    )
                })
                .collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(
            t.take().summary().traffic,
            Traffic {
                bytes_in: 15,
                bytes_out: 17
            }
        );
    }
}
