//! The state of the module in one lighttpd process, driven by the hooks.
//! Plain Rust: the hooks turn lighttpd's calls into these method calls and
//! write the returned log lines to lighttpd's error log.
//!
//! Threads: everything here runs on lighttpd's thread. Counting touches
//! only `pending`, which no other thread can see, so the request path takes
//! no lock at all; a due report moves `pending` to the flusher thread
//! whole and starts a new, empty set.

use std::sync::Arc;
use std::time::Duration;

use crate::admission::{Admission, OVERFLOW};
use crate::config::Config;
use crate::counters::{Batch, Counters, Traffic};
use crate::day::{Calendar, LocalZone, Zone};
use crate::flush::{BatchIds, Flusher};
use crate::hostkey::KeyMaker;
use crate::log::LogQueue;
use crate::spool;

/// How long `cleanup` may take to deliver the last counts: lighttpd waits
/// for every module's cleanup before it exits or restarts.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One request's bytes, as the hooks read them from lighttpd.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `r->uri.authority`: the host lighttpd parsed (may be empty).
    pub authority: &'a [u8],
    /// `r->server_name`: `server.name` of the scope, for requests without a
    /// host.
    pub server_name: &'a [u8],
    /// `http_request_stats_bytes_in/out(r)`, as mod_accesslog's %I / %O.
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// lighttpd's clock (`log_epoch_secs`) when the request finished.
    pub now: i64,
}

pub struct Module<Z: Zone = LocalZone> {
    config: Option<Config>,
    log: Arc<LogQueue>,
    flusher: Option<Flusher>,
    pending: Counters,
    keys: KeyMaker,
    calendar: Calendar<Z>,
    admission: Admission,
    /// Overflowed requests already reported, and when (monotonic).
    overflow_logged: (u64, i64),
    /// When pending counts were last handed over (or the worker started),
    /// on lighttpd's monotonic clock.
    last_report: i64,
}

impl Module<LocalZone> {
    pub fn new() -> Self {
        Module::with_zone(LocalZone)
    }
}

impl Default for Module<LocalZone> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Z: Zone> Module<Z> {
    pub fn with_zone(zone: Z) -> Self {
        Module {
            config: None,
            log: Arc::new(LogQueue::default()),
            flusher: None,
            pending: Counters::new(),
            keys: KeyMaker::new(),
            calendar: Calendar::new(zone),
            admission: Admission::new(crate::config::DEFAULT_MAX_HOSTS as usize),
            overflow_logged: (0, i64::MIN),
            last_report: 0,
        }
    }

    /// After `set_defaults` validated the options.
    pub fn configure(&mut self, config: Config) {
        self.admission = Admission::new(config.max_hosts);
        self.config = Some(config);
    }

    /// In each lighttpd process that serves requests (after any fork):
    /// starts the flusher thread, which first checks the database.
    /// `now` is the wall clock, `monotonic` lighttpd's monotonic seconds.
    pub fn start_worker(&mut self, now: i64, monotonic: i64) -> Result<(), String> {
        let Some(config) = &self.config else {
            return Err("worker_init ran before set_defaults: nothing to start".into());
        };
        self.last_report = monotonic;
        // localtime_r reads the zone file on first use: do that here, not
        // on the first request.
        self.calendar.day(now);
        if self.flusher.is_some() {
            return Ok(());
        }
        let (replay, claimed) = match &config.spool_file {
            None => (Vec::new(), None),
            Some(path) => claim_spool(path, &self.log),
        };
        let flusher = Flusher::start(config.db.clone(), self.log.clone(), replay, claimed)
            .map_err(|e| format!("cannot start the flusher thread: {e}; counts stay in memory"))?;
        self.flusher = Some(flusher);
        Ok(())
    }

    /// The request path: adds one request's bytes to its (host, day).
    /// No I/O, no lock, no allocation for a host already seen this interval.
    pub fn count(&mut self, req: Request<'_>) {
        let traffic = Traffic {
            bytes_in: u64::try_from(req.bytes_in).unwrap_or(0),
            bytes_out: u64::try_from(req.bytes_out).unwrap_or(0),
        };
        if traffic == Traffic::default() {
            return;
        }
        let day = self.calendar.day(req.now);
        let host = self.keys.key(req.authority, req.server_name);
        // A (host, day) row in pending was admitted on that day already:
        // one hash lookup instead of two for the common case.
        if self.pending.add_existing(host, day, traffic) {
            return;
        }
        let host = self.admission.admit(host, day);
        self.pending.add(host, day, traffic);
    }

