//! The `bw_counter.*` options: declared as data, validated into a typed
//! [`Config`], with errors that name the option and the bad value.
//!
//! Pure Rust: the hook layer reads the raw values out of lighttpd (with
//! lighttpd's own `config_plugin_values_init`) and hands them here.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How lighttpd should parse a key (maps to `T_CONFIG_STRING` / `T_CONFIG_INT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Int,
}

/// One `bw_counter.*` option as declared to lighttpd.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub id: KeyId,
    pub name: &'static std::ffi::CStr,
    pub ty: KeyType,
}

/// Index into [`KEYS`]; lighttpd reports values by this index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyId {
    MysqlServer,
    MysqlDb,
    MysqlTable,
    MysqlUser,
    MysqlPassword,
    MysqlPasswordFile,
    ReportInterval,
    MaxHosts,
    MysqlLedgerTable,
    SpoolFile,
    MysqlSsl,
    MysqlSslCa,
}

/// Every option this module understands, in the order given to lighttpd.
/// All are server-wide: one database link and one flush clock per process.
pub const KEYS: &[Key] = &[
    Key {
        id: KeyId::MysqlServer,
        name: c"bw_counter.mysql_server",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlDb,
        name: c"bw_counter.mysql_db",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlTable,
        name: c"bw_counter.mysql_table",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlUser,
        name: c"bw_counter.mysql_user",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlPassword,
        name: c"bw_counter.mysql_password",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlPasswordFile,
        name: c"bw_counter.mysql_password_file",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::ReportInterval,
        name: c"bw_counter.report_interval",
        ty: KeyType::Int,
    },
    Key {
        id: KeyId::MaxHosts,
        name: c"bw_counter.max_hosts",
        ty: KeyType::Int,
    },
    Key {
        id: KeyId::MysqlLedgerTable,
        name: c"bw_counter.mysql_ledger_table",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::SpoolFile,
        name: c"bw_counter.spool_file",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlSsl,
        name: c"bw_counter.mysql_ssl",
        ty: KeyType::String,
    },
    Key {
        id: KeyId::MysqlSslCa,
        name: c"bw_counter.mysql_ssl_ca",
        ty: KeyType::String,
    },
];

/// The prefix of every option of this module.
pub const PREFIX: &str = "bw_counter.";

impl KeyId {
    pub fn key(self) -> &'static Key {
        KEYS.iter()
            .find(|k| k.id == self)
            .expect("every KeyId is in KEYS")
    }

    pub fn name(self) -> &'static str {
        self.key().name.to_str().expect("option names are ASCII")
    }

    /// Values of this option are never echoed in messages.
    fn is_secret(self) -> bool {
        self == KeyId::MysqlPassword
    }
}

pub fn key_by_index(index: usize) -> Option<&'static Key> {
    KEYS.get(index)
}

pub fn key_by_name(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name.to_bytes() == name.as_bytes())
}

/// A value as lighttpd handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    Str(Vec<u8>),
    /// `T_CONFIG_INT` arrives as an unsigned 32-bit value; a negative number
    /// in lighttpd.conf shows up wrapped (see [`display_int`]).
    Int(u32),
}

/// Where an option was found, for the scope checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundKey {
    /// The key as written, e.g. `bw_counter.mysql_db`.
    pub name: String,
    /// `None` in the global scope, else the condition it sits under, e.g.
    /// `$HTTP["host"] == "example.org"`.
    pub condition: Option<String>,
}

pub const DEFAULT_REPORT_INTERVAL: u32 = 60;
/// A day: beyond that, rows are per day anyway and only the loss bound on a
/// crash would grow.
pub const MAX_REPORT_INTERVAL: u32 = 86_400;
/// Distinct hosts one process keeps rows for per day (see admission.rs).
pub const DEFAULT_MAX_HOSTS: u32 = 10_000;
pub const MAX_MAX_HOSTS: u32 = 1_000_000;
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
/// What the C client library means by a bare `localhost`: the local server's
/// unix socket (Debian's MariaDB/MySQL path).
pub const DEFAULT_MYSQL_SOCKET: &str = "/run/mysqld/mysqld.sock";
/// MySQL's limit on database and table name length.
const MAX_IDENTIFIER_LEN: usize = 64;

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Server::Tcp { host, port } => write!(f, "{host}:{port}"),
            Server::Socket(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A table name, validated so that it can always be backtick-quoted safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub table: String,
}

