//! The two answers of the status URL, made from what every slot of the
//! board shows: one JSON object, and Prometheus text (format 0.0.4).
//!
//! Both show the same [`Summary`], summed over all workers by these rules
//! (an admin alerting on the summary must see one stuck flusher among
//! several, so "worst" wins where a sum would hide it):
//! - bytes per key, pending rows and bytes (workers' plus flushers'),
//!   failures, batches and rows delivered, spool rows and bytes, rows set
//!   aside, overflow requests: summed;
//! - overflow hosts: summed, an upper bound (each worker estimates its
//!   own; a host seen by two workers counts twice);
//! - last success: the oldest among flushers that have attempted, and 0 if
//!   any of those never succeeded (a flusher that never attempted, just
//!   started, is left out);
//! - last attempt, last duration, consecutive failures: the largest;
//! - last error: that of the currently failing flusher (consecutive
//!   failures > 0) with the most recent attempt; none if none is failing.
//!
//! Keys are bytes from clients; output must be valid UTF-8, so a key is
//! shown lossily (invalid sequences as U+FFFD). Keys that then read the
//! same are summed into one entry: neither answer may repeat a key.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::counters::Traffic;
use crate::status::figures::{FlusherFigures, WorkerFigures};

/// What one slot showed (None: nothing published, or unreadable).
pub type Published = (Option<WorkerFigures>, Option<FlusherFigures>);

/// About the module rather than any worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub module_version: String,
    pub lighttpd_version: String,
    /// Unix seconds.
    pub started: i64,
    pub now: i64,
    pub report_interval_secs: u64,
    pub exactly_once: bool,
    pub tls_mode: String,
    pub spool_file: Option<String>,
    pub server: String,
}

