//! The module in one lighttpd process, from `set_defaults` to `cleanup`:
//! its configuration, its [`Tally`], and its flusher process. The hooks
//! turn lighttpd's calls into these method calls and write the returned
//! lines to lighttpd's error log. Plain Rust, on lighttpd's thread.
//!
//! - start ([`Instance::start_worker`]): forks the flusher process, which
//!   takes over an earlier run's spool and checks the database;
//! - every second ([`Instance::tick`]): writes the flusher process's lines
//!   and hands it the tally when a report is due;
//! - stop ([`Instance::shutdown`]): hands over the last counts and waits
//!   (bounded) for the flusher process to say where they went.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::config::{Config, RequestScope, Scopes, DEFAULT_MAX_HOSTS};
use crate::counters::Counters;
use crate::counters::Traffic;
use crate::day::{LocalZone, Zone};
use crate::flush::set_aside_counts;
use crate::in_progress::{Identity, InProgress, Token};
use crate::process::{self, FlusherProcess, NotSent};
use crate::request::Counted;
use crate::scope_memo::ScopeMemo;
use crate::status::{Format, Header, Live};
use crate::tally::Tally;

/// How long `cleanup` waits for the flusher process's last lines: its own
/// bound for the last delivery, plus time to write the spool and answer.
/// lighttpd waits for every module's cleanup before it exits or restarts.
const FINISH_TIMEOUT: Duration = Duration::from_secs(process::STOP_TIMEOUT.as_secs() + 3);
/// After a flusher process ended unexpectedly, the next one starts no
/// sooner than this after the previous start (no fork loop if it cannot
/// run at all); counts wait in the tally meanwhile.
const RESTART_EVERY_SECS: i64 = 10;