impl TableName {
    /// `` `db`.`table` `` or `` `table` ``: the only form that goes into SQL.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("`{s}`.`{}`", self.table),
            None => format!("`{}`", self.table),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// The password, as configured; [`Config::load_secrets`] resolves files.
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
    pub server: Server,
    pub database: String,
    pub table: TableName,
    /// Batch ids of committed flushes, for exactly-once delivery.
    pub ledger: TableName,
    pub user: String,
    pub password: Password,
    pub tls: Tls,
}

/// TLS to the database (`bw_counter.mysql_ssl`), with MySQL's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain connection (the default, as in the original module).
    #[default]
    Disable,
    /// TLS if the server offers it, else plain; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, and the server certificate must chain to `mysql_ssl_ca` (the
    /// host name in it is not compared: MySQL's VERIFY_CA).
    VerifyCa,
}

impl TlsMode {
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify_ca",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file with the CA certificate(s) for `verify_ca`.
    pub ca: Option<PathBuf>,
}

/// The validated configuration of one lighttpd process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub db: DbConfig,
    pub report_interval: Duration,
    pub max_hosts: usize,
    /// Where undeliverable counts wait for the next start (none: logged).
    pub spool_file: Option<PathBuf>,
}

/// One problem with the configuration; `Display` gives the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Unknown {
        name: String,
    },
    NotGlobal {
        name: String,
        condition: String,
    },
    Missing {
        key: KeyId,
        what: &'static str,
    },
    /// Present, but lighttpd could not read it as the declared type (it
    /// logs its own line about it too).
    Unreadable {
        key: KeyId,
    },
    Invalid {
        key: KeyId,
        value: String,
        why: String,
    },
    Conflict {
        a: KeyId,
        b: KeyId,
    },
    PasswordFile {
        path: PathBuf,
        why: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unknown { name } => {
                let known: Vec<&str> = KEYS.iter().map(|k| k.id.name()).collect();
                write!(f, "unknown option {name} (known: {})", known.join(", "))
            }
            ConfigError::NotGlobal { name, condition } => write!(
                f,
                "{name} is a server-wide option: set it in the global scope, not inside {condition}"
            ),
            ConfigError::Missing { key, what } => {
                write!(f, "{} is required ({what}) but not set", key.name())
            }
            ConfigError::Unreadable { key } => write!(
                f,
                "{} has a value of the wrong type: expected {}",
                key.name(),
                match key.key().ty {
                    KeyType::String => "a string in double quotes",
                    KeyType::Int => "a whole number",
                }
            ),
            ConfigError::Invalid { key, value, why } => {
                write!(f, "{} = {value}: {why}", key.name())
            }
            ConfigError::Conflict { a, b } => write!(
                f,
                "{} and {} are both set: use only one of them",
                a.name(),
                b.name()
            ),
            ConfigError::PasswordFile { path, why } => write!(
                f,
                "{} = \"{}\": {why}",
                KeyId::MysqlPasswordFile.name(),
                path.display()
            ),
        }
    }
}

/// Renders a value for a message: quoted and escaped, or hidden if secret.
fn shown(key: KeyId, value: &RawValue) -> String {
    if key.is_secret() {
        return "(hidden)".to_string();
    }
    match value {
        RawValue::Str(bytes) => format!("\"{}\"", String::from_utf8_lossy(bytes).escape_debug()),
        RawValue::Int(u) => display_int(*u),
    }
}

/// lighttpd stores `T_CONFIG_INT` as unsigned; `-5` in the config arrives as
/// 4294967291. Show what the admin wrote.
pub fn display_int(u: u32) -> String {
    (u as i32).to_string()
}