    /// Once a second, on lighttpd's thread: hands the pending counts to
    /// the flusher when `report_interval` has passed (`now`: monotonic
    /// seconds); returns what to write to the error log.
    pub fn tick(&mut self, now: i64) -> Vec<String> {
        let interval = self
            .config
            .as_ref()
            .map_or(60, |c| c.report_interval.as_secs() as i64);
        if now - self.last_report >= interval && !self.pending.is_empty() {
            if let Some(flusher) = &self.flusher {
                self.last_report = now;
                if let Err(back) = flusher.deliver(self.pending.take()) {
                    // The thread is gone (it logged why): keep counting here.
                    self.pending = back;
                }
            }
        }
        let mut lines = self.take_log();
        lines.extend(self.overflow_line(now));
        lines
    }

    /// At most one line a minute while hosts overflow the cap.
    fn overflow_line(&mut self, now: i64) -> Option<String> {
        let overflow = self.admission.overflow();
        let (logged_requests, logged_at) = self.overflow_logged;
        let fresh_day = overflow.requests < logged_requests;
        if overflow.requests == 0
            || (!fresh_day
                && (overflow.requests == logged_requests || now.saturating_sub(logged_at) < 60))
        {
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

    /// At `cleanup`: hands over the last counts, lets the flusher deliver
    /// them (bounded in time), and reports exactly what did not arrive.
    pub fn shutdown(&mut self) -> Vec<String> {
        let mut waiting = self.pending.take();
        let mut batches = Vec::new();
        let mut claimed = None;
        let mut late = Vec::new();
        if let Some(flusher) = self.flusher.take() {
            if let Err(back) = flusher.deliver(waiting.take()) {
                waiting = back;
            }
            let stopped = flusher.stop(STOP_TIMEOUT);
            if stopped.timed_out {
                late.push(format!(
                    "the database did not answer within {}s of shutdown",
                    STOP_TIMEOUT.as_secs()
                ));
            }
            waiting.merge(stopped.waiting);
            batches = stopped.batches;
            claimed = stopped.claimed;
        }
        let mut lines = self.take_log();
        lines.extend(late);
        if !waiting.is_empty() {
            batches.push(Batch {
                id: BatchIds::new().next_id(),
                rows: waiting.rows(),
            });
        }
        if batches.is_empty() {
            return lines;
        }
        let rows: Vec<_> = batches
            .iter()
            .flat_map(|b| b.rows.iter().cloned())
            .collect();
        let summary = Counters::summary_of(&rows);
        if let Some(path) = self.config.as_ref().and_then(|c| c.spool_file.as_ref()) {
            match spool::append(path, &batches) {
                Ok(()) => {
                    lines.push(format!(
                        "database unavailable at shutdown: wrote {summary} to spool file {}; \
                         they are delivered at the next start",
                        path.display()
                    ));
                    // What was left of a replayed spool is in the new one.
                    if let Some(c) = claimed {
                        let _ = std::fs::remove_file(c);
                    }
                    return lines;
                }
                Err(e) => lines.push(format!("cannot write spool file {}: {e}", path.display())),
            }
        }
        lines.push(format!(
            "could not deliver {summary} at shutdown; lost unless added by hand:"
        ));
        let mut undelivered = Counters::new();
        for row in rows {
            undelivered.add(&row.host, row.day, row.traffic);
        }
        for row in undelivered.rows() {
            lines.push(format!(
                "undelivered: vhost {} day {} in {} out {}",
                row.host, row.day, row.traffic.bytes_in, row.traffic.bytes_out
            ));
        }
        lines
    }

    fn take_log(&self) -> Vec<String> {
        let drained = self.log.drain();
        let mut lines = drained.lines;
        if drained.dropped > 0 {
            lines.push(format!(
                "{} further log lines were dropped (log queue full)",
                drained.dropped
            ));
        }
        lines
    }
}

/// Counts heap allocations per thread, for the request-path test: a test
/// binary's global allocator, so it sees every allocation Rust makes.
/// Takes over the spool file of an earlier run, if there is one.
fn claim_spool(path: &std::path::Path, log: &LogQueue) -> (Vec<Batch>, Option<std::path::PathBuf>) {
    match spool::claim(path) {
        Ok(None) => (Vec::new(), None),
        Ok(Some((claimed, parsed))) => {
            let good: usize = parsed.batches.iter().map(|b| b.rows.len()).sum();
            if parsed.skipped > 0 {
                log.push(format!(
                    "spool file {}: skipped {} corrupt or truncated records; replaying the {good} good ones",
                    path.display(),
                    parsed.skipped
                ));
            }
            let rows: Vec<_> = parsed
                .batches
                .iter()
                .flat_map(|b| b.rows.iter().cloned())
                .collect();
            log.push(format!(
                "replaying {} from spool file {} (claimed as {})",
                Counters::summary_of(&rows),
                path.display(),
                claimed.display()
            ));
            (parsed.batches, Some(claimed))
        }
        Err(e) => {
            log.push(format!(
                "cannot claim spool file {}: {e}; it stays for the next start",
                path.display()
            ));
            (Vec::new(), None)
        }
    }
}

#[cfg(test)]
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: delegates to the system allocator; the counter is a
    // const-initialised thread-local Cell, which never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: forwarded contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn this_thread() -> u64 {
        COUNT.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Utc;
    impl Zone for Utc {
        fn utc_offset(&self, _: i64) -> i32 {
            0
        }
    }

    fn req(host: &'static str, i: i64, o: i64, now: i64) -> Request<'static> {
        Request {
            authority: host.as_bytes(),
            server_name: b"",
            bytes_in: i,
            bytes_out: o,
            now,
        }
    }

    /// 2026-11-28 23:59:59 UTC.
    const LAST_SECOND: i64 = 1_795_910_399;

    #[test]
    fn requests_land_on_the_day_they_finished() {
        let mut m = Module::with_zone(Utc);
        m.count(req("a.example:80", 100, 1000, LAST_SECOND));
        m.count(req("a.example", 1, 10, LAST_SECOND + 1));
        m.count(req("", 5, 5, LAST_SECOND + 1));
        let rows = m.pending.rows();
        let shown: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.host, r.day, r.traffic.bytes_in, r.traffic.bytes_out
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "_nohost 2026-11-29 5 5",
                "a.example 2026-11-28 100 1000",
                "a.example 2026-11-29 1 10"
            ]
        );
    }

