//! The database link: the only code that talks to MySQL/MariaDB. One
//! attempt per call; when to try again is the worker's decision.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, TxOpts, Value};

use super::connect::{self, Endpoint};
use super::{spawn_named, DbError, Delivered, ServerInfo, Sink, LEDGER_RETENTION_DAYS};
use crate::config::{DbConfig, TlsMode};
use crate::counters::Batch;
use crate::day::Day;

/// A dead or unreachable server must never hang the flusher thread (and so
/// the join at shutdown): every network step has a deadline. A connection
/// (name resolution, TCP connect, TLS, login) must be up within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per INSERT statement: 4 placeholders a row, far below the server's
/// limit of 65,535 per statement, and a statement of a few hundred KiB
/// (bench/flush.rs measures the curve).
pub const ROWS_PER_STATEMENT: usize = 1000;
/// The server refuses more placeholders in one statement.
pub const MAX_ROWS_PER_STATEMENT: usize = 65_535 / 4;
const _: () = assert!(ROWS_PER_STATEMENT <= MAX_ROWS_PER_STATEMENT);

impl From<mysql::Error> for DbError {
    fn from(e: mysql::Error) -> Self {
        match e {
            mysql::Error::MySqlError(me) => DbError {
                code: Some(me.code),
                message: format!("ERROR {} ({}): {}", me.code, me.state, me.message),
            },
            mysql::Error::IoError(io) => DbError {
                code: None,
                message: format!("network error: {io}"),
            },
            other => DbError {
                code: None,
                message: other.to_string(),
            },
        }
    }
}

const ER_DUP_ENTRY: u16 = 1062;
/// The ledger cannot be used: no such table (1146), no right to it (1142),
/// not the expected columns (1054), or a `batch` column too narrow for
/// the module's ids (1406, 1265): a refusal of the id, not of the rows.
const LEDGER_UNUSABLE: [u16; 5] = [1146, 1142, 1054, 1406, 1265];

/// What a failed INSERT of a batch id into the ledger means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LedgerRefusal {
    /// The id is there: an earlier attempt of this batch committed.
    AlreadyApplied,
    /// The ledger is missing, not ours to write, or not the expected
    /// shape: deliver without it (at-least-once) and say so.
    Unusable,
    /// Anything else fails this attempt like any other error.
    Failed,
}

fn ledger_refusal(code: Option<u16>) -> LedgerRefusal {
    match code {
        Some(ER_DUP_ENTRY) => LedgerRefusal::AlreadyApplied,
        Some(code) if LEDGER_UNUSABLE.contains(&code) => LedgerRefusal::Unusable,
        _ => LedgerRefusal::Failed,
    }
}
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One connection to the configured database, opened on demand.
pub struct Link {
    db: DbConfig,
    conn: Option<Conn>,
    /// Exactly-once while the ledger works; at-least-once after it failed.
    ledger_ok: bool,
    rows_per_statement: usize,
    last_prune: Option<Instant>,
    notices: Vec<String>,
}

impl Link {
    pub fn new(db: DbConfig) -> Self {
        Link {
            db,
            conn: None,
            ledger_ok: true,
            rows_per_statement: ROWS_PER_STATEMENT,
            last_prune: None,
            notices: Vec::new(),
        }
    }

    /// For benchmarks: statement size, 1 to [`MAX_ROWS_PER_STATEMENT`].
    pub fn set_rows_per_statement(&mut self, rows: usize) {
        self.rows_per_statement = rows.clamp(1, MAX_ROWS_PER_STATEMENT);
    }

