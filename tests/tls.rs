//! Issue #4 (part): TLS to the database. A private MariaDB with a
//! certificate made for the test; the module's user is created with
//! REQUIRE SSL, so a count that lands proves the link was encrypted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::{MariaDb, USER};
use common::{oracle, TempDir};

const WAIT: Duration = Duration::from_secs(30);

/// A CA, a server certificate it signed (for 127.0.0.1), and an unrelated
/// second CA.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new(common::program("openssl"))
                .current_dir(d)
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
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
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            format!("--ssl-ca={}", self.path("ca.pem").display()),
            format!("--ssl-cert={}", self.path("server.pem").display()),
            format!("--ssl-key={}", self.path("server.key").display()),
        ]
    }
}

fn tls_setup(db: &MariaDb, mode: &str, ca: Option<&Path>) -> Setup {
    let mut conf = format!(
        "{}bw_counter.report_interval = 1\nbw_counter.mysql_ssl = \"{mode}\"\n",
        db.module_options()
    );
    if let Some(ca) = ca {
        conf.push_str(&format!("bw_counter.mysql_ssl_ca = \"{}\"\n", ca.display()));
    }
    Setup::new(conf)
}

#[test]
fn verify_ca_with_the_right_ca_delivers_over_tls() {
    let pki = Pki::new();
    let db = MariaDb::start_with(pki.server_args());
    db.exec(&format!("ALTER USER '{USER}'@'127.0.0.1' REQUIRE SSL"));
    let mut l = Lighttpd::start(&tls_setup(&db, "verify_ca", Some(&pki.path("ca.pem"))));
    let line = l.expect_log("database check", WAIT);
    assert!(
        line.contains("database check ok") && line.contains("(TLS verify_ca)"),
        "{line}"
    );
    assert_eq!(
        http::get(l.port, Some("tls.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

#[test]
fn verify_ca_with_a_wrong_ca_fails_clearly_and_keeps_counts() {
    let pki = Pki::new();
    let db = MariaDb::start_with(pki.server_args());
    let mut l = Lighttpd::start(&tls_setup(
        &db,
        "verify_ca",
        Some(&pki.path("other-ca.pem")),
    ));
    let line = l.expect_log("database check failed", WAIT);
    assert!(
        line.to_lowercase().contains("certificate"),
        "names the TLS problem: {line}"
    );
    assert_eq!(
        http::get(l.port, Some("kept.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    assert!(db.rows().is_empty(), "nothing sent to an unverified server");
    assert!(
        l.all_output().contains("undelivered: vhost kept.example"),
        "counts kept, then reported"
    );
}

#[test]
fn require_encrypts_and_prefer_falls_back_to_plain() {
    let pki = Pki::new();
    let db = MariaDb::start_with(pki.server_args());
    db.exec(&format!("ALTER USER '{USER}'@'127.0.0.1' REQUIRE SSL"));
    let l = Lighttpd::start(&tls_setup(&db, "require", None));
    l.expect_log("database check ok", WAIT);
    drop(l);

    // A server without TLS: prefer connects in plain, require refuses.
    let plain = MariaDb::start();
    let l = Lighttpd::start(&tls_setup(&plain, "prefer", None));
    l.expect_log("database check ok", WAIT);
    drop(l);
    let l = Lighttpd::start(&tls_setup(&plain, "require", None));
    let line = l.expect_log("database check failed", WAIT);
    assert!(
        line.to_lowercase().contains("tls") || line.to_lowercase().contains("ssl"),
        "{line}"
    );
}

/// Issue #9, case 7: `prefer` asks for TLS at every new connection. A
/// server that gains TLS (and a user that now requires it) gets an
/// encrypted link after the next reconnect; nothing remembers that the
/// server once had no TLS.
#[test]
fn prefer_tries_tls_again_at_each_new_connection() {
    let pki = Pki::new();
    let mut db = MariaDb::start();
    let mut l = Lighttpd::start(&tls_setup(&db, "prefer", None));
    l.expect_log("database check ok", WAIT);
    let get = |l: &Lighttpd, host: &str| {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    };
    get(&l, "plain.example");
    common::wait_for(WAIT, || (!db.rows().is_empty()).then_some(())).expect("delivered in plain");

    db.stop();
    db.set_extra_args(pki.server_args());
    db.launch();
    db.exec(&format!("ALTER USER '{USER}'@'127.0.0.1' REQUIRE SSL"));
    get(&l, "tls.example");
    l.expect_log("database reachable again", WAIT);
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}
