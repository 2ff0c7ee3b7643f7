//! The status URL in one lighttpd process: the worker's side ([`Live`]:
//! its slot on the board, what it counted since it started, the answer)
//! and the flusher's side ([`FlusherWatcher`]: what it did, published
//! after every attempt). Plain Rust; the hook layer passes lighttpd's
//! values in.
//!
//! Freshness: a worker publishes once a second (lighttpd's trigger) and
//! right before it answers, so an answer holds everything the answering
//! worker counted, and what the other workers counted up to their last
//! second. Nothing here touches the database.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::board::Board;
use super::figures::{worker_bytes_for, FlusherFigures, Totals, WorkerFigures, FLUSHER_BYTES};
use super::render::{render_json, render_prometheus, Header, Published};
use crate::counters::{Counters, Traffic};
use crate::day::Zone;
use crate::flush::{Attempt, FlusherState, Progress, Watcher};
use crate::tally::Tally;

/// Slots beyond `server.max-worker`: for workers lighttpd starts again
/// after one died while the dead one's slot is still owned (its flusher
/// may still be delivering).
const SPARE_SLOTS: usize = 2;

/// The two answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Prometheus,
}

impl Format {
    /// From the query string: `format=prometheus` or `format=json`
    /// (default); `Err` names what was asked for otherwise.
    pub fn from_query(query: &[u8]) -> Result<Format, String> {
        let asked = query
            .split(|&b| b == b'&')
            .filter_map(|pair| pair.strip_prefix(b"format="))
            .next_back();
        match asked {
            None | Some(b"json") => Ok(Format::Json),
            Some(b"prometheus") => Ok(Format::Prometheus),
            Some(other) => Err(String::from_utf8_lossy(other).into_owned()),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The worker's side of the status URL.
pub struct Live {
    board: Arc<Board>,
    /// Row keys a worker keeps totals for (beyond: `_other`).
    capacity: usize,
    slot: Option<usize>,
    pid: u32,
    /// Unix seconds this worker started.
    started: i64,
    /// What this worker handed to its flusher since it started, by key.
    handed: Totals,
}

impl Live {
    /// In `set_defaults`, before lighttpd forks its workers: the board for
    /// `workers` of them, each keeping totals for `capacity` row keys.
    pub fn create(workers: usize, capacity: usize) -> io::Result<Live> {
        let slots = workers.max(1) + SPARE_SLOTS;
        let board = Board::create(slots, worker_bytes_for(capacity + 1), FLUSHER_BYTES)?;
        Ok(Live {
            board: Arc::new(board),
            capacity,
            slot: None,
            pid: 0,
            started: 0,
            handed: Totals::new(capacity),
        })
    }

    /// Another worker's view of the same board, as a fork gives it (for
    /// tests and benchmarks, which have one process).
    pub fn sharing(&self) -> Live {
        Live {
            board: self.board.clone(),
            capacity: self.capacity,
            slot: None,
            pid: 0,
            started: 0,
            handed: Totals::new(self.capacity),
        }
    }

    /// In each worker (`worker_init`): takes a slot of the board. A slot
    /// whose worker died carries its totals on.
    pub fn start(&mut self, pid: u32, now: i64) -> Result<(), String> {
        self.pid = pid;
        self.started = now;
        self.handed = Totals::new(self.capacity);
        let Some(claimed) = self.board.claim(pid) else {
            return Err(format!(
                "bw_counter.status_url: all {} slots of the status board are held by live \
                 processes; this worker's counts are missing from the status",
                self.board.slots()
            ));
        };
        if let Some(figures) = claimed.inherited.as_deref().and_then(WorkerFigures::decode) {
            self.handed.seed(&figures);
            self.started = figures.started;
        }
        self.slot = Some(claimed.slot);
        Ok(())
    }

    /// What the flusher process of this worker publishes with, if the
    /// worker has a slot.
    pub fn flusher_watcher(
        &self,
        servers: Vec<String>,
        spool: Option<PathBuf>,
    ) -> Option<Arc<dyn Watcher>> {
        let slot = self.slot?;
        let watcher = FlusherWatcher {
            board: self.board.clone(),
            slot,
            servers,
            spool,
            progress: Mutex::new(Progress::default()),
        };
        Some(Arc::new(watcher))
    }

    /// Counts handed to the flusher: from now on part of the totals.
    pub fn handed_over(&mut self, counts: &Counters) {
        for row in counts.rows() {
            let t = row.traffic;
            self.handed
                .add(row.host.as_bytes(), t.bytes_in, t.bytes_out);
        }
    }

    /// Publishes this worker's figures: what it handed over plus what its
    /// tally holds.
    pub fn publish<Z: Zone>(&self, tally: &Tally<Z>) {
        let Some(slot) = self.slot else {
            return;
        };
        let figures = self.figures(tally);
        // Too big cannot happen (the area is sized for `capacity` keys,
        // and totals fold beyond); busy: the next second publishes again.
        let _ = self.board.write_worker(slot, &figures.encode());
    }

    fn figures<Z: Zone>(&self, tally: &Tally<Z>) -> WorkerFigures {
        let mut totals = self.handed.clone();
        let (mut rows, mut pending) = (0u64, Traffic::default());
        tally.for_each_pending(|key, t| {
            totals.add(key.as_bytes(), t.bytes_in, t.bytes_out);
            rows += 1;
            pending += t;
        });
        let (overflow_requests, overflow_hosts) = tally.overflow_since_start();
        WorkerFigures {
            pid: self.pid,
            started: self.started,
            pending_rows: rows,
            pending_in: pending.bytes_in,
            pending_out: pending.bytes_out,
            overflow_requests,
            overflow_hosts,
            totals_folded: totals.folded(),
            totals: totals.to_key_totals(),
        }
    }

    /// The answer: publishes this worker's figures first, then reads every
    /// slot with an owner.
    pub fn answer<Z: Zone>(&self, tally: &Tally<Z>, mut header: Header, format: Format) -> String {
        self.publish(tally);
        let slots: Vec<Published> = (0..self.board.slots())
            .map(|i| self.board.read(i))
            .filter(|view| view.owner != 0)
            .map(|view| {
                let worker = view.worker.as_deref().and_then(WorkerFigures::decode);
                let flusher = view.flusher.as_deref().and_then(FlusherFigures::decode);
                (worker, flusher)
            })
            .collect();
        let flushers = slots.iter().filter_map(|(_, f)| f.as_ref());
        header.exactly_once = flushers.clone().all(|f| f.exactly_once);
        header.started = slots
            .iter()
            .filter_map(|(w, _)| w.as_ref().map(|w| w.started))
            .min()
            .unwrap_or(self.started);
        match format {
            Format::Json => render_json(&header, &slots),
            Format::Prometheus => render_prometheus(&header, &slots),
        }
    }
}

/// The flusher's side: publishes its [`Progress`] after every attempt
/// into the flusher area of its worker's slot.
pub struct FlusherWatcher {
    board: Arc<Board>,
    slot: usize,
    /// `mysql_server`'s list; the state says which one is in use.
    servers: Vec<String>,
    spool: Option<PathBuf>,
    progress: Mutex<Progress>,
}

impl Watcher for FlusherWatcher {
    fn attempt(&self, attempt: Attempt<'_>, state: FlusherState) {
        let mut progress = self.progress.lock();
        progress.record(attempt, unix_now());
        let (spool_rows, spool_bytes) = self.spool.as_deref().map_or((0, 0), spool_size);
        let figures = FlusherFigures {
            pid: std::process::id(),
            server: self.servers.get(state.server).cloned().unwrap_or_default(),
            last_success: progress.last_success,
            last_attempt: progress.last_attempt,
            last_duration_ms: progress.last_duration_ms,
            consecutive_failures: progress.consecutive_failures,
            failures_total: progress.failures_total,
            last_error: progress.last_error.clone(),
            batches_delivered: progress.batches_delivered,
            rows_delivered: progress.rows_delivered,
            pending_rows: state.pending.rows as u64,
            pending_in: state.pending.traffic.bytes_in,
            pending_out: state.pending.traffic.bytes_out,
            spool_rows,
            spool_bytes,
            rows_set_aside: progress.rows_set_aside,
            exactly_once: state.exactly_once,
        };
        drop(progress);
        // Busy (another flusher of the same slot is writing): the next
        // attempt publishes again.
        let _ = self.board.write_flusher(self.slot, &figures.encode());
    }
}

/// Rows (record lines) and bytes in the spool file, if there is one.
fn spool_size(path: &Path) -> (u64, u64) {
    match fs::read(path) {
        Ok(text) => {
            let rows = crate::spool::count_records(&text);
            (rows as u64, text.len() as u64)
        }
        Err(_) => (0, 0),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_comes_from_the_query_string() {
        assert_eq!(Format::from_query(b""), Ok(Format::Json));
        assert_eq!(Format::from_query(b"format=json"), Ok(Format::Json));
        assert_eq!(
            Format::from_query(b"x=1&format=prometheus"),
            Ok(Format::Prometheus)
        );
        assert_eq!(Format::from_query(b"format=xml"), Err("xml".to_string()));
    }

    fn tally(hosts: &[(&'static str, u64)]) -> Tally<crate::tally::tests::Utc> {
        let mut t = Tally::with_zone(crate::tally::tests::Utc, 10);
        for &(host, bytes) in hosts {
            t.count(crate::tally::tests::req(
                host,
                bytes,
                2 * bytes,
                1_795_910_000,
            ));
        }
        t
    }

    #[test]
    fn an_answer_sums_the_workers_handed_and_pending_bytes() {
        let mut first = Live::create(2, 10).unwrap();
        let mut second = first.sharing();
        first.start(std::process::id(), 100).unwrap();
        second.start(1, 50).unwrap();
        // The first handed some counts over, and counted more since.
        let mut t1 = tally(&[("a.example", 10), ("b.example", 1)]);
        first.handed_over(&t1.take());
        t1.count(crate::tally::tests::req("a.example", 5, 10, 1_795_910_001));
        let t2 = tally(&[("a.example", 100)]);
        second.publish(&t2);
        let json = first.answer(&t1, Header::default(), Format::Json);
        assert!(
            json.contains(
                r#""vhosts":{"a.example":{"in":115,"out":230},"b.example":{"in":1,"out":2}}"#
            ),
            "{json}"
        );
        assert!(
            json.contains(r#""pending":{"rows":2,"bytes_in":105,"bytes_out":210}"#),
            "{json}"
        );
        assert!(
            json.contains(r#""started":50,"#),
            "the oldest worker's start: {json}"
        );
    }
}