    /// Where and how to connect, as configured.
    fn endpoint(&self) -> Endpoint<'_> {
        let db = &self.db;
        Endpoint {
            server: &db.server,
            user: &db.user,
            password: db.password.secret(),
            database: &db.database,
            tls: db.tls.mode,
            ca: db.tls.ca.as_deref(),
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: IO_TIMEOUT,
        }
    }

    /// The connection, made if there is none. Each new connection also
    /// looks at the ledger table again.
    fn conn(&mut self) -> Result<&mut Conn, DbError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
            if let Err(e) = self.probe_ledger() {
                self.conn = None;
                return Err(e);
            }
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// A new connection, up within [`CONNECT_TIMEOUT`] or failed: name
    /// resolution (getaddrinfo, which has no timeout of its own), TCP
    /// connect, TLS and login run on a helper thread, which is left to
    /// finish on its own if it hangs. `prefer` asks for TLS every time: a
    /// server without it gets a plain connection, and one that has gained
    /// it since gets an encrypted one.
    fn connect(&self) -> Result<Conn, DbError> {
        let endpoint = self.endpoint();
        let (mode, with_tls, plain) = (endpoint.tls, endpoint.opts(true), endpoint.opts(false));
        let (tx, rx) = mpsc::channel();
        let attempt = move || {
            let conn = connect::connect(mode, with_tls, plain);
            // The receiver is gone if this took too long: the connection
            // is dropped (closed) here.
            let _ = tx.send(conn.map_err(DbError::from));
        };
        spawn_named("bw_counter-conn", attempt).map_err(|e| DbError {
            code: None,
            message: format!("cannot start a thread to connect: {e}"),
        })?;
        rx.recv_timeout(CONNECT_TIMEOUT).unwrap_or_else(|_| {
            Err(DbError {
                code: None,
                message: format!(
                    "no connection within {}s (name resolution, connect or login hung)",
                    CONNECT_TIMEOUT.as_secs()
                ),
            })
        })
    }

    /// Whether the ledger table can be used, asked at every new connection:
    /// a missing table or missing rights turn exactly-once off (said once)
    /// until a later connection finds it usable; any other error is the
    /// connection's, not the ledger's, and changes nothing.
    fn probe_ledger(&mut self) -> Result<(), DbError> {
        let sql = format!(
            "SELECT `batch`, `at` FROM {} LIMIT 0",
            self.db.ledger.quoted()
        );
        let conn = self.conn.as_mut().expect("connected");
        match conn.query_drop(sql).map_err(DbError::from) {
            Ok(()) => {
                if !self.ledger_ok {
                    self.notices.push(format!(
                        "ledger table {} is usable again: delivery is exactly-once again",
                        self.db.ledger
                    ));
                }
                self.ledger_ok = true;
                Ok(())
            }
            Err(e) if ledger_refusal(e.code) == LedgerRefusal::Unusable => {
                self.ledger_failed(&e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn ledger_failed(&mut self, e: &DbError) {
        if self.ledger_ok {
            self.ledger_ok = false;
            self.notices.push(format!(
                "ledger table {} unusable ({e}): delivery is at-least-once until a new connection \
                 finds it usable (a flush whose COMMIT reply is lost would be counted twice); \
                 create it as in examples/schema.sql and grant SELECT, INSERT, DELETE on it",
                self.db.ledger
            ));
        }
    }

    fn deliver_once(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
        let table = self.db.table.quoted();
        let ledger = self.db.ledger.quoted();
        let use_ledger = self.ledger_ok;
        let rows_per_statement = self.rows_per_statement;
        let conn = self.conn()?;
        let mut tx = conn.start_transaction(TxOpts::default())?;
        if use_ledger {
            let sql = format!("INSERT INTO {ledger} (`batch`) VALUES (?)");
            if let Err(e) = tx.exec_drop(sql, (batch.id.as_str(),)) {
                let e = DbError::from(e);
                match ledger_refusal(e.code) {
                    LedgerRefusal::AlreadyApplied => {
                        tx.rollback()?;
                        return Ok(Delivered::AlreadyApplied);
                    }
                    LedgerRefusal::Unusable => {
                        tx.rollback()?;
                        self.ledger_failed(&e);
                        return self.deliver_once(batch);
                    }
                    LedgerRefusal::Failed => return Err(e),
                }
            }
        }
        for chunk in batch.rows.chunks(rows_per_statement) {
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|r| {
                    [
                        Value::Bytes(r.host.as_bytes().to_vec()),
                        date_value(r.day),
                        Value::UInt(r.traffic.bytes_in),
                        Value::UInt(r.traffic.bytes_out),
                    ]
                })
                .collect();
            tx.exec_drop(upsert_sql(&table, chunk.len()), params)?;
        }
        tx.commit()?;
        Ok(Delivered::Applied)
    }

    /// Drops ledger rows past retention, at most once an hour.
    fn maybe_prune(&mut self) {
        if !self.ledger_ok || self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let sql = format!(
            "DELETE FROM {} WHERE `at` < NOW() - INTERVAL {LEDGER_RETENTION_DAYS} DAY",
            self.db.ledger.quoted()
        );
        let Ok(conn) = self.conn() else { return };
        if let Err(e) = conn.query_drop(sql) {
            let e = DbError::from(e);
            self.notices.push(format!(
                "cannot prune old rows of the ledger table {}: {e}; grant DELETE on it",
                self.db.ledger
            ));
        }
    }
}

impl Sink for Link {
    fn exactly_once(&self) -> bool {
        self.ledger_ok
    }

    /// "table `t` in database d at host:port as user u", for log lines.
    fn describe(&self) -> String {
        let db = &self.db;
        if db.tls.mode != TlsMode::Disable {
            return format!(
                "table {} in database {} at {} as user {} (TLS {})",
                db.table,
                db.database,
                db.server,
                db.user,
                db.tls.mode.name()
            );
        }
        format!(
            "table {} in database {} at {} as user {}",
            db.table, db.database, db.server, db.user
        )
    }

    /// Connects and proves the table is usable: it exists and has the
    /// seed's columns; and looks at the ledger. Uses only SELECT, so it
    /// works with the least-privilege user the README recommends.
    fn check(&mut self) -> Result<ServerInfo, DbError> {
        let probe = format!(
            "SELECT `vhost`, `day`, `in`, `out` FROM {} LIMIT 0",
            self.db.table.quoted()
        );
        let result = (|| {
            let conn = self.conn()?;
            let version: Option<String> = conn.query_first("SELECT VERSION()")?;
            conn.query_drop(&probe)?;
            Ok(ServerInfo {
                version: version.unwrap_or_default(),
            })
        })();
        if result.is_err() {
            // Start over with a fresh connection next time.
            self.conn = None;
        }
        result
    }

    /// Adds a batch's rows to the table in one transaction, all or nothing,
    /// recording its id in the ledger in the same transaction.
    fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
        match self.deliver_once(batch) {
            Ok(d) => {
                self.maybe_prune();
                Ok(d)
            }
            Err(e) => {
                // After any failure the connection's state is unknown
                // (half-done transaction, lost link): start afresh.
                self.conn = None;
                Err(e)
            }
        }
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// `INSERT … VALUES (?,?,?,?),… ON DUPLICATE KEY UPDATE in = in + VALUES(in), …`
/// Values are always bound, never spliced in; `in`/`out` are reserved words.
/// `VALUES(col)` works on MariaDB and MySQL 8 alike.
fn upsert_sql(quoted_table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {quoted_table} (`vhost`, `day`, `in`, `out`) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?)" } else { ",(?,?,?,?)" });
    }
    sql.push_str(
        " ON DUPLICATE KEY UPDATE `in` = `in` + VALUES(`in`), `out` = `out` + VALUES(`out`)",
    );
    sql
}

fn date_value(day: Day) -> Value {
    let (y, m, d) = day.ymd();
    Value::Date(y as u16, m as u8, d as u8, 0, 0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_statement_shape() {
        assert_eq!(
            upsert_sql("`db`.`t`", 2),
            "INSERT INTO `db`.`t` (`vhost`, `day`, `in`, `out`) VALUES (?,?,?,?),(?,?,?,?) \
             ON DUPLICATE KEY UPDATE `in` = `in` + VALUES(`in`), `out` = `out` + VALUES(`out`)"
        );
    }

    #[test]
    fn ledger_refusals() {
        assert_eq!(ledger_refusal(Some(1062)), LedgerRefusal::AlreadyApplied);
        for unusable in [1146, 1142, 1054, 1406] {
            assert_eq!(ledger_refusal(Some(unusable)), LedgerRefusal::Unusable);
        }
        for other in [None, Some(1213), Some(1205), Some(1045), Some(2013)] {
            assert_eq!(ledger_refusal(other), LedgerRefusal::Failed, "{other:?}");
        }
    }

    #[test]
    fn dates_bind_as_dates() {
        assert_eq!(
            date_value(Day(20_420)),
            Value::Date(2025, 11, 28, 0, 0, 0, 0)
        );
    }
}
