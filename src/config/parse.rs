//! From the values lighttpd read to a typed [`Config`]: one line per
//! option, each problem recorded once with the option and its value.
//! Touches no file (that is `files.rs`, after this).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::errors::ConfigError;
use super::keys::{key_by_name, FoundKey, KeyId, KeyScope, RawValue};
use super::scopes::{parse_scopes, parse_switch, ConditionValues};
use super::values::{
    check_identifier, parse_server, parse_server_list, parse_table, Server, TableName,
};
use super::{
    Config, DbConfig, Password, Tls, TlsMode, DEFAULT_MAX_HOSTS, DEFAULT_REPORT_INTERVAL,
    MAX_MAX_HOSTS, MAX_REPORT_INTERVAL,
};

/// Validates the options. `found` lists every `bw_counter.*` key in any
/// scope (for the unknown-key and scope checks); `values` are the global
/// scope's values, by key; `conditions` the values of every condition that
/// sets a per-request option.
pub fn parse(
    found: &[FoundKey],
    values: &[(KeyId, RawValue)],
    conditions: &[ConditionValues],
) -> Result<Config, Vec<ConfigError>> {
    let mut o = Options {
        found,
        values,
        errors: Vec::new(),
    };
    o.check_names_and_scopes();

    let servers = o.servers();
    let database = o.required(KeyId::MysqlDb, "the database that holds the table", |db| {
        check_identifier(&db).map(|()| db)
    });
    let table = o.required(KeyId::MysqlTable, "the table the counts go to", |t| {
        parse_table(&t)
    });
    let ledger = o.ledger(table.as_ref());
    let user = o.required(KeyId::MysqlUser, "the MySQL user to log in as", Ok);
    let tls = o.tls();
    let password = o.password();
    let report_interval = o.number(
        KeyId::ReportInterval,
        DEFAULT_REPORT_INTERVAL,
        MAX_REPORT_INTERVAL,
        "seconds",
    );
    let spool_file = o.optional(KeyId::SpoolFile, absolute_file);
    let max_hosts = o.number(KeyId::MaxHosts, DEFAULT_MAX_HOSTS, MAX_MAX_HOSTS, "hosts");
    let count_in_progress = o.or_default(KeyId::CountInProgress, "enable", parse_switch);
    let scopes = parse_scopes(values, conditions)
        .map_err(|errors| o.errors.extend(errors))
        .ok();

    // Every None above has its error recorded.
    let config = (|| {
        Some(Config {
            db: DbConfig {
                servers: servers?,
                database: database?,
                table: table?,
                ledger: ledger?,
                user: user?,
                password: password?,
                tls: tls?,
            },
            report_interval: Duration::from_secs(u64::from(report_interval?)),
            max_hosts: max_hosts? as usize,
            count_in_progress: count_in_progress?,
            spool_file: spool_file?,
            scopes: scopes?,
        })
    })();
    match config {
        Some(config) if o.errors.is_empty() => Ok(config),
        _ => Err(o.errors),
    }
}

/// The values, and the problems found so far. Each reader returns the
/// option's value, or `None` once it has recorded why there is none.
struct Options<'a> {
    found: &'a [FoundKey],
    values: &'a [(KeyId, RawValue)],
    errors: Vec<ConfigError>,
}

impl<'a> Options<'a> {
    /// Unknown `bw_counter.*` keys, keys inside conditionals, and keys
    /// lighttpd found in the global scope but could not convert to the
    /// declared type (they carry no value).
    fn check_names_and_scopes(&mut self) {
        for k in self.found {
            match (key_by_name(&k.name), &k.condition) {
                (None, _) => self.errors.push(ConfigError::Unknown {
                    name: k.name.clone(),
                }),
                (Some(key), Some(condition)) if key.scope == KeyScope::Server => {
                    self.errors.push(ConfigError::NotGlobal {
                        name: k.name.clone(),
                        condition: condition.clone(),
                    })
                }
                (Some(_), _) => {}
            }
        }
        for k in self.found.iter().filter(|k| k.condition.is_none()) {
            if let Some(key) = key_by_name(&k.name) {
                if self.raw(key.id).is_none() {
                    self.errors.push(ConfigError::Unreadable { key: key.id });
                }
            }
        }
    }

