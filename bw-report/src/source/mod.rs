//! Where the data is: the `bw_counter.*` options of a lighttpd
//! configuration, explicit flags, or both, checked with the module's rules
//! into the one [`Source`] the query layer connects to.

mod lighttpd;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cli::DbArgs;
use crate::error::Error;
use crate::values::{
    check_identifier, parse_server, parse_server_list, parse_table, Server, TableName,
};
use crate::TlsMode;

/// The database settings as written, before they are checked; each field
/// is the value of one `bw_counter.*` option or flag.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `mysql_server`: one server or a list, tried in order.
    pub server: Option<Vec<String>>,
    pub db: Option<String>,
    pub table: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ssl: Option<String>,
    pub ssl_ca: Option<PathBuf>,
}

impl Settings {
    /// `self` with every value `flags` sets replaced by the flag's. A
    /// password file given as a flag also replaces an inline password.
    pub fn overridden_by(self, flags: Settings) -> Settings {
        let password = match flags.password_file {
            Some(_) => None,
            None => flags.password.or(self.password),
        };
        Settings {
            server: flags.server.or(self.server),
            db: flags.db.or(self.db),
            table: flags.table.or(self.table),
            user: flags.user.or(self.user),
            password,
            password_file: flags.password_file.or(self.password_file),
            ssl: flags.ssl.or(self.ssl),
            ssl_ca: flags.ssl_ca.or(self.ssl_ca),
        }
    }

    fn from_flags(args: &DbArgs) -> Settings {
        Settings {
            server: (!args.server.is_empty()).then(|| args.server.clone()),
            db: args.db.clone(),
            table: args.table.clone(),
            user: args.user.clone(),
            password: None,
            password_file: args.password_file.clone(),
            ssl: args.ssl.clone(),
            ssl_ca: args.ssl_ca.clone(),
        }
    }
}

/// A database and table to read, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Tried in this order; never empty.
    pub servers: Vec<Server>,
    pub database: String,
    pub table: TableName,
    pub user: String,
    pub password: Option<String>,
    pub tls: TlsMode,
    pub ssl_ca: Option<PathBuf>,
}

impl fmt::Display for Source {
    /// How errors name the table: server, database and table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.servers[..] {
            [one] => write!(f, "server {one}")?,
            list => {
                let names: Vec<String> = list.iter().map(Server::to_string).collect();
                write!(f, "servers {}", names.join(" then "))?;
            }
        }
        write!(f, ", database {}, table {}", self.database, self.table)
    }
}

/// The source the arguments describe: `--config`'s options, then the flags
/// over them.
pub fn locate(args: &DbArgs) -> Result<Source, Error> {
    let from_config = match &args.config {
        Some(file) => lighttpd::settings(file)?,
        None => Settings::default(),
    };
    check(from_config.overridden_by(Settings::from_flags(args)))
}

/// The module's rules: server defaults to `localhost`, db, table and user
/// are required, one password source at most, verify_* needs a CA file.
pub fn check(s: Settings) -> Result<Source, Error> {
    let usage = |m: String| Error::Usage(m);
    let servers = match s.server.as_deref() {
        None => vec![parse_server("localhost").expect("the default is valid")],
        Some([one]) => {
            vec![parse_server(one).map_err(|e| usage(format!("server {one:?}: {e}")))?]
        }
        Some(list) => parse_server_list(list).map_err(|e| usage(format!("servers: {e}")))?,
    };
    let database = required(s.db, "database", "--db", "bw_counter.mysql_db")?;
    check_identifier(&database).map_err(|e| usage(format!("database {database:?}: {e}")))?;
    let table = required(s.table, "table", "--table", "bw_counter.mysql_table")?;
    let table = parse_table(&table).map_err(|e| usage(format!("table {table:?}: {e}")))?;
    let user = required(s.user, "user", "--user", "bw_counter.mysql_user")?;
    let password = match (s.password, s.password_file) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "bw_counter.mysql_password and bw_counter.mysql_password_file are both set: \
                 keep one"
                    .into(),
            ))
        }
        (inline, None) => inline,
        (None, Some(file)) => Some(read_password(&file)?),
    };
    let mode = s.ssl.as_deref().unwrap_or("disable");
    let tls = TlsMode::from_name(mode)
        .ok_or_else(|| usage(format!("ssl mode {mode:?}: {}", TlsMode::EXPECTED)))?;
    if tls.checks_certificate() && s.ssl_ca.is_none() {
        return Err(usage(format!(
            "ssl mode {mode} checks the server against a CA file: give --ssl-ca"
        )));
    }
    Ok(Source {
        servers,
        database,
        table,
        user,
        password,
        tls,
        ssl_ca: s.ssl_ca,
    })
}

