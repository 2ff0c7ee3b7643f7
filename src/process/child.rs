//! The flusher process's side: receives counts from lighttpd, runs the
//! flusher (its books, the spool, the database) and sends its log lines
//! back; when lighttpd's end closes, delivers what it has (bounded by
//! [`STOP_TIMEOUT`]), sets aside the rest, says so, and exits.

use std::ffi::c_int;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{sys, PROCESS_NAME};
use crate::config::Config;
use crate::counters::Counters;
use crate::flush::{self, Flusher, Link, Parts, PendingLimit, Stopped, Watcher, LEDGER_RETENTION};
use crate::log::LogQueue;
use crate::spool::{self, Rejects, Replay};
use crate::wire::{self, Message};

/// How long the last delivery may take once lighttpd's end has closed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the process looks at its log queue while no counts come.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long its last lines may wait for room on the socket.
const LAST_LINES_WAIT: Duration = Duration::from_secs(2);
/// Lines kept while lighttpd does not read them.
const MAX_UNSENT_LINES: usize = 1024;

/// The process's whole life; returns its exit status.
pub fn run(
    config: &Config,
    socket: OwnedFd,
    error_log: Option<RawFd>,
    watcher: Option<Arc<dyn Watcher>>,
) -> c_int {
    sys::ignore_lighttpds_signals();
    sys::set_process_name(PROCESS_NAME);
    let error_log = error_log.and_then(sys::duplicate).map(File::from);
    let mut keep = vec![socket.as_raw_fd()];
    keep.extend(error_log.as_ref().map(|f| f.as_raw_fd()));
    sys::close_inherited(&keep);
    let mut out = Out {
        socket: &socket,
        error_log,
        unsent: Vec::new(),
        dropped: 0,
        lighttpd_gone: false,
    };
    let served = catch_unwind(AssertUnwindSafe(|| {
        serve(config, &socket, &mut out, watcher)
    }));
    let code = match served {
        Ok(()) => 0,
        Err(payload) => {
            out.line(format!(
                "internal error in the flusher process (please report): {}; counts it had \
                 received and not yet delivered are lost",
                crate::panic_message(payload.as_ref())
            ));
            70
        }
    };
    out.finish();
    code
}

fn serve(config: &Config, socket: &OwnedFd, out: &mut Out<'_>, watcher: Option<Arc<dyn Watcher>>) {
    let log = Arc::new(LogQueue::default());
    let replay = match &config.spool_file {
        None => Replay::default(),
        Some(path) => spool::take_over(path, &log, LEDGER_RETENTION),
    };
    let flusher = match Flusher::start(parts(config, log.clone(), watcher), replay) {
        Ok(f) => Some(f),
        Err(e) => {
            out.line(format!(
                "cannot start the flusher thread: {e}; counts are set aside at stop"
            ));
            None
        }
    };
    let mut waiting = receive_until_eof(socket, flusher.as_ref(), &log, out);
    let stopped = match flusher {
        Some(flusher) => flusher.stop(std::mem::take(&mut waiting), STOP_TIMEOUT),
        None => Stopped {
            waiting,
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
    let mut lines = flush::take_log(&log);
    lines.extend(flush::set_aside_stopped(Some(config), &why, stopped));
    lines.into_iter().for_each(|l| out.line(l));
}

/// Counts from lighttpd, handed to the flusher as they come, until
/// lighttpd's end closes; returns what the flusher has not taken yet.
fn receive_until_eof(
    socket: &OwnedFd,
    flusher: Option<&Flusher>,
    log: &LogQueue,
    out: &mut Out<'_>,
) -> Counters {
    let mut waiting = Counters::new();
    let mut buf = Vec::with_capacity(wire::MAX_MESSAGE);
    let mut wait = Some(POLL_EVERY);
    loop {
        match sys::receive(socket, &mut buf, wait) {
            Ok(true) => {
                match wire::decode(&buf) {
                    Ok(Message::Rows(counts)) => waiting.merge(counts),
                    Ok(Message::Line(_)) => {}
                    Err(e) => out.line(format!(
                        "internal error: a malformed message from lighttpd ({}; please \
                         report); its counts are lost",
                        e.0
                    )),
                }
                // More may be queued: read on before handing over.
                wait = None;
                continue;
            }
            Ok(false) => return waiting,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                out.line(format!("reading from lighttpd failed: {e}; stopping"));
                return waiting;
            }
        }
        wait = Some(POLL_EVERY);
        if let (Some(flusher), false) = (flusher, waiting.is_empty()) {
            // The flusher thread holds its books for a moment: next time.
            if let Err(back) = flusher.deliver(std::mem::take(&mut waiting)) {
                waiting = back;
            }
        }
        flush::take_log(log).into_iter().for_each(|l| out.line(l));
        out.send_unsent();
    }
}

/// What a flusher process for `config` needs besides its books.
fn parts(
    config: &Config,
    log: Arc<LogQueue>,
    watcher: Option<Arc<dyn Watcher>>,
) -> Parts<impl Fn() -> Link + Send + 'static> {
    let db = config.db.clone();
    Parts {
        make_sink: move || Link::new(db.clone()),
        log,
        rejects: Rejects::beside(config.spool_file.as_deref()),
        limit: PendingLimit::for_hosts(config.max_hosts, config.spool_file.clone()),
        watcher,
    }
}