    /// The value lighttpd read for `id` in the global scope (the last one).
    fn raw(&self, id: KeyId) -> Option<&'a RawValue> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v)
    }

    /// Set anywhere: a key only set inside a conditional already has its
    /// error and is not reported as missing as well.
    fn set_anywhere(&self, id: KeyId) -> bool {
        self.found.iter().any(|k| k.name == id.name())
    }

    /// Records that `id`'s value is refused, and why.
    fn refuse<T>(&mut self, id: KeyId, why: impl Into<String>) -> Option<T> {
        if let Some(value) = self.raw(id) {
            self.errors.push(ConfigError::invalid(id, value, why));
        }
        None
    }

    /// `Some(None)`: not set; `Some(Some(v))`: set and `check` accepts it;
    /// `None`: refused (recorded). Strings only, valid UTF-8, no NUL.
    fn optional<T>(
        &mut self,
        id: KeyId,
        check: impl FnOnce(String) -> Result<T, String>,
    ) -> Option<Option<T>> {
        let text = match self.raw(id) {
            None => return Some(None),
            Some(RawValue::Str(bytes)) => match text_of(bytes) {
                Ok(s) => s,
                Err(why) => return self.refuse(id, why),
            },
            Some(_) => return self.refuse(id, "must be a string"),
        };
        match check(text) {
            Ok(v) => Some(Some(v)),
            Err(why) => self.refuse(id, why),
        }
    }

    /// As [`Options::optional`], with `default` (checked the same way)
    /// when not set.
    fn or_default<T>(
        &mut self,
        id: KeyId,
        default: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.optional(id, |s| check(&s))? {
            Some(v) => Some(v),
            None => Some(check(default).expect("the default is valid")),
        }
    }

    /// A string that must be set and not blank; `what` says what it is for.
    fn required<T>(
        &mut self,
        id: KeyId,
        what: &'static str,
        check: impl FnOnce(String) -> Result<T, String>,
    ) -> Option<T> {
        let not_blank = |s: String| {
            if s.trim().is_empty() {
                Err("must not be empty".to_string())
            } else {
                check(s)
            }
        };
        match self.optional(id, not_blank)? {
            Some(v) => Some(v),
            None => {
                if !self.set_anywhere(id) {
                    self.errors.push(ConfigError::Missing { key: id, what });
                }
                None
            }
        }
    }

    /// `mysql_server`: one server, or a list of them tried in order
    /// (`localhost` when not set).
    fn servers(&mut self) -> Option<Vec<Server>> {
        let id = KeyId::MysqlServer;
        let items = match self.raw(id) {
            Some(RawValue::List(items)) => items,
            Some(RawValue::Other(_) | RawValue::Int(_)) => {
                return self.refuse(
                    id,
                    "must be a server, or a list of servers like \
                                        ( \"db1.example:3306\", \"db2.example\" )",
                )
            }
            _ => {
                return self
                    .or_default(id, "localhost", parse_server)
                    .map(|s| vec![s])
            }
        };
        match server_list(items) {
            Ok(servers) => Some(servers),
            Err(why) => self.refuse(id, why),
        }
    }

    /// A whole number from 1 to `max` (`default` when not set).
    fn number(&mut self, id: KeyId, default: u32, max: u32, unit: &str) -> Option<u32> {
        match self.raw(id) {
            None => Some(default),
            Some(RawValue::Int(n)) if (1..=max).contains(n) => Some(*n),
            Some(_) => self.refuse(
                id,
                format!("must be a whole number of {unit} from 1 to {max}"),
            ),
        }
    }

    /// `mysql_ledger_table`, by default `<table>_batches` next to the table.
    fn ledger(&mut self, table: Option<&TableName>) -> Option<TableName> {
        if let Some(ledger) = self.optional(KeyId::MysqlLedgerTable, |t| parse_table(&t))? {
            return Some(ledger);
        }
        let table = table?;
        let name = format!("{}_batches", table.table);
        if check_identifier(&name).is_err() {
            self.errors.push(ConfigError::Missing {
                key: KeyId::MysqlLedgerTable,
                what: "the table name is too long to append _batches to it",
            });
            return None;
        }
        Some(TableName {
            schema: table.schema.clone(),
            table: name,
        })
    }

    /// `mysql_ssl` and `mysql_ssl_ca` together.
    fn tls(&mut self) -> Option<Tls> {
        let mode = self.or_default(KeyId::MysqlSsl, "disable", |s| {
            TlsMode::from_name(s).ok_or_else(|| TlsMode::EXPECTED.to_string())
        });
        let ca = self.optional(KeyId::MysqlSslCa, |p| {
            if Path::new(&p).is_absolute() {
                Ok(PathBuf::from(p))
            } else {
                Err("must be the absolute path of a readable PEM file".to_string())
            }
        });
        match (mode?, ca?) {
            (mode, None) if mode.checks_certificate() => {
                self.errors.push(ConfigError::Missing {
                    key: KeyId::MysqlSslCa,
                    what: "bw_counter.mysql_ssl = \"verify_ca\" and \"verify_identity\" check \
                           the server against it",
                });
                None
            }
            (mode, ca) => Some(Tls { mode, ca }),
        }
    }

    /// `mysql_password` or `mysql_password_file` (read later), not both.
    fn password(&mut self) -> Option<Password> {
        let inline = self.optional(KeyId::MysqlPassword, Ok);
        let file = self.optional(KeyId::MysqlPasswordFile, Ok);
        match (inline?, file?) {
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::Conflict {
                    a: KeyId::MysqlPassword,
                    b: KeyId::MysqlPasswordFile,
                });
                None
            }
            (Some(p), None) => Some(Password::Inline(p)),
            (None, Some(path)) if path.is_empty() => {
                self.refuse(KeyId::MysqlPasswordFile, "must not be empty")
            }
            (None, Some(path)) => Some(Password::File {
                path: PathBuf::from(path),
                loaded: None,
            }),
            (None, None) => Some(Password::None),
        }
    }
}

