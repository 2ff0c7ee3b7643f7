//! The flusher: a thread in the flusher process (`process/`), so that
//! nothing the database does (slow, dead, locked) can stall lighttpd's
//! event loop, and lighttpd's own process keeps one thread. Started when
//! the flusher process starts, stopped when lighttpd's end of its socket
//! closes. Its log lines go through [`LogQueue`] and from there to
//! lighttpd.
//!
//! Delivery rule (the seed's "zero each pair only after its upsert
//! succeeded", made transactional and exactly-once): counts handed over by
//! lighttpd's thread wait in `waiting`; a flush fixes them into a batch with
//! an id (process identity + sequence) and writes it in one transaction
//! that also records the id in the ledger table. Only a COMMIT (or finding
//! the id already in the ledger: an earlier attempt committed but its reply
//! was lost) retires the batch; any error keeps it, to be retried as is with
//! capped exponential backoff while new counts keep waiting.
//!
//! - this file: the handle lighttpd's thread holds ([`Flusher`]), and what
//!   a delivery target must do ([`Sink`]);
//! - `worker.rs`: the thread's decisions (batches, retries, backoff, the
//!   outage and recovery lines), testable with a fake sink;
//! - `mysql.rs`: the real sink, the only code that talks to MySQL.

mod aside;
mod books;
mod connect;
mod mysql;
mod progress;
mod worker;

use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

// For connect.rs, which names them through `super` (so bw-report can
// compile it in too).
use crate::config::{Server, TlsMode};
use crate::counters::{Batch, Counters};
use crate::log::LogQueue;
use crate::spool::{Claimed, Rejects, Replay};

pub use self::aside::{set_aside_counts, set_aside_stopped, take_log};
use self::books::Books;
pub use self::books::PendingLimit;
pub use self::mysql::{Link, MAX_ROWS_PER_STATEMENT, ROWS_PER_STATEMENT};
pub use self::progress::{Attempt, FlusherState, Progress, Watcher};
use self::worker::{Command, SystemClock, Worker};
// For bench/galera.rs: retry lock conflicts exactly as the flusher does.
pub use self::worker::{lock_retry_pause, random_u64, LOCK_ATTEMPTS};

/// Where batches go: the database, or a fake in unit tests.
pub trait Sink {
    /// "table `t` in database d at host:port as user u", for log lines.
    fn describe(&self) -> String;
    /// Connects and proves the table is usable.
    fn check(&mut self) -> Result<ServerInfo, DbError>;
    /// Adds a batch's rows to the table, all or nothing, exactly once.
    fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError>;
    /// Lines worth logging that are not errors of the current call.
    fn take_notices(&mut self) -> Vec<String>;
    /// Whether delivery is exactly-once now (its ledger table works).
    fn exactly_once(&self) -> bool {
        true
    }
    /// Which of the configured servers is in use (or tried next).
    fn server_in_use(&self) -> usize {
        0
    }
}

/// A database failure, ready for the log: the server's own code and text
/// for SQL errors, the OS error for network ones. Never contains the
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub code: Option<u16>,
    pub message: String,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Ledger rows older than this are pruned. Retries happen within minutes;
/// a spooled batch comes back at the next start, which must be sooner than
/// this for the ledger to still know it (the README says so, and a replay
/// of an older spool says so in the log).
pub const LEDGER_RETENTION_DAYS: u32 = 7;
/// [`LEDGER_RETENTION_DAYS`] as a duration.
pub const LEDGER_RETENTION: Duration = Duration::from_secs(LEDGER_RETENTION_DAYS as u64 * 86_400);

/// Lock-wait timeout: the server rolled the transaction back.
pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Deadlock: the server rolled the transaction back.
pub const ER_LOCK_DEADLOCK: u16 = 1213;

/// What a failed delivery means for its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database is away, busy or not ready (lost connection, timeout,
    /// deadlock, shutdown, read-only, a cluster node not ready, and any
    /// error not known to be permanent): the same batch goes again later.
    Transient,
    /// A value in some row cannot be stored (too long, out of range, an
    /// invalid date...): the rows that cause it are found and set aside,
    /// the others delivered.
    RowRefused,
    /// Every row is refused for a reason the admin must fix (rights, a
    /// missing database, table or column): the counts are kept and the log
    /// says what is missing.
    Setup,
}

/// Errors about a value in a row (MariaDB and MySQL server error codes).
const ROW_REFUSED: [u16; 11] = [
    1048, // column cannot be null
    1216, // foreign key: no parent row
    1264, // out of range value
    1265, // data truncated
    1292, // incorrect (date) value
    1366, // incorrect integer or string value
    1406, // data too long for column
    1452, // foreign key constraint fails
    1690, // value out of range (in + VALUES(in) past a bigint)
    3819, // check constraint violated (MySQL)
    4025, // CONSTRAINT failed (MariaDB)
];

