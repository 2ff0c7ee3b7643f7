//! The module in one lighttpd process, from `set_defaults` to `cleanup`:
//! its configuration, its [`Tally`], and its flusher thread. The hooks turn
//! lighttpd's calls into these method calls and write the returned lines to
//! lighttpd's error log. Plain Rust, on lighttpd's thread.
//!
//! - start ([`Instance::start_worker`]): takes over an earlier run's spool
//!   and starts the flusher thread;
//! - every second ([`Instance::tick`]): hands the tally to the flusher when
//!   a report is due;
//! - stop ([`Instance::shutdown`]): the last counts go to the database, or
//!   to the spool file, or into the error log, and the log says which.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, DEFAULT_MAX_HOSTS};
use crate::counters::{Batch, Row, Summary, Traffic};
use crate::day::{LocalZone, Zone};
use crate::flush::{BatchIds, Flusher, Link, Parts, PendingLimit, Stopped, LEDGER_RETENTION};
use crate::log::LogQueue;
use crate::request::Counted;
use crate::spool::{self, Claimed, Rejects};
use crate::tally::Tally;

/// How long `cleanup` may take to deliver the last counts: lighttpd waits
/// for every module's cleanup before it exits or restarts.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Instance<Z: Zone = LocalZone> {
    config: Option<Config>,
    log: Arc<LogQueue>,
    flusher: Option<Flusher>,
    tally: Tally<Z>,
    /// When the tally was last handed over (or the worker started), on
    /// lighttpd's monotonic clock.
    last_report: i64,
    /// The process the flusher thread runs in.
    pid: u32,
    /// `before_fork` holds the flusher's locks (until `after_fork`).
    holding_for_fork: bool,
}

impl Instance<LocalZone> {
    pub fn new() -> Self {
        Instance::with_zone(LocalZone)
    }
}

impl Default for Instance<LocalZone> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Z: Zone> Instance<Z> {
    pub fn with_zone(zone: Z) -> Self {
        Instance {
            config: None,
            log: Arc::new(LogQueue::default()),
            flusher: None,
            tally: Tally::with_zone(zone, DEFAULT_MAX_HOSTS as usize),
            last_report: 0,
            pid: std::process::id(),
            holding_for_fork: false,
        }
    }

    /// After `set_defaults` validated the options.
    pub fn configure(&mut self, config: Config) {
        self.tally.set_max_hosts(config.max_hosts);
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
        self.tally.warm_up(now);
        if self.flusher.is_some() {
            return Ok(());
        }
        let replay = match &config.spool_file {
            None => spool::Replay::default(),
            Some(path) => spool::take_over(path, &self.log, LEDGER_RETENTION),
        };
        let parts = flusher_parts(config, self.log.clone());
        let flusher = Flusher::start(parts, replay)
            .map_err(|e| format!("cannot start the flusher thread: {e}; counts stay in memory"))?;
        self.flusher = Some(flusher);
        self.pid = std::process::id();
        Ok(())
    }

    /// `handle_sighup`: lighttpd may fork next (`server.graceful-restart-bg`
    /// does, a plain SIGHUP does not). The flusher's locks are taken and
    /// kept, so that its thread holds none at a fork; [`Instance::tick`]
    /// or [`Instance::shutdown`] gives them back.
    pub fn before_fork(&mut self) {
        if let Some(flusher) = self.flusher.as_ref().filter(|_| !self.holding_for_fork) {
            flusher.hold_for_fork(&self.log);
            self.holding_for_fork = true;
        }
    }

    /// After `before_fork`, on the next call from lighttpd: in the same
    /// process, the locks go back. In a child lighttpd forked, whose parent
    /// re-executed itself, the flusher thread does not exist: a new one
    /// takes over the books and delivers them and what the child counts
    /// from now on; the parent's copy is gone, so nothing goes twice.
    fn after_fork(&mut self) -> Vec<String> {
        if !std::mem::take(&mut self.holding_for_fork) {
            return Vec::new();
        }
        let (Some(flusher), Some(config)) = (self.flusher.take(), self.config.as_ref()) else {
            return Vec::new();
        };
        if std::process::id() == self.pid {
            // SAFETY: this thread took both locks in before_fork (the flag
            // says so) and has not released them.
            unsafe { flusher.release_after_fork(&self.log) };
            self.flusher = Some(flusher);
            return Vec::new();
        }
        // SAFETY: this thread is the copy of the one that took the log's
        // lock in before_fork, and nothing released it since.
        self.log = Arc::new(unsafe { self.log.take_after_fork() });
        let parts = flusher_parts(config, self.log.clone());
        // SAFETY: as above, for the books' lock.
        match unsafe { flusher.continue_in_child(parts) } {
            Ok(flusher) => {
                self.flusher = Some(flusher);
                self.pid = std::process::id();
                vec![format!(
                    "process {} finishes the requests in progress of the previous generation \
                     (server.graceful-restart-bg): a flusher thread of its own delivers what \
                     was not yet in the table and what it counts from now on",
                    self.pid
                )]
            }
            Err((e, stopped)) => {
                let why = format!("cannot start a flusher thread in process {}: {e}", self.pid);
                self.set_aside_stopped(&why, *stopped)
            }
        }
    }

