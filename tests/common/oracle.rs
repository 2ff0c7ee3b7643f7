//! The oracle for "exact": lighttpd's own mod_accesslog writes host, %I and
//! %O for every request; summed per host, they must equal what the module
//! put in the table.

use std::collections::BTreeMap;
use std::path::Path;

use mysql::prelude::Queryable;

use super::mariadb::{MariaDb, DATABASE, TABLE};

/// One access-log line (format: `tests/common/lighttpd.rs` ACCESSLOG_FORMAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `%V` as written: lighttpd's escaping kept, `-` when empty.
    pub host: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub status: i32,
    pub request: String,
}

impl Record {
    /// The record lighttpd writes when an HTTP/2 connection ends: the whole
    /// connection's wire bytes again, which the module must not count.
    pub fn is_h2_connection_record(&self) -> bool {
        self.status == 100 && self.request.starts_with("PRI *")
    }

    /// The path of the request line (`GET /x?y HTTP/1.1` -> `/x?y`).
    pub fn path(&self) -> &str {
        self.request.split(' ').nth(1).unwrap_or("")
    }
}

pub fn parse_access_log(text: &str) -> Vec<Record> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            assert_eq!(f.len(), 5, "unexpected access log line {line:?}");
            Record {
                host: f[0].to_string(),
                bytes_in: f[1].parse().unwrap_or_else(|_| panic!("%I in {line:?}")),
                bytes_out: f[2].parse().unwrap_or_else(|_| panic!("%O in {line:?}")),
                status: f[3].parse().unwrap_or_else(|_| panic!("%s in {line:?}")),
                request: f[4].to_string(),
            }
        })
        .collect()
}

pub fn read_access_log(path: &Path) -> Vec<Record> {
    parse_access_log(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The key under which the module counts a request, written independently
/// of the module from the rule in the README: the host as lighttpd parsed
/// it (lighttpd lower-cases it; %V escapes odd bytes the same way the key
/// does), without `:port` and trailing dots, IPv6 literals in brackets; no
/// host: `server_name` if set, else `_nohost`; longer than 255: 238 bytes,
/// `~` and the FNV-1a 64 hash of the whole key in hex.
pub fn host_key(v: &str, server_name: Option<&str>) -> String {
    let mut host = if v == "-" {
        String::new()
    } else {
        v.to_string()
    };
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            host.truncate(end + 1);
        }
    } else if let Some((h, port)) = host.rsplit_once(':') {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            host = h.to_string();
        }
    }
    while host.ends_with('.') {
        host.pop();
    }
    if host.is_empty() {
        return match server_name.filter(|s| !s.is_empty()) {
            Some(s) => host_key(s, None),
            None => "_nohost".to_string(),
        };
    }
    if host.len() > 255 {
        let mut hash: u64 = 0xcbf29ce484222325;
        for b in host.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        host = format!("{}~{hash:016x}", &host[..238]);
    }
    host
}

pub type Totals = BTreeMap<String, (u64, u64)>;

/// Per-host sums of %I/%O, HTTP/2 connection records left out.
pub fn expected_totals(records: &[Record], server_name: Option<&str>) -> Totals {
    expected_totals_by(records, |r| Some(host_key(&r.host, server_name)))
}

/// [`expected_totals`] of several lighttpd instances' access logs, summed:
/// what their table must hold when they all write into one.
pub fn expected_totals_of(access_logs: &[&Path]) -> Totals {
    let mut out = Totals::new();
    for log in access_logs {
        for (host, (i, o)) in expected_totals(&read_access_log(log), None) {
            let e = out.entry(host).or_default();
            e.0 += i;
            e.1 += o;
        }
    }
    out
}

/// Sums of %I/%O per row key that `row` gives each record (`None`: not
/// counted), HTTP/2 connection records left out.
pub fn expected_totals_by(records: &[Record], row: impl Fn(&Record) -> Option<String>) -> Totals {
    let mut out = Totals::new();
    for r in records.iter().filter(|r| !r.is_h2_connection_record()) {
        if let Some(key) = row(r) {
            let e = out.entry(key).or_default();
            e.0 += r.bytes_in;
            e.1 += r.bytes_out;
        }
    }
    out
}

/// Asserts the oracle: the table's per-host sums equal the access log's, to
/// the byte. Read the access log after lighttpd stopped (it buffers).
pub fn assert_table_matches_access_log(
    access_log: &Path,
    db: &MariaDb,
    server_name: Option<&str>,
) -> Totals {
    let records = read_access_log(access_log);
    assert!(
        !records.is_empty(),
        "the access log is empty: nothing was tested"
    );
    let expected = expected_totals(&records, server_name);
    assert_totals_equal(&expected, &table_totals(db), records.len());
    expected
}

/// Panics with the rows that differ, if any.
pub fn assert_totals_equal(expected: &Totals, actual: &Totals, records: usize) {
    if expected != actual {
        let mut diff = String::new();
        for host in expected
            .keys()
            .chain(actual.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (e, a) = (expected.get(host), actual.get(host));
            if e != a {
                diff.push_str(&format!("  {host:?}: access log {e:?}, table {a:?}\n"));
            }
        }
        panic!("table != access log ({records} records):\n{diff}");
    }
}

/// Per-host sums of rows (vhost, day, in, out), as [`table_totals`] has them.
pub fn totals_of_rows(rows: &[(String, String, u64, u64)]) -> Totals {
    let mut out = Totals::new();
    for (vhost, _, i, o) in rows {
        let e = out.entry(vhost.clone()).or_default();
        e.0 += i;
        e.1 += o;
    }
    out
}

/// `SELECT vhost, SUM(in), SUM(out) … GROUP BY vhost` of the counter table.
pub fn table_totals(db: &MariaDb) -> Totals {
    let mut conn = db.root_conn().expect("root connection");
    conn.query_map(
        format!(
            "SELECT vhost, CAST(SUM(`in`) AS UNSIGNED), CAST(SUM(`out`) AS UNSIGNED) \
             FROM `{DATABASE}`.`{TABLE}` GROUP BY vhost"
        ),
        |(v, i, o): (String, u64, u64)| (v, (i, o)),
    )
    .expect("select totals")
    .into_iter()
    .collect()
}
