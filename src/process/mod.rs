//! The flusher process: everything that talks to MySQL or the spool runs
//! in a process of its own, forked by each lighttpd worker in
//! `worker_init`, so that lighttpd's process keeps exactly one thread.
//!
//! Why not a thread: any second thread, even an idle one, switches glibc
//! to its multi-threaded paths for the life of the process (cancellation
//! bookkeeping around every blocking system call, locked malloc). In
//! lighttpd 1.4.69 serving a small file that alone cost about 227
//! instructions per request, 3.4% of lighttpd's own (bench/RESULTS.md §6).
//!
//! - lighttpd hands counts over on a `SOCK_SEQPACKET` socket pair
//!   (`wire.rs`), without ever waiting: what the socket does not take now
//!   stays in the tally for the next report;
//! - the flusher process sends its log lines back the same way, and
//!   lighttpd's thread writes them at its next trigger;
//! - it finishes when its end of the socket reads EOF: at lighttpd's
//!   `cleanup` (which then waits, bounded, for its last lines), and also
//!   when lighttpd dies (SIGKILL, crash), so what was handed over still
//!   reaches the table or the spool;
//! - it ignores the signals an admin sends lighttpd's process group
//!   (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) and finishes its delivery
//!   on its own, bounded;
//! - with `server.graceful-restart-bg` lighttpd forks and re-executes
//!   itself: the lighttpd end of the socket is close-on-exec, so only the
//!   child that finishes the old requests keeps it, and the new generation
//!   starts a flusher process of its own.
//!
//! This file is lighttpd's side; `child.rs` is the flusher process's.

mod child;
mod sys;

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::counters::Counters;
use crate::flush::Watcher;
use crate::wire::{self, Message};

pub use self::child::STOP_TIMEOUT;
pub use self::sys::describe_status;

/// The process name `ps` and `top` show for it (at most 15 bytes).
pub const PROCESS_NAME: &str = "bw_counter-flus";

/// lighttpd's handle on its flusher process.
pub struct FlusherProcess {
    /// lighttpd's end: non-blocking, close-on-exec.
    socket: OwnedFd,
    pid: libc::pid_t,
    /// How it ended, if lighttpd reaped it (`handle_waitpid`).
    status: Option<libc::c_int>,
    /// For received messages, kept: a tick then allocates nothing.
    buf: Vec<u8>,
}

/// What [`FlusherProcess::hand_over`] could not send.
pub struct NotSent {
    pub counts: Counters,
    /// `None`: the socket is full for now (try again later). `Some`: the
    /// process is gone.
    pub error: Option<io::Error>,
}

/// How [`FlusherProcess::finish`] ended.
pub struct Finished {
    /// Its last lines, for lighttpd's error log.
    pub lines: Vec<String>,
    /// Counts it never received (it had ended).
    pub not_sent: Counters,
    /// It had not closed its end by the deadline: it goes on alone.
    pub timed_out: bool,
}

