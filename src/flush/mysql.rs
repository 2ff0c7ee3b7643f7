//! The database link: the only code that talks to MySQL/MariaDB.

use std::fmt;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use crate::config::{DbConfig, Server};

/// A dead or unreachable server must never hang the flusher thread (and so
/// the join at shutdown): every network step has a deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

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

    pub fn db(&self) -> &DbConfig {
        &self.db
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
}
