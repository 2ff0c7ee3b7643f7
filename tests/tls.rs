//! Issue #4 (part): TLS to the database. A private MariaDB with a
//! certificate made for the test; the module's user is created with
//! REQUIRE SSL, so a count that lands proves the link was encrypted.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::{MariaDb, USER};
use common::oracle;
use common::pki::Pki;

const WAIT: Duration = Duration::from_secs(30);

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

/// Issue #9, case 6: the module trusts only what it is told. The mysql
/// crate's rustls path added Mozilla's whole public root set to every
/// connection; the built module must not carry it.
#[test]
fn the_built_module_carries_no_public_root_set() {
    let so = std::fs::read(common::lighttpd::module_path()).unwrap();
    for root in ["ISRG Root X1", "DigiCert Global Root", "GlobalSign Root"] {
        let found = so.windows(root.len()).any(|w| w == root.as_bytes());
        assert!(!found, "the module carries the public root {root:?}");
    }
}

/// Issue #9, case 6: verify_ca trusts mysql_ssl_ca and nothing else, not
/// the process's default trust store (SSL_CERT_FILE, SSL_CERT_DIR).
#[test]
fn verify_ca_ignores_the_default_trust_store() {
    let pki = Pki::new();
    let db = MariaDb::start_with(pki.server_args());
    let mut s = tls_setup(&db, "verify_ca", Some(&pki.path("other-ca.pem")));
    s.env = vec![
        (
            "SSL_CERT_FILE".into(),
            pki.path("ca.pem").display().to_string(),
        ),
        ("SSL_CERT_DIR".into(), pki.path("").display().to_string()),
    ];
    let l = Lighttpd::start(&s);
    let line = l.expect_log("database check failed", WAIT);
    assert!(line.to_lowercase().contains("certificate"), "{line}");
}

/// Issue #9, case 6: verify_identity is verify_ca plus the server's name:
/// a certificate from the right CA for another name is refused, one for
/// the address in mysql_server is taken.
#[test]
fn verify_identity_checks_the_name_too() {
    let pki = Pki::new();
    pki.server_cert("elsewhere", "DNS:db.elsewhere.example");
    let ca = pki.path("ca.pem");
    let other = MariaDb::start_with(pki.server_args_for("elsewhere"));
    let l = Lighttpd::start(&tls_setup(&other, "verify_ca", Some(&ca)));
    l.expect_log("database check ok", WAIT);
    drop(l);
    let l = Lighttpd::start(&tls_setup(&other, "verify_identity", Some(&ca)));
    let line = l.expect_log("database check failed", WAIT);
    assert!(line.contains("not valid for name"), "{line}");
    drop(l);

    let right = MariaDb::start_with(pki.server_args());
    right.exec(&format!("ALTER USER '{USER}'@'127.0.0.1' REQUIRE SSL"));
    let mut l = Lighttpd::start(&tls_setup(&right, "verify_identity", Some(&ca)));
    let line = l.expect_log("database check", WAIT);
    assert!(
        line.contains("database check ok") && line.contains("(TLS verify_identity)"),
        "{line}"
    );
    assert_eq!(
        http::get(l.port, Some("identity.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &right, None);
}