impl FlusherProcess {
    /// Forks the flusher process for `config`. `error_log` is lighttpd's
    /// error log, if it is a file descriptor: the process writes its lines
    /// there itself once lighttpd no longer reads them.
    ///
    /// Call only while lighttpd's process has one thread (always true with
    /// this module, which starts none there): a fork copies only the
    /// calling thread, and a lock another thread held would stay locked in
    /// the child.
    pub fn spawn(
        config: &Config,
        error_log: Option<RawFd>,
        watcher: Option<Arc<dyn Watcher>>,
    ) -> io::Result<FlusherProcess> {
        let (ours, theirs) = sys::socket_pair()?;
        match sys::fork()? {
            sys::Forked::Child => {
                drop(ours);
                let code = child::run(config, theirs, error_log, watcher);
                sys::exit_now(code)
            }
            sys::Forked::Parent(pid) => {
                drop(theirs);
                sys::set_nonblocking(&ours)?;
                Ok(FlusherProcess {
                    socket: ours,
                    pid,
                    status: None,
                    buf: Vec::with_capacity(wire::MAX_MESSAGE),
                })
            }
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// lighttpd reaped process `pid` (`handle_waitpid`): true if it was
    /// this one.
    pub fn reaped(&mut self, pid: libc::pid_t, status: libc::c_int) -> bool {
        if pid != self.pid {
            return false;
        }
        self.status = Some(status);
        true
    }

    /// How it ended, if known: reaped by lighttpd, or reapable now.
    pub fn exit_status(&mut self) -> Option<libc::c_int> {
        if self.status.is_none() {
            self.status = sys::try_reap(self.pid);
        }
        self.status
    }

    /// Sends `counts` without waiting. Messages go whole or not at all, so
    /// what comes back is exactly what the process did not receive.
    pub fn hand_over(&mut self, counts: Counters) -> Result<(), NotSent> {
        let messages = wire::encode_rows(&counts.rows());
        drop(counts);
        for (i, message) in messages.iter().enumerate() {
            match sys::send(&self.socket, message, false) {
                Ok(()) => {}
                Err(e) => {
                    let error = (e.kind() != io::ErrorKind::WouldBlock).then_some(e);
                    return Err(NotSent {
                        counts: rows_of(&messages[i..]),
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    /// Its log lines received so far, without waiting; `Err` with them
    /// once it has closed its end (it ended).
    pub fn lines(&mut self) -> Result<Vec<String>, Vec<String>> {
        let mut lines = Vec::new();
        loop {
            match sys::receive(&self.socket, &mut self.buf, None) {
                Ok(true) => lines.extend(line_of(&self.buf)),
                Ok(false) => return Err(lines),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(lines),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(lines),
            }
        }
    }

    /// At `cleanup`: sends the `last` counts, closes lighttpd's end (the
    /// process then delivers and finishes), and waits at most `timeout` for
    /// its last lines.
    pub fn finish(mut self, last: Counters, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        let not_sent = self.send_until(last, deadline, &mut lines);
        sys::shut_down_writing(&self.socket);
        let mut timed_out = true;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match sys::receive(&self.socket, &mut self.buf, Some(left)) {
                Ok(true) => lines.extend(line_of(&self.buf)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Ok(false) | Err(_) => {
                    timed_out = false;
                    break;
                }
            }
        }
        if !timed_out {
            // It exits right after closing its end: reap it, so no zombie
            // is left for the rest of lighttpd's stop.
            let until = Instant::now() + Duration::from_millis(500);
            while self.exit_status().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Finished {
            lines,
            not_sent,
            timed_out,
        }
    }

    /// Sends `counts`, waiting for room until `deadline`; what could not be
    /// sent comes back. Reads lines meanwhile: the process may be waiting
    /// for room to send one before it reads on.
    fn send_until(
        &mut self,
        counts: Counters,
        deadline: Instant,
        lines: &mut Vec<String>,
    ) -> Counters {
        let mut counts = counts;
        loop {
            match self.hand_over(counts) {
                Ok(()) => return Counters::new(),
                Err(NotSent {
                    counts: rest,
                    error: None,
                }) if Instant::now() < deadline => {
                    counts = rest;
                    match self.lines() {
                        Ok(more) => lines.extend(more),
                        Err(more) => {
                            lines.extend(more);
                            return counts;
                        }
                    }
                    sys::wait_writable(&self.socket, Duration::from_millis(50));
                }
                Err(NotSent { counts: rest, .. }) => return rest,
            }
        }
    }
}

/// The rows of unsent rows messages, put back together.
fn rows_of(messages: &[Vec<u8>]) -> Counters {
    let mut counts = Counters::new();
    for message in messages {
        if let Ok(Message::Rows(part)) = wire::decode(message) {
            counts.merge(part);
        }
    }
    counts
}

fn line_of(message: &[u8]) -> Option<String> {
    match wire::decode(message) {
        Ok(Message::Line(line)) => Some(line),
        Ok(Message::Rows(_)) => None,
        Err(e) => Some(format!(
            "internal error: a malformed message from the flusher process ({}; please report)",
            e.0
        )),
    }
}