/// Validates the options found in the global scope. `found` lists every
/// `bw_counter.*` key in any scope (for the unknown-key and scope checks);
/// `values` are the global-scope values, by key.
pub fn parse(found: &[FoundKey], values: &[(KeyId, RawValue)]) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    for k in found {
        match key_by_name(&k.name) {
            None => errors.push(ConfigError::Unknown {
                name: k.name.clone(),
            }),
            Some(_) => {
                if let Some(condition) = &k.condition {
                    errors.push(ConfigError::NotGlobal {
                        name: k.name.clone(),
                        condition: condition.clone(),
                    });
                }
            }
        }
    }

    // Keys lighttpd found in the global scope but could not convert to the
    // declared type carry no value.
    for k in found.iter().filter(|k| k.condition.is_none()) {
        if let Some(key) = key_by_name(&k.name) {
            if !values.iter().any(|(id, _)| *id == key.id) {
                errors.push(ConfigError::Unreadable { key: key.id });
            }
        }
    }

    // Set anywhere: a key only set inside a conditional already has its
    // error and is not reported as missing as well.
    let is_set = |id: KeyId| found.iter().any(|k| k.name == id.name());
    let get = |id: KeyId| values.iter().rev().find(|(k, _)| *k == id).map(|(_, v)| v);
    let string = |id: KeyId, errors: &mut Vec<ConfigError>| -> Option<String> {
        match get(id)? {
            RawValue::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) if s.contains('\0') => {
                    errors.push(invalid(id, get(id)?, "must not contain a NUL byte"));
                    None
                }
                Ok(s) => Some(s.to_string()),
                Err(_) => {
                    errors.push(invalid(id, get(id)?, "must be valid UTF-8"));
                    None
                }
            },
            other => {
                errors.push(invalid(id, other, "must be a string"));
                None
            }
        }
    };
    let required = |id: KeyId, what: &'static str, errors: &mut Vec<ConfigError>| {
        let present = get(id).is_some() || is_set(id);
        match string(id, errors) {
            Some(s) if s.trim().is_empty() => {
                errors.push(invalid(id, get(id).unwrap(), "must not be empty"));
                None
            }
            Some(s) => Some(s),
            None => {
                if !present {
                    errors.push(ConfigError::Missing { key: id, what });
                }
                None
            }
        }
    };

    let server = match string(KeyId::MysqlServer, &mut errors) {
        None => Some(parse_server("localhost").expect("default parses")),
        Some(s) => match parse_server(&s) {
            Ok(server) => Some(server),
            Err(why) => {
                errors.push(invalid(
                    KeyId::MysqlServer,
                    get(KeyId::MysqlServer).unwrap(),
                    &why,
                ));
                None
            }
        },
    };

    let database = required(
        KeyId::MysqlDb,
        "the database that holds the table",
        &mut errors,
    )
    .and_then(|db| match check_identifier(&db) {
        Ok(()) => Some(db),
        Err(why) => {
            errors.push(invalid(KeyId::MysqlDb, get(KeyId::MysqlDb).unwrap(), &why));
            None
        }
    });

    let table =
        required(KeyId::MysqlTable, "the table the counts go to", &mut errors).and_then(|t| {
            match parse_table(&t) {
                Ok(t) => Some(t),
                Err(why) => {
                    errors.push(invalid(
                        KeyId::MysqlTable,
                        get(KeyId::MysqlTable).unwrap(),
                        &why,
                    ));
                    None
                }
            }
        });

    // Default: `<table>_batches`, next to the table.
    let ledger = match string(KeyId::MysqlLedgerTable, &mut errors) {
        Some(name) => match parse_table(&name) {
            Ok(t) => Some(t),
            Err(why) => {
                errors.push(invalid(
                    KeyId::MysqlLedgerTable,
                    get(KeyId::MysqlLedgerTable).unwrap(),
                    &why,
                ));
                None
            }
        },
        None => table.as_ref().and_then(|t| {
            let name = format!("{}_batches", t.table);
            match check_identifier(&name) {
                Ok(()) => Some(TableName {
                    schema: t.schema.clone(),
                    table: name,
                }),
                Err(_) => {
                    errors.push(ConfigError::Missing {
                        key: KeyId::MysqlLedgerTable,
                        what: "the table name is too long to append _batches to it",
                    });
                    None
                }
            }
        }),
    };

    let user = required(KeyId::MysqlUser, "the MySQL user to log in as", &mut errors);

    let tls_mode = match string(KeyId::MysqlSsl, &mut errors).as_deref() {
        None | Some("disable") => Some(TlsMode::Disable),
        Some("prefer") => Some(TlsMode::Prefer),
        Some("require") => Some(TlsMode::Require),
        Some("verify_ca") => Some(TlsMode::VerifyCa),
        Some(_) => {
            errors.push(invalid(
                KeyId::MysqlSsl,
                get(KeyId::MysqlSsl).unwrap(),
                "expected disable, prefer, require or verify_ca",
            ));
            None
        }
    };
    let tls_ca = match string(KeyId::MysqlSslCa, &mut errors) {
        None => Some(None),
        Some(p) if Path::new(&p).is_absolute() && Path::new(&p).is_file() => {
            Some(Some(PathBuf::from(p)))
        }
        Some(_) => {
            errors.push(invalid(
                KeyId::MysqlSslCa,
                get(KeyId::MysqlSslCa).unwrap(),
                "must be the absolute path of a readable PEM file",
            ));
            None
        }
    };
    let tls = match (tls_mode, tls_ca) {
        (Some(TlsMode::VerifyCa), Some(None)) => {
            errors.push(ConfigError::Missing {
                key: KeyId::MysqlSslCa,
                what: "bw_counter.mysql_ssl = \"verify_ca\" checks the server against it",
            });
            None
        }
        (Some(mode), Some(ca)) => Some(Tls { mode, ca }),
        _ => None,
    };

    let inline = string(KeyId::MysqlPassword, &mut errors);
    let file = string(KeyId::MysqlPasswordFile, &mut errors);
    let password = match (inline, file) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::Conflict {
                a: KeyId::MysqlPassword,
                b: KeyId::MysqlPasswordFile,
            });
            None
        }
        (Some(p), None) => Some(Password::Inline(p)),
        (None, Some(path)) if path.is_empty() => {
            errors.push(invalid(
                KeyId::MysqlPasswordFile,
                get(KeyId::MysqlPasswordFile).unwrap(),
                "must not be empty",
            ));
            None
        }
        (None, Some(path)) => Some(Password::File {
            path: PathBuf::from(path),
            loaded: None,
        }),
        (None, None) => Some(Password::None),
    };

    let report_interval = match get(KeyId::ReportInterval) {
        None => Some(DEFAULT_REPORT_INTERVAL),
        Some(RawValue::Int(n)) if (1..=MAX_REPORT_INTERVAL).contains(n) => Some(*n),
        Some(v) => {
            errors.push(invalid(
                KeyId::ReportInterval,
                v,
                &format!("must be a whole number of seconds from 1 to {MAX_REPORT_INTERVAL}"),
            ));
            None
        }
    };

    let spool_file = match string(KeyId::SpoolFile, &mut errors) {
        None => Some(None),
        Some(p) => match check_spool_path(&p) {
            Ok(path) => Some(Some(path)),
            Err(why) => {
                errors.push(invalid(
                    KeyId::SpoolFile,
                    get(KeyId::SpoolFile).unwrap(),
                    &why,
                ));
                None
            }
        },
    };

    let max_hosts = match get(KeyId::MaxHosts) {
        None => Some(DEFAULT_MAX_HOSTS),
        Some(RawValue::Int(n)) if (1..=MAX_MAX_HOSTS).contains(n) => Some(*n),
        Some(v) => {
            errors.push(invalid(
                KeyId::MaxHosts,
                v,
                &format!("must be a whole number of hosts from 1 to {MAX_MAX_HOSTS}"),
            ));
            None
        }
    };

    match (
        server,
        database,
        (table, ledger),
        (user, tls),
        password,
        report_interval,
        (max_hosts, spool_file),
    ) {
        (
            Some(server),
            Some(database),
            (Some(table), Some(ledger)),
            (Some(user), Some(tls)),
            Some(password),
            Some(secs),
            (Some(max_hosts), Some(spool_file)),
        ) if errors.is_empty() => Ok(Config {
            db: DbConfig {
                server,
                database,
                table,
                ledger,
                user,
                password,
                tls,
            },
            report_interval: Duration::from_secs(u64::from(secs)),
            max_hosts: max_hosts as usize,
            spool_file,
        }),
        _ => Err(errors),
    }
}

