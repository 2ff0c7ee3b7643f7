//! The `bw_counter.*` options: declared as data (`keys.rs`), parsed into a
//! typed [`Config`] (`parse.rs`, with the value forms in `values.rs`), then
//! the files they name are opened (`files.rs`). Every problem is a
//! [`ConfigError`] (`errors.rs`) that names the option and the bad value.
//!
//! No FFI: the hook layer reads the raw values out of lighttpd (with
//! lighttpd's own `config_plugin_values_init`) and hands them here.

mod errors;
mod files;
mod keys;
mod parse;
mod scopes;
mod tls;
mod values;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use self::errors::ConfigError;
pub use self::keys::{
    display_int, key_by_index, key_by_name, FoundKey, Key, KeyId, KeyScope, KeyType, RawValue,
    KEYS, PREFIX,
};
pub use self::parse::parse;
pub use self::scopes::{AccountId, Condition, ConditionValues, RequestScope, Scopes};
pub use self::tls::TlsMode;
pub use self::values::{
    check_identifier, parse_server, parse_table, Server, TableName, DEFAULT_MYSQL_PORT,
    DEFAULT_MYSQL_SOCKET,
};

pub const DEFAULT_REPORT_INTERVAL: u32 = 60;
/// A day: beyond that, rows are per day anyway and only the loss bound on a
/// crash would grow.
pub const MAX_REPORT_INTERVAL: u32 = 86_400;
/// Distinct hosts one process keeps rows for per day (see admission.rs).
pub const DEFAULT_MAX_HOSTS: u32 = 10_000;
pub const MAX_MAX_HOSTS: u32 = 1_000_000;

/// The password, as configured; [`Config::load_files`] reads the file.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    None,
    Inline(String),
    File {
        path: PathBuf,
        loaded: Option<String>,
    },
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::None => f.write_str("None"),
            Password::Inline(_) => f.write_str("Inline(<hidden>)"),
            Password::File { path, .. } => write!(f, "File({})", path.display()),
        }
    }
}

impl Password {
    /// The secret to send, once loaded.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Password::None => None,
            Password::Inline(p) => Some(p),
            Password::File { loaded, .. } => loaded.as_deref(),
        }
    }
}

/// Everything the database side needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `mysql_server`: tried in this order; never empty. A connection that
    /// fails moves on to the next (see flush/mysql.rs).
    pub servers: Vec<Server>,
    pub database: String,
    pub table: TableName,
    /// Batch ids of committed flushes, for exactly-once delivery.
    pub ledger: TableName,
    pub user: String,
    pub password: Password,
    pub tls: Tls,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file with the CA certificate(s) for `verify_ca` and
    /// `verify_identity`: the only ones trusted.
    pub ca: Option<PathBuf>,
}

impl DbConfig {
    /// The servers as written in messages: `a`, or `a, b, c`.
    pub fn servers_text(&self) -> String {
        let names: Vec<String> = self.servers.iter().map(Server::to_string).collect();
        names.join(", ")
    }
}

/// The validated configuration of one lighttpd process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub db: DbConfig,
    pub report_interval: Duration,
    pub max_hosts: usize,
    /// Whether reports also count requests still running (the bytes they
    /// moved since last counted), not only requests that ended.
    pub count_in_progress: bool,
    /// Where undeliverable counts wait for the next start (none: logged).
    pub spool_file: Option<PathBuf>,
    /// `account`, `exclude` and `status_url`, per lighttpd condition.
    pub scopes: Scopes,
}