/// Errors every row shares, each with what the admin should do.
const SETUP: [(u16, &str); 9] = [
    (1044, GRANT_HINT),
    (1045, "check bw_counter.mysql_user and its password"),
    (1049, "create the database (examples/schema.sql)"),
    (1054, "give the table the columns of examples/schema.sql"),
    (1142, GRANT_HINT),
    (1143, GRANT_HINT),
    (1146, "create the table (examples/schema.sql)"),
    (1227, GRANT_HINT),
    (1370, GRANT_HINT),
];

const GRANT_HINT: &str = "grant the module's user SELECT, INSERT, UPDATE on the table and \
                          SELECT, INSERT, DELETE on the ledger table (examples/grants.sql)";

impl DbError {
    /// Deadlock and lock-wait timeout: trying again at once is the
    /// documented remedy.
    pub fn is_lock_conflict(&self) -> bool {
        matches!(self.code, Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT))
    }

    pub fn failure(&self) -> Failure {
        match self.code {
            Some(code) if ROW_REFUSED.contains(&code) => Failure::RowRefused,
            Some(code) if SETUP.iter().any(|(c, _)| *c == code) => Failure::Setup,
            _ => Failure::Transient,
        }
    }

    /// What the admin should do about a [`Failure::Setup`] error.
    pub fn hint(&self) -> Option<&'static str> {
        let code = self.code?;
        SETUP
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, hint)| *hint)
    }
}

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
}

/// How a batch reached the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Applied,
    /// The ledger already had its id: an earlier attempt committed but its
    /// reply was lost. Acknowledged without adding the rows again.
    AlreadyApplied,
}

/// What a flusher thread needs besides its books.
pub struct Parts<F> {
    /// Makes the link to the database (again after a panic).
    pub make_sink: F,
    /// Where its lines go, for lighttpd's thread to write out.
    pub log: Arc<LogQueue>,
    /// Where rows the table refuses for good go.
    pub rejects: Rejects,
    /// How many rows wait in memory during an outage, and where the rest go.
    pub limit: PendingLimit,
    /// Told about every attempt (the status URL), if anyone asks.
    pub watcher: Option<Arc<dyn Watcher>>,
}

/// Handle to the flusher thread, owned by lighttpd's thread.
pub struct Flusher {
    commands: Sender<Command>,
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    /// Counts handed to the thread and not yet committed: lighttpd's thread
    /// puts counts here itself, so that whatever state the thread is in
    /// (blocked on a dead network, say), a stop finds every count that is
    /// not known to be in the table. The thread never holds the lock during
    /// I/O, and lighttpd's request path never takes it.
    books: Arc<Mutex<Books>>,
}

/// How [`Flusher::stop`] ended: what the database did not get.
#[derive(Debug)]
pub struct Stopped {
    pub waiting: Counters,
    /// Batches with ids: the one being delivered (whose COMMIT outcome may
    /// be unknown) and unreplayed spool ones.
    pub batches: Vec<Batch>,
    /// Claimed spool files of earlier runs, whose unread rest is not in
    /// `batches`.
    pub claimed: Vec<Claimed>,
    /// The thread did not finish in time (blocked on the network) and was
    /// left to end with the process.
    pub timed_out: bool,
}