/// The sums over all slots (rules: module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Slots read (owned), published or not.
    pub workers: u64,
    pub pending: Pending,
    pub vhosts: BTreeMap<String, Traffic>,
    pub flush: FlushSummary,
    pub spool: Spool,
    pub overflow_requests: u64,
    pub overflow_hosts: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Pending {
    fn add(&mut self, rows: u64, bytes_in: u64, bytes_out: u64) {
        self.rows = self.rows.saturating_add(rows);
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushSummary {
    pub last_success: i64,
    pub last_attempt: i64,
    pub last_duration_ms: u64,
    pub consecutive_failures: u64,
    pub failures_total: u64,
    pub last_error: Option<String>,
    pub batches_delivered: u64,
    pub rows_delivered: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spool {
    pub rows: u64,
    pub bytes: u64,
    pub rows_set_aside: u64,
}

/// One flusher's own figures, unsummed (per worker, and the summary of one).
impl From<&FlusherFigures> for FlushSummary {
    fn from(f: &FlusherFigures) -> FlushSummary {
        FlushSummary {
            last_success: f.last_success,
            last_attempt: f.last_attempt,
            last_duration_ms: f.last_duration_ms,
            consecutive_failures: f.consecutive_failures,
            failures_total: f.failures_total,
            last_error: (!f.last_error.is_empty()).then(|| f.last_error.clone()),
            batches_delivered: f.batches_delivered,
            rows_delivered: f.rows_delivered,
        }
    }
}

impl From<&FlusherFigures> for Spool {
    fn from(f: &FlusherFigures) -> Spool {
        Spool {
            rows: f.spool_rows,
            bytes: f.spool_bytes,
            rows_set_aside: f.rows_set_aside,
        }
    }
}

/// Sums what the slots showed.
pub fn summarize(slots: &[Published]) -> Summary {
    let mut summary = Summary {
        workers: slots.len() as u64,
        ..Summary::default()
    };
    for worker in slots.iter().filter_map(|(w, _)| w.as_ref()) {
        summary
            .pending
            .add(worker.pending_rows, worker.pending_in, worker.pending_out);
        summary.overflow_requests = summary
            .overflow_requests
            .saturating_add(worker.overflow_requests);
        summary.overflow_hosts = summary.overflow_hosts.saturating_add(worker.overflow_hosts);
        for total in &worker.totals {
            let key = String::from_utf8_lossy(&total.key).into_owned();
            *summary.vhosts.entry(key).or_default() += Traffic {
                bytes_in: total.bytes_in,
                bytes_out: total.bytes_out,
            };
        }
    }
    let flushers: Vec<&FlusherFigures> = slots.iter().filter_map(|(_, f)| f.as_ref()).collect();
    for f in &flushers {
        summary
            .pending
            .add(f.pending_rows, f.pending_in, f.pending_out);
        summary.spool.rows = summary.spool.rows.saturating_add(f.spool_rows);
        summary.spool.bytes = summary.spool.bytes.saturating_add(f.spool_bytes);
        summary.spool.rows_set_aside = summary
            .spool
            .rows_set_aside
            .saturating_add(f.rows_set_aside);
    }
    summary.flush = summarize_flushers(&flushers);
    summary
}

fn summarize_flushers(flushers: &[&FlusherFigures]) -> FlushSummary {
    let sum = |field: fn(&FlusherFigures) -> u64| {
        flushers
            .iter()
            .fold(0u64, |total, f| total.saturating_add(field(f)))
    };
    let attempted = flushers
        .iter()
        .filter(|f| f.last_attempt > 0 || f.last_success > 0);
    let failing = flushers
        .iter()
        .filter(|f| f.consecutive_failures > 0 && !f.last_error.is_empty());
    FlushSummary {
        last_success: attempted.map(|f| f.last_success).min().unwrap_or(0),
        last_attempt: flushers.iter().map(|f| f.last_attempt).max().unwrap_or(0),
        last_duration_ms: flushers
            .iter()
            .map(|f| f.last_duration_ms)
            .max()
            .unwrap_or(0),
        consecutive_failures: flushers
            .iter()
            .map(|f| f.consecutive_failures)
            .max()
            .unwrap_or(0),
        failures_total: sum(|f| f.failures_total),
        // The first of equally recent ones: slot order, stable.
        last_error: failing
            .rev()
            .max_by_key(|f| f.last_attempt)
            .map(|f| f.last_error.clone()),
        batches_delivered: sum(|f| f.batches_delivered),
        rows_delivered: sum(|f| f.rows_delivered),
    }
}

/// The JSON answer: one object (shape in the tests).
pub fn render_json(header: &Header, slots: &[Published]) -> String {
    let summary = summarize(slots);
    let mut j = Json::default();
    j.open(None);
    j.open(Some("module"));
    j.text("version", &header.module_version);
    j.text("lighttpd", &header.lighttpd_version);
    j.int("started", header.started);
    j.text("started_iso", &iso8601(header.started));
    j.int("now", header.now);
    j.num("report_interval", header.report_interval_secs);
    j.raw(
        "exactly_once",
        if header.exactly_once { "true" } else { "false" },
    );
    j.text("tls", &header.tls_mode);
    j.opt_text("spool_file", header.spool_file.as_deref());
    j.text("mysql_server", &header.server);
    j.close();
    j.num("workers", summary.workers);
    j.pending("pending", &summary.pending);
    j.open(Some("vhosts"));
    for (key, traffic) in &summary.vhosts {
        j.open(Some(key));
        j.num("in", traffic.bytes_in);
        j.num("out", traffic.bytes_out);
        j.close();
    }
    j.close();
    j.flush("flusher", &summary.flush);
    j.spool("spool", &summary.spool);
    j.open(Some("overflow"));
    j.num("requests", summary.overflow_requests);
    j.num("hosts_estimated", summary.overflow_hosts);
    j.close();
    j.open_array("per_worker");
    for slot in slots {
        per_worker(&mut j, slot);
    }
    j.close_array();
    j.close();
    j.out
}

/// One slot, unsummed; what it did not publish is null.
fn per_worker(j: &mut Json, (worker, flusher): &Published) {
    j.open(None);
    j.opt_num("pid", worker.as_ref().map(|w| u64::from(w.pid)));
    j.opt_num("flusher_pid", flusher.as_ref().map(|f| u64::from(f.pid)));
    match worker {
        Some(w) => {
            j.int("started", w.started);
            let mut pending = Pending::default();
            pending.add(w.pending_rows, w.pending_in, w.pending_out);
            j.pending("pending", &pending);
            j.num("vhosts", w.totals.len() as u64);
            j.num("vhosts_folded", w.totals_folded);
            j.open(Some("overflow"));
            j.num("requests", w.overflow_requests);
            j.num("hosts_estimated", w.overflow_hosts);
            j.close();
        }
        None => j.raw("started", "null"),
    }
    match flusher {
        Some(f) => {
            j.text("mysql_server", &f.server);
            let mut pending = Pending::default();
            pending.add(f.pending_rows, f.pending_in, f.pending_out);
            j.pending("flusher_pending", &pending);
            j.flush("flusher", &FlushSummary::from(f));
            j.spool("spool", &Spool::from(f));
        }
        None => j.raw("flusher", "null"),
    }
    j.close();
}

/// Writes JSON objects field by field, commas included.
#[derive(Default)]
struct Json {
    out: String,
    /// Whether the next item is the first in its object or array.
    first: bool,
}

impl Json {
    /// Before an item: its comma and, in an object, its name.
    fn item(&mut self, name: Option<&str>) {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(',');
        }
        if let Some(name) = name {
            json_string(&mut self.out, name);
            self.out.push(':');
        }
    }

    fn open(&mut self, name: Option<&str>) {
        if !self.out.is_empty() {
            self.item(name);
        }
        self.out.push('{');
        self.first = true;
    }

    fn close(&mut self) {
        self.out.push('}');
        self.first = false;
    }

    fn open_array(&mut self, name: &str) {
        self.item(Some(name));
        self.out.push('[');
        self.first = true;
    }

    fn close_array(&mut self) {
        self.out.push(']');
        self.first = false;
    }

    fn raw(&mut self, name: &str, value: &str) {
        self.item(Some(name));
        self.out.push_str(value);
    }

    fn num(&mut self, name: &str, value: u64) {
        self.raw(name, &value.to_string());
    }

    fn int(&mut self, name: &str, value: i64) {
        self.raw(name, &value.to_string());
    }

    fn opt_num(&mut self, name: &str, value: Option<u64>) {
        match value {
            Some(value) => self.num(name, value),
            None => self.raw(name, "null"),
        }
    }

    fn text(&mut self, name: &str, value: &str) {
        self.item(Some(name));
        json_string(&mut self.out, value);
    }

    fn opt_text(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(value) => self.text(name, value),
            None => self.raw(name, "null"),
        }
    }

    fn pending(&mut self, name: &str, pending: &Pending) {
        self.open(Some(name));
        self.num("rows", pending.rows);
        self.num("bytes_in", pending.bytes_in);
        self.num("bytes_out", pending.bytes_out);
        self.close();
    }

    fn flush(&mut self, name: &str, flush: &FlushSummary) {
        self.open(Some(name));
        self.int("last_success", flush.last_success);
        self.int("last_attempt", flush.last_attempt);
        self.num("last_duration_ms", flush.last_duration_ms);
        self.num("consecutive_failures", flush.consecutive_failures);
        self.num("failures_total", flush.failures_total);
        self.opt_text("last_error", flush.last_error.as_deref());
        self.num("batches_delivered", flush.batches_delivered);
        self.num("rows_delivered", flush.rows_delivered);
        self.close();
    }

    fn spool(&mut self, name: &str, spool: &Spool) {
        self.open(Some(name));
        self.num("rows", spool.rows);
        self.num("bytes", spool.bytes);
        self.num("rows_set_aside", spool.rows_set_aside);
        self.close();
    }
}

/// `s` as a JSON string: `"` and `\` escaped, control characters as
/// `\u00XX`; the rest is UTF-8 already.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC, proleptic Gregorian).
fn iso8601(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // The module's own calendar (day.rs); a day outside its i32 range
    // (never a real clock) is shown at the range's end.
    let days = days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    let (year, month, day) = crate::day::Day(days).ymd();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The Prometheus answer: text exposition format 0.0.4, every family with
/// HELP and TYPE (a counter's TYPE names it with its `_total`, as its
/// samples are named).
pub fn render_prometheus(header: &Header, slots: &[Published]) -> String {
    let s = summarize(slots);
    let mut p = String::new();
    family(
        &mut p,
        "bw_counter_info",
        "gauge",
        "Module and lighttpd versions.",
    );
    let versions = [
        ("version", header.module_version.as_str()),
        ("lighttpd", header.lighttpd_version.as_str()),
    ];
    sample(&mut p, "bw_counter_info", &versions, 1);
    let bytes = "bw_counter_bytes_total";
    family(
        &mut p,
        bytes,
        "counter",
        "Bytes counted per virtual host since the workers started.",
    );
    for (vhost, traffic) in &s.vhosts {
        for (direction, n) in [("in", traffic.bytes_in), ("out", traffic.bytes_out)] {
            sample(
                &mut p,
                bytes,
                &[("vhost", vhost), ("direction", direction)],
                n,
            );
        }
    }
    let pending = "bw_counter_pending_bytes";
    family(
        &mut p,
        pending,
        "gauge",
        "Bytes counted, not yet in the database.",
    );
    sample(&mut p, pending, &[("direction", "in")], s.pending.bytes_in);
    sample(
        &mut p,
        pending,
        &[("direction", "out")],
        s.pending.bytes_out,
    );
    for (f, value) in single_samples(header, &s) {
        family(&mut p, f.name, f.typ, f.help);
        sample(&mut p, f.name, &[], value);
    }
    p
}

/// A family of one sample without labels.
struct Family {
    name: &'static str,
    typ: &'static str,
    help: &'static str,
}

const START_TIME_SECONDS: Family = Family {
    name: "bw_counter_start_time_seconds",
    typ: "gauge",
    help: "Unix time the module started.",
};
const PENDING_ROWS: Family = Family {
    name: "bw_counter_pending_rows",
    typ: "gauge",
    help: "Rows counted, not yet in the database.",
};
const FLUSH_LAST_SUCCESS_TIMESTAMP_SECONDS: Family = Family {
    name: "bw_counter_flush_last_success_timestamp_seconds",
    typ: "gauge",
    help: "Oldest last success among the flushers (0: one never succeeded).",
};
const FLUSH_LAST_ATTEMPT_TIMESTAMP_SECONDS: Family = Family {
    name: "bw_counter_flush_last_attempt_timestamp_seconds",
    typ: "gauge",
    help: "Latest flush attempt.",
};
const FLUSH_DURATION_SECONDS: Family = Family {
    name: "bw_counter_flush_duration_seconds",
    typ: "gauge",
    help: "Longest of the flushers' last flush durations.",
};
const FLUSH_FAILURES_TOTAL: Family = Family {
    name: "bw_counter_flush_failures_total",
    typ: "counter",
    help: "Failed flush attempts.",
};
const FLUSH_CONSECUTIVE_FAILURES: Family = Family {
    name: "bw_counter_flush_consecutive_failures",
    typ: "gauge",
    help: "Most consecutive failed attempts of any flusher.",
};
const BATCHES_DELIVERED_TOTAL: Family = Family {
    name: "bw_counter_batches_delivered_total",
    typ: "counter",
    help: "Batches delivered to the database.",
};
const ROWS_DELIVERED_TOTAL: Family = Family {
    name: "bw_counter_rows_delivered_total",
    typ: "counter",
    help: "Rows delivered to the database.",
};
const SPOOL_ROWS: Family = Family {
    name: "bw_counter_spool_rows",
    typ: "gauge",
    help: "Rows in the spool files.",
};
const SPOOL_BYTES: Family = Family {
    name: "bw_counter_spool_bytes",
    typ: "gauge",
    help: "Bytes of the spool files.",
};
const REJECTED_ROWS_TOTAL: Family = Family {
    name: "bw_counter_rejected_rows_total",
    typ: "counter",
    help: "Rows the database refused, set aside.",
};
const OVERFLOW_REQUESTS_TOTAL: Family = Family {
    name: "bw_counter_overflow_requests_total",
    typ: "counter",
    help: "Requests counted under _other because of the host cap.",
};
const OVERFLOW_HOSTS: Family = Family {
    name: "bw_counter_overflow_hosts",
    typ: "gauge",
    help: "Estimated distinct hosts beyond the cap, summed over workers.",
};
const WORKERS: Family = Family {
    name: "bw_counter_workers",
    typ: "gauge",
    help: "Workers on the status board.",
};

/// The families of one sample without labels, with their values.
fn single_samples(header: &Header, s: &Summary) -> [(Family, Number); 15] {
    use Number::{Float, Signed, Unsigned};
    let f = &s.flush;
    [
        (START_TIME_SECONDS, Signed(header.started)),
        (PENDING_ROWS, Unsigned(s.pending.rows)),
        (FLUSH_LAST_SUCCESS_TIMESTAMP_SECONDS, Signed(f.last_success)),
        (FLUSH_LAST_ATTEMPT_TIMESTAMP_SECONDS, Signed(f.last_attempt)),
        (
            FLUSH_DURATION_SECONDS,
            Float(f.last_duration_ms as f64 / 1000.0),
        ),
        (FLUSH_FAILURES_TOTAL, Unsigned(f.failures_total)),
        (FLUSH_CONSECUTIVE_FAILURES, Unsigned(f.consecutive_failures)),
        (BATCHES_DELIVERED_TOTAL, Unsigned(f.batches_delivered)),
        (ROWS_DELIVERED_TOTAL, Unsigned(f.rows_delivered)),
        (SPOOL_ROWS, Unsigned(s.spool.rows)),
        (SPOOL_BYTES, Unsigned(s.spool.bytes)),
        (REJECTED_ROWS_TOTAL, Unsigned(s.spool.rows_set_aside)),
        (OVERFLOW_REQUESTS_TOTAL, Unsigned(s.overflow_requests)),
        (OVERFLOW_HOSTS, Unsigned(s.overflow_hosts)),
        (WORKERS, Unsigned(s.workers)),
    ]
}

/// A sample's value.
#[derive(Debug, Clone, Copy)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    /// Rust prints an f64 without an exponent, which the format accepts.
    Float(f64),
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Unsigned(n) => n.fmt(f),
            Number::Signed(n) => n.fmt(f),
            Number::Float(n) => n.fmt(f),
        }
    }
}

