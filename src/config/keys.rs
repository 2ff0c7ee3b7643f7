//! The `bw_counter.*` keys as data, the way lighttpd's modules declare
//! theirs (`config_plugin_keys_t cpk[]` in mod_rrdtool.c): the hook layer
//! hands this table to lighttpd's `config_plugin_values_init`, which reads
//! the values; lighttpd reports each value by its index here.

use std::ffi::CStr;

use KeyId as K;
use KeyType::{Int, String as Str, StringOrList};

/// How lighttpd should parse a key (maps to `T_CONFIG_STRING` /
/// `T_CONFIG_INT`; `StringOrList` to `T_CONFIG_LOCAL`, which lighttpd only
/// marks as known, and the hook layer reads itself, since lighttpd's own
/// types take a string or a list, never either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Int,
    /// `"a"` or `( "a", "b" )`.
    StringOrList,
}

/// Where an option may be set (maps to lighttpd's `T_CONFIG_SCOPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Global scope only: one database link and one flush clock per process.
    Server,
    /// Also inside any lighttpd condition, resolved per request with
    /// lighttpd's merge rules (a later matching condition wins).
    Request,
}

/// One `bw_counter.*` option as declared to lighttpd.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub id: KeyId,
    pub name: &'static CStr,
    pub ty: KeyType,
    pub scope: KeyScope,
}

/// Names the options in code; [`KEYS`] gives each its text and type.
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
    CountInProgress,
    Account,
    Exclude,
    StatusUrl,
}

const fn key(id: KeyId, name: &'static CStr, ty: KeyType) -> Key {
    let scope = KeyScope::Server;
    Key {
        id,
        name,
        ty,
        scope,
    }
}

const fn per_request(id: KeyId, name: &'static CStr, ty: KeyType) -> Key {
    let scope = KeyScope::Request;
    Key {
        id,
        name,
        ty,
        scope,
    }
}

/// Every option this module understands, in the order given to lighttpd.
/// The database and flush options are server-wide; the last three may be
/// set per condition (`$HTTP["host"]`, `$HTTP["remoteip"]`, ...).
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key(K::MysqlServer,       c"bw_counter.mysql_server",        StringOrList),
    key(K::MysqlDb,           c"bw_counter.mysql_db",            Str),
    key(K::MysqlTable,        c"bw_counter.mysql_table",         Str),
    key(K::MysqlUser,         c"bw_counter.mysql_user",          Str),
    key(K::MysqlPassword,     c"bw_counter.mysql_password",      Str),
    key(K::MysqlPasswordFile, c"bw_counter.mysql_password_file", Str),
    key(K::ReportInterval,    c"bw_counter.report_interval",     Int),
    key(K::MaxHosts,          c"bw_counter.max_hosts",           Int),
    key(K::MysqlLedgerTable,  c"bw_counter.mysql_ledger_table",  Str),
    key(K::SpoolFile,         c"bw_counter.spool_file",          Str),
    key(K::MysqlSsl,          c"bw_counter.mysql_ssl",           Str),
    key(K::MysqlSslCa,        c"bw_counter.mysql_ssl_ca",        Str),
    key(K::CountInProgress,   c"bw_counter.count_in_progress",   Str),
    per_request(K::Account,   c"bw_counter.account",             Str),
    per_request(K::Exclude,   c"bw_counter.exclude",             Str),
    per_request(K::StatusUrl, c"bw_counter.status_url",          Str),
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
    pub fn is_secret(self) -> bool {
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
    /// A list of strings, `( "a", "b" )` (only for `StringOrList` keys).
    List(Vec<Vec<u8>>),
    /// Anything else a `StringOrList` key was given: what it was, e.g.
    /// "a number" or "a list of key => value pairs".
    Other(&'static str),
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

/// Renders a value for a message: quoted and escaped, or hidden if secret.
pub fn shown(key: KeyId, value: &RawValue) -> String {
    if key.is_secret() {
        return "(hidden)".to_string();
    }
    let quoted = |bytes: &[u8]| format!("\"{}\"", String::from_utf8_lossy(bytes).escape_debug());
    match value {
        RawValue::Str(bytes) => quoted(bytes),
        RawValue::Int(u) => display_int(*u),
        RawValue::List(items) => {
            let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
            format!("( {} )", items.join(", "))
        }
        RawValue::Other(what) => format!("({what})"),
    }
}

/// lighttpd stores `T_CONFIG_INT` as unsigned; `-5` in the config arrives as
/// 4294967291. Show what the admin wrote.
pub fn display_int(u: u32) -> String {
    (u as i32).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_table_is_consistent() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(key_by_index(i).unwrap().id, k.id);
            assert!(k.id.name().starts_with(PREFIX));
            assert_eq!(key_by_name(k.id.name()).unwrap().id, k.id);
        }
    }

    #[test]
    fn values_are_shown_as_written_and_secrets_never() {
        assert_eq!(
            shown(KeyId::MysqlDb, &RawValue::Str(b"a\"b".to_vec())),
            "\"a\\\"b\""
        );
        assert_eq!(
            shown(KeyId::ReportInterval, &RawValue::Int(-5i32 as u32)),
            "-5"
        );
        assert_eq!(
            shown(KeyId::MysqlPassword, &RawValue::Str(b"x".to_vec())),
            "(hidden)"
        );
    }
}
