//! How a connection to the database is made: where, as whom, with which
//! deadlines, and TLS with MySQL's meanings. Uses only `mysql` and the
//! [`Server`] and [`TlsMode`] of its parent module: bw-report compiles this
//! file in as well (#[path]), so the tool connects exactly as the module
//! does.

use std::path::Path;
use std::time::Duration;

use mysql::{Conn, Opts, OptsBuilder, SslOpts};

use super::{Server, TlsMode};

/// Everything a connection needs, borrowed from either program's settings.
pub struct Endpoint<'a> {
    pub server: &'a Server,
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: &'a str,
    pub tls: TlsMode,
    pub ca: Option<&'a Path>,
    /// TCP connect.
    pub connect_timeout: Duration,
    /// Each network read or write.
    pub io_timeout: Duration,
}

impl Endpoint<'_> {
    /// The crate's options, with TLS as configured or (`tls` false) plain.
    pub fn opts(&self, tls: bool) -> Opts {
        let builder = OptsBuilder::new()
            .user(Some(self.user))
            .pass(self.password)
            .db_name(Some(self.database))
            // The crate's default silently swaps a loopback TCP address for
            // the server's unix socket; connect exactly where configured.
            .prefer_socket(false)
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(Some(self.io_timeout))
            .write_timeout(Some(self.io_timeout));
        let builder = match ssl_opts(self.tls, self.ca).filter(|_| tls) {
            Some(ssl) => builder.ssl_opts(ssl),
            None => builder,
        };
        match self.server {
            Server::Tcp { host, port } => builder.ip_or_hostname(Some(host)).tcp_port(*port),
            Server::Socket(path) => builder.socket(Some(path.to_string_lossy())),
        }
        .into()
    }
}

/// The crate's TLS settings for `mode`: `prefer` and `require` encrypt
/// without checking the certificate, `verify_ca` checks the chain against
/// `ca` but not the host name, `verify_identity` both. The trust store
/// holds only `ca`: the public roots the mysql crate would add are patched
/// out (tls-roots/). `None`: a plain connection.
fn ssl_opts(mode: TlsMode, ca: Option<&Path>) -> Option<SslOpts> {
    match mode {
        TlsMode::Disable => None,
        TlsMode::Prefer | TlsMode::Require => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => Some(
            SslOpts::default()
                .with_root_cert_path(ca.map(Path::to_path_buf))
                .with_danger_skip_domain_validation(mode == TlsMode::VerifyCa),
        ),
    }
}

/// A connection with `with_tls`; for `prefer`, a server without TLS gets
/// the `plain` one instead. Asked every time, so a server that has gained
/// TLS since gets an encrypted connection.
pub fn connect(mode: TlsMode, with_tls: Opts, plain: Opts) -> mysql::Result<Conn> {
    match Conn::new(with_tls) {
        Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
            if mode == TlsMode::Prefer =>
        {
            Conn::new(plain)
        }
        other => other,
    }
}
