//! Certificates made for a test: a CA, a server certificate it signed,
//! and an unrelated second CA, with the mariadbd options that use them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TempDir;

/// A CA, a server certificate it signed (for 127.0.0.1), and an unrelated
/// second CA.
pub struct Pki {
    dir: TempDir,
}

/// Runs `openssl` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(super::program("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        let openssl = |args: &[&str]| openssl(d, args);
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=mod_bw_counter test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        let pki = Pki { dir };
        pki.server_cert("server", "IP:127.0.0.1");
        pki
    }

    /// A server certificate `<name>.pem` / `<name>.key` signed by the CA,
    /// with `san` as subjectAltName (e.g. `IP:127.0.0.1`).
    pub fn server_cert(&self, name: &str, san: &str) {
        let d = self.dir.path();
        let openssl = |args: &[&str]| openssl(d, args);
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.cnf"),
        );
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        std::fs::write(d.join(&ext), format!("subjectAltName={san}\n")).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn server_args(&self) -> Vec<String> {
        self.server_args_for("server")
    }

    /// mariadbd options for TLS with the server certificate `name`.
    pub fn server_args_for(&self, name: &str) -> Vec<String> {
        vec![
            format!("--ssl-ca={}", self.path("ca.pem").display()),
            format!("--ssl-cert={}", self.path(&format!("{name}.pem")).display()),
            format!("--ssl-key={}", self.path(&format!("{name}.key")).display()),
        ]
    }
}
