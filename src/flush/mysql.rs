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
    /// The server of `db.servers` that `conn` is to, or is tried first.
    current: usize,
    /// Why the server in use failed, when that means moving on to the next
    /// one at the next connection (only with more than one server).
    left_because: Option<String>,
    /// The last connection attempt tried every server and none answered.
    every_server_failed: bool,
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
            current: 0,
            left_because: None,
            every_server_failed: false,
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

    /// Where and how to connect to server `server` of the list.
    fn endpoint(&self, server: usize) -> Endpoint<'_> {
        let db = &self.db;
        Endpoint {
            server: &db.servers[server],
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
            self.conn = Some(self.open_any()?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// A connection to the server in use, or (after it failed, or if it
    /// does not answer) to the next ones in the list's order, wrapping
    /// around; one line when it moves to another server. With one server
    /// this is [`Link::open`] of it.
    fn open_any(&mut self) -> Result<Conn, DbError> {
        let count = self.db.servers.len();
        let leaving = self.left_because.take();
        self.every_server_failed = false;
        let first = match leaving {
            Some(_) => (self.current + 1) % count,
            None => self.current,
        };
        let mut failures: Vec<(usize, DbError)> = Vec::new();
        for server in failover_order(first, count) {
            match self.open(server) {
                Ok(conn) => {
                    if server != self.current {
                        let why = leaving.or_else(|| failures.first().map(|(_, e)| e.to_string()));
                        let line = switch_line(&self.db, self.current, server, why.as_deref());
                        self.notices.push(line);
                        self.current = server;
                    }
                    return Ok(conn);
                }
                Err(e) => failures.push((server, e)),
            }
        }
        self.every_server_failed = true;
        Err(all_failed(&self.db, failures))
    }

    /// A connection to server `server` that can be used: the ledger table
    /// looked at, and (a cluster node) ready for application use.
    fn open(&mut self, server: usize) -> Result<Conn, DbError> {
        let mut conn = self.connect(server)?;
        self.probe_ledger(&mut conn)?;
        Ok(conn)
    }

    /// A new connection, up within [`CONNECT_TIMEOUT`] or failed: name
    /// resolution (getaddrinfo, which has no timeout of its own), TCP
    /// connect, TLS and login run on a helper thread, which is left to
    /// finish on its own if it hangs. `prefer` asks for TLS every time: a
    /// server without it gets a plain connection, and one that has gained
    /// it since gets an encrypted one.
    fn connect(&self, server: usize) -> Result<Conn, DbError> {
        let endpoint = self.endpoint(server);
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
    fn probe_ledger(&mut self, conn: &mut Conn) -> Result<(), DbError> {
        let sql = format!(
            "SELECT `batch`, `at` FROM {} LIMIT 0",
            self.db.ledger.quoted()
        );
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

    /// The start-up check of one server, on a connection of its own that
    /// is closed again (the first flush connects to the server in use).
    fn check_server(&mut self, server: usize) -> Result<ServerInfo, DbError> {
        let probe = format!(
            "SELECT `vhost`, `day`, `in`, `out` FROM {} LIMIT 0",
            self.db.table.quoted()
        );
        let mut conn = self.open(server)?;
        let version: Option<String> = conn.query_first("SELECT VERSION()")?;
        conn.query_drop(&probe)?;
        Ok(ServerInfo {
            version: version.unwrap_or_default(),
        })
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

    fn server_in_use(&self) -> usize {
        self.current
    }

    /// "table `t` in database d at host:port as user u", for log lines.
    fn describe(&self) -> String {
        let db = &self.db;
        if db.tls.mode != TlsMode::Disable {
            return format!(
                "table {} in database {} at {} as user {} (TLS {})",
                db.table,
                db.database,
                db.servers[self.current],
                db.user,
                db.tls.mode.name()
            );
        }
        format!(
            "table {} in database {} at {} as user {}",
            db.table, db.database, db.servers[self.current], db.user
        )
    }

    /// Connects and proves the table is usable: it exists and has the
    /// seed's columns; and looks at the ledger. Uses only SELECT, so it
    /// works with the least-privilege user the README recommends. With a
    /// list of servers, every one is checked: the first usable one in the
    /// list's order is used, and one more line says how the others fared.
    fn check(&mut self) -> Result<ServerInfo, DbError> {
        let count = self.db.servers.len();
        if count == 1 {
            return self.check_server(0);
        }
        let results: Vec<_> = (0..count).map(|s| (s, self.check_server(s))).collect();
        let in_use = results.iter().find(|(_, r)| r.is_ok()).map(|(s, _)| *s);
        let others: Vec<String> = results
            .iter()
            .filter(|(s, _)| Some(*s) != in_use)
            .map(|(s, r)| match r {
                Ok(info) => format!("{} ok (server {})", self.db.servers[*s], info.version),
                Err(e) => format!("{} failed: {e}", self.db.servers[*s]),
            })
            .collect();
        self.notices.push(format!(
            "database check of the other servers in bw_counter.mysql_server: {}",
            others.join("; ")
        ));
        let Some(in_use) = in_use else {
            let failures = results.into_iter().filter_map(|(s, r)| Some((s, r.err()?)));
            return Err(all_failed(&self.db, failures.collect()));
        };
        self.current = in_use;
        // Connect again to the server chosen; the checks closed theirs.
        results.into_iter().nth(in_use).expect("checked").1
    }

    /// Adds a batch's rows to the table in one transaction, all or nothing,
    /// recording its id in the ledger in the same transaction. With a list
    /// of servers, a server that is away is left at once for the next, in
    /// the same attempt (each server once): the ledger, if the servers
    /// share it (a cluster), says whether a batch whose COMMIT reply was
    /// lost had landed.
    fn deliver(&mut self, batch: &Batch) -> Result<Delivered, DbError> {
        let mut servers_tried = 1;
        loop {
            match self.deliver_once(batch) {
                Ok(d) => {
                    self.maybe_prune();
                    return Ok(d);
                }
                Err(e) => {
                    // After any failure the connection's state is unknown
                    // (half-done transaction, lost link): start afresh.
                    self.conn = None;
                    let count = self.db.servers.len();
                    if count == 1 || !server_failed(&e) || self.every_server_failed {
                        return Err(e);
                    }
                    self.left_because = Some(e.to_string());
                    if servers_tried >= count {
                        return Err(e);
                    }
                    servers_tried += 1;
                }
            }
        }
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// Errors after which the server in use is left for the next one in the
/// list: the connection or the server itself failed, or a cluster node is
/// not ready for application use. SQL errors about the statement, the rows
/// or the rights (the same on every node) are not a reason to move.
fn server_failed(e: &DbError) -> bool {
    match e.code {
        None => true,
        Some(code) => SERVER_AWAY.contains(&code),
    }
}

/// Server error codes that mean "this server cannot serve now".
const SERVER_AWAY: [u16; 9] = [
    1040, // too many connections
    1047, // WSREP has not yet prepared node for application use (Galera)
    1053, // server shutdown in progress
    1077, // normal shutdown
    1079, // shutdown complete
    1080, // forcing close of thread
    1927, // connection was killed
    2006, // server has gone away
    2013, // lost connection during query
];

/// "switched from A to B" with the reason, for the log.
fn switch_line(db: &DbConfig, from: usize, to: usize, why: Option<&str>) -> String {
    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
    format!(
        "database server {} failed{why}; now using {} (server {} of {} in bw_counter.mysql_server)",
        db.servers[from],
        db.servers[to],
        to + 1,
        db.servers.len()
    )
}

/// Every server failed: one error naming each, with the code of the first
/// tried (which decides how the failure is handled and logged).
fn all_failed(db: &DbConfig, failures: Vec<(usize, DbError)>) -> DbError {
    let mut failures = failures.into_iter();
    let Some((first, error)) = failures.next() else {
        return DbError {
            code: None,
            message: "no server to connect to".to_string(),
        };
    };
    if db.servers.len() == 1 {
        return error;
    }
    let mut message = format!("every server failed: {}: {error}", db.servers[first]);
    for (server, e) in failures {
        message.push_str(&format!("; {}: {e}", db.servers[server]));
    }
    DbError {
        code: error.code,
        message,
    }
}

/// `first`, then the servers after it in the list's order, wrapping.
fn failover_order(first: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |step| (first + step) % count)
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

    fn db(servers: &[&str]) -> DbConfig {
        DbConfig {
            servers: servers
                .iter()
                .map(|s| crate::config::parse_server(s).unwrap())
                .collect(),
            database: "d".into(),
            table: crate::config::parse_table("t").unwrap(),
            ledger: crate::config::parse_table("t_batches").unwrap(),
            user: "u".into(),
            password: crate::config::Password::None,
            tls: crate::config::Tls::default(),
        }
    }

    fn error(code: Option<u16>, message: &str) -> DbError {
        DbError {
            code,
            message: message.into(),
        }
    }

    #[test]
    fn failover_goes_down_the_list_and_wraps() {
        assert_eq!(failover_order(0, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(failover_order(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(failover_order(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
    }

    #[test]
    fn only_a_server_that_is_away_is_left() {
        for away in [
            None,
            Some(1047),
            Some(1053),
            Some(1927),
            Some(2013),
            Some(1040),
        ] {
            assert!(server_failed(&error(away, "x")), "{away:?}");
        }
        // The same on every node: moving on would not help.
        for stays in [Some(1045), Some(1146), Some(1213), Some(1406), Some(1062)] {
            assert!(!server_failed(&error(stays, "x")), "{stays:?}");
        }
    }

    #[test]
    fn switch_and_failure_lines_name_the_servers() {
        let db = db(&["10.0.0.1", "10.0.0.2:3307", "/s.sock"]);
        assert_eq!(
            switch_line(&db, 0, 1, Some("network error: refused")),
            "database server 10.0.0.1:3306 failed (network error: refused); now using \
             10.0.0.2:3307 (server 2 of 3 in bw_counter.mysql_server)"
        );
        let all = all_failed(
            &db,
            vec![
                (1, error(Some(1047), "ERROR 1047 (08S01): WSREP not ready")),
                (2, error(None, "network error: refused")),
                (0, error(None, "timeout")),
            ],
        );
        assert_eq!(all.code, Some(1047));
        assert_eq!(
            all.message,
            "every server failed: 10.0.0.2:3307: ERROR 1047 (08S01): WSREP not ready; \
             unix:/s.sock: network error: refused; 10.0.0.1:3306: timeout"
        );
        // One server: its error as it is, as before lists existed.
        let single = all_failed(&self::db(&["h"]), vec![(0, error(Some(1045), "denied"))]);
        assert_eq!(single, error(Some(1045), "denied"));
    }

    #[test]
    fn dates_bind_as_dates() {
        assert_eq!(
            date_value(Day(20_420)),
            Value::Date(2025, 11, 28, 0, 0, 0, 0)
        );
    }
}
