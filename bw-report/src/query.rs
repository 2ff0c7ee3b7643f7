//! The SQL: the only code that talks to the database, and only in SELECTs
//! (a user with SELECT on the table is all bw-report needs). Values are
//! always bound; the table name is the module's validated, quoted form.

use std::time::Duration;

use chrono::NaiveDate;
use mysql::prelude::Queryable;
use mysql::{Conn, Params, Row, Value};

use crate::connect::Endpoint;
use crate::dates::Range;
use crate::error::Error;
use crate::exporter::cache::{Recent, Sums};
use crate::report::{DayBytes, VhostBytes};
use crate::source::Source;
use crate::values::Server;

/// A dead server must not hang a report (or the cron job running it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Per network read or write, not per query: a year of 10,000 vhosts is a
/// few million rows to sum, which a server does well within this.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The counter table, on an open connection whose columns were checked.
pub struct Table {
    conn: Conn,
    source: Source,
}

impl Table {
    /// Connects and checks that the table has the columns the module
    /// writes, so that a wrong table is one clear error before any report.
    /// With a list of servers, the first that answers, in order (as the
    /// module writes to the first that answers); the error of each when
    /// none does.
    pub fn open(source: &Source) -> Result<Table, Error> {
        let mut failures = Vec::new();
        for server in &source.servers {
            match Table::open_on(source, server) {
                Ok(table) => return Ok(table),
                Err((what, e)) => failures.push((server, what, e)),
            }
        }
        Err(match &failures[..] {
            [(_, what, e)] => failure(what, source, e),
            _ => {
                let each: Vec<String> = failures
                    .iter()
                    .map(|(server, what, e)| format!("{server}: {what} it: {}", why(e)))
                    .collect();
                Error::Database(format!("cannot read {source}: {}", each.join("; ")))
            }
        })
    }

    /// The table on `server`, or what failed: reaching it or reading it.
    fn open_on(source: &Source, server: &Server) -> Result<Table, (&'static str, mysql::Error)> {
        let conn = connect(source, server).map_err(|e| ("cannot reach", e))?;
        let mut table = Table {
            conn,
            source: source.clone(),
        };
        let probe = format!(
            "SELECT vhost, day, `in`, `out` FROM {} LIMIT 0",
            table.source.table.quoted()
        );
        table
            .conn
            .query_drop(probe)
            .map_err(|e| ("cannot read", e))?;
        Ok(table)
    }

    /// Bytes per vhost over the range, in no particular order.
    pub fn totals(&mut self, range: &Range, vhosts: &[String]) -> Result<Vec<VhostBytes>, Error> {
        let (filter, params) = filter(range, vhosts);
        let sql = format!(
            "SELECT vhost, SUM(`in`), SUM(`out`) FROM {} WHERE {filter} GROUP BY vhost",
            self.source.table.quoted()
        );
        self.rows(&sql, params, |row| {
            let (vhost, bytes_in, bytes_out) = mysql::from_row_opt::<(Vec<u8>, Value, Value)>(row)
                .map_err(|e| format!("unexpected row: {e}"))?;
            Ok(VhostBytes {
                vhost: String::from_utf8_lossy(&vhost).into_owned(),
                bytes_in: byte_count(bytes_in)?,
                bytes_out: byte_count(bytes_out)?,
            })
        })
    }

    /// The table's rows in the range, in no particular order.
    pub fn daily(&mut self, range: &Range, vhosts: &[String]) -> Result<Vec<DayBytes>, Error> {
        let (filter, params) = filter(range, vhosts);
        let sql = format!(
            "SELECT day, vhost, `in`, `out` FROM {} WHERE {filter}",
            self.source.table.quoted()
        );
        self.rows(&sql, params, |row| {
            let (day, vhost, bytes_in, bytes_out) =
                mysql::from_row_opt::<(Value, Vec<u8>, Value, Value)>(row)
                    .map_err(|e| format!("unexpected row: {e}"))?;
            Ok(DayBytes {
                day: date(day)?,
                vhost: String::from_utf8_lossy(&vhost).into_owned(),
                bytes_in: byte_count(bytes_in)?,
                bytes_out: byte_count(bytes_out)?,
            })
        })
    }

    /// Runs `sql` and converts each row; any failure names the table.
    fn rows<T>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        convert: impl Fn(Row) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        let source = &self.source;
        let result = self
            .conn
            .exec_iter(sql, Params::Positional(params))
            .map_err(|e| failure("cannot read", source, &e))?;
        let mut out = Vec::new();
        for row in result {
            let row = row.map_err(|e| failure("cannot read", source, &e))?;
            let value = convert(row)
                .map_err(|why| Error::Database(format!("cannot read {source}: {why}")))?;
            out.push(value);
        }
        Ok(out)
    }
}