fn required(value: Option<String>, what: &str, flag: &str, option: &str) -> Result<String, Error> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::Usage(format!(
            "no {what}: give {flag}, or --config with {option}"
        ))),
    }
}

/// The first line of the file, as the module reads bw_counter.mysql_password_file.
fn read_password(file: &Path) -> Result<String, Error> {
    let fail = |why: String| Error::Usage(format!("password file {}: {why}", file.display()));
    let bytes = std::fs::read(file).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))?;
    match text.lines().next() {
        Some(first) if !first.is_empty() && !first.contains('\0') => Ok(first.to_string()),
        _ => Err(fail(
            "its first line must be the password (not empty, no NUL)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn minimal() -> Settings {
        Settings {
            db: some("bw_counter"),
            table: some("bandwidth"),
            user: some("reader"),
            ..Settings::default()
        }
    }

    #[test]
    fn flags_override_the_configuration() {
        let config = Settings {
            server: Some(vec!["db.example:3307".into()]),
            password: some("from-config"),
            ssl: some("require"),
            ..minimal()
        };
        let flags = Settings {
            table: some("other"),
            ..Settings::default()
        };
        let merged = config.clone().overridden_by(flags);
        assert_eq!(merged.table, some("other"));
        assert_eq!(merged.server, Some(vec!["db.example:3307".to_string()]));
        assert_eq!(merged.password, some("from-config"));
        let flags = Settings {
            password_file: Some("/etc/pw".into()),
            ..Settings::default()
        };
        let merged = config.overridden_by(flags);
        assert_eq!(
            merged.password, None,
            "a password file flag replaces the inline one"
        );
        assert_eq!(merged.password_file, Some("/etc/pw".into()));
    }

    #[test]
    fn module_rules_for_server_and_defaults() {
        let s = check(minimal()).unwrap();
        assert_eq!(
            s.servers,
            [Server::Socket("/run/mysqld/mysqld.sock".into())]
        );
        assert_eq!(s.tls, TlsMode::Disable);
        assert_eq!(
            s.to_string(),
            "server unix:/run/mysqld/mysqld.sock, database bw_counter, table `bandwidth`"
        );
        let s = check(Settings {
            server: Some(vec!["[::1]:3307".into()]),
            table: some("stats.bw"),
            ..minimal()
        })
        .unwrap();
        assert_eq!(s.servers[0].to_string(), "[::1]:3307");
        assert_eq!(s.table.quoted(), "`stats`.`bw`");
        let s = check(Settings {
            server: Some(vec!["db1".into(), "/run/db2.sock".into()]),
            ..minimal()
        })
        .unwrap();
        assert_eq!(
            s.to_string(),
            "servers db1:3306 then unix:/run/db2.sock, database bw_counter, table `bandwidth`"
        );
    }

    #[test]
    fn refusals_name_what_to_fix() {
        let refused = |s: Settings| match check(s) {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        };
        let no_db = Settings {
            db: None,
            ..minimal()
        };
        assert_eq!(
            refused(no_db),
            "no database: give --db, or --config with bw_counter.mysql_db"
        );
        let m = refused(Settings {
            server: Some(vec!["db:0".into()]),
            ..minimal()
        });
        assert!(m.starts_with("server \"db:0\": port"), "{m}");
        let m = refused(Settings {
            table: some("t`x"),
            ..minimal()
        });
        assert!(m.starts_with("table \"t`x\": not a valid name"), "{m}");
        let m = refused(Settings {
            ssl: some("yes"),
            ..minimal()
        });
        assert!(m.contains("expected disable, prefer"), "{m}");
        let m = refused(Settings {
            ssl: some("verify_ca"),
            ..minimal()
        });
        assert!(m.contains("give --ssl-ca"), "{m}");
        let both = Settings {
            password: some("x"),
            password_file: Some("/nonexistent".into()),
            ..minimal()
        };
        assert!(refused(both).contains("both set"));
        let missing = Settings {
            password_file: Some("/nonexistent/pw".into()),
            ..minimal()
        };
        assert!(refused(missing).starts_with("password file /nonexistent/pw: cannot read it"));
    }
}
