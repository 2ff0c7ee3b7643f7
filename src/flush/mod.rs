//! The flusher: a thread of its own per lighttpd process, so that nothing
//! the database does (slow, dead, locked) can stall lighttpd's event loop.
//!
//! Started from `worker_init` (after lighttpd has forked: a thread started
//! earlier would not exist in the worker), stopped from `cleanup`. It never
//! calls lighttpd: its log lines go through [`LogQueue`].
//!
//! Delivery rule (the seed's "zero each pair only after its upsert
//! succeeded", made transactional): counts handed over by lighttpd's thread
//! join the `unsent` set; one flush writes all of it in one transaction and
//! only a COMMIT removes what was written from `unsent`. Any error leaves
//! everything there, to be retried with capped exponential backoff.

mod mysql;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::DbConfig;
use crate::counters::{Counters, Row};
use crate::log::LogQueue;

use self::mysql::Link;

/// Retry delays after a failed flush: 1 s, 2 s, 4 s ... at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

enum Command {
    Deliver(Counters),
    Stop { deadline: Instant },
}

/// Handle to the flusher thread, owned by lighttpd's thread.
pub struct Flusher {
    commands: Sender<Command>,
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    /// Counts handed to the thread and not yet committed. Shared so that a
    /// stop that times out (thread stuck on a dead network) still knows
    /// exactly what was not delivered. The thread never holds the lock
    /// during I/O, and lighttpd's request path never takes it.
    unsent: Arc<Mutex<Counters>>,
}

/// How [`Flusher::stop`] ended: what the database did not get.
#[derive(Debug)]
pub struct Stopped {
    pub undelivered: Counters,
    /// The thread did not finish in time (stuck on the network) and was
    /// left to end with the process.
    pub timed_out: bool,
}

impl Flusher {
    pub fn start(db: DbConfig, log: Arc<LogQueue>) -> io::Result<Flusher> {
        let (commands, inbox) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        let unsent = Arc::new(Mutex::new(Counters::new()));
        let shared = unsent.clone();
        let thread = thread::Builder::new()
            .name("bw_counter-flush".into())
            .spawn(move || {
                let mut worker = Worker::new(Link::new(db), shared, log.clone());
                let outcome = catch_unwind(AssertUnwindSafe(|| worker.run(inbox)));
                if let Err(payload) = outcome {
                    log.push(format!(
                        "the flusher thread stopped after an internal error: {}",
                        crate::panic_message(payload.as_ref())
                    ));
                }
                let _ = exited_tx.send(());
            })?;
        Ok(Flusher {
            commands,
            exited,
            thread: Some(thread),
            unsent,
        })
    }

    /// Hands counts to the thread. If the thread is gone, they come back.
    pub fn deliver(&self, counts: Counters) -> Result<(), Counters> {
        self.commands
            .send(Command::Deliver(counts))
            .map_err(|e| match e.0 {
                Command::Deliver(c) => c,
                Command::Stop { .. } => unreachable!(),
            })
    }

    /// Asks the thread to deliver what it has (trying until `timeout` is
    /// nearly over) and to finish; waits at most `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Stopped {
        let started = Instant::now();
        // Leave the thread a little margin to answer before our deadline.
        let deadline = started + timeout.mul_f32(0.8);
        let _ = self.commands.send(Command::Stop { deadline });
        let timed_out = match self.exited.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => true,
        };
        let undelivered = self.unsent.lock().take();
        Stopped {
            undelivered,
            timed_out,
        }
    }
}

/// Whether the database took the last flush, for one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Up,
    Down,
}

struct Worker {
    link: Link,
    unsent: Arc<Mutex<Counters>>,
    log: Arc<LogQueue>,
    health: Health,
    failures: u32,
    next_try: Option<Instant>,
}

impl Worker {
    fn new(link: Link, unsent: Arc<Mutex<Counters>>, log: Arc<LogQueue>) -> Self {
        Worker {
            link,
            unsent,
            log,
            health: Health::Unknown,
            failures: 0,
            next_try: None,
        }
    }

    fn run(&mut self, inbox: Receiver<Command>) {
        self.startup_check();
        loop {
            let command = match self.next_try {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => inbox.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match command {
                Ok(Command::Deliver(counts)) => {
                    self.unsent.lock().merge(counts);
                    if self.next_try.is_none_or(|at| Instant::now() >= at) {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.flush(),
                Ok(Command::Stop { deadline }) => {
                    self.final_flush(deadline);
                    return;
                }
                // lighttpd's side is gone without a Stop: one last try.
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
        }
    }

    /// One line for the admin: the database is usable, or why not.
    fn startup_check(&mut self) {
        let target = self.link.describe();
        match self.link.check() {
            Ok(info) => {
                self.health = Health::Up;
                self.log.push(format!(
                    "database check ok: {target} (server {}): columns vhost, day, in, out present",
                    info.version
                ));
            }
            Err(e) => {
                // Counts as the "unreachable" line: the first failed flush
                // does not repeat it, and recovery is reported.
                self.health = Health::Down;
                self.log.push(format!(
                    "database check failed: {target}: {e}; lighttpd keeps serving and counting, \
                     and retries at each report"
                ));
            }
        }
    }

    /// Tries once to write everything unsent.
    fn flush(&mut self) {
        let rows: Vec<Row> = {
            let unsent = self.unsent.lock();
            if unsent.is_empty() {
                self.next_try = None;
                return;
            }
            unsent.rows()
        };
        match self.link.upsert(&rows) {
            Ok(()) => {
                let delivered = {
                    let mut unsent = self.unsent.lock();
                    unsent.subtract(&rows);
                    Counters::summary_of(&rows)
                };
                if self.health == Health::Down {
                    self.log.push(format!(
                        "database reachable again: {}; delivered {delivered}",
                        self.link.describe()
                    ));
                }
                self.health = Health::Up;
                self.failures = 0;
                self.next_try = None;
            }
            Err(e) => {
                if self.health != Health::Down {
                    let pending = self.unsent.lock().summary();
                    self.log.push(format!(
                        "database unreachable: {}: {e}; keeping {pending} and retrying \
                         (next line when it recovers)",
                        self.link.describe()
                    ));
                }
                self.health = Health::Down;
                self.failures = self.failures.saturating_add(1);
                let delay = Duration::from_secs(1u64 << self.failures.min(6).saturating_sub(1))
                    .min(MAX_BACKOFF);
                self.next_try = Some(Instant::now() + delay);
            }
        }
    }

    /// At stop: keep trying until `deadline` while the database refuses.
    fn final_flush(&mut self, deadline: Instant) {
        loop {
            self.flush();
            if self.unsent.lock().is_empty() {
                return;
            }
            let now = Instant::now();
            let pause = Duration::from_millis(250);
            if now + pause >= deadline {
                return;
            }
            thread::sleep(pause);
        }
    }
}