/// The WHERE clause for the range and vhosts, with its bound values.
fn filter(range: &Range, vhosts: &[String]) -> (String, Vec<Value>) {
    let mut sql = String::from("day BETWEEN ? AND ?");
    let mut params = vec![
        Value::from(range.from.format("%Y-%m-%d").to_string()),
        Value::from(range.to.format("%Y-%m-%d").to_string()),
    ];
    if !vhosts.is_empty() {
        let marks = vec!["?"; vhosts.len()].join(", ");
        sql.push_str(&format!(" AND vhost IN ({marks})"));
        params.extend(vhosts.iter().map(|v| Value::from(v.as_str())));
    }
    (sql, params)
}

/// At most this many vhosts per `vhost IN (...)`: from 1000 values on,
/// MariaDB turns the list into a join (in_predicate_conversion_threshold)
/// that reads every day of each vhost instead of a range of the key.
const VHOSTS_PER_QUERY: usize = 500;

/// The sums the exporter selects per vhost, after the vhost itself.
const SUMS: &str = "SUM(`in`), SUM(`out`), COUNT(*), MAX(day)";

/// The exporter's reads, each shaped to the primary key (vhost, day) so that
/// a scrape reads the recent rows of each vhost and not the whole table.
impl Table {
    /// Every vhost that has a row: a loose scan of the key's first part
    /// (EXPLAIN: "Using index for group-by"), one dive per vhost. Sent as
    /// text, not prepared: MariaDB 10.11 runs a prepared statement's loose
    /// scan at its first execution only, and reads the whole key after.
    pub fn vhosts(&mut self) -> Result<Vec<String>, Error> {
        let sql = format!(
            "SELECT vhost FROM {} GROUP BY vhost",
            self.source.table.quoted()
        );
        let names: Vec<Vec<u8>> = self
            .conn
            .query(sql)
            .map_err(|e| failure("cannot read", &self.source, &e))?;
        Ok(names
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect())
    }

    /// Per vhost (of `only`, or all), its rows of the days before `cutoff`:
    /// all of them are read (a scan of the key), which the exporter does
    /// once a day.
    pub fn sums_before(
        &mut self,
        cutoff: NaiveDate,
        only: Option<&[String]>,
    ) -> Result<Vec<(String, Sums)>, Error> {
        let table = self.source.table.quoted();
        let Some(vhosts) = only else {
            let sql = format!("SELECT vhost, {SUMS} FROM {table} WHERE day < ? GROUP BY vhost");
            return self.rows(&sql, vec![day_value(cutoff)], vhost_sums);
        };
        let sql = |marks: &str| {
            let sql = format!(
                "SELECT vhost, {SUMS} FROM {table} \
                 WHERE day < ? AND vhost IN ({marks}) GROUP BY vhost"
            );
            (sql, vec![day_value(cutoff)])
        };
        self.per_chunk(vhosts, sql, vhost_sums)
    }

    /// Per vhost of `vhosts`, its rows from `cutoff` on, and `today`'s
    /// bytes: one range of the key per vhost, (vhost, cutoff) onwards.
    pub fn sums_since(
        &mut self,
        cutoff: NaiveDate,
        today: NaiveDate,
        vhosts: &[String],
    ) -> Result<Vec<Recent>, Error> {
        let table = self.source.table.quoted();
        self.per_chunk(
            vhosts,
            |marks| {
                let sql = format!(
                    "SELECT vhost, {SUMS}, SUM(IF(day = ?, `in`, 0)), SUM(IF(day = ?, `out`, 0)) \
                     FROM {table} WHERE day >= ? AND vhost IN ({marks}) GROUP BY vhost"
                );
                let today = day_value(today);
                (sql, vec![today.clone(), today, day_value(cutoff)])
            },
            |row| {
                let (vhost, bytes_in, bytes_out, rows, newest, today_in, today_out) =
                    mysql::from_row_opt::<(Vec<u8>, Value, Value, Value, Value, Value, Value)>(row)
                        .map_err(|e| format!("unexpected row: {e}"))?;
                Ok(Recent {
                    vhost: String::from_utf8_lossy(&vhost).into_owned(),
                    sums: sums(bytes_in, bytes_out, rows, newest)?,
                    today_in: byte_count(today_in)?,
                    today_out: byte_count(today_out)?,
                })
            },
        )
    }

    /// The newest `at` of the module's ledger table, as Unix time: one dive
    /// into its index on `at`. A ledger this user cannot read is not an
    /// error of the connection.
    pub fn newest_write(&mut self, ledger: &crate::values::TableName) -> Result<Ledger, Error> {
        let sql = format!("SELECT UNIX_TIMESTAMP(MAX(at)) FROM {}", ledger.quoted());
        match self.conn.query_first::<Option<i64>, _>(sql) {
            Ok(at) => Ok(Ledger::Newest(at.flatten())),
            Err(mysql::Error::MySqlError(e)) => Ok(Ledger::Unreadable(format!(
                "ERROR {} ({}): {}",
                e.code, e.state, e.message
            ))),
            Err(e) => Err(failure("cannot read", &self.source, &e)),
        }
    }

    /// Whether the connection still answers (the server may have restarted
    /// since the last scrape).
    pub fn answers(&mut self) -> bool {
        self.conn.ping().is_ok()
    }