    /// The request path: see [`Tally::count`].
    pub fn count(&mut self, request: Counted<'_>) {
        self.tally.count(request);
    }

    /// Once a second, on lighttpd's thread: hands the tally to the flusher
    /// when `report_interval` has passed (`now`: monotonic seconds);
    /// returns what to write to the error log.
    pub fn tick(&mut self, now: i64) -> Vec<String> {
        let mut lines = self.after_fork();
        let interval = self
            .config
            .as_ref()
            .map_or(60, |c| c.report_interval.as_secs() as i64);
        if now - self.last_report >= interval && !self.tally.is_empty() {
            if let Some(flusher) = &self.flusher {
                match flusher.deliver(self.tally.take()) {
                    Ok(()) => self.last_report = now,
                    // The flusher is busy with its books for a moment: the
                    // counts stay in the tally and go at the next tick.
                    Err(back) => self.tally.put_back(back),
                }
            }
        }
        lines.extend(self.take_log());
        lines.extend(self.tally.overflow_line(now));
        lines
    }

    /// At `cleanup`: hands over the last counts, lets the flusher deliver
    /// them (for at most [`STOP_TIMEOUT`], whatever state it is in), and
    /// sets aside exactly what is not known to be in the table.
    pub fn shutdown(&mut self) -> Vec<String> {
        let mut lines = self.after_fork();
        let last = self.tally.take();
        let stopped = match self.flusher.take() {
            Some(flusher) => flusher.stop(last, STOP_TIMEOUT),
            None => Stopped {
                waiting: last,
                batches: Vec::new(),
                claimed: Vec::new(),
                timed_out: false,
            },
        };
        let why = if stopped.timed_out {
            format!(
                "the database did not answer within {}s of shutdown",
                STOP_TIMEOUT.as_secs()
            )
        } else {
            "database unavailable at shutdown".to_string()
        };
        lines.extend(self.take_log());
        lines.extend(self.set_aside_stopped(&why, stopped));
        lines
    }

    /// Everything a stopped flusher did not deliver, set aside (a batch for
    /// the waiting counts, under a new id).
    fn set_aside_stopped(&self, why: &str, stopped: Stopped) -> Vec<String> {
        let mut batches = stopped.batches;
        if !stopped.waiting.is_empty() {
            batches.push(Batch {
                id: BatchIds::new().next_id(),
                rows: stopped.waiting.rows(),
            });
        }
        if batches.is_empty() {
            return Vec::new();
        }
        self.set_aside(why, &batches, stopped.claimed)
    }

    /// What the database did not take at stop: into the spool file if
    /// there is one, else (and for what the spool file did not take) every
    /// row into the error log. Each batch keeps its id: one whose COMMIT
    /// got no answer may be in the table already, and the ledger tells.
    fn set_aside(&self, why: &str, batches: &[Batch], claimed: Vec<Claimed>) -> Vec<String> {
        let rows: Vec<(&str, &Row)> = batches
            .iter()
            .flat_map(|b| b.rows.iter().map(|r| (b.id.as_str(), r)))
            .collect();
        let ledger = match &self.config {
            Some(c) => format!("ledger table {}", c.db.ledger),
            None => "ledger table".to_string(),
        };
        let mut lines = Vec::new();
        let mut not_kept = &rows[..];
        if let Some(path) = self.config.as_ref().and_then(|c| c.spool_file.as_ref()) {
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

/// What a flusher thread for `config` needs besides its books.
fn flusher_parts(config: &Config, log: Arc<LogQueue>) -> Parts<impl Fn() -> Link + Send + 'static> {
    let db = config.db.clone();
    Parts {
        make_sink: move || Link::new(db.clone()),
        log,
        rejects: Rejects::beside(config.spool_file.as_deref()),
        limit: PendingLimit::for_hosts(config.max_hosts, config.spool_file.clone()),
    }
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
    use crate::tally::tests::{req, Utc, LAST_SECOND};

    #[test]
    fn without_a_database_thread_shutdown_reports_every_row() {
        let mut m = Instance::with_zone(Utc);
        m.count(req("a", 1, 2, LAST_SECOND));
        m.count(req("b", 3, 4, LAST_SECOND));
        assert!(
            m.tick(LAST_SECOND + 3600).is_empty(),
            "no flusher: nothing to log, counts kept"
        );
        let lines = m.shutdown();
        let id = lines[1].rsplit(' ').next().unwrap();
        assert_eq!(
            lines,
            vec![
                "database unavailable at shutdown: could not deliver 4 bytes in, 6 bytes out in 2 \
                 rows; lost unless added by hand (a batch whose id is in the ledger table is in \
                 the table already):"
                    .to_string(),
                format!("undelivered: vhost a day 2026-11-28 in 1 out 2 batch {id}"),
                format!("undelivered: vhost b day 2026-11-28 in 3 out 4 batch {id}"),
            ]
        );
    }
}
