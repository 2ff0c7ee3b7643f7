//! bw-report over TLS, against a private MariaDB with certificates made for
//! the test. The reading user is created with REQUIRE SSL, so a report
//! that prints figures proves the link was encrypted; the wrong CA must be
//! refused with status 2, as the module refuses it.

#[allow(unsafe_code)] // the rig's process-group and signal helpers
#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::mariadb::{MariaDb, DATABASE, TABLE};
use common::pki::Pki;
use common::{run, TempDir};
use mysql::prelude::Queryable;

const USER: &str = "tls_reader";
const PASSWORD: &str = "tls-reader-pw";

/// A TLS MariaDB with one row and a reader that must use TLS.
fn server(pki: &Pki) -> MariaDb {
    let db = MariaDb::start_with(pki.server_args());
    let mut conn = db.root_conn().expect("root connection");
    conn.query_drop(format!(
        "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL"
    ))
    .expect("create user");
    conn.query_drop(format!(
        "GRANT SELECT ON {DATABASE}.* TO '{USER}'@'127.0.0.1'"
    ))
    .expect("grant");
    conn.exec_drop(
        format!("INSERT INTO {DATABASE}.{TABLE} (vhost, day, `in`, `out`) VALUES (?, ?, ?, ?)"),
        ("tls.example", "2026-03-04", 1234_u64, 56789_u64),
    )
    .expect("insert");
    db
}

fn bw_report(db: &MariaDb, dir: &TempDir, tls: &[&str]) -> Output {
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
    cmd.args([
        "--server",
        &db.tcp_address(),
        "--db",
        DATABASE,
        "--table",
        TABLE,
    ])
    .args(["--user", USER, "--password-file"])
    .arg(&password_file)
    .args(tls)
    .args([
        "top",
        "--format",
        "csv",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
    ]);
    run(&mut cmd, Duration::from_secs(60))
}

#[test]
fn verify_identity_reads_over_tls_and_a_wrong_ca_is_status_2() {
    let pki = Pki::new();
    let db = server(&pki);
    let dir = TempDir::new("bw-report-tls");
    let ca = pki.path("ca.pem").display().to_string();
    let out = bw_report(&db, &dir, &["--ssl", "verify_identity", "--ssl-ca", &ca]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tls.example,1234,56789,58023,"), "{stdout}");

    // Without TLS the REQUIRE SSL user is refused: the success above was
    // encrypted.
    let plain = bw_report(&db, &dir, &[]);
    assert_eq!(plain.status.code(), Some(2), "plain connection accepted");

    let other = pki.path("other-ca.pem").display().to_string();
    let out = bw_report(&db, &dir, &["--ssl", "verify_ca", "--ssl-ca", &other]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "wrong CA accepted: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("server {}", db.tcp_address())) && stderr.contains(TABLE),
        "{stderr}"
    );
}