/// Where the process's lines go: to lighttpd, which writes them to its
/// error log; once lighttpd is gone, straight into that log (or stderr).
struct Out<'a> {
    socket: &'a OwnedFd,
    error_log: Option<File>,
    /// Lines the socket had no room for yet, oldest first.
    unsent: Vec<String>,
    dropped: u64,
    lighttpd_gone: bool,
}

impl Out<'_> {
    fn line(&mut self, line: String) {
        if self.unsent.len() < MAX_UNSENT_LINES {
            self.unsent.push(line);
        } else {
            self.dropped += 1;
        }
        self.send_unsent();
    }

    /// Sends what the socket takes now, in order.
    fn send_unsent(&mut self) {
        if self.dropped > 0 && self.unsent.len() < MAX_UNSENT_LINES {
            let dropped = std::mem::take(&mut self.dropped);
            self.unsent.push(format!(
                "{dropped} further log lines were dropped (lighttpd did not read them)"
            ));
        }
        let mut sent = 0;
        for line in &self.unsent {
            if self.lighttpd_gone {
                break;
            }
            match sys::send(self.socket, &wire::encode_line(line), false) {
                Ok(()) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.lighttpd_gone = true,
            }
        }
        self.unsent.drain(..sent);
    }

    /// At exit: the last lines to lighttpd if it still reads (waiting a
    /// little for room), else into the error log directly.
    fn finish(&mut self) {
        let until = Instant::now() + LAST_LINES_WAIT;
        self.send_unsent();
        while !self.unsent.is_empty() && !self.lighttpd_gone && Instant::now() < until {
            sys::wait_writable(self.socket, Duration::from_millis(50));
            self.send_unsent();
        }
        for line in std::mem::take(&mut self.unsent) {
            self.write_to_log(&line);
        }
    }

    /// In lighttpd's own format, so the line sits with its neighbours.
    fn write_to_log(&mut self, line: &str) {
        let text = format!(
            "{}: (mod_bw_counter) mod_bw_counter: flusher process {}: {line}\n",
            local_timestamp(),
            std::process::id()
        );
        let written = match &mut self.error_log {
            Some(f) => f.write_all(text.as_bytes()).is_ok(),
            None => false,
        };
        if !written {
            let _ = io::stderr().write_all(text.as_bytes());
        }
    }
}

/// "2026-11-29 17:47:05" in local time, as lighttpd stamps its lines.
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: tm is plain data; localtime_r fills it from `now`, both ours.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return now.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