    #[test]
    fn counting_a_known_host_does_not_allocate() {
        let mut m = Module::with_zone(Utc);
        m.count(req("shop.example.com:443", 10, 10, LAST_SECOND));
        m.count(req("Mixed.Case.example", 10, 10, LAST_SECOND));
        let before = alloc_count::this_thread();
        for i in 0..1000 {
            m.count(req("shop.example.com:443", i, i, LAST_SECOND));
            m.count(req("shop.example.com", 1, 1, LAST_SECOND));
            m.count(req("Mixed.Case.example", 1, 1, LAST_SECOND)); // escaped into the scratch buffer
        }
        assert_eq!(
            alloc_count::this_thread() - before,
            0,
            "allocations on the request path"
        );
        m.count(req("new.example", 1, 1, LAST_SECOND));
        assert!(
            alloc_count::this_thread() > before,
            "the counter does see allocations"
        );
    }

    #[test]
    fn negative_or_empty_byte_counts_are_not_rows() {
        let mut m = Module::with_zone(Utc);
        m.count(req("a", 0, 0, 1));
        m.count(req("b", -5, -1, 1));
        assert!(m.pending.is_empty());
        m.count(req("c", -5, 7, 1));
        assert_eq!(
            m.pending.summary().traffic,
            Traffic {
                bytes_in: 0,
                bytes_out: 7
            }
        );
    }

    #[test]
    fn without_a_database_thread_shutdown_reports_every_row() {
        let mut m = Module::with_zone(Utc);
        m.count(req("a", 1, 2, LAST_SECOND));
        m.count(req("b", 3, 4, LAST_SECOND));
        assert!(
            m.tick(LAST_SECOND + 3600).is_empty(),
            "no flusher: nothing to log, counts kept"
        );
        let lines = m.shutdown();
        assert_eq!(
            lines,
            vec![
                "could not deliver 4 bytes in, 6 bytes out in 2 rows at shutdown; lost unless added by hand:",
                "undelivered: vhost a day 2026-11-28 in 1 out 2",
                "undelivered: vhost b day 2026-11-28 in 3 out 4",
            ]
        );
    }
}
