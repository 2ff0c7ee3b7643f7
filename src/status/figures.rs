//! What each process publishes on the status board, and its encoding:
//! little-endian, a leading format version, length-prefixed keys and
//! texts. Blobs come from shared memory another process writes, so
//! [`WorkerFigures::decode`] and [`FlusherFigures::decode`] take any bytes
//! and refuse what is not a whole, valid blob.
//!
//! Also [`Totals`], the per-key bytes a worker has counted since it
//! started, which it publishes in its figures.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use crate::admission::OVERFLOW;
use crate::counters::Traffic;

/// First byte of every blob; a blob of another version is refused.
pub const FORMAT_VERSION: u8 = 1;
/// Longest key a blob holds (its length is one byte).
pub const MAX_KEY: usize = 255;
/// Longest text a blob holds; longer ones are cut on a char boundary.
pub const MAX_TEXT: usize = 1024;

/// Published by a worker (lighttpd's thread) once a second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerFigures {
    pub pid: u32,
    /// Unix seconds this worker started counting.
    pub started: i64,
    /// Counted, not yet handed to its flusher.
    pub pending_rows: u64,
    pub pending_in: u64,
    pub pending_out: u64,
    /// Requests counted under the overflow row `_other` because of the
    /// max_hosts cap, since start.
    pub overflow_requests: u64,
    /// Estimated distinct hosts that overflowed, since start.
    pub overflow_hosts: u64,
    /// Per row key, bytes counted since start.
    pub totals: Vec<KeyTotal>,
    /// Keys that did not fit in [`Totals`] and were added to `_other`.
    pub totals_folded: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyTotal {
    /// 1..=[`MAX_KEY`] bytes, any bytes: keys come from clients.
    pub key: Vec<u8>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Published by a flusher process after each attempt and each change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlusherFigures {
    pub pid: u32,
    /// The database server in use, as configured.
    pub server: String,
    /// Unix seconds, 0: never.
    pub last_success: i64,
    pub last_attempt: i64,
    pub last_duration_ms: u64,
    pub consecutive_failures: u64,
    pub failures_total: u64,
    /// "": none.
    pub last_error: String,
    pub batches_delivered: u64,
    pub rows_delivered: u64,
    /// Received from the worker, not yet delivered.
    pub pending_rows: u64,
    pub pending_in: u64,
    pub pending_out: u64,
    /// What the spool files it holds contain.
    pub spool_rows: u64,
    pub spool_bytes: u64,
    /// Rows the database refused, written to `<spool>.rejected`.
    pub rows_set_aside: u64,
    /// Whether its ledger table works (else delivery is at-least-once).
    pub exactly_once: bool,
}

/// Fixed part of a worker blob: version, pid, started, six counters and
/// the number of keys.
const WORKER_FIXED: usize = 1 + 4 + 8 + 6 * 8 + 4;
/// Most a key costs: its length byte, its bytes, in and out.
const KEY_MOST: usize = 1 + MAX_KEY + 16;
/// Least a key costs (one byte): bounds what a count may claim.
const KEY_LEAST: usize = 1 + 1 + 16;

/// Upper bound of an encoded [`WorkerFigures`] with `keys` keys.
pub fn worker_bytes_for(keys: usize) -> usize {
    keys.saturating_mul(KEY_MOST).saturating_add(WORKER_FIXED)
}

/// Upper bound of any encoded [`FlusherFigures`]: version, pid, two
/// texts, two timestamps and twelve counters.
pub const FLUSHER_BYTES: usize = 1 + 4 + 2 * (2 + MAX_TEXT) + 2 * 8 + 12 * 8;

impl WorkerFigures {
    /// Keys of more than [`MAX_KEY`] bytes are cut to that length, empty
    /// ones left out: [`Totals`] never holds either.
    pub fn encode(&self) -> Vec<u8> {
        let keys: Vec<&KeyTotal> = self.totals.iter().filter(|t| !t.key.is_empty()).collect();
        let mut out = Vec::with_capacity(worker_bytes_for(keys.len()));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.started.to_le_bytes());
        for n in [
            self.pending_rows,
            self.pending_in,
            self.pending_out,
            self.overflow_requests,
            self.overflow_hosts,
            self.totals_folded,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for total in keys.into_iter().take(count as usize) {
            let key = &total.key[..total.key.len().min(MAX_KEY)];
            out.push(key.len() as u8);
            out.extend_from_slice(key);
            out.extend_from_slice(&total.bytes_in.to_le_bytes());
            out.extend_from_slice(&total.bytes_out.to_le_bytes());
        }
        out
    }

    pub fn decode(blob: &[u8]) -> Option<WorkerFigures> {
        let mut r = Reader::new(blob)?;
        let mut figures = WorkerFigures {
            pid: r.u32()?,
            started: r.i64()?,
            pending_rows: r.u64()?,
            pending_in: r.u64()?,
            pending_out: r.u64()?,
            overflow_requests: r.u64()?,
            overflow_hosts: r.u64()?,
            totals_folded: r.u64()?,
            totals: Vec::new(),
        };
        let count = r.u32()? as usize;
        // A count the rest cannot hold is garbage: never allocate for it.
        if count > r.rest.len() / KEY_LEAST {
            return None;
        }
        figures.totals.reserve_exact(count);
        for _ in 0..count {
            let len = r.u8()? as usize;
            if len == 0 {
                return None;
            }
            figures.totals.push(KeyTotal {
                key: r.bytes(len)?.to_vec(),
                bytes_in: r.u64()?,
                bytes_out: r.u64()?,
            });
        }
        r.finish(figures)
    }
}

impl FlusherFigures {
    /// Texts longer than [`MAX_TEXT`] are cut on a char boundary.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FLUSHER_BYTES);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.pid.to_le_bytes());
        put_text(&mut out, &self.server);
        out.extend_from_slice(&self.last_success.to_le_bytes());
        out.extend_from_slice(&self.last_attempt.to_le_bytes());
        put_text(&mut out, &self.last_error);
        for n in [
            self.last_duration_ms,
            self.consecutive_failures,
            self.failures_total,
            self.batches_delivered,
            self.rows_delivered,
            self.pending_rows,
            self.pending_in,
            self.pending_out,
            self.spool_rows,
            self.spool_bytes,
            self.rows_set_aside,
            u64::from(self.exactly_once),
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub fn decode(blob: &[u8]) -> Option<FlusherFigures> {
        let mut r = Reader::new(blob)?;
        let figures = FlusherFigures {
            pid: r.u32()?,
            server: r.text()?,
            last_success: r.i64()?,
            last_attempt: r.i64()?,
            last_error: r.text()?,
            last_duration_ms: r.u64()?,
            consecutive_failures: r.u64()?,
            failures_total: r.u64()?,
            batches_delivered: r.u64()?,
            rows_delivered: r.u64()?,
            pending_rows: r.u64()?,
            pending_in: r.u64()?,
            pending_out: r.u64()?,
            spool_rows: r.u64()?,
            spool_bytes: r.u64()?,
            rows_set_aside: r.u64()?,
            exactly_once: r.u64()? != 0,
        };
        r.finish(figures)
    }
}

/// `text`, cut to [`MAX_TEXT`] bytes on a char boundary, after its length
/// (two bytes).
fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Reads a blob front to back; every read fails (None) past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// After the version byte, which must be ours.
    fn new(blob: &'a [u8]) -> Option<Reader<'a>> {
        let (&version, rest) = blob.split_first()?;
        (version == FORMAT_VERSION).then_some(Reader { rest })
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn text(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        if len > MAX_TEXT {
            return None;
        }
        String::from_utf8(self.bytes(len)?.to_vec()).ok()
    }

    /// `value` if the blob ended exactly here.
    fn finish<T>(self, value: T) -> Option<T> {
        self.rest.is_empty().then_some(value)
    }
}

/// Most distinct folded keys [`Totals`] remembers (as 64-bit hashes, at
/// most about 1 MiB); past that, each fold of a key not remembered counts.
const FOLDED_REMEMBERED: usize = 1 << 16;

/// Bytes per row key since a worker started, for its figures. At most
/// `capacity` keys plus [`OVERFLOW`]: a further key's bytes are added to
/// [`OVERFLOW`] instead ("folded"), and [`Totals::folded`] counts the
/// distinct keys folded (exactly up to [`FOLDED_REMEMBERED`] of them; a
/// 64-bit hash collision under-counts by one). A key of no bytes or more
/// than [`MAX_KEY`] is folded too: a blob cannot hold it.
///
/// Fed once a second with what the worker counted, not per request, so a
/// std HashMap is cheap enough. Size the board for
/// `worker_bytes_for(capacity + 1)`.
#[derive(Debug, Clone)]
pub struct Totals {
    capacity: usize,
    keys: HashMap<Vec<u8>, Traffic>,
    folded: u64,
    /// Hashes of the keys folded, so each counts once.
    folded_keys: HashSet<u64>,
    hasher: RandomState,
}

impl Totals {
    pub fn new(capacity: usize) -> Totals {
        Totals {
            capacity,
            keys: HashMap::new(),
            folded: 0,
            folded_keys: HashSet::new(),
            hasher: RandomState::new(),
        }
    }

    /// Adds bytes to `key`'s total, saturating.
    pub fn add(&mut self, key: &[u8], bytes_in: u64, bytes_out: u64) {
        let traffic = Traffic {
            bytes_in,
            bytes_out,
        };
        if let Some(total) = self.keys.get_mut(key) {
            *total += traffic;
            return;
        }
        let fits = !key.is_empty() && key.len() <= MAX_KEY;
        let key = if key == OVERFLOW.as_bytes() || (fits && self.held() < self.capacity) {
            key
        } else {
            self.count_fold(key);
            OVERFLOW.as_bytes()
        };
        *self.keys.entry(key.to_vec()).or_default() += traffic;
    }

    /// Keys held, [`OVERFLOW`] not included.
    fn held(&self) -> usize {
        self.keys.len() - usize::from(self.keys.contains_key(OVERFLOW.as_bytes()))
    }

    fn count_fold(&mut self, key: &[u8]) {
        let hash = self.hasher.hash_one(key);
        if self.folded_keys.contains(&hash) {
            return;
        }
        if self.folded_keys.len() < FOLDED_REMEMBERED {
            self.folded_keys.insert(hash);
        }
        self.folded = self.folded.saturating_add(1);
    }

    /// Carries on the totals a dead worker published: its keys are added
    /// like any (folding what does not fit), its folded count to ours.
    pub fn seed(&mut self, from: &WorkerFigures) {
        for total in &from.totals {
            self.add(&total.key, total.bytes_in, total.bytes_out);
        }
        self.folded = self.folded.saturating_add(from.totals_folded);
    }

    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Every key's total, sorted by key.
    pub fn to_key_totals(&self) -> Vec<KeyTotal> {
        let mut totals: Vec<KeyTotal> = self
            .keys
            .iter()
            .map(|(key, traffic)| KeyTotal {
                key: key.clone(),
                bytes_in: traffic.bytes_in,
                bytes_out: traffic.bytes_out,
            })
            .collect();
        totals.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerFigures {
        WorkerFigures {
            pid: 4242,
            started: 1_795_000_000,
            pending_rows: 3,
            pending_in: 1000,
            pending_out: u64::MAX,
            overflow_requests: 17,
            overflow_hosts: 5,
            totals: vec![
                KeyTotal {
                    key: b"example.org".to_vec(),
                    bytes_in: 10,
                    bytes_out: 20,
                },
                KeyTotal {
                    key: b"\"q\\\n\xff\x00}".to_vec(),
                    bytes_in: 1,
                    bytes_out: 2,
                },
                KeyTotal {
                    key: vec![b'k'; MAX_KEY],
                    bytes_in: 0,
                    bytes_out: 7,
                },
            ],
            totals_folded: 9,
        }
    }

    fn flusher() -> FlusherFigures {
        FlusherFigures {
            pid: 4243,
            server: "db.example:3306".into(),
            last_success: 1_795_000_100,
            last_attempt: 1_795_000_160,
            last_duration_ms: 2500,
            consecutive_failures: 2,
            failures_total: 11,
            last_error: "connect: timed out «é»".into(),
            batches_delivered: 40,
            rows_delivered: 400,
            pending_rows: 4,
            pending_in: 5,
            pending_out: 6,
            spool_rows: 7,
            spool_bytes: 8,
            rows_set_aside: 9,
            exactly_once: true,
        }
    }

    #[test]
    fn worker_figures_round_trip_within_their_bound() {
        let figures = worker();
        let blob = figures.encode();
        assert_eq!(blob[0], FORMAT_VERSION);
        assert!(blob.len() <= worker_bytes_for(3));
        assert_eq!(WorkerFigures::decode(&blob), Some(figures));
        let empty = WorkerFigures::default();
        assert_eq!(empty.encode().len(), worker_bytes_for(0));
        assert_eq!(WorkerFigures::decode(&empty.encode()), Some(empty));
        let full = WorkerFigures {
            totals: vec![worker().totals[2].clone(); 4],
            ..WorkerFigures::default()
        };
        assert_eq!(full.encode().len(), worker_bytes_for(4));
    }

    #[test]
    fn keys_a_blob_cannot_hold_are_cut_or_left_out() {
        let figures = WorkerFigures {
            totals: vec![
                KeyTotal::default(),
                KeyTotal {
                    key: vec![b'x'; 300],
                    bytes_in: 1,
                    bytes_out: 1,
                },
            ],
            ..WorkerFigures::default()
        };
        let decoded = WorkerFigures::decode(&figures.encode()).unwrap();
        assert_eq!(decoded.totals.len(), 1);
        assert_eq!(decoded.totals[0].key, vec![b'x'; MAX_KEY]);
    }

    #[test]
    fn flusher_figures_round_trip_and_cut_long_texts_on_a_char_boundary() {
        assert_eq!(FlusherFigures::decode(&flusher().encode()), Some(flusher()));
        let long = FlusherFigures {
            // 'é' is two bytes: 1023 + 2 would split it at 1024.
            last_error: format!("{}é", "e".repeat(MAX_TEXT - 1)),
            server: "s".repeat(5000),
            ..flusher()
        };
        let blob = long.encode();
        assert_eq!(blob.len(), FLUSHER_BYTES - 1);
        let decoded = FlusherFigures::decode(&blob).unwrap();
        assert_eq!(decoded.last_error, "e".repeat(MAX_TEXT - 1));
        assert_eq!(decoded.server.len(), MAX_TEXT);
    }

    /// Every truncation and extension of a valid blob, and random bytes,
    /// are refused without a panic.
    #[test]
    fn decode_refuses_truncated_and_garbage_input() {
        for blob in [worker().encode(), flusher().encode()] {
            for end in 0..blob.len() {
                assert_eq!(WorkerFigures::decode(&blob[..end]), None, "cut at {end}");
                assert_eq!(FlusherFigures::decode(&blob[..end]), None, "cut at {end}");
            }
            let mut longer = blob.clone();
            longer.push(0);
            assert_eq!(WorkerFigures::decode(&longer), None);
            assert_eq!(FlusherFigures::decode(&longer), None);
            let mut other_version = blob.clone();
            other_version[0] = FORMAT_VERSION + 1;
            assert_eq!(WorkerFigures::decode(&other_version), None);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000 {
            let len = round % 400;
            let mut blob: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            if let Some(first) = blob.first_mut() {
                *first = FORMAT_VERSION;
            }
            let _ = WorkerFigures::decode(&blob);
            let _ = FlusherFigures::decode(&blob);
        }
    }

    #[test]
    fn a_key_count_beyond_the_blob_allocates_nothing() {
        let mut blob = WorkerFigures::default().encode();
        let at = blob.len() - 4;
        blob[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(WorkerFigures::decode(&blob), None);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let mut blob = FlusherFigures {
            server: "ab".into(),
            ..FlusherFigures::default()
        }
        .encode();
        blob[1 + 4 + 2] = 0xff;
        assert_eq!(FlusherFigures::decode(&blob), None);
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn totals_of(totals: &Totals) -> Vec<(&'static str, u64, u64)> {
        totals
            .to_key_totals()
            .into_iter()
            .map(|t| {
                let key = String::from_utf8(t.key).unwrap().leak();
                (&*key, t.bytes_in, t.bytes_out)
            })
            .collect()
    }

    #[test]
    fn totals_sum_saturating_and_fold_beyond_capacity() {
        let mut totals = Totals::new(2);
        totals.add(b"a", 1, 2);
        totals.add(OVERFLOW.as_bytes(), 100, 100);
        totals.add(b"b", 3, 4);
        totals.add(b"a", 10, u64::MAX);
        totals.add(b"c", 5, 6);
        totals.add(b"d", 7, 8);
        totals.add(b"c", 1, 1);
        totals.add(b"", 1, 0);
        totals.add(&[b'z'; MAX_KEY + 1], 1, 0);
        assert_eq!(
            totals_of(&totals),
            vec![("_other", 115, 115), ("a", 11, u64::MAX), ("b", 3, 4)]
        );
        // c, d, the empty key and the long one; c twice counts once.
        assert_eq!(totals.folded(), 4);
    }

    #[test]
    fn seeding_carries_a_dead_workers_totals_on() {
        let mut totals = Totals::new(10);
        totals.add(b"example.org", 1, 1);
        totals.seed(&worker());
        let got = totals.to_key_totals();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].bytes_in, got[0].bytes_out), (1, 2));
        assert_eq!(got[1].key, b"example.org");
        assert_eq!((got[1].bytes_in, got[1].bytes_out), (11, 21));
        assert_eq!(totals.folded(), 9);
        let mut small = Totals::new(1);
        small.seed(&worker());
        assert_eq!(small.to_key_totals().len(), 2);
        assert_eq!(small.folded(), 9 + 2);
    }
}