    /// One query per chunk of `vhosts`, the chunk bound after `sql`'s own
    /// values; the rows of all of them.
    fn per_chunk<T>(
        &mut self,
        vhosts: &[String],
        sql: impl Fn(&str) -> (String, Vec<Value>),
        convert: impl Fn(Row) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for chunk in vhosts.chunks(VHOSTS_PER_QUERY) {
            let (text, mut params) = sql(&vec!["?"; chunk.len()].join(", "));
            params.extend(chunk.iter().map(|v| Value::from(v.as_str())));
            out.extend(self.rows(&text, params, &convert)?);
        }
        Ok(out)
    }
}

/// What the ledger says about the newest write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ledger {
    /// Unix time of the newest committed flush; None while it is empty.
    Newest(Option<i64>),
    /// The server's refusal (no such table, no SELECT right).
    Unreadable(String),
}

fn day_value(day: NaiveDate) -> Value {
    Value::from(day.format("%Y-%m-%d").to_string())
}

/// A row `vhost, SUMS`.
fn vhost_sums(row: Row) -> Result<(String, Sums), String> {
    let (vhost, bytes_in, bytes_out, rows, newest) =
        mysql::from_row_opt::<(Vec<u8>, Value, Value, Value, Value)>(row)
            .map_err(|e| format!("unexpected row: {e}"))?;
    let vhost = String::from_utf8_lossy(&vhost).into_owned();
    Ok((vhost, sums(bytes_in, bytes_out, rows, newest)?))
}

fn sums(bytes_in: Value, bytes_out: Value, rows: Value, newest: Value) -> Result<Sums, String> {
    Ok(Sums {
        bytes_in: byte_count(bytes_in)?,
        bytes_out: byte_count(bytes_out)?,
        rows: byte_count(rows)?,
        newest_day: Some(date(newest)?),
    })
}

/// A byte count: an integer column, or a SUM (a DECIMAL, sent as text).
/// A negative count is refused rather than shown as a huge one.
fn byte_count(v: Value) -> Result<u64, String> {
    let refused = |v: &Value| format!("{} is not a byte count", v.as_sql(true));
    match v {
        Value::UInt(n) => Ok(n),
        Value::Int(n) => u64::try_from(n).map_err(|_| refused(&v)),
        Value::Bytes(ref b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| refused(&v)),
        other => Err(refused(&other)),
    }
}

fn date(v: Value) -> Result<NaiveDate, String> {
    match v {
        Value::Date(y, m, d, ..) => {
            NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        }
        _ => None,
    }
    .ok_or_else(|| "a day that is not a date".to_string())
}

/// One line naming server, database and table, and what MySQL said.
fn failure(what: &str, source: &Source, e: &mysql::Error) -> Error {
    Error::Database(format!("{what} {source}: {}", why(e)))
}

/// What MySQL (or the network) said, on one line.
fn why(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(me) => {
            format!("ERROR {} ({}): {}", me.code, me.state, me.message)
        }
        mysql::Error::IoError(io) => format!("network error: {io}"),
        // Its Display is the Debug form ("DriverError { ... }").
        mysql::Error::DriverError(driver) => driver.to_string(),
        other => other.to_string(),
    }
}

/// A connection as the module makes one (same TLS meanings, connect
/// exactly where configured), with a deadline on every network step.
fn connect(source: &Source, server: &Server) -> mysql::Result<Conn> {
    let endpoint = Endpoint {
        server,
        user: &source.user,
        password: source.password.as_deref(),
        database: &source.database,
        tls: source.tls,
        ca: source.ssl_ca.as_deref(),
        connect_timeout: CONNECT_TIMEOUT,
        io_timeout: IO_TIMEOUT,
    };
    crate::connect::connect(source.tls, endpoint.opts(true), endpoint.opts(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_binds_every_value() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 1, day).unwrap();
        let range = Range {
            from: d(1),
            to: d(31),
        };
        let (sql, params) = filter(&range, &[]);
        assert_eq!(sql, "day BETWEEN ? AND ?");
        assert_eq!(
            params,
            vec![Value::from("2026-01-01"), Value::from("2026-01-31")]
        );
        let (sql, params) = filter(&range, &["a'b".into(), "c".into()]);
        assert_eq!(sql, "day BETWEEN ? AND ? AND vhost IN (?, ?)");
        assert_eq!(params[2], Value::from("a'b"));
    }

    #[test]
    fn byte_counts_are_exact_and_never_negative() {
        assert_eq!(
            byte_count(Value::Bytes(b"18446744073709551615".to_vec())),
            Ok(u64::MAX)
        );
        assert_eq!(byte_count(Value::Int(7)), Ok(7));
        assert!(byte_count(Value::Int(-1)).is_err());
        assert!(byte_count(Value::Bytes(b"-5".to_vec())).is_err());
        assert!(byte_count(Value::Bytes(b"1.5".to_vec())).is_err());
        assert!(byte_count(Value::NULL).is_err());
    }
}
