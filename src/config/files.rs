//! The step after parsing that looks at the files the options name: reads
//! the password file, checks the CA file and the spool directory. It runs in
//! `set_defaults`, after lighttpd switched to `server.username`, so what it
//! finds is what that user can do.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::errors::ConfigError;
use super::keys::KeyId;
use super::{Config, Password};

impl Config {
    /// Opens or checks every file the options name; one error per file
    /// that cannot be used.
    pub fn load_files(&mut self) -> Result<(), Vec<ConfigError>> {
        let errors: Vec<ConfigError> = [
            self.load_password(),
            self.check_ca_file(),
            self.check_spool_directory(),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Reads `mysql_password_file` (once, at start). The first line is the
    /// password; a trailing newline is not part of it.
    fn load_password(&mut self) -> Result<(), ConfigError> {
        let Password::File { path, loaded } = &mut self.db.password else {
            return Ok(());
        };
        let fail = |why: &str| ConfigError::File {
            key: KeyId::MysqlPasswordFile,
            path: path.clone(),
            why: why.to_string(),
        };
        let bytes = std::fs::read(&*path).map_err(|e| fail(&format!("cannot read it: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text"))?;
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            return Err(fail(
                "the file is empty: its first line must be the password",
            ));
        }
        if first.contains('\0') {
            return Err(fail("contains a NUL byte"));
        }
        *loaded = Some(first.to_string());
        Ok(())
    }

    fn check_ca_file(&self) -> Result<(), ConfigError> {
        match &self.db.tls.ca {
            Some(ca) if !ca.is_file() => Err(ConfigError::File {
                key: KeyId::MysqlSslCa,
                path: ca.clone(),
                why: "must be the absolute path of a readable PEM file".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The spool's directory must exist and be writable: the module creates
    /// the file there, and renames it to claim it.
    fn check_spool_directory(&self) -> Result<(), ConfigError> {
        let Some(spool) = &self.spool_file else {
            return Ok(());
        };
        let fail = |why: String| ConfigError::File {
            key: KeyId::SpoolFile,
            path: spool.clone(),
            why,
        };
        let dir = spool.parent().filter(|d| d.is_dir()).ok_or_else(|| {
            fail(
                "its directory does not exist (create it, writable by the user lighttpd runs as)"
                    .into(),
            )
        })?;
        if !writable(dir) {
            return Err(fail(format!(
                "its directory {} is not writable by the user lighttpd runs as",
                dir.display()
            )));
        }
        // Anyone who may write there may swap the spool for something else.
        let others_write =
            std::fs::metadata(dir).map_or(true, |m| m.permissions().mode() & 0o002 != 0);
        if others_write {
            return Err(fail(format!(
                "its directory {} is writable by every user: give the spool a directory only \
                 lighttpd's user may write to (chmod o-w)",
                dir.display()
            )));
        }
        Ok(())
    }

    /// Warnings worth a log line that do not stop the server.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Password::File { path, .. } = &self.db.password {
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

/// Whether this process (its real user, as after lighttpd's setuid) may
/// write into `dir`.
fn writable(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access(2) only reads the NUL-terminated path `c`, which lives
    // until the end of this function.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {

    use super::super::parse::tests::{parse_values, s, with};
    use super::super::{Tls, TlsMode};
    use super::*;
    use crate::testdir::TestDir;

    fn file_errors(extra: &[(KeyId, super::super::keys::RawValue)]) -> Vec<String> {
        let mut c = parse_values(with(extra)).expect("parses");
        c.load_files()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn spool_file_must_be_in_a_writable_directory() {
        let dir = TestDir::new("spool-dir");
        let spool = dir.join("bwc.spool");
        let mut c = parse_values(with(&[(KeyId::SpoolFile, s(spool.to_str().unwrap()))])).unwrap();
        c.load_files().unwrap();
        assert_eq!(c.spool_file, Some(spool));
        let errs = file_errors(&[(KeyId::SpoolFile, s("/nonexistent-dir/spool"))]);
        assert!(
            errs[0].starts_with(
                "bw_counter.spool_file = \"/nonexistent-dir/spool\": its directory does not exist"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn an_existing_ca_file_is_accepted() {
        let dir = TestDir::new("ca");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let mut c = parse_values(with(&[
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s(ca.to_str().unwrap())),
        ]))
        .unwrap();
        c.load_files().unwrap();
        assert_eq!(
            c.db.tls,
            Tls {
                mode: TlsMode::VerifyCa,
                ca: Some(ca.clone())
            }
        );
    }

    #[test]
    fn password_file_is_read_once_first_line_only() {
        let dir = TestDir::new("config-test");
        let path = dir.join("pw");
        std::fs::write(&path, "pa ss\r\nignored\n").unwrap();
        let mut c = parse_values(with(&[(
            KeyId::MysqlPasswordFile,
            s(path.to_str().unwrap()),
        )]))
        .unwrap();
        assert_eq!(c.db.password.secret(), None, "not read before load_files");
        c.load_files().unwrap();
        assert_eq!(c.db.password.secret(), Some("pa ss"));

        std::fs::write(&path, "\n").unwrap();
        let e = file_errors(&[(KeyId::MysqlPasswordFile, s(path.to_str().unwrap()))]);
        assert!(
            e[0].starts_with(&format!(
                "bw_counter.mysql_password_file = \"{}\": the file is empty",
                path.display()
            )),
            "{e:?}"
        );

        let missing = dir.join("missing");
        let e = file_errors(&[(KeyId::MysqlPasswordFile, s(missing.to_str().unwrap()))]);
        assert!(
            e[0].contains("cannot read it: No such file or directory"),
            "{e:?}"
        );
    }

    #[test]
    fn every_unusable_file_is_named() {
        let errs = file_errors(&[
            (KeyId::MysqlPasswordFile, s("/nonexistent/pw")),
            (KeyId::MysqlSsl, s("verify_ca")),
            (KeyId::MysqlSslCa, s("/nonexistent/ca.pem")),
            (KeyId::SpoolFile, s("/nonexistent/spool")),
        ]);
        assert_eq!(
            errs,
            vec![
                "bw_counter.mysql_password_file = \"/nonexistent/pw\": cannot read it: No such file or directory (os error 2)",
                "bw_counter.mysql_ssl_ca = \"/nonexistent/ca.pem\": must be the absolute path of a readable PEM file",
                "bw_counter.spool_file = \"/nonexistent/spool\": its directory does not exist (create it, writable by the user lighttpd runs as)",
            ]
        );
    }

    #[test]
    fn a_world_readable_password_file_is_a_warning() {
        let dir = TestDir::new("pw-mode");
        let path = dir.join("pw");
        std::fs::write(&path, "x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = parse_values(with(&[(
            KeyId::MysqlPasswordFile,
            s(path.to_str().unwrap()),
        )]))
        .unwrap();
        c.load_files().unwrap();
        assert_eq!(
            c.warnings(),
            vec![format!(
                "bw_counter.mysql_password_file = \"{}\" is readable by every user: chmod o-r it",
                path.display()
            )]
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.warnings().is_empty());
    }
}
