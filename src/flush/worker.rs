//! The flusher thread's decisions: which batch goes next, when to retry it,
//! what the admin is told. Talks to the database only through [`Sink`] and
//! reads time only through [`Clock`], so all of it is unit-tested with
//! fakes (and the MariaDB integration tests run it for real).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::books::{Books, Bound, PendingLimit};
use super::progress::{Attempt, FlusherState, Watcher};
use super::{BatchIds, DbError, Delivered, Failure, Sink, LEDGER_RETENTION};
use crate::counters::{Batch, Counters};
use crate::log::LogQueue;
use crate::schema;
use crate::spool::{self, Claimed, Rejects};

/// Retry delays after a failed flush: 1 s, 2 s, 4 s ... at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts of a batch that meets a deadlock or lock-wait timeout before
/// it counts as a failed flush. On a Galera cluster, writers on different
/// nodes adding to the same (vhost, day) rows lose certification to each
/// other and get a deadlock at COMMIT: enough attempts, spread by
/// [`lock_retry_pause`], let N writers converge: bench/galera.rs, three
/// writers adding to the same 1,000 rows through three nodes without
/// pause, saw 8 attempts run out; 20 (about 5 s of pauses at most) did not.
pub const LOCK_ATTEMPTS: u32 = 20;
/// The first pause after a lock conflict; doubled per attempt, at most
/// [`MAX_LOCK_PAUSE`], a random part of it taken ("full jitter"), so that
/// writers that collided do not collide again in step.
const LOCK_PAUSE: Duration = Duration::from_millis(10);
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(500);
/// At stop, the pause between two attempts while the database refuses.
const FINAL_RETRY_PAUSE: Duration = Duration::from_millis(250);

pub(super) enum Command {
    /// New counts are in the books.
    Wake,
    Stop {
        deadline: Instant,
    },
}

/// Time, as the worker sees it.
pub(super) trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&self, pause: Duration);
}

pub(super) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, pause: Duration) {
        std::thread::sleep(pause);
    }
}

/// What to do next in a flush.
enum Next {
    Deliver(Batch),
    /// A replayed spool is all in: its file goes.
    Retire(Claimed),
    /// A portion of a spool was read into the queue (or could not be).
    Read,
    Idle,
}

/// Whether the database took the last flush, for one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Up,
    /// Away or not answering ([`Failure::Transient`]).
    Down,
    /// Answering, but refusing every row ([`Failure::Setup`]).
    Refusing,
    /// Answering, but every attempt lost a lock conflict to other writers
    /// of the same rows (on a cluster: certification failures).
    Contended,
}

/// The pause before the next attempt after `failures` failed flushes in a
/// row: 1 s, 2 s, 4 s ... capped at [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exponent = failures.clamp(1, 6) - 1;
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

pub(super) struct Worker<S, C> {
    sink: S,
    books: Arc<Mutex<Books>>,
    ids: BatchIds,
    log: Arc<LogQueue>,
    clock: C,
    rejects: Rejects,
    limit: PendingLimit,
    /// Rows went to the spool during this outage: claimed back when the
    /// database answers again.
    spilled: bool,
    health: Health,
    failures: u32,
    next_try: Option<Instant>,
    watcher: Option<Arc<dyn Watcher>>,
}

impl<S: Sink, C: Clock> Worker<S, C> {
    pub(super) fn new(
        sink: S,
        books: Arc<Mutex<Books>>,
        log: Arc<LogQueue>,
        clock: C,
        rejects: Rejects,
        limit: PendingLimit,
    ) -> Self {
        Worker {
            sink,
            books,
            ids: BatchIds::new(),
            log,
            clock,
            rejects,
            limit,
            spilled: false,
            health: Health::Unknown,
            failures: 0,
            next_try: None,
            watcher: None,
        }
    }

    /// Who is told about every attempt (the status URL).
    pub(super) fn watch(&mut self, watcher: Option<Arc<dyn Watcher>>) {
        self.watcher = watcher;
    }