/// An absolute path to a file (not a directory); whether its directory
/// exists is checked when files are opened.
fn absolute_file(p: String) -> Result<PathBuf, String> {
    if !Path::new(&p).is_absolute() || p.ends_with('/') {
        return Err("must be an absolute path to a file".into());
    }
    Ok(PathBuf::from(p))
}

/// An option's text: valid UTF-8 without NUL bytes.
fn text_of(bytes: &[u8]) -> Result<String, String> {
    match String::from_utf8(bytes.to_vec()) {
        Err(_) => Err("must be valid UTF-8".to_string()),
        Ok(s) if s.contains('\0') => Err("must not contain a NUL byte".to_string()),
        Ok(s) => Ok(s),
    }
}

/// A list of servers: each element text, then the list's rules.
fn server_list(items: &[Vec<u8>]) -> Result<Vec<Server>, String> {
    let texts = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            text_of(item).map_err(|why| {
                format!(
                    "server {} (\"{}\"): {why}",
                    n + 1,
                    String::from_utf8_lossy(item).escape_debug()
                )
            })
        })
        .collect::<Result<Vec<String>, String>>()?;
    parse_server_list(&texts)
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::values::Server;
    use super::super::DEFAULT_MYSQL_SOCKET;
    use super::*;

    pub fn s(v: &str) -> RawValue {
        RawValue::Str(v.as_bytes().to_vec())
    }

    pub fn global(keys: &[(KeyId, RawValue)]) -> Vec<FoundKey> {
        keys.iter()
            .map(|(k, _)| FoundKey {
                name: k.name().to_string(),
                condition: None,
            })
            .collect()
    }

    pub fn minimal() -> Vec<(KeyId, RawValue)> {
        vec![
            (KeyId::MysqlDb, s("bw")),
            (KeyId::MysqlTable, s("traffic")),
            (KeyId::MysqlUser, s("bwuser")),
        ]
    }

    pub fn parse_values(values: Vec<(KeyId, RawValue)>) -> Result<Config, Vec<ConfigError>> {
        parse(&global(&values), &values, &[])
    }

    pub fn errors_of(values: Vec<(KeyId, RawValue)>) -> Vec<String> {
        parse_values(values)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    pub fn with(extra: &[(KeyId, RawValue)]) -> Vec<(KeyId, RawValue)> {
        let mut v = minimal();
        v.extend(extra.iter().cloned());
        v
    }

    /// The Debian package's conffile lists every option, commented out
    /// with its default: each one this module knows, and uncommenting
    /// those that have a default changes nothing.
    #[test]
    fn the_packages_conffile_shows_every_option_with_its_default() {
        let text = include_str!("../../packaging/debian/20-bw-counter.conf");
        let shown: Vec<(KeyId, RawValue)> = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter_map(|l| l.split_once(" = "))
            .filter_map(|(name, value)| {
                let key = crate::config::keys::KEYS
                    .iter()
                    .find(|k| k.name.to_str() == Ok(name))?;
                let value = match value.strip_prefix('"') {
                    Some(v) => s(v.strip_suffix('"').expect("closing quote")),
                    None => RawValue::Int(value.parse().expect("a number")),
                };
                Some((key.id, value))
            })
            .collect();
        let mut names: Vec<&str> = shown.iter().map(|(k, _)| k.name()).collect();
        names.sort_unstable();
        let mut known: Vec<&str> = crate::config::keys::KEYS
            .iter()
            .map(|k| k.id.name())
            .collect();
        known.sort_unstable();
        assert_eq!(names, known, "each option once");
        // Required, and options whose absence is the default (no value).
        let required = [KeyId::MysqlDb, KeyId::MysqlTable, KeyId::MysqlUser];
        let without_default = [
            KeyId::MysqlPassword,
            KeyId::MysqlPasswordFile,
            KeyId::SpoolFile,
            KeyId::MysqlSslCa,
            KeyId::Account,
            KeyId::StatusUrl,
        ];
        let pick = |ids: &[KeyId]| -> Vec<(KeyId, RawValue)> {
            shown
                .iter()
                .filter(|(k, _)| ids.contains(k))
                .cloned()
                .collect()
        };
        let defaults = parse_values(pick(&required)).unwrap();
        let with_defaulted: Vec<KeyId> = crate::config::keys::KEYS
            .iter()
            .map(|k| k.id)
            .filter(|k| !without_default.contains(k))
            .collect();
        let written_out = parse_values(pick(&with_defaulted)).unwrap();
        assert!(
            written_out == defaults,
            "a commented value is not the default"
        );
        // Each no-default example is a valid value too.
        for id in without_default {
            let mut v = pick(&required);
            v.extend(pick(&[id]));
            if id == KeyId::MysqlSslCa {
                v.push((KeyId::MysqlSsl, s("verify_ca")));
            }
            parse_values(v).unwrap_or_else(|e| panic!("{id:?}: {:?}", e.len()));
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse_values(minimal()).unwrap();
        assert_eq!(c.report_interval, Duration::from_secs(60));
        assert_eq!(c.db.servers, [Server::Socket(DEFAULT_MYSQL_SOCKET.into())]);
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
            c.db.servers,
            [Server::Tcp {
                host: "db.example.net".into(),
                port: 3306
            }]
        );
        assert_eq!(c.db.password.secret(), Some("s3cret"));
        assert_eq!(c.report_interval, Duration::from_secs(300));
    }

    fn list(items: &[&str]) -> RawValue {
        RawValue::List(items.iter().map(|i| i.as_bytes().to_vec()).collect())
    }

    #[test]
    fn a_list_of_servers_is_kept_in_order() {
        let c = parse_values(with(&[(
            KeyId::MysqlServer,
            list(&["db1.example:3307", "db2.example", "/run/mysqld/mysqld.sock"]),
        )]))
        .unwrap();
        assert_eq!(
            c.db.servers,
            [
                Server::Tcp {
                    host: "db1.example".into(),
                    port: 3307
                },
                Server::Tcp {
                    host: "db2.example".into(),
                    port: 3306
                },
                Server::Socket("/run/mysqld/mysqld.sock".into()),
            ]
        );
        assert_eq!(
            c.db.servers_text(),
            "db1.example:3307, db2.example:3306, unix:/run/mysqld/mysqld.sock"
        );
        let one = parse_values(with(&[(KeyId::MysqlServer, list(&["localhost"]))])).unwrap();
        assert_eq!(
            one.db.servers,
            [Server::Socket(DEFAULT_MYSQL_SOCKET.into())]
        );
    }

    #[test]
    fn bad_server_lists_name_the_option_and_the_element() {
        let many: Vec<String> = (0..17).map(|i| format!("db{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let cases: [(RawValue, &str); 6] = [
            (
                list(&[]),
                "bw_counter.mysql_server = (  ): must name at least one server",
            ),
            (
                list(&["db1", "db:99999"]),
                "bw_counter.mysql_server = ( \"db1\", \"db:99999\" ): server 2 (\"db:99999\"): ",
            ),
            (
                list(&["db1:3306", "db1"]),
                "bw_counter.mysql_server = ( \"db1:3306\", \"db1\" ): lists db1:3306 twice",
            ),
            (list(&many), "lists 17 servers; at most 16"),
            (
                RawValue::Other("a list that is not only strings"),
                "bw_counter.mysql_server = (a list that is not only strings): must be a server, \
                 or a list of servers like ( \"db1.example:3306\", \"db2.example\" )",
            ),
            (
                RawValue::Int(5),
                "bw_counter.mysql_server = 5: must be a server, or a list of servers",
            ),
        ];
        for (value, want) in cases {
            let errs = errors_of(with(&[(KeyId::MysqlServer, value.clone())]));
            assert_eq!(errs.len(), 1, "{value:?}: {errs:?}");
            assert!(errs[0].contains(want), "{value:?}: {}", errs[0]);
        }
        // Lists are for mysql_server only.
        let errs = errors_of(with(&[(KeyId::MysqlDb, list(&["a", "b"]))]));
        assert!(errs[0].ends_with("must be a string"), "{errs:?}");
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
        let expected = [
            "bw_counter.mysql_server = \"db:99999\"",
            "bw_counter.mysql_db = \"bad name\"",
            "bw_counter.mysql_table = \"t`\"",
            "bw_counter.report_interval = 0:",
        ];
        for (error, start) in errs.iter().zip(expected) {
            assert!(error.starts_with(start), "{errs:?}");
        }
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
    fn spool_file_must_be_an_absolute_file_path() {
        assert_eq!(parse_values(minimal()).unwrap().spool_file, None);
        let tmp = std::env::temp_dir().join("bwc.spool");
        let c = parse_values(with(&[(KeyId::SpoolFile, s(tmp.to_str().unwrap()))])).unwrap();
        assert_eq!(c.spool_file, Some(tmp));
        for (bad, why) in [
            ("relative/spool", "must be an absolute path"),
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
        for mode in ["verify_ca", "verify_identity"] {
            let errs = errors_of(with(&[(KeyId::MysqlSsl, s(mode))]));
            assert!(
                errs[0].starts_with("bw_counter.mysql_ssl_ca is required"),
                "{errs:?}"
            );
        }
        let c = parse_values(with(&[
            (KeyId::MysqlSsl, s("verify_identity")),
            (KeyId::MysqlSslCa, s("/etc/ssl/db-ca.pem")),
        ]))
        .unwrap();
        assert_eq!(c.db.tls.mode, TlsMode::VerifyIdentity);
        let errs = errors_of(with(&[(KeyId::MysqlSsl, s("yes"))]));
        assert_eq!(
            errs,
            vec!["bw_counter.mysql_ssl = \"yes\": expected disable, prefer, require, verify_ca or verify_identity"]
        );
        let errs = errors_of(with(&[
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s("ca.pem")),
        ]));
        assert_eq!(errs, vec!["bw_counter.mysql_ssl_ca = \"ca.pem\": must be the absolute path of a readable PEM file"]);
        let c = parse_values(with(&[
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s("/etc/ssl/db-ca.pem")),
        ]))
        .unwrap();
        assert_eq!(
            c.db.tls,
            Tls {
                mode: TlsMode::VerifyCa,
                ca: Some("/etc/ssl/db-ca.pem".into())
            }
        );
    }

    #[test]
    fn count_in_progress_is_on_by_default_and_a_switch() {
        let s = |v: &str| RawValue::Str(v.as_bytes().to_vec());
        assert!(parse_values(minimal()).unwrap().count_in_progress);
        for (word, on) in [
            ("enable", true),
            ("disable", false),
            ("0", false),
            ("true", true),
        ] {
            let c = parse_values(with(&[(KeyId::CountInProgress, s(word))])).unwrap();
            assert_eq!(c.count_in_progress, on, "{word}");
        }
        let errs = errors_of(with(&[(KeyId::CountInProgress, s("yes"))]));
        assert_eq!(
            errs,
            vec!["bw_counter.count_in_progress = \"yes\": expected \"enable\" or \"disable\""]
        );
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
        let errs: Vec<String> = parse(&found, &minimal(), &[])
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
        let errs = parse(&found, &values, &[]).unwrap_err();
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
        let errs: Vec<String> = parse(&found, &values, &[])
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
}