pub struct Instance<Z: Zone = LocalZone> {
    config: Option<Config>,
    process: Option<FlusherProcess>,
    tally: Tally<Z>,
    /// When the tally was last handed over (or the worker started), on
    /// lighttpd's monotonic clock.
    last_report: i64,
    /// lighttpd's error log as a descriptor, for the flusher process.
    error_log: Option<RawFd>,
    /// When the flusher process was last started (monotonic), if it was.
    started_at: Option<i64>,
    /// Whether any scope sets `bw_counter.account` or `exclude` (read on
    /// every request, so kept apart from the configuration).
    counting_is_scoped: bool,
    /// The status URL's side, when some scope sets `bw_counter.status_url`.
    live: Option<Live>,
    /// Scopes remembered per host, when they depend on nothing else.
    scope_memo: Option<ScopeMemo>,
    /// What reports counted of requests still running (always empty with
    /// `bw_counter.count_in_progress = "disable"`).
    in_progress: InProgress,
    /// `bw_counter.count_in_progress`.
    count_in_progress: bool,
    /// When running requests were last counted (monotonic seconds).
    last_walk: i64,
    /// The running requests' addresses at a report, kept for its memory.
    walk: Vec<usize>,
    /// lighttpd's id for this module (its `plugin_ctx` index), once known.
    plugin_id: Option<usize>,
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
            process: None,
            tally: Tally::with_zone(zone, DEFAULT_MAX_HOSTS as usize),
            last_report: 0,
            error_log: None,
            started_at: None,
            counting_is_scoped: false,
            live: None,
            scope_memo: None,
            in_progress: InProgress::new(),
            count_in_progress: false,
            last_walk: 0,
            walk: Vec::new(),
            plugin_id: None,
        }
    }

    /// After `set_defaults` validated the options.
    pub fn configure(&mut self, config: Config) {
        self.tally.set_max_hosts(config.max_hosts);
        self.tally.set_accounts(config.scopes.accounts());
        self.counting_is_scoped = config.scopes.counting_is_scoped();
        self.scope_memo = (self.counting_is_scoped
            && config.scopes.counting_depends_on_host_only())
        .then(|| ScopeMemo::new(2 * config.max_hosts));
        self.count_in_progress = config.count_in_progress;
        self.config = Some(config);
    }

    /// lighttpd's id for this module (`set_defaults`): where requests keep
    /// their [`InProgress`] token.
    pub fn set_plugin_id(&mut self, id: Option<usize>) {
        self.plugin_id = id;
    }

    /// Whether running requests are to be counted now (`monotonic`:
    /// lighttpd's monotonic seconds): every `report_interval`, just before
    /// the report, when `count_in_progress` is on. Returns the plugin id
    /// and the walk's list (its memory kept between reports; give it back
    /// with [`Instance::end_walk`]); the walk is due again an interval
    /// later.
    pub fn begin_walk(&mut self, monotonic: i64) -> Option<(usize, Vec<usize>)> {
        let interval = self.config.as_ref()?.report_interval.as_secs() as i64;
        let id = self.plugin_id?;
        if !self.count_in_progress || monotonic - self.last_walk < interval {
            return None;
        }
        self.last_walk = monotonic;
        self.in_progress.begin_report();
        Some((id, std::mem::take(&mut self.walk)))
    }

    /// A request the walk found running: see [`InProgress::progress`].
    pub fn progress(
        &mut self,
        token: Token,
        identity: Identity,
        total: Traffic,
    ) -> (Token, Option<Traffic>) {
        self.in_progress.progress(token, identity, total)
    }

    /// After the walk: its list back, and the records of requests it did
    /// not find dropped.
    pub fn end_walk(&mut self, walk: Vec<usize>) {
        self.in_progress.end_report();
        self.walk = walk;
    }

    /// Whether some running request has been counted in part: only then
    /// does a request's end look for what was counted of it.
    #[inline(always)]
    pub fn has_partly_counted(&self) -> bool {
        !self.in_progress.is_empty()
    }

    /// lighttpd's id for this module, 0 while unknown.
    #[inline(always)]
    pub fn progress_id(&self) -> usize {
        self.plugin_id.unwrap_or(0)
    }

    /// The plugin id and the record keeper, when requests may have been
    /// counted in part.
    pub fn partly_counted(&mut self) -> Option<(usize, &mut InProgress)> {
        Some((self.plugin_id?, &mut self.in_progress))
    }

    /// In `set_defaults`, before lighttpd forks its `workers`, when some
    /// scope sets `bw_counter.status_url`: the memory all of them publish
    /// their figures in.
    pub fn enable_status(&mut self, workers: usize) -> Result<(), String> {
        let Some(config) = &self.config else {
            return Ok(());
        };
        let capacity = config.max_hosts + config.scopes.accounts().len();
        let live = Live::create(workers, capacity).map_err(|e| {
            format!("bw_counter.status_url: cannot map the memory the workers share: {e}")
        })?;
        self.live = Some(live);
        Ok(())
    }

    /// The status answer in `format`, as of `now` (unix seconds).
    pub fn status(&self, format: Format, lighttpd_version: &str, now: i64) -> Option<String> {
        let (live, config) = (self.live.as_ref()?, self.config.as_ref()?);
        let header = Header {
            module_version: env!("CARGO_PKG_VERSION").to_string(),
            lighttpd_version: lighttpd_version.to_string(),
            started: 0,
            now,
            report_interval_secs: config.report_interval.as_secs(),
            exactly_once: true,
            tls_mode: config.db.tls.mode.name().to_string(),
            spool_file: config.spool_file.as_ref().map(|p| p.display().to_string()),
            server: config.db.servers_text(),
        };
        Some(live.answer(&self.tally, header, format))
    }

    /// Whether requests must have their scope resolved before counting.
    #[inline(always)]
    pub fn counting_is_scoped(&self) -> bool {
        self.counting_is_scoped
    }

    /// The per-condition options (none before `configure`).
    pub fn scopes(&self) -> Option<&Scopes> {
        self.config.as_ref().map(|c| &c.scopes)
    }

    /// How a request for `authority` is counted: remembered per host when
    /// the scopes depend on the host alone, else `ask` resolves them
    /// (lighttpd's conditions). `None` before `configure`.
    pub fn request_scope(
        &mut self,
        authority: &[u8],
        ask: impl FnOnce(&Scopes) -> RequestScope,
    ) -> Option<RequestScope> {
        let scopes = &self.config.as_ref()?.scopes;
        Some(match &mut self.scope_memo {
            Some(memo) => memo.scope(authority, || ask(scopes)),
            None => ask(scopes),
        })
    }

    /// In each lighttpd process that serves requests (after any fork):
    /// starts the flusher process. `now` is the wall clock, `monotonic`
    /// lighttpd's monotonic seconds, `error_log` lighttpd's error log if it
    /// is a file descriptor.
    pub fn start_worker(
        &mut self,
        now: i64,
        monotonic: i64,
        error_log: Option<RawFd>,
    ) -> Result<(), String> {
        if self.config.is_none() {
            return Err("worker_init ran before set_defaults: nothing to start".into());
        }
        self.last_report = monotonic;
        self.last_walk = monotonic;
        self.error_log = error_log;
        self.tally.warm_up(now);
        let mut status_problem = None;
        if let Some(live) = &mut self.live {
            status_problem = live.start(std::process::id(), now).err();
        }
        if self.process.is_some() {
            return status_problem.map_or(Ok(()), Err);
        }
        self.start_process(monotonic)?;
        status_problem.map_or(Ok(()), Err)
    }

    fn start_process(&mut self, monotonic: i64) -> Result<(), String> {
        let Some(config) = &self.config else {
            return Ok(());
        };
        self.started_at = Some(monotonic);
        let watcher = self.live.as_ref().and_then(|live| {
            let servers = config.db.servers.iter().map(|s| s.to_string()).collect();
            live.flusher_watcher(servers, config.spool_file.clone())
        });
        let process = FlusherProcess::spawn(config, self.error_log, watcher)
            .map_err(|e| format!("cannot start the flusher process: {e}; counts stay in memory"))?;
        self.process = Some(process);
        Ok(())
    }

    /// The request path's common case: see [`Tally::count_same_row`].
    #[inline(always)]
    pub fn count_same_row(&mut self, request: &Counted<'_>) -> bool {
        self.tally.count_same_row(request)
    }

    /// The request path: see [`Tally::count`].
    pub fn count(&mut self, request: Counted<'_>) {
        self.tally.count(request);
    }

    /// A request whose scope was resolved: not counted, counted under its
    /// account, or counted by its host as usual. Returns the request back
    /// when it is to be counted by its host.
    pub fn count_in_scope<'a>(
        &mut self,
        scope: RequestScope,
        request: Counted<'a>,
    ) -> Option<Counted<'a>> {
        if scope.exclude {
            return None;
        }
        match scope.account {
            Some(id) => {
                self.tally.count_account(id, request.traffic, request.now);
                None
            }
            None => Some(request),
        }
    }

    /// The request path after [`Instance::count_same_row`] returned false:
    /// see [`Tally::count_other_row`].
    pub fn count_other_row(&mut self, request: Counted<'_>) {
        self.tally.count_other_row(request);
    }

    /// lighttpd reaped child `pid` (`handle_waitpid`): true if it was the
    /// flusher process.
    pub fn reaped(&mut self, pid: i32, status: i32) -> bool {
        self.process.as_mut().is_some_and(|p| p.reaped(pid, status))
    }

    /// Once a second, on lighttpd's thread: the flusher process's lines,
    /// and the tally handed over when `report_interval` has passed (`now`:
    /// monotonic seconds); returns what to write to the error log.
    pub fn tick(&mut self, now: i64) -> Vec<String> {
        let mut lines = self.take_lines(now);
        let interval = self
            .config
            .as_ref()
            .map_or(60, |c| c.report_interval.as_secs() as i64);
        if now - self.last_report >= interval && !self.tally.is_empty() {
            if let Some(process) = &mut self.process {
                let counts = self.tally.take();
                // For the status: what is handed over joins the totals.
                let copy = self.live.as_ref().map(|_| counts.clone());
                match process.hand_over(counts) {
                    Ok(()) => {
                        self.last_report = now;
                        if let (Some(live), Some(copy)) = (&mut self.live, copy) {
                            live.handed_over(&copy);
                        }
                    }
                    // No room on the socket just now: the counts stay in
                    // the tally and go at the next tick.
                    Err(NotSent {
                        counts,
                        error: None,
                    }) => self.tally.put_back(counts),
                    Err(NotSent {
                        counts,
                        error: Some(_),
                    }) => {
                        self.tally.put_back(counts);
                        lines.extend(self.take_lines(now));
                    }
                }
            }
        }
        lines.extend(self.tally.overflow_line(now));
        if let Some(live) = &self.live {
            live.publish(&self.tally);
        }
        lines
    }

    /// The flusher process's lines; if it has ended, says so, and starts
    /// another (at most every [`RESTART_EVERY_SECS`]).
    fn take_lines(&mut self, now: i64) -> Vec<String> {
        let Some(process) = &mut self.process else {
            if self
                .started_at
                .is_some_and(|t| now - t >= RESTART_EVERY_SECS)
            {
                return self.restart(now);
            }
            return Vec::new();
        };
        match process.lines() {
            Ok(lines) => lines,
            Err(mut lines) => {
                let status = process
                    .exit_status()
                    .map_or_else(|| "ended".to_string(), process::describe_status);
                lines.push(format!(
                    "the flusher process {} {status}: counts it had received and not yet \
                     delivered may be lost (see its lines above); counts since stay in memory \
                     for the next flusher process",
                    process.pid()
                ));
                self.process = None;
                if self
                    .started_at
                    .is_some_and(|t| now - t >= RESTART_EVERY_SECS)
                {
                    lines.extend(self.restart(now));
                }
                lines
            }
        }
    }

    fn restart(&mut self, now: i64) -> Vec<String> {
        match self.start_process(now) {
            Ok(()) => match &self.process {
                Some(p) => vec![format!("started a new flusher process {}", p.pid())],
                None => Vec::new(),
            },
            Err(e) => vec![e],
        }
    }

    /// At `cleanup`: hands over the last counts and waits (at most
    /// [`FINISH_TIMEOUT`]) for the flusher process to deliver or set them
    /// aside and say so; counts it could not take are set aside here.
    pub fn shutdown(&mut self) -> Vec<String> {
        let last = self.tally.take();
        let Some(process) = self.process.take() else {
            return self.set_aside_here("no flusher process at shutdown", last);
        };
        let pid = process.pid();
        let finished = process.finish(last, FINISH_TIMEOUT);
        let mut lines = finished.lines;
        if finished.timed_out {
            lines.push(format!(
                "the flusher process {pid} is still delivering after {}s; it goes on alone and \
                 writes its last lines to this error log itself",
                FINISH_TIMEOUT.as_secs()
            ));
        }
        lines.extend(self.set_aside_here(
            "the flusher process had ended before shutdown",
            finished.not_sent,
        ));
        lines
    }

    fn set_aside_here(&self, why: &str, counts: Counters) -> Vec<String> {
        set_aside_counts(self.config.as_ref(), why, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::tests::{req, Utc, LAST_SECOND};

    #[test]
    fn without_a_flusher_process_shutdown_reports_every_row() {
        let mut m = Instance::with_zone(Utc);
        m.count(req("a", 1, 2, LAST_SECOND));
        m.count(req("b", 3, 4, LAST_SECOND));
        assert!(
            m.tick(LAST_SECOND + 3600).is_empty(),
            "no flusher process: nothing to log, counts kept"
        );
        let lines = m.shutdown();
        let id = lines[1].rsplit(' ').next().unwrap();
        assert_eq!(
            lines,
            vec![
                "no flusher process at shutdown: could not deliver 4 bytes in, 6 bytes out in 2 \
                 rows; lost unless added by hand (a batch whose id is in the ledger table is in \
                 the table already):"
                    .to_string(),
                format!("undelivered: vhost a day 2026-11-28 in 1 out 2 batch {id}"),
                format!("undelivered: vhost b day 2026-11-28 in 3 out 4 batch {id}"),
            ]
        );
    }
}