    fn tell(&self, attempt: Attempt<'_>) {
        if let Some(watcher) = &self.watcher {
            let pending = self.books.lock().pending_summary();
            let exactly_once = self.sink.exactly_once();
            let state = FlusherState {
                pending,
                exactly_once,
                server: self.sink.server_in_use(),
            };
            watcher.attempt(attempt, state);
        }
    }

    pub(super) fn run(&mut self, inbox: &Receiver<Command>) {
        self.startup_check();
        // Spooled counts (and, after a restart, whatever the books hold) go
        // out at once, not at the next report.
        if !self.books.lock().is_empty() {
            self.flush();
        }
        loop {
            let command = match self.next_try {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => inbox.recv_timeout(at.saturating_duration_since(self.clock.now())),
            };
            match command {
                Ok(Command::Wake) => {
                    self.keep_within_limit();
                    if self.next_try.is_none_or(|at| self.clock.now() >= at) {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.keep_within_limit();
                    self.flush();
                }
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
        for line in self.sink.take_notices() {
            self.log.push(line);
        }
    }

    /// One line for the admin: the database is usable, or why not.
    fn startup_check(&mut self) {
        let result = self.sink.check();
        // After the check: with a list of servers, it chose the one in use.
        let target = self.sink.describe();
        match result {
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
                let hint = e.hint().map(|h| format!("; {h}")).unwrap_or_default();
                self.log.push(format!(
                    "database check failed: {target}: {e}{hint}; lighttpd keeps serving and \
                     counting, and retries at each report"
                ));
            }
        }
        self.push_notices();
    }

    /// The batch to deliver: the one in flight (retried unchanged), else
    /// the next queued one, else the next portion of a spool, else the
    /// waiting counts under a new id.
    fn next(&mut self) -> Next {
        let mut books = self.books.lock();
        if books.inflight.is_none() {
            if let Some(queued) = books.queued.pop_front() {
                books.inflight = Some(queued);
            } else if let Some(spool) = books.claimed.front_mut() {
                if spool.is_exhausted() {
                    return books.claimed.pop_front().map_or(Next::Idle, Next::Retire);
                }
                // Under the lock, so that the file position and the queue
                // move together: a stop finds each record either in the
                // books or in the unread rest.
                match spool.read_portion() {
                    Ok(portion) => {
                        let fit = spool::fitting(portion.batches, &self.rejects, &self.log);
                        books.queued.extend(fit);
                    }
                    Err(e) => {
                        let unread = books.claimed.pop_front().map(Claimed::leave);
                        self.log.push(match unread {
                            Some(Ok(left)) => format!(
                                "cannot read a spool: {e}; its unread rest stays in {} for the \
                                 next start",
                                left.display()
                            ),
                            _ => format!("cannot read a spool: {e}; it stays for the next start"),
                        });
                    }
                }
                return Next::Read;
            } else if books.waiting.is_empty() {
                return Next::Idle;
            } else {
                let rows = books.waiting.take().rows();
                books.inflight = Some(Batch {
                    id: self.ids.next_id(),
                    rows,
                });
            }
        }
        books.inflight.clone().map_or(Next::Idle, Next::Deliver)
    }

    /// Bounds the rows in memory (see books.rs) and says what it did.
    fn keep_within_limit(&mut self) {
        let ids = &mut self.ids;
        let bound = self.books.lock().bound(&self.limit, || ids.next_id());
        let limit = self.limit.rows;
        match bound {
            None => {}
            Some(Bound::Spilled {
                pending,
                summary,
                path,
            }) => {
                self.spilled = true;
                self.tell(Attempt::Idle);
                self.log.push(format!(
                    "{pending} rows are waiting for the database, more than the {limit} kept in \
                     memory: wrote {summary} to spool file {}; they are delivered from there \
                     once it answers",
                    path.display()
                ));
            }
            Some(Bound::Folded { pending, folded }) => self.log.push(format!(
                "{pending} rows are waiting for the database, more than the {limit} kept in \
                 memory, and no spool file takes the rest: folded the {folded} smallest into the \
                 _other row of their day (their bytes are kept, their vhosts are not)"
            )),
        }
    }

    /// What went to the spool during the outage is claimed back, to be
    /// read a portion at a time: `true` if there is some.
    fn reclaim_spill(&mut self) -> bool {
        let Some(path) = self.limit.spool.as_ref().filter(|_| self.spilled) else {
            return false;
        };
        self.spilled = false;
        let replay = spool::take_over(path, &self.log, LEDGER_RETENTION);
        let found = !replay.claimed.is_empty();
        self.books.lock().claimed.extend(replay.claimed);
        found
    }

    /// Delivers batches until nothing waits or the database fails.
    fn flush(&mut self) {
        loop {
            let batch = match self.next() {
                Next::Deliver(batch) => batch,
                Next::Retire(claimed) => {
                    claimed.retire(&self.log);
                    continue;
                }
                Next::Read => continue,
                Next::Idle if self.spilled => {
                    // Only the spool holds counts: read them back once the
                    // database answers (asked without holding any rows).
                    let started = self.clock.now();
                    if let Err(e) = self.sink.check() {
                        self.failed(&Batch::default(), &e, started);
                        return;
                    }
                    if !self.reclaim_spill() {
                        self.next_try = None;
                        return;
                    }
                    continue;
                }
                Next::Idle => {
                    self.next_try = None;
                    self.tell(Attempt::Idle);
                    return;
                }
            };
            #[cfg(feature = "panic-test")]
            panic_if_asked(&batch);
            let started = self.clock.now();
            let result = self.deliver(&batch);
            self.push_notices();
            match result {
                Ok(delivered) => self.delivered(&batch, delivered, started),
                Err(e) if e.failure() == Failure::RowRefused => self.refused(batch, &e),
                Err(e) => {
                    self.failed(&batch, &e, started);
                    return;
                }
            }
        }
    }

    /// The table refused a value in the batch (its transaction rolled
    /// back, so none of it is in): split it until the rows that cause the
    /// refusal are alone, set those aside, deliver the rest.
    fn refused(&mut self, batch: Batch, e: &DbError) {
        let mut books = self.books.lock();
        books.inflight = None;
        if batch.rows.len() > 1 {
            let (first, second) = schema::halves(&batch);
            books.queued.push_front(second);
            books.queued.push_front(first);
            return;
        }
        drop(books);
        self.rejects.set_aside(&batch, &e.to_string(), &self.log);
        self.tell(Attempt::SetAside {
            rows: batch.rows.len(),
        });
    }

    /// One delivery; a lock conflict (the server rolled the transaction
    /// back) is retried after a short random pause, a few times.
    fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
        let mut attempt = 1;
        loop {
            match self.sink.deliver(batch) {
                Err(e) if e.is_lock_conflict() && attempt < LOCK_ATTEMPTS => {
                    self.clock.sleep(lock_retry_pause(attempt, random_u64()));
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    fn delivered(&mut self, batch: &Batch, delivered: Delivered, started: Instant) {
        self.books.lock().inflight = None;
        let took = self.clock.now().saturating_duration_since(started);
        let rows = batch.rows.len();
        self.tell(Attempt::Delivered { rows, took });
        let summary = Counters::summary_of(&batch.rows);
        match self.health {
            Health::Down => self.log.push(format!(
                "database reachable again: {}; delivered {summary}",
                self.sink.describe()
            )),
            Health::Refusing | Health::Contended => self.log.push(format!(
                "the database takes the counts again: {}; delivered {summary}",
                self.sink.describe()
            )),
            Health::Unknown | Health::Up => {}
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

    /// The batch stays in flight; one line when the database goes away or
    /// starts refusing every row, saying what to do about it.
    fn failed(&mut self, batch: &Batch, e: &DbError, started: Instant) {
        let took = self.clock.now().saturating_duration_since(started);
        self.tell(Attempt::Failed {
            error: &e.to_string(),
            took,
        });
        let health = match e.failure() {
            Failure::Setup => Health::Refusing,
            _ if e.is_lock_conflict() => Health::Contended,
            _ => Health::Down,
        };
        if self.health != health {
            let mut pending = self.books.lock().waiting.summary();
            pending += Counters::summary_of(&batch.rows);
            let target = self.sink.describe();
            self.log.push(match (health, e.hint()) {
                (Health::Refusing, Some(hint)) => format!(
                    "the database refuses the counts: {target}: {e}; {hint}; keeping {pending} \
                     and retrying (next line when it takes them)"
                ),
                (Health::Contended, _) => format!(
                    "the database turned the flush away {LOCK_ATTEMPTS} times with lock \
                     conflicts (other writers adding to the same rows): {target}: {e}; keeping \
                     {pending} and retrying (next line when it takes them)"
                ),
                _ => format!(
                    "database unreachable: {target}: {e}; keeping {pending} and retrying \
                     (next line when it recovers)"
                ),
            });
        }
        self.health = health;
        self.failures = self.failures.saturating_add(1);
        self.next_try = Some(self.clock.now() + backoff(self.failures));
    }

    /// At stop: keep trying until `deadline` while the database refuses.
    fn final_flush(&mut self, deadline: Instant) {
        loop {
            self.flush();
            if self.books.lock().is_empty() {
                return;
            }
            if self.clock.now() + FINAL_RETRY_PAUSE >= deadline {
                return;
            }
            self.clock.sleep(FINAL_RETRY_PAUSE);
        }
    }
}

/// Test builds only: the first batch with a row for host
/// "flusher-panic.test" makes the flusher's work panic (once per process).
#[cfg(feature = "panic-test")]
fn panic_if_asked(batch: &Batch) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if batch.rows.iter().any(|r| &*r.host == "flusher-panic.test")
        && !DONE.swap(true, Ordering::SeqCst)
    {
        panic!("forced by the panic-test feature in the flusher");
    }
}

/// The pause before attempt `attempt + 1` after a lock conflict: a
/// `random` part of [`LOCK_PAUSE`] doubled `attempt - 1` times, at most
/// [`MAX_LOCK_PAUSE`].
pub fn lock_retry_pause(attempt: u32, random: u64) -> Duration {
    let ceiling = LOCK_PAUSE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_LOCK_PAUSE);
    let micros = ceiling.as_micros() as u64;
    Duration::from_micros(random % micros.max(1))
}

/// A random number from std's per-process random hash keys (no crate
/// needed for jitter).
pub fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::super::{ServerInfo, ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT};
    use super::*;
    use crate::counters::Traffic;
    use crate::day::Day;
    use crate::spool::Replay;
    use crate::testdir::TestDir;

    /// A sink that answers from a script and records what it was given.
    #[derive(Default)]
    struct FakeSink {
        check: Option<Result<ServerInfo, DbError>>,
        answers: VecDeque<Result<Delivered, DbError>>,
        notices: Vec<String>,
        /// Ids of the batches offered, in order, with their row counts.
        offered: Vec<(String, usize)>,
        /// A vhost the table cannot hold: any batch with it is refused.
        too_long: Option<&'static str>,
        /// Rows committed, by vhost.
        committed: Vec<String>,
    }

    impl Sink for FakeSink {
        fn describe(&self) -> String {
            "fake db".into()
        }
        fn check(&mut self) -> Result<ServerInfo, DbError> {
            self.check.take().unwrap_or(Ok(ServerInfo {
                version: "10.11-fake".into(),
            }))
        }
        fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
            self.offered.push((batch.id.clone(), batch.rows.len()));
            if let Some(bad) = self.too_long {
                if batch.rows.iter().any(|r| &*r.host == bad) {
                    return Err(DbError {
                        code: Some(1406),
                        message: "ERROR 1406 (22001): Data too long for column 'vhost'".into(),
                    });
                }
            }
            let answer = self.answers.pop_front().unwrap_or(Ok(Delivered::Applied));
            if answer == Ok(Delivered::Applied) {
                self.committed
                    .extend(batch.rows.iter().map(|r| r.host.to_string()));
            }
            answer
        }
        fn take_notices(&mut self) -> Vec<String> {
            std::mem::take(&mut self.notices)
        }
    }

    /// Time that moves only when the worker sleeps or the test says so.
    struct FakeClock {
        now: Cell<Instant>,
        slept: RefCell<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock {
                now: Cell::new(Instant::now()),
                slept: RefCell::default(),
            }
        }

        fn at(&self) -> Instant {
            self.now.get()
        }
    }

    impl Clock for &FakeClock {
        fn now(&self) -> Instant {
            self.now.get()
        }
        fn sleep(&self, pause: Duration) {
            self.slept.borrow_mut().push(pause);
            self.now.set(self.now.get() + pause);
        }
    }

    fn network_error() -> DbError {
        DbError {
            code: None,
            message: "network error: Connection refused (os error 111)".into(),
        }
    }

    fn sql_error(code: u16) -> DbError {
        DbError {
            code: Some(code),
            message: format!("ERROR {code}"),
        }
    }

    fn counts(host: &str, bytes_in: u64, bytes_out: u64) -> Counters {
        let mut c = Counters::new();
        c.add(
            host,
            Day(20_420),
            Traffic {
                bytes_in,
                bytes_out,
            },
        );
        c
    }

    fn worker(sink: FakeSink, clock: &FakeClock) -> (Worker<FakeSink, &FakeClock>, Arc<LogQueue>) {
        worker_with(sink, clock, Replay::default())
    }

    fn worker_with(
        sink: FakeSink,
        clock: &FakeClock,
        replay: Replay,
    ) -> (Worker<FakeSink, &FakeClock>, Arc<LogQueue>) {
        let log = Arc::new(LogQueue::default());
        let books = Arc::new(Mutex::new(Books::new(replay)));
        (
            Worker::new(
                sink,
                books,
                log.clone(),
                clock,
                Rejects::default(),
                PendingLimit::for_hosts(1000, None),
            ),
            log,
        )
    }

    fn hand_over(w: &Worker<FakeSink, &FakeClock>, c: Counters) {
        w.books.lock().hand_over(c);
    }

    #[test]
    fn waiting_counts_go_out_as_one_batch_and_leave_the_books() {
        let clock = FakeClock::new();
        let (mut w, log) = worker(FakeSink::default(), &clock);
        hand_over(&w, counts("a.example", 1, 2));
        hand_over(&w, counts("b.example", 3, 4));
        w.flush();
        assert_eq!(w.sink.offered.len(), 1);
        assert_eq!(w.sink.offered[0].1, 2, "both rows in one batch");
        assert!(w.books.lock().is_empty());
        assert_eq!(w.next_try, None);
        assert!(log.drain().lines.is_empty(), "nothing to say");
        w.flush();
        assert_eq!(w.sink.offered.len(), 1, "nothing left to deliver");
    }

    /// Records what the worker tells it, with the pending rows then.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(String, usize)>>);

    impl Watcher for Recorder {
        fn attempt(&self, attempt: Attempt<'_>, state: FlusherState) {
            let what = match attempt {
                Attempt::Delivered { rows, .. } => format!("delivered {rows}"),
                Attempt::Failed { error, .. } => format!("failed: {error}"),
                Attempt::SetAside { rows } => format!("set aside {rows}"),
                Attempt::Idle => "idle".to_string(),
            };
            self.0.lock().unwrap().push((what, state.pending.rows));
        }
    }

    #[test]
    fn the_watcher_hears_every_attempt_with_what_still_waits() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [Err(network_error())].into(),
            ..FakeSink::default()
        };
        let (mut w, _log) = worker(sink, &clock);
        let recorder = Arc::new(Recorder::default());
        w.watch(Some(recorder.clone()));
        hand_over(&w, counts("a.example", 10, 20));
        w.flush();
        hand_over(&w, counts("b.example", 1, 1));
        (&clock).sleep(Duration::from_secs(1));
        w.flush();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                (
                    "failed: network error: Connection refused (os error 111)".to_string(),
                    1
                ),
                ("delivered 1".to_string(), 1),
                ("delivered 1".to_string(), 0),
                ("idle".to_string(), 0),
            ]
        );
    }

    #[test]
    fn an_outage_keeps_the_batch_retries_it_unchanged_and_says_so_once_each_way() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [
                Err(network_error()),
                Err(network_error()),
                Err(network_error()),
            ]
            .into(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        w.health = Health::Up;
        hand_over(&w, counts("a.example", 10, 20));
        let start = clock.at();
        w.flush();
        assert_eq!(
            log.drain().lines,
            vec![
                "database unreachable: fake db: network error: Connection refused (os error 111); \
                 keeping 10 bytes in, 20 bytes out in 1 row and retrying (next line when it recovers)"
            ]
        );
        assert_eq!(w.next_try, Some(start + Duration::from_secs(1)));

        // New counts wait behind the batch in flight.
        hand_over(&w, counts("b.example", 5, 5));
        for (attempt, backoff_secs) in [(2, 2), (3, 4)] {
            clock.now.set(w.next_try.unwrap());
            w.flush();
            assert_eq!(
                w.next_try,
                Some(clock.at() + Duration::from_secs(backoff_secs)),
                "attempt {attempt}"
            );
        }
        assert!(log.drain().lines.is_empty(), "no line per retry");

        clock.now.set(w.next_try.unwrap());
        w.flush();
        let first = w.sink.offered[0].0.clone();
        let ids: Vec<&str> = w.sink.offered.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids.len(), 5, "{ids:?}");
        assert!(
            ids[..4].iter().all(|id| *id == first),
            "same batch, same id: {ids:?}"
        );
        assert_ne!(ids[4], first, "the counts that waited get their own id");
        assert_eq!(w.sink.offered[4].1, 1);
        assert_eq!(
            log.drain().lines,
            vec!["database reachable again: fake db; delivered 10 bytes in, 20 bytes out in 1 row"]
        );
        assert!(w.books.lock().is_empty());
        assert_eq!((w.failures, w.next_try), (0, None));
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let secs: Vec<u64> = (1..=9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_lock_conflict_is_retried_at_once_without_an_outage() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [
                Err(sql_error(ER_LOCK_DEADLOCK)),
                Err(sql_error(ER_LOCK_WAIT_TIMEOUT)),
            ]
            .into(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        assert_eq!(w.sink.offered.len(), 3);
        assert!(w.books.lock().is_empty());
        assert!(log.drain().lines.is_empty());
        assert_eq!(w.health, Health::Up);
    }

    #[test]
    fn lock_retry_pauses_grow_are_random_and_capped() {
        assert_eq!(lock_retry_pause(1, 0), Duration::ZERO);
        assert_eq!(lock_retry_pause(1, 9_999), Duration::from_micros(9_999));
        assert_eq!(
            lock_retry_pause(1, 10_000),
            Duration::ZERO,
            "below the ceiling"
        );
        assert_eq!(lock_retry_pause(3, 39_999), Duration::from_micros(39_999));
        assert!(lock_retry_pause(30, u64::MAX) < MAX_LOCK_PAUSE);
        assert_ne!(random_u64(), random_u64(), "fresh keys each time");
    }

    #[test]
    fn lock_conflicts_that_persist_are_a_failed_flush() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: (0..LOCK_ATTEMPTS)
                .map(|_| Err(sql_error(ER_LOCK_DEADLOCK)))
                .collect(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        assert_eq!(w.sink.offered.len(), LOCK_ATTEMPTS as usize);
        assert_eq!(w.health, Health::Contended);
        assert!(w.books.lock().inflight.is_some(), "kept");
        let pauses = clock.slept.borrow().clone();
        assert_eq!(
            pauses.len(),
            LOCK_ATTEMPTS as usize - 1,
            "a pause between attempts"
        );
        assert!(pauses.iter().all(|p| *p < MAX_LOCK_PAUSE), "{pauses:?}");
        let line = &log.drain().lines[0];
        assert!(
            line.starts_with(
                "the database turned the flush away 20 times with lock conflicts (other writers \
                 adding to the same rows): fake db: ERROR 1213;"
            ),
            "{line}"
        );
    }

    #[test]
    fn other_sql_errors_are_not_retried_at_once() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [Err(sql_error(1053))].into(),
            ..FakeSink::default()
        };
        let (mut w, _log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        assert_eq!(w.sink.offered.len(), 1);
        assert!(w.next_try.is_some());
    }

    #[test]
    fn a_batch_the_ledger_already_has_is_retired_and_logged() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [Ok(Delivered::AlreadyApplied)].into(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        let id = &w.sink.offered[0].0;
        assert_eq!(
            log.drain().lines,
            vec![format!(
                "batch {id} was already in the table (its COMMIT reply had been lost); not added again"
            )]
        );
        assert!(w.books.lock().is_empty());
    }

    #[test]
    fn a_row_the_table_refuses_is_set_aside_and_the_others_delivered() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            too_long: Some("bad.example"),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        for host in [
            "a.example",
            "b.example",
            "bad.example",
            "c.example",
            "d.example",
        ] {
            hand_over(&w, counts(host, 1, 2));
        }
        w.flush();
        let mut committed = w.sink.committed.clone();
        committed.sort();
        assert_eq!(
            committed,
            ["a.example", "b.example", "c.example", "d.example"]
        );
        assert_eq!(
            log.drain().lines,
            vec![format!(
                "the table refuses vhost bad.example day 2025-11-28 (1 bytes in, 2 bytes out, \
                 batch {}~2-2): ERROR 1406 (22001): Data too long for column 'vhost'; not in \
                 the table: add it by hand once the table can take it",
                w.sink.offered[0].0
            )]
        );
        assert!(w.books.lock().is_empty());
        assert_eq!((w.health, w.next_try), (Health::Up, None), "no outage");
        // Later counts go out as usual.
        hand_over(&w, counts("e.example", 1, 1));
        w.flush();
        assert_eq!(w.sink.committed.last().unwrap(), "e.example");
    }

    #[test]
    fn missing_rights_keep_the_counts_and_say_what_to_grant_once() {
        let clock = FakeClock::new();
        let denied = || sql_error(1142);
        let sink = FakeSink {
            answers: [Err(denied()), Err(denied())].into(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        clock.now.set(w.next_try.unwrap());
        w.flush();
        let lines = log.drain().lines;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("the database refuses the counts: fake db: ERROR 1142; grant"));
        assert!(lines[0].contains("examples/grants.sql"), "{}", lines[0]);
        assert!(w.books.lock().inflight.is_some(), "kept");
        clock.now.set(w.next_try.unwrap());
        w.flush();
        assert_eq!(
            log.drain().lines,
            vec!["the database takes the counts again: fake db; delivered 1 bytes in, 1 bytes out in 1 row"]
        );
    }

    #[test]
    fn rows_past_the_limit_wait_in_the_spool_and_come_back_when_the_database_does() {
        let dir = TestDir::new("worker-spill");
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: (0..3).map(|_| Err(network_error())).collect(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        w.limit = PendingLimit::for_hosts(2, Some(dir.join("spool")));
        for host in ["a", "b", "c", "d", "e", "f", "g"] {
            hand_over(&w, counts(host, 1, 1));
        }
        w.flush(); // fails: the outage begins
        w.keep_within_limit();
        assert!(w.books.lock().pending_rows() <= 6, "bounded");
        assert!(log
            .drain()
            .lines
            .iter()
            .any(|l| l.contains("more than the 6 kept in memory: wrote")));
        // Back: what waited in the spool comes back with the rest.
        while w.next_try.is_some() {
            clock.now.set(w.next_try.unwrap());
            w.flush();
        }
        let mut committed = w.sink.committed.clone();
        committed.sort();
        assert_eq!(committed, ["a", "b", "c", "d", "e", "f", "g"]);
        assert!(w.books.lock().is_empty());
        assert!(!dir.join("spool").exists(), "replayed and retired");
    }

    #[test]
    fn the_sinks_notices_reach_the_log() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            notices: vec!["ledger table `t_batches` unusable (...)".into()],
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        assert_eq!(
            log.drain().lines,
            vec!["ledger table `t_batches` unusable (...)"]
        );
    }

    #[test]
    fn the_startup_check_says_what_it_found() {
        let clock = FakeClock::new();
        let (mut w, log) = worker(FakeSink::default(), &clock);
        w.startup_check();
        assert_eq!(
            log.drain().lines,
            vec!["database check ok: fake db (server 10.11-fake): columns vhost, day, in, out present"]
        );
        assert_eq!(w.health, Health::Up);

        let sink = FakeSink {
            check: Some(Err(sql_error(1146))),
            ..FakeSink::default()
        };
        let (mut w, log) = worker(sink, &clock);
        w.startup_check();
        assert_eq!(
            log.drain().lines,
            vec![
                "database check failed: fake db: ERROR 1146; create the table \
                 (examples/schema.sql); lighttpd keeps serving and counting, and retries at \
                 each report"
            ]
        );
        // The failed check was the outage line: the first failed flush
        // does not repeat it, and the recovery is reported.
        w.sink.answers = [Err(network_error())].into();
        hand_over(&w, counts("a.example", 1, 1));
        w.flush();
        assert!(log.drain().lines.is_empty());
        clock.now.set(w.next_try.unwrap());
        w.flush();
        assert_eq!(
            log.drain().lines,
            vec!["database reachable again: fake db; delivered 1 bytes in, 1 bytes out in 1 row"]
        );
    }

    #[test]
    fn a_replayed_spool_goes_first_and_its_file_is_retired_when_all_is_in() {
        let dir = TestDir::new("worker-replay");
        let spool = dir.join("spool");
        let earlier = vec![
            Batch {
                id: "old/1".into(),
                rows: counts("a.example", 1, 1).rows(),
            },
            Batch {
                id: "old/2".into(),
                rows: counts("b.example", 2, 2).rows(),
            },
        ];
        crate::spool::keep(&spool, &earlier, Vec::new()).unwrap();
        let replay =
            crate::spool::take_over(&spool, &LogQueue::default(), Duration::from_secs(86_400));
        let claimed = replay.claimed[0].path().to_path_buf();

        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: [Ok(Delivered::Applied), Err(network_error())].into(),
            ..FakeSink::default()
        };
        let (mut w, log) = worker_with(sink, &clock, replay);
        hand_over(&w, counts("new.example", 3, 3));
        w.flush();
        assert!(claimed.exists(), "old/2 is not in yet");
        clock.now.set(w.next_try.unwrap());
        w.flush();
        let ids: Vec<&str> = w.sink.offered.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(&ids[..3], ["old/1", "old/2", "old/2"]);
        assert!(!ids[3].starts_with("old/"));
        assert!(!claimed.exists(), "retired once every spooled batch was in");
        assert!(log
            .drain()
            .lines
            .iter()
            .any(|l| l.ends_with("replayed completely")));
    }

    #[test]
    fn at_stop_it_keeps_trying_until_the_deadline_then_leaves_the_rest_in_the_books() {
        let clock = FakeClock::new();
        let sink = FakeSink {
            answers: (0..100).map(|_| Err(network_error())).collect(),
            ..FakeSink::default()
        };
        let (mut w, _log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        let start = clock.at();
        w.final_flush(start + Duration::from_secs(2));
        assert!(clock.at() < start + Duration::from_secs(2));
        assert_eq!(w.sink.offered.len(), 8, "every 250 ms until the deadline");
        let (waiting, batches, _) = w.books.lock().undelivered();
        assert!(waiting.is_empty());
        assert_eq!(batches.len(), 1, "the batch in flight, with its id");

        let sink = FakeSink {
            answers: [Err(network_error()), Err(network_error())].into(),
            ..FakeSink::default()
        };
        let (mut w, _log) = worker(sink, &clock);
        hand_over(&w, counts("a.example", 1, 1));
        w.final_flush(clock.at() + Duration::from_secs(4));
        assert_eq!(w.sink.offered.len(), 3, "stops trying once delivered");
        assert!(w.books.lock().is_empty());
        assert_eq!(clock.slept.borrow().len(), 7 + 2);
    }
}
