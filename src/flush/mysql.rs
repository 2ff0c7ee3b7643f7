//! The database link: the only code that talks to MySQL/MariaDB.

use std::fmt;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, TxOpts, Value};

use crate::config::{DbConfig, Server};
use crate::counters::Row;
use crate::day::Day;

/// A dead or unreachable server must never hang the flusher thread (and so
/// the join at shutdown): every network step has a deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per INSERT statement: 4 placeholders a row, far below the server's
/// limit of 65,535 per statement, and a statement of a few hundred KiB.
const ROWS_PER_STATEMENT: usize = 1000;
const _: () = assert!(ROWS_PER_STATEMENT * 4 <= 65_535, "placeholder limit");

/// Deadlock (1213) and lock-wait timeout (1205) roll the transaction back;
/// trying again at once is the documented remedy. This many attempts.
const LOCK_ATTEMPTS: u32 = 3;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;

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

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
}

/// One connection to the configured database, opened on demand.
pub struct Link {
    db: DbConfig,
    conn: Option<Conn>,
}

impl Link {
    pub fn new(db: DbConfig) -> Self {
        Link { db, conn: None }
    }

    /// "table `t` in database d at host:port as user u", for log lines.
    pub fn describe(&self) -> String {
        let db = &self.db;
        format!(
            "table {} in database {} at {} as user {}",
            db.table, db.database, db.server, db.user
        )
    }

    fn opts(&self) -> Opts {
        let db = &self.db;
        let builder = OptsBuilder::new()
            .user(Some(db.user.clone()))
            .pass(db.password.secret().map(str::to_string))
            .db_name(Some(db.database.clone()))
            // The crate's default silently swaps a loopback TCP address for
            // the server's unix socket; connect exactly where configured.
            .prefer_socket(false)
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .read_timeout(Some(IO_TIMEOUT))
            .write_timeout(Some(IO_TIMEOUT));
        let builder = match &db.server {
            Server::Tcp { host, port } => {
                builder.ip_or_hostname(Some(host.clone())).tcp_port(*port)
            }
            Server::Socket(path) => builder.socket(Some(path.to_string_lossy().into_owned())),
        };
        builder.into()
    }

    fn conn(&mut self) -> Result<&mut Conn, DbError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::new(self.opts())?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Connects and proves the table is usable: it exists and has the
    /// seed's columns. Uses only SELECT on the table, so it works with the
    /// least-privilege user the README recommends.
    pub fn check(&mut self) -> Result<ServerInfo, DbError> {
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

    /// Adds `rows` to the table in one transaction: all or nothing.
    pub fn upsert(&mut self, rows: &[Row]) -> Result<(), DbError> {
        let mut attempt = 1;
        loop {
            match self.upsert_once(rows) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // After any failure the connection's state is unknown
                    // (half-done transaction, lost link): start afresh.
                    self.conn = None;
                    let lock_conflict =
                        matches!(e.code, Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT));
                    if !lock_conflict || attempt >= LOCK_ATTEMPTS {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn upsert_once(&mut self, rows: &[Row]) -> Result<(), DbError> {
        let table = self.db.table.quoted();
        let conn = self.conn()?;
        let mut tx = conn.start_transaction(TxOpts::default())?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
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
        Ok(())
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
    fn dates_bind_as_dates() {
        assert_eq!(
            date_value(Day(20_420)),
            Value::Date(2025, 11, 28, 0, 0, 0, 0)
        );
    }
}
