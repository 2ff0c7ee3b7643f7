//! `bw_counter.mysql_ssl`'s modes and their names. Std only: bw-report
//! compiles this file in as well (#[path]), so the tool and the module
//! read the option by one rule.

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
    /// As `VerifyCa`, and the certificate must be for the host name or IP
    /// address in `mysql_server` (MySQL's VERIFY_IDENTITY).
    VerifyIdentity,
}

impl TlsMode {
    /// What an error says the option may be.
    pub const EXPECTED: &'static str =
        "expected disable, prefer, require, verify_ca or verify_identity";

    const NAMES: [(TlsMode, &'static str); 5] = [
        (TlsMode::Disable, "disable"),
        (TlsMode::Prefer, "prefer"),
        (TlsMode::Require, "require"),
        (TlsMode::VerifyCa, "verify_ca"),
        (TlsMode::VerifyIdentity, "verify_identity"),
    ];

    /// Whether the server's certificate is checked against `mysql_ssl_ca`.
    pub fn checks_certificate(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(mode, _)| *mode == self)
            .map_or("?", |(_, name)| name)
    }

    pub fn from_name(name: &str) -> Option<TlsMode> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(mode, _)| *mode)
    }
}