fn invalid(key: KeyId, value: &RawValue, why: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: shown(key, value),
        why: why.to_string(),
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 literal, or a unix
/// socket path starting with `/`. A bare `localhost` means the default unix
/// socket, as it does for the C client library the seed module used.
pub fn parse_server(s: &str) -> Result<Server, String> {
    const FORMS: &str = "expected host, host:port, [IPv6]:port or an absolute unix socket path";
    if s.starts_with('/') {
        return Ok(Server::Socket(PathBuf::from(s)));
    }
    if s == "localhost" {
        return Ok(Server::Socket(PathBuf::from(DEFAULT_MYSQL_SOCKET)));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']': {FORMS}"))?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| format!("{addr} is not an IPv6 address"))?;
        let port = match after {
            "" => DEFAULT_MYSQL_PORT,
            p => parse_port(p.strip_prefix(':').ok_or_else(|| FORMS.to_string())?)?,
        };
        return Ok(Server::Tcp {
            host: addr.to_string(),
            port,
        });
    }
    if s.matches(':').count() > 1 {
        return match s.parse::<Ipv6Addr>() {
            Ok(_) => Ok(Server::Tcp {
                host: s.to_string(),
                port: DEFAULT_MYSQL_PORT,
            }),
            Err(_) => Err(format!("not an IPv6 address; write [IPv6]:port ({FORMS})")),
        };
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (s, DEFAULT_MYSQL_PORT),
    };
    if host.is_empty() {
        return Err(format!("no host name: {FORMS}"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(format!("{host:?} is not a host name: {FORMS}"));
    }
    Ok(Server::Tcp {
        host: host.to_string(),
        port,
    })
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("port {p:?} is not a number from 1 to 65535")),
    }
}

/// MySQL's unquoted identifier characters (ASCII subset), 1 to 64 of them,
/// not all digits. Anything else is refused rather than escaped: a table
/// name in lighttpd.conf has no business needing escapes.
pub fn check_identifier(s: &str) -> Result<(), String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    if s.is_empty()
        || s.len() > MAX_IDENTIFIER_LEN
        || !ok_chars
        || s.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "not a valid name: use 1 to {MAX_IDENTIFIER_LEN} letters, digits, '_' or '$' (not only digits)"
        ));
    }
    Ok(())
}