fn family(out: &mut String, name: &str, typ: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {typ}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    for (i, (label, text)) in labels.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        let _ = write!(out, "{label}=\"");
        label_value(out, text);
        out.push('"');
    }
    if !labels.is_empty() {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the format requires: `\`, `"` and newline escaped.
fn label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::figures::KeyTotal;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn key(key: &[u8], bytes_in: u64, bytes_out: u64) -> KeyTotal {
        KeyTotal {
            key: key.to_vec(),
            bytes_in,
            bytes_out,
        }
    }

    fn header() -> Header {
        Header {
            module_version: "0.1.0".into(),
            lighttpd_version: "lighttpd/1.4.79".into(),
            started: 1_795_989_662,
            now: 1_795_989_700,
            report_interval_secs: 60,
            exactly_once: true,
            tls_mode: "disable".into(),
            spool_file: None,
            server: "db:3306".into(),
        }
    }

    /// Two workers and a third slot whose worker published nothing yet
    /// and whose flusher never attempted.
    fn slots() -> Vec<Published> {
        let a = WorkerFigures {
            pid: 100,
            started: 900,
            pending_rows: 1,
            pending_in: 10,
            pending_out: 20,
            overflow_requests: 5,
            overflow_hosts: 3,
            totals: vec![key(b"a\xffb", 1, 1), key(b"example.org", 100, 200)],
            totals_folded: 2,
        };
        let b = WorkerFigures {
            pid: 200,
            pending_rows: 3,
            pending_in: 1,
            pending_out: 2,
            overflow_requests: 1,
            overflow_hosts: 1,
            totals: vec![key(b"a\xfeb", 2, 2), key(b"example.org", 1, 2)],
            ..WorkerFigures::default()
        };
        vec![
            (Some(a), Some(flusher_a())),
            (Some(b), Some(flusher_b())),
            (None, Some(idle_flusher())),
        ]
    }

    fn flusher_a() -> FlusherFigures {
        FlusherFigures {
            pid: 101,
            server: "db:3306".into(),
            last_success: 1000,
            last_attempt: 1060,
            last_duration_ms: 250,
            consecutive_failures: 2,
            failures_total: 7,
            last_error: "timeout A".into(),
            batches_delivered: 10,
            rows_delivered: 100,
            pending_rows: 2,
            pending_in: 30,
            pending_out: 40,
            spool_rows: 5,
            spool_bytes: 500,
            rows_set_aside: 1,
            exactly_once: true,
        }
    }

    fn flusher_b() -> FlusherFigures {
        FlusherFigures {
            pid: 201,
            last_success: 1100,
            last_attempt: 1100,
            last_duration_ms: 900,
            failures_total: 1,
            // Recovered: its old error is not the summary's.
            last_error: "old".into(),
            batches_delivered: 5,
            rows_delivered: 50,
            rows_set_aside: 2,
            ..FlusherFigures::default()
        }
    }

    fn idle_flusher() -> FlusherFigures {
        FlusherFigures {
            pid: 301,
            ..FlusherFigures::default()
        }
    }

    #[test]
    fn summing_rules() {
        let s = summarize(&slots());
        assert_eq!(s.workers, 3);
        let pending = Pending {
            rows: 1 + 3 + 2,
            bytes_in: 10 + 1 + 30,
            bytes_out: 20 + 2 + 40,
        };
        assert_eq!(s.pending, pending);
        let vhosts: Vec<(&str, u64, u64)> = s
            .vhosts
            .iter()
            .map(|(k, t)| (k.as_str(), t.bytes_in, t.bytes_out))
            .collect();
        // The two keys that differ only in invalid bytes read the same.
        assert_eq!(vhosts, [("a\u{fffd}b", 3, 3), ("example.org", 101, 202)]);
        let flush = FlushSummary {
            last_success: 1000,
            last_attempt: 1100,
            last_duration_ms: 900,
            consecutive_failures: 2,
            failures_total: 8,
            last_error: Some("timeout A".into()),
            batches_delivered: 15,
            rows_delivered: 150,
        };
        assert_eq!(s.flush, flush);
        let spool = Spool {
            rows: 5,
            bytes: 500,
            rows_set_aside: 3,
        };
        assert_eq!(s.spool, spool);
        assert_eq!((s.overflow_requests, s.overflow_hosts), (6, 4));
    }

    #[test]
    fn a_flusher_that_attempted_and_never_succeeded_zeroes_last_success() {
        let never = FlusherFigures {
            last_attempt: 1200,
            consecutive_failures: 9,
            last_error: "refused".into(),
            ..idle_flusher()
        };
        let flushers = [&flusher_a(), &flusher_b(), &idle_flusher(), &never];
        let s = summarize_flushers(&flushers);
        assert_eq!(s.last_success, 0);
        assert_eq!(s.last_attempt, 1200);
        assert_eq!(s.consecutive_failures, 9);
        assert_eq!(s.last_error.as_deref(), Some("refused"));
        assert_eq!(summarize_flushers(&[]), FlushSummary::default());
    }

    #[test]
    fn last_error_is_the_most_recent_failing_attempts_first_on_a_tie() {
        let failing = |error: &str, at| FlusherFigures {
            last_success: 1,
            last_attempt: at,
            consecutive_failures: 1,
            last_error: error.into(),
            ..FlusherFigures::default()
        };
        let (x, y, z) = (failing("x", 50), failing("y", 60), failing("z", 60));
        let s = summarize_flushers(&[&x, &y, &z]);
        assert_eq!(s.last_error.as_deref(), Some("y"));
        assert_eq!(s.last_success, 1);
        let healthy = summarize_flushers(&[&flusher_b()]);
        assert_eq!(healthy.last_error, None);
    }

    #[test]
    fn json_exactly() {
        let worker = WorkerFigures {
            pid: 7,
            started: 5,
            totals: vec![key(b"x\"y", 1, 2)],
            ..WorkerFigures::default()
        };
        let header = Header {
            spool_file: Some("/var/spool/bw".into()),
            ..header()
        };
        let json = render_json(&header, &[(Some(worker), None), (None, None)]);
        let expected = concat!(
            r#"{"module":{"version":"0.1.0","lighttpd":"lighttpd/1.4.79","#,
            r#""started":1795989662,"started_iso":"2026-11-29T22:01:02Z","#,
            r#""now":1795989700,"report_interval":60,"exactly_once":true,"#,
            r#""tls":"disable","spool_file":"/var/spool/bw","mysql_server":"db:3306"},"#,
            r#""workers":2,"pending":{"rows":0,"bytes_in":0,"bytes_out":0},"#,
            r#""vhosts":{"x\"y":{"in":1,"out":2}},"#,
            r#""flusher":{"last_success":0,"last_attempt":0,"last_duration_ms":0,"#,
            r#""consecutive_failures":0,"failures_total":0,"last_error":null,"#,
            r#""batches_delivered":0,"rows_delivered":0},"#,
            r#""spool":{"rows":0,"bytes":0,"rows_set_aside":0},"#,
            r#""overflow":{"requests":0,"hosts_estimated":0},"#,
            r#""per_worker":[{"pid":7,"flusher_pid":null,"started":5,"#,
            r#""pending":{"rows":0,"bytes_in":0,"bytes_out":0},"vhosts":1,"#,
            r#""vhosts_folded":0,"overflow":{"requests":0,"hosts_estimated":0},"#,
            r#""flusher":null},"#,
            r#"{"pid":null,"flusher_pid":null,"started":null,"flusher":null}]}"#,
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso8601(4_107_542_399), "2100-02-28T23:59:59Z");
        // Any i64 formats without overflow.
        let _ = iso8601(i64::MIN);
        let _ = iso8601(i64::MAX);
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\u000ad\\u0001e\u{7f}é\"");
    }

    #[test]
    fn prometheus_samples_and_escaping() {
        let worker = WorkerFigures {
            totals: vec![key(b"a\"b\\c\nd", 1, 2)],
            ..WorkerFigures::default()
        };
        let flusher = FlusherFigures {
            last_duration_ms: 1500,
            ..flusher_a()
        };
        let text = render_prometheus(&header(), &[(Some(worker), Some(flusher))]);
        for line in [
            "# TYPE bw_counter_bytes_total counter",
            r#"bw_counter_bytes_total{vhost="a\"b\\c\nd",direction="in"} 1"#,
            r#"bw_counter_bytes_total{vhost="a\"b\\c\nd",direction="out"} 2"#,
            r#"bw_counter_info{version="0.1.0",lighttpd="lighttpd/1.4.79"} 1"#,
            r#"bw_counter_pending_bytes{direction="in"} 30"#,
            "bw_counter_flush_duration_seconds 1.5",
            "bw_counter_flush_last_success_timestamp_seconds 1000",
            "bw_counter_rejected_rows_total 1",
            "bw_counter_workers 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# HELP ").count(), 18);
        assert_eq!(text.matches("# TYPE ").count(), 18);
    }

    /// Keys a client could send: every character the two formats treat
    /// specially, and bytes that are not UTF-8.
    fn hostile_slots() -> Vec<Published> {
        let keys: [&[u8]; 8] = [
            b"plain.example",
            b"q\"uote",
            b"back\\slash\\",
            b"new\nline\r",
            b"}{=,\" x=\"1\"",
            b"\xff\xfe\xc3",
            b"tab\tand\x01ctl",
            "ünïcode".as_bytes(),
        ];
        let totals = keys
            .iter()
            .enumerate()
            .map(|(i, k)| key(k, i as u64 + 1, 1000 + i as u64))
            .collect();
        let worker = WorkerFigures {
            totals,
            ..WorkerFigures::default()
        };
        vec![(Some(worker), Some(flusher_a()))]
    }

    /// An interpreter that has `module`; fails the test (never skips it)
    /// without one.
    fn python_with(module: &str) -> String {
        for python in ["python3", "/usr/bin/python3"] {
            let ok = Command::new(python)
                .args(["-c", &format!("import {module}")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return python.to_string();
            }
        }
        panic!(
            "this test needs python3 with the module {module:?} (tried python3 and \
             /usr/bin/python3); on Debian: apt-get install -y python3-prometheus-client"
        );
    }

    #[test]
    #[should_panic(expected = "this test needs python3 with the module")]
    fn a_missing_python_module_fails_the_test() {
        python_with("bw_counter_no_such_module");
    }

    /// Runs `script` with `input` on stdin; its stdout.
    fn run_python(python: &str, script: &str, input: &str) -> String {
        let mut child = Command::new(python)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{script} failed on\n{input}");
        String::from_utf8(output.stdout).unwrap()
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// What the vhosts should read as, hex of their UTF-8, sorted.
    fn expected_vhosts(slots: &[Published]) -> Vec<String> {
        let mut expected: Vec<String> = summarize(slots).vhosts.keys().map(|k| hex(k)).collect();
        expected.sort();
        expected
    }

    const PARSE_PROMETHEUS: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.buffer.read().decode("utf-8")
for family in text_string_to_metric_families(text):
    print("F", family.name, family.type)
    for s in family.samples:
        print("S", s.name, s.labels.get("vhost", "").encode("utf-8").hex() or "-",
              s.labels.get("direction", "-"), repr(s.value))
"#;

    #[test]
    fn prometheus_parses_cleanly_and_vhosts_round_trip() {
        let python = python_with("prometheus_client");
        let slots = hostile_slots();
        let out = run_python(
            &python,
            PARSE_PROMETHEUS,
            &render_prometheus(&header(), &slots),
        );
        let families: Vec<&str> = out.lines().filter(|l| l.starts_with("F ")).collect();
        assert_eq!(families.len(), 18, "{out}");
        assert!(
            !out.contains(" untyped"),
            "a family did not parse as typed:\n{out}"
        );
        assert!(families.contains(&"F bw_counter_bytes counter"), "{out}");
        assert!(families.contains(&"F bw_counter_rejected_rows counter"));
        assert!(families.contains(&"F bw_counter_info gauge"));
        let mut vhosts = Vec::new();
        for line in out
            .lines()
            .filter(|l| l.starts_with("S bw_counter_bytes_total "))
        {
            let fields: Vec<&str> = line.split(' ').collect();
            let (vhost, direction, value) = (fields[2], fields[3], fields[4]);
            let traffic = summarize(&slots)
                .vhosts
                .into_iter()
                .find(|(k, _)| hex(k) == vhost);
            let traffic = traffic.unwrap_or_else(|| panic!("unknown vhost {vhost}")).1;
            let want = if direction == "in" {
                traffic.bytes_in
            } else {
                traffic.bytes_out
            };
            assert_eq!(value.parse::<f64>().unwrap(), want as f64, "{line}");
            if direction == "in" {
                vhosts.push(vhost.to_string());
            }
        }
        vhosts.sort();
        assert_eq!(vhosts, expected_vhosts(&slots));
    }

    const PARSE_JSON: &str = r#"
import json, sys
doc = json.loads(sys.stdin.buffer.read().decode("utf-8"))
for key, traffic in doc["vhosts"].items():
    print(key.encode("utf-8").hex(), traffic["in"], traffic["out"])
print("workers", doc["workers"], doc["flusher"]["last_error"], doc["module"]["spool_file"])
"#;

    #[test]
    fn json_parses_and_vhosts_round_trip() {
        let python = python_with("json");
        let slots = hostile_slots();
        let out = run_python(&python, PARSE_JSON, &render_json(&header(), &slots));
        let mut vhosts: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with("workers "))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect();
        vhosts.sort();
        assert_eq!(vhosts, expected_vhosts(&slots));
        assert!(out.contains("workers 1 timeout A None"), "{out}");
    }
}
