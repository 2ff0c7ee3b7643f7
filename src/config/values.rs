//! The forms an option value can take: where the database is, and table
//! names that can always be backtick-quoted safely. Pure functions of the
//! text, each returning why a value is refused.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

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

/// The most servers `mysql_server` may list: a cluster's nodes, not a
/// fleet (a failover tries them in turn, with a connect timeout each).
pub const MAX_SERVERS: usize = 16;

/// `mysql_server` as a list: each element in [`parse_server`]'s forms,
/// at least one, at most [`MAX_SERVERS`], none twice; in the given order.
pub fn parse_server_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Server>, String> {
    if items.is_empty() {
        return Err("must name at least one server".to_string());
    }
    if items.len() > MAX_SERVERS {
        return Err(format!(
            "lists {} servers; at most {MAX_SERVERS}",
            items.len()
        ));
    }
    let mut servers: Vec<Server> = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let item = item.as_ref();
        let server = parse_server(item)
            .map_err(|why| format!("server {} (\"{}\"): {why}", n + 1, item.escape_debug()))?;
        if servers.contains(&server) {
            return Err(format!("lists {server} twice"));
        }
        servers.push(server);
    }
    Ok(servers)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