/// Spawns a named thread of the flusher process.
pub(crate) fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    thread::Builder::new().name(name.into()).spawn(f)
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
        // SAFETY: gethostname(2) writes at most `buf.len()` bytes into
        // `buf`, which is that long and ours.
        let named = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let host = if named {
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
    /// Starts the thread, which checks a sink made by `parts.make_sink`
    /// first and then delivers `replay` (an earlier run's spool) at once,
    /// not at the next report. If the thread's work panics (a bug), it is
    /// logged and the work starts again with a new sink, after a pause;
    /// the books keep every count.
    pub fn start<S, F>(parts: Parts<F>, replay: Replay) -> io::Result<Flusher>
    where
        S: Sink,
        F: Fn() -> S + Send + 'static,
    {
        let books = Arc::new(Mutex::new(Books::new(replay)));
        Flusher::spawn(books, parts)
    }

    /// A thread working on `books`.
    fn spawn<S, F>(books: Arc<Mutex<Books>>, parts: Parts<F>) -> io::Result<Flusher>
    where
        S: Sink,
        F: Fn() -> S + Send + 'static,
    {
        let Parts {
            make_sink,
            log,
            rejects,
            limit,
            watcher,
        } = parts;
        let (commands, inbox) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        let shared = books.clone();
        let thread = spawn_named("bw_counter-flush", move || {
            for restart in 1u32.. {
                let mut worker = Worker::new(
                    make_sink(),
                    shared.clone(),
                    log.clone(),
                    SystemClock,
                    rejects.clone(),
                    limit.clone(),
                );
                worker.watch(watcher.clone());
                let Err(payload) = catch_unwind(AssertUnwindSafe(|| worker.run(&inbox))) else {
                    break;
                };
                let pause = Duration::from_secs(u64::from(restart.min(30)));
                log.push(format!(
                    "internal error in the flusher thread (please report): {}; its counts are \
                     kept, and it starts again in {}s",
                    crate::panic_message(payload.as_ref()),
                    pause.as_secs()
                ));
                drop(worker);
                thread::sleep(pause);
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

    /// Hands counts to the thread, without ever waiting: if the thread
    /// happens to hold the books just now, the counts come back, to be
    /// handed over at the next report.
    pub fn deliver(&self, counts: Counters) -> Result<(), Counters> {
        let Some(mut books) = self.books.try_lock() else {
            return Err(counts);
        };
        books.hand_over(counts);
        drop(books);
        // A thread that is gone (it logged why) leaves the counts in the
        // books, where the stop finds them.
        let _ = self.commands.send(Command::Wake);
        Ok(())
    }

    /// Hands over the `last` counts, asks the thread to deliver what it has
    /// (trying until `timeout` is nearly over) and to finish; waits at most
    /// `timeout`. What was not delivered is in the result, in flight or not.
    pub fn stop(mut self, last: Counters, timeout: Duration) -> Stopped {
        let started = Instant::now();
        // The thread never holds the lock during I/O: this waits at most
        // for it to finish a bookkeeping step.
        self.books.lock().hand_over(last);
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
        let (waiting, batches, claimed) = self.books.lock().undelivered();
        Stopped {
            waiting,
            batches,
            claimed,
            timed_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::SyncSender;

    use super::*;
    use crate::counters::Traffic;
    use crate::day::Day;

    /// A database that answers the check, then hangs in every delivery
    /// until the test lets it go (or gives up on it).
    struct HungSink {
        entered: SyncSender<String>,
        release: Receiver<()>,
    }

    impl Sink for HungSink {
        fn describe(&self) -> String {
            "hung db".into()
        }
        fn check(&mut self) -> Result<ServerInfo, DbError> {
            Ok(ServerInfo {
                version: "fake".into(),
            })
        }
        fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
            let _ = self.entered.send(batch.id.clone());
            let _ = self.release.recv();
            Err(DbError {
                code: None,
                message: "network error: timed out".into(),
            })
        }
        fn take_notices(&mut self) -> Vec<String> {
            Vec::new()
        }
    }

    fn counts(host: &str, bytes_in: u64) -> Counters {
        let mut c = Counters::new();
        let traffic = Traffic {
            bytes_in,
            bytes_out: 1,
        };
        c.add(host, Day(20_420), traffic);
        c
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean_for_the_batch() {
        let e = |code| DbError {
            code,
            message: String::new(),
        };
        for transient in [
            None,
            Some(1213),
            Some(1205),
            Some(1053),
            Some(1290),
            Some(1047),
        ] {
            assert_eq!(e(transient).failure(), Failure::Transient, "{transient:?}");
        }
        for row in [1406, 1264, 1366, 1292, 1690, 4025] {
            assert_eq!(e(Some(row)).failure(), Failure::RowRefused, "{row}");
        }
        for setup in [1142, 1146, 1054, 1044] {
            assert_eq!(e(Some(setup)).failure(), Failure::Setup, "{setup}");
        }
        assert!(e(Some(1142)).hint().unwrap().contains("grant"));
        assert!(e(Some(1146)).hint().unwrap().contains("create the table"));
        assert_eq!(e(Some(1406)).hint(), None);
    }

    #[test]
    fn a_stop_finds_every_count_while_the_thread_hangs_in_a_delivery() {
        let (entered_tx, entered) = mpsc::sync_channel(10);
        let (release_tx, release) = mpsc::channel();
        let sink = HungSink {
            entered: entered_tx,
            release,
        };
        let log = Arc::new(LogQueue::default());
        let sink = Mutex::new(Some(sink));
        let parts = Parts {
            make_sink: move || sink.lock().take().expect("one sink"),
            log,
            rejects: Rejects::default(),
            limit: PendingLimit::for_hosts(10, None),
            watcher: None,
        };
        let flusher = Flusher::start(parts, Replay::default()).unwrap();
        flusher.deliver(counts("a.example", 10)).unwrap();
        let in_flight = entered.recv_timeout(Duration::from_secs(10)).unwrap();
        // Reports keep coming while the thread hangs.
        flusher.deliver(counts("b.example", 20)).unwrap();
        flusher.deliver(counts("b.example", 30)).unwrap();

        let t = Instant::now();
        let stopped = flusher.stop(counts("c.example", 40), Duration::from_millis(300));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "bounded: {:?}",
            t.elapsed()
        );
        assert!(stopped.timed_out);
        assert_eq!(stopped.batches.len(), 1);
        assert_eq!(stopped.batches[0].id, in_flight, "kept under its id");
        assert_eq!(stopped.batches[0].rows, counts("a.example", 10).rows());
        let mut waiting = counts("b.example", 20);
        waiting.merge(counts("b.example", 30));
        waiting.merge(counts("c.example", 40));
        assert_eq!(stopped.waiting, waiting);
        drop(release_tx);
    }
}