/// An absolute path in an existing directory (the module renames the file
/// there to claim it, so lighttpd's user needs write access to it).
fn check_spool_path(p: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(p);
    if !path.is_absolute() || p.ends_with('/') {
        return Err("must be an absolute path to a file".into());
    }
    let dir = path.parent().filter(|d| d.is_dir()).ok_or_else(|| {
        "its directory does not exist (create it, writable by the user lighttpd runs as)"
            .to_string()
    })?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "contains a NUL byte")?;
    // SAFETY: access(2) with a NUL-terminated path; no memory is written.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(format!(
            "its directory {} is not writable by the user lighttpd runs as",
            dir.display()
        ));
    }
    Ok(path)
}

/// `table` or `db.table`.
pub fn parse_table(s: &str) -> Result<TableName, String> {
    let (schema, table) = match s.split_once('.') {
        Some((db, t)) => (Some(db), t),
        None => (None, s),
    };
    let err = |why: String| format!("{why}; optionally as db.table");
    if let Some(db) = schema {
        check_identifier(db).map_err(err)?;
    }
    check_identifier(table).map_err(err)?;
    Ok(TableName {
        schema: schema.map(str::to_string),
        table: table.to_string(),
    })
}

impl Config {
    /// Reads `mysql_password_file` (once, at start). The first line is the
    /// password; a trailing newline is not part of it.
    pub fn load_secrets(&mut self) -> Result<(), ConfigError> {
        let Password::File { path, loaded } = &mut self.db.password else {
            return Ok(());
        };
        let fail = |why: String| ConfigError::PasswordFile {
            path: path.clone(),
            why,
        };
        let bytes = std::fs::read(&*path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))?;
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            return Err(fail(
                "the file is empty: its first line must be the password".into(),
            ));
        }
        if first.contains('\0') {
            return Err(fail("contains a NUL byte".into()));
        }
        *loaded = Some(first.to_string());
        Ok(())
    }

    /// Warnings worth a log line that do not stop the server.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        #[cfg(unix)]
        if let Password::File { path, .. } = &self.db.password {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o004 != 0 {
                    out.push(format!(
                        "{} = \"{}\" is readable by every user: chmod o-r it",
                        KeyId::MysqlPasswordFile.name(),
                        path.display()
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> RawValue {
        RawValue::Str(v.as_bytes().to_vec())
    }

    fn global(keys: &[(KeyId, RawValue)]) -> Vec<FoundKey> {
        keys.iter()
            .map(|(k, _)| FoundKey {
                name: k.name().to_string(),
                condition: None,
            })
            .collect()
    }

    fn minimal() -> Vec<(KeyId, RawValue)> {
        vec![
            (KeyId::MysqlDb, s("bw")),
            (KeyId::MysqlTable, s("traffic")),
            (KeyId::MysqlUser, s("bwuser")),
        ]
    }

    fn parse_values(values: Vec<(KeyId, RawValue)>) -> Result<Config, Vec<ConfigError>> {
        parse(&global(&values), &values)
    }

    fn errors_of(values: Vec<(KeyId, RawValue)>) -> Vec<String> {
        parse_values(values)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn with(extra: &[(KeyId, RawValue)]) -> Vec<(KeyId, RawValue)> {
        let mut v = minimal();
        v.extend(extra.iter().cloned());
        v
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse_values(minimal()).unwrap();
        assert_eq!(c.report_interval, Duration::from_secs(60));
        assert_eq!(c.db.server, Server::Socket(DEFAULT_MYSQL_SOCKET.into()));
        assert_eq!(c.db.password, Password::None);
        assert_eq!(c.db.table.quoted(), "`traffic`");
    }

    #[test]
    fn seed_config_is_accepted_as_written() {
        let c = parse_values(with(&[
            (KeyId::MysqlServer, s("db.example.net")),
            (KeyId::MysqlPassword, s("s3cret")),
            (KeyId::ReportInterval, RawValue::Int(300)),
        ]))
        .unwrap();
        assert_eq!(
            c.db.server,
            Server::Tcp {
                host: "db.example.net".into(),
                port: 3306
            }
        );
        assert_eq!(c.db.password.secret(), Some("s3cret"));
        assert_eq!(c.report_interval, Duration::from_secs(300));
    }

    #[test]
    fn server_forms() {
        let tcp = |h: &str, p| Server::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_server("db").unwrap(), tcp("db", 3306));
        assert_eq!(
            parse_server("127.0.0.1:3307").unwrap(),
            tcp("127.0.0.1", 3307)
        );
        assert_eq!(
            parse_server("localhost:3306").unwrap(),
            tcp("localhost", 3306)
        );
        assert_eq!(parse_server("[::1]:3307").unwrap(), tcp("::1", 3307));
        assert_eq!(parse_server("[::1]").unwrap(), tcp("::1", 3306));
        assert_eq!(parse_server("::1").unwrap(), tcp("::1", 3306));
        assert_eq!(
            parse_server("/tmp/my.sock").unwrap(),
            Server::Socket("/tmp/my.sock".into())
        );
        for bad in [
            "",
            ":3306",
            "db:",
            "db:0",
            "db:65536",
            "db:+1",
            "db:x",
            "[::1",
            "[nope]:1",
            "[::1]3306",
            "a b",
            "1:2:zz",
            "db;drop",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(tcp("::1", 3307).to_string(), "[::1]:3307");
        assert_eq!(tcp("db", 1).to_string(), "db:1");
    }

    #[test]
    fn table_names_are_identifiers_and_always_quoted() {
        assert_eq!(parse_table("t").unwrap().quoted(), "`t`");
        assert_eq!(parse_table("db1.t_$2").unwrap().quoted(), "`db1`.`t_$2`");
        let long = "x".repeat(64);
        assert!(parse_table(&long).is_ok());
        for bad in [
            "",
            "a.b.c",
            ".t",
            "t.",
            "t`x",
            "t x",
            "t;drop table x",
            "123",
            &"x".repeat(65),
            "tä",
        ] {
            assert!(parse_table(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn required_options_are_named_when_missing_or_empty() {
        let errs = errors_of(vec![]);
        assert_eq!(errs.len(), 3, "{errs:?}");
        for name in [
            "bw_counter.mysql_db",
            "bw_counter.mysql_table",
            "bw_counter.mysql_user",
        ] {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(name) && e.contains("required")),
                "{name}: {errs:?}"
            );
        }
        let mut v = minimal();
        v[2] = (KeyId::MysqlUser, s(""));
        assert_eq!(
            errors_of(v),
            vec!["bw_counter.mysql_user = \"\": must not be empty"]
        );
    }

    #[test]
    fn one_error_per_problem() {
        let errs = errors_of(vec![
            (KeyId::MysqlServer, s("db:99999")),
            (KeyId::MysqlDb, s("bad name")),
            (KeyId::MysqlTable, s("t`")),
            (KeyId::MysqlUser, s("u")),
            (KeyId::ReportInterval, RawValue::Int(0)),
        ]);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0].starts_with("bw_counter.mysql_server = \"db:99999\""),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("bw_counter.mysql_db = \"bad name\""),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("bw_counter.mysql_table = \"t`\""),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("bw_counter.report_interval = 0:"),
            "{errs:?}"
        );
    }

    #[test]
    fn report_interval_bounds_and_negative_values() {
        assert!(parse_values(with(&[(KeyId::ReportInterval, RawValue::Int(1))])).is_ok());
        assert!(parse_values(with(&[(KeyId::ReportInterval, RawValue::Int(86_400))])).is_ok());
        let errs = errors_of(with(&[(KeyId::ReportInterval, RawValue::Int(86_401))]));
        assert!(
            errs[0].contains("= 86401: must be a whole number of seconds from 1 to 86400"),
            "{errs:?}"
        );
        let errs = errors_of(with(&[(
            KeyId::ReportInterval,
            RawValue::Int(-5i32 as u32),
        )]));
        assert!(
            errs[0].starts_with("bw_counter.report_interval = -5:"),
            "{errs:?}"
        );
        let errs = errors_of(with(&[(KeyId::ReportInterval, s("60"))]));
        assert!(errs[0].contains("report_interval"), "{errs:?}");
    }

    #[test]
    fn ledger_table_defaults_next_to_the_table() {
        let c = parse_values(minimal()).unwrap();
        assert_eq!(c.db.ledger.quoted(), "`traffic_batches`");
        let c = parse_values(vec![
            (KeyId::MysqlDb, s("bw")),
            (KeyId::MysqlTable, s("other.t")),
            (KeyId::MysqlUser, s("u")),
        ])
        .unwrap();
        assert_eq!(c.db.ledger.quoted(), "`other`.`t_batches`");
        let c = parse_values(with(&[(KeyId::MysqlLedgerTable, s("x.seen"))])).unwrap();
        assert_eq!(c.db.ledger.quoted(), "`x`.`seen`");
        let errs = errors_of(with(&[(KeyId::MysqlLedgerTable, s("bad name"))]));
        assert!(
            errs[0].starts_with("bw_counter.mysql_ledger_table = \"bad name\": not a valid name"),
            "{errs:?}"
        );
        let long = "t".repeat(60);
        let errs = errors_of(vec![
            (KeyId::MysqlDb, s("bw")),
            (KeyId::MysqlTable, s(&long)),
            (KeyId::MysqlUser, s("u")),
        ]);
        assert_eq!(
            errs,
            vec!["bw_counter.mysql_ledger_table is required (the table name is too long to append _batches to it) but not set"]
        );
    }

    #[test]
    fn spool_file_must_be_absolute_in_a_writable_directory() {
        assert_eq!(parse_values(minimal()).unwrap().spool_file, None);
        let tmp = std::env::temp_dir().join("bwc.spool");
        let c = parse_values(with(&[(KeyId::SpoolFile, s(tmp.to_str().unwrap()))])).unwrap();
        assert_eq!(c.spool_file, Some(tmp));
        for (bad, why) in [
            ("relative/spool", "must be an absolute path"),
            ("/nonexistent-dir/spool", "its directory does not exist"),
            ("/tmp/", "must be an absolute path to a file"),
        ] {
            let errs = errors_of(with(&[(KeyId::SpoolFile, s(bad))]));
            assert!(
                errs[0].starts_with(&format!("bw_counter.spool_file = \"{bad}\": {why}")),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn tls_modes() {
        assert_eq!(parse_values(minimal()).unwrap().db.tls, Tls::default());
        for (v, mode) in [
            ("disable", TlsMode::Disable),
            ("prefer", TlsMode::Prefer),
            ("require", TlsMode::Require),
        ] {
            assert_eq!(
                parse_values(with(&[(KeyId::MysqlSsl, s(v))]))
                    .unwrap()
                    .db
                    .tls
                    .mode,
                mode
            );
        }
        let errs = errors_of(with(&[(KeyId::MysqlSsl, s("verify_ca"))]));
        assert!(
            errs[0].starts_with("bw_counter.mysql_ssl_ca is required"),
            "{errs:?}"
        );
        let errs = errors_of(with(&[(KeyId::MysqlSsl, s("yes"))]));
        assert_eq!(
            errs,
            vec!["bw_counter.mysql_ssl = \"yes\": expected disable, prefer, require or verify_ca"]
        );
        let errs = errors_of(with(&[
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s("/nonexistent.pem")),
        ]));
        assert_eq!(errs, vec!["bw_counter.mysql_ssl_ca = \"/nonexistent.pem\": must be the absolute path of a readable PEM file"]);
        let ca = std::env::temp_dir().join(format!("bwc-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "x").unwrap();
        let c = parse_values(with(&[
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s(ca.to_str().unwrap())),
        ]))
        .unwrap();
        assert_eq!(
            c.db.tls,
            Tls {
                mode: TlsMode::VerifyCa,
                ca: Some(ca.clone())
            }
        );
        std::fs::remove_file(ca).unwrap();
    }

    #[test]
    fn max_hosts_default_and_bounds() {
        assert_eq!(parse_values(minimal()).unwrap().max_hosts, 10_000);
        assert_eq!(
            parse_values(with(&[(KeyId::MaxHosts, RawValue::Int(5))]))
                .unwrap()
                .max_hosts,
            5
        );
        for bad in [0, 1_000_001] {
            let errs = errors_of(with(&[(KeyId::MaxHosts, RawValue::Int(bad))]));
            assert_eq!(
                errs,
                vec![format!("bw_counter.max_hosts = {bad}: must be a whole number of hosts from 1 to 1000000")]
            );
        }
    }

    #[test]
    fn password_is_never_shown() {
        let errs = errors_of(with(&[
            (KeyId::MysqlPassword, s("hunter2")),
            (KeyId::MysqlPasswordFile, s("/etc/pw")),
        ]));
        assert_eq!(
            errs,
            vec!["bw_counter.mysql_password and bw_counter.mysql_password_file are both set: use only one of them"]
        );
        let errs = errors_of(with(&[(KeyId::MysqlPassword, RawValue::Int(7))]));
        assert_eq!(
            errs,
            vec!["bw_counter.mysql_password = (hidden): must be a string"]
        );
        let c = parse_values(with(&[(KeyId::MysqlPassword, s("hunter2"))])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_and_conditional_keys_are_refused() {
        let mut found = global(&minimal());
        found.push(FoundKey {
            name: "bw_counter.mysql_hots".into(),
            condition: None,
        });
        found.push(FoundKey {
            name: "bw_counter.report_interval".into(),
            condition: Some("$HTTP[\"host\"] == \"a.example\"".into()),
        });
        let errs: Vec<String> = parse(&found, &minimal())
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0]
            .starts_with("unknown option bw_counter.mysql_hots (known: bw_counter.mysql_server,"));
        assert_eq!(
            errs[1],
            "bw_counter.report_interval is a server-wide option: set it in the global scope, not inside $HTTP[\"host\"] == \"a.example\""
        );

        // A required key set only inside a conditional: one error, not two.
        let values: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| *k != KeyId::MysqlUser)
            .collect();
        let mut found = global(&values);
        found.push(FoundKey {
            name: "bw_counter.mysql_user".into(),
            condition: Some("$HTTP[\"host\"] == \"b\"".into()),
        });
        let errs = parse(&found, &values).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(matches!(errs[0], ConfigError::NotGlobal { .. }));
    }

    #[test]
    fn a_value_lighttpd_could_not_read_is_named_once() {
        let mut values = minimal();
        let mut found = global(&values);
        values.remove(0);
        found.push(FoundKey {
            name: "bw_counter.report_interval".into(),
            condition: None,
        });
        let errs: Vec<String> = parse(&found, &values)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                "bw_counter.mysql_db has a value of the wrong type: expected a string in double quotes",
                "bw_counter.report_interval has a value of the wrong type: expected a whole number",
            ]
        );
    }

    #[test]
    fn non_utf8_and_nul_values_are_refused() {
        let errs = errors_of(with(&[(
            KeyId::MysqlServer,
            RawValue::Str(vec![0xff, b'x']),
        )]));
        assert!(errs[0].contains("must be valid UTF-8"), "{errs:?}");
        let errs = errors_of(with(&[(KeyId::MysqlPasswordFile, s("/a\0b"))]));
        assert!(errs[0].contains("NUL"), "{errs:?}");
    }

    #[test]
    fn password_file_is_read_once_first_line_only() {
        let dir = std::env::temp_dir().join(format!("bwc-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "pa ss\r\nignored\n").unwrap();
        let mut c = parse_values(with(&[(
            KeyId::MysqlPasswordFile,
            s(path.to_str().unwrap()),
        )]))
        .unwrap();
        assert_eq!(c.db.password.secret(), None, "not read before load_secrets");
        c.load_secrets().unwrap();
        assert_eq!(c.db.password.secret(), Some("pa ss"));

        std::fs::write(&path, "\n").unwrap();
        let mut c = parse_values(with(&[(
            KeyId::MysqlPasswordFile,
            s(path.to_str().unwrap()),
        )]))
        .unwrap();
        let e = c.load_secrets().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "bw_counter.mysql_password_file = \"{}\": the file is empty",
                path.display()
            )),
            "{e}"
        );

        let missing = dir.join("missing");
        let mut c = parse_values(with(&[(
            KeyId::MysqlPasswordFile,
            s(missing.to_str().unwrap()),
        )]))
        .unwrap();
        let e = c.load_secrets().unwrap_err().to_string();
        assert!(
            e.contains("cannot read it: No such file or directory"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_table_is_consistent() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(key_by_index(i).unwrap().id, k.id);
            assert!(k.id.name().starts_with(PREFIX));
            assert_eq!(key_by_name(k.id.name()).unwrap().id, k.id);
        }
    }
}
