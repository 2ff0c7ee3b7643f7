//! The flusher: a thread of its own per lighttpd process, so that nothing
//! the database does (slow, dead, locked) can stall lighttpd's event loop.
//!
//! Started from `worker_init` (after lighttpd has forked: a thread started
//! earlier would not exist in the worker), stopped from `cleanup`. It never
//! calls lighttpd: its log lines go through [`LogQueue`].
//!
//! Delivery rule (the seed's "zero each pair only after its upsert
//! succeeded", made transactional and exactly-once): counts handed over by
//! lighttpd's thread wait in `waiting`; a flush fixes them into a batch with
//! an id (process identity + sequence) and writes it in one transaction
//! that also records the id in the ledger table. Only a COMMIT (or finding
//! the id already in the ledger: an earlier attempt committed but its reply
//! was lost) retires the batch; any error keeps it, to be retried as is with
//! capped exponential backoff while new counts keep waiting.

mod mysql;

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::DbConfig;
use crate::counters::{Batch, Counters};
use crate::log::LogQueue;

pub use self::mysql::Delivered;
pub use self::mysql::{DbError, Link, MAX_ROWS_PER_STATEMENT, ROWS_PER_STATEMENT};

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
    books: Arc<Mutex<Books>>,
}

/// Everything handed to the flusher and not yet in the table.
#[derive(Debug, Default)]
struct Books {
    /// Not yet in a batch.
    waiting: Counters,
    /// Being delivered; retried unchanged until the database has it.
    inflight: Option<Batch>,
    /// Batches from the spool of an earlier run, delivered first.
    replay: VecDeque<Batch>,
    /// The claimed spool file they came from, removed once all are in.
    claimed: Option<PathBuf>,
}

/// How [`Flusher::stop`] ended: what the database did not get.
#[derive(Debug)]
pub struct Stopped {
    pub waiting: Counters,
    /// Batches with ids: the one being delivered and unreplayed spool ones.
    pub batches: Vec<Batch>,
    /// A claimed spool file whose batches are in `batches` (if any).
    pub claimed: Option<PathBuf>,
    /// The thread did not finish in time (stuck on the network) and was
    /// left to end with the process.
    pub timed_out: bool,
}

/// Batch ids: unique across processes, hosts and restarts.
#[derive(Debug)]
pub struct BatchIds {
    prefix: String,
    next: u64,
}

impl Default for BatchIds {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchIds {
    pub fn new() -> Self {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end])
                .chars()
                .take(64)
                .collect()
        } else {
            "unknown".to_string()
        };
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        BatchIds {
            prefix: format!("{host}/{}/{started}", std::process::id()),
            next: 1,
        }
    }

    pub fn next_id(&mut self) -> String {
        let id = format!("{}/{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

impl Flusher {
    /// `replay`: batches from a claimed spool file (`claimed`), delivered
    /// first and at once, not at the next report.
    pub fn start(
        db: DbConfig,
        log: Arc<LogQueue>,
        replay: Vec<Batch>,
        claimed: Option<PathBuf>,
    ) -> io::Result<Flusher> {
        let (commands, inbox) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        let books = Arc::new(Mutex::new(Books {
            replay: replay.into(),
            claimed,
            ..Books::default()
        }));
        let shared = books.clone();
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
            books,
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
        let mut books = self.books.lock();
        let mut batches: Vec<Batch> = books.inflight.take().into_iter().collect();
        batches.extend(books.replay.drain(..));
        Stopped {
            waiting: books.waiting.take(),
            batches,
            claimed: books.claimed.take(),
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
    books: Arc<Mutex<Books>>,
    ids: BatchIds,
    log: Arc<LogQueue>,
    health: Health,
    failures: u32,
    next_try: Option<Instant>,
}

impl Worker {
    fn new(link: Link, books: Arc<Mutex<Books>>, log: Arc<LogQueue>) -> Self {
        Worker {
            link,
            books,
            ids: BatchIds::new(),
            log,
            health: Health::Unknown,
            failures: 0,
            next_try: None,
        }
    }

    fn run(&mut self, inbox: Receiver<Command>) {
        self.startup_check();
        // Spooled counts go out at once, not at the next report.
        if !self.books.lock().replay.is_empty() {
            self.flush();
        }
        loop {
            let command = match self.next_try {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => inbox.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match command {
                Ok(Command::Deliver(counts)) => {
                    self.books.lock().waiting.merge(counts);
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

    fn push_notices(&mut self) {
        for line in self.link.take_notices() {
            self.log.push(line);
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
        self.push_notices();
    }

    /// Delivers batches until nothing waits or the database fails.
    fn flush(&mut self) {
        loop {
            let batch = {
                let mut books = self.books.lock();
                if books.inflight.is_none() {
                    if let Some(spooled) = books.replay.pop_front() {
                        books.inflight = Some(spooled);
                    } else if let Some(claimed) = books.claimed.take() {
                        // Everything from the spool is in: its file goes.
                        match std::fs::remove_file(&claimed) {
                            Ok(()) => self
                                .log
                                .push(format!("spool {} replayed completely", claimed.display())),
                            Err(e) => self.log.push(format!(
                                "cannot remove replayed spool {}: {e}",
                                claimed.display()
                            )),
                        }
                        continue;
                    } else if books.waiting.is_empty() {
                        self.next_try = None;
                        return;
                    } else {
                        let rows = books.waiting.take().rows();
                        books.inflight = Some(Batch {
                            id: self.ids.next_id(),
                            rows,
                        });
                    }
                }
                books.inflight.clone().expect("just set")
            };
            let result = self.link.deliver(&batch);
            self.push_notices();
            match result {
                Ok(delivered) => {
                    self.books.lock().inflight = None;
                    if self.health == Health::Down {
                        self.log.push(format!(
                            "database reachable again: {}; delivered {}",
                            self.link.describe(),
                            Counters::summary_of(&batch.rows)
                        ));
                    }
                    if delivered == Delivered::AlreadyApplied {
                        self.log.push(format!(
                            "batch {} was already in the table (its COMMIT reply had been lost); \
                             not added again",
                            batch.id
                        ));
                    }
                    self.health = Health::Up;
                    self.failures = 0;
                    self.next_try = None;
                }
                Err(e) => {
                    if self.health != Health::Down {
                        let pending = {
                            let books = self.books.lock();
                            let mut s = books.waiting.summary();
                            let b = Counters::summary_of(&batch.rows);
                            s.rows += b.rows;
                            s.traffic.bytes_in += b.traffic.bytes_in;
                            s.traffic.bytes_out += b.traffic.bytes_out;
                            s
                        };
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
                    return;
                }
            }
        }
    }

    fn nothing_undelivered(&self) -> bool {
        let books = self.books.lock();
        books.inflight.is_none() && books.replay.is_empty() && books.waiting.is_empty()
    }

    /// At stop: keep trying until `deadline` while the database refuses.
    fn final_flush(&mut self, deadline: Instant) {
        loop {
            self.flush();
            if self.nothing_undelivered() {
                return;
            }
            let pause = Duration::from_millis(250);
            if Instant::now() + pause >= deadline {
                return;
            }
            thread::sleep(pause);
        }
    }
}
