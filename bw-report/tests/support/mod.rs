//! What the bw-report integration tests (and the exporter's bench) share:
//! a private MariaDB (the module's rig, tests/common) with a read-only
//! user, rows the tests write, and bw-report run as the built binary
//! against it, once (`bw_report`) or as a server (`exporter::Exporter`).
#![allow(dead_code)] // each test binary uses a different part

#[allow(unsafe_code)] // the rig's process-group and signal helpers
#[path = "../../../tests/common/mod.rs"]
pub mod common;
pub mod exporter;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::mariadb::{MariaDb, DATABASE, TABLE};
use common::{run, TempDir};
use mysql::prelude::Queryable;
use serde_json::Value;

/// A user with nothing but SELECT: all bw-report may need.
pub const READER: &str = "reader";
pub const READER_PASSWORD: &str = "read-only \"pw\"";

/// A range across months and years (2025-12-01 to 2026-02-28, both ends
/// inclusive) with rows on its first and last days, at the turn of the
/// year, and on the days just outside it.
pub const ACROSS_YEARS: &[(&str, &str, u64, u64)] = &[
    ("a.example", "2025-11-30", 1, 1),
    ("a.example", "2025-12-01", 2, 20),
    ("a.example", "2025-12-31", 4, 40),
    ("b.example", "2026-01-01", 8, 80),
    ("a.example", "2026-02-28", 16, 160),
    ("a.example", "2026-03-01", 32, 320),
];
pub const ACROSS_YEARS_RANGE: [&str; 4] = ["--from", "2025-12-01", "--to", "2026-02-28"];

/// A MariaDB with the module's table, a read-only user, and a password
/// file for it.
pub struct Db {
    pub server: MariaDb,
    pub password_file: PathBuf,
    _dir: TempDir,
}

impl Db {
    pub fn start() -> Db {
        Db::start_with(Vec::new())
    }

    /// [`Db::start`] with extra `mariadbd` options.
    pub fn start_with(mariadbd_args: Vec<String>) -> Db {
        let server = MariaDb::start_with(mariadbd_args);
        let mut conn = server.root_conn().expect("root connection");
        for host in ["localhost", "127.0.0.1"] {
            // No placeholders in CREATE USER; the password has no ' or \\.
            conn.query_drop(format!(
                "CREATE USER '{READER}'@'{host}' IDENTIFIED BY '{READER_PASSWORD}'"
            ))
            .expect("create user");
            conn.query_drop(format!(
                "GRANT SELECT ON {DATABASE}.* TO '{READER}'@'{host}'"
            ))
            .expect("grant");
        }
        let dir = TempDir::new("bw-report");
        let password_file = dir.path().join("password");
        std::fs::write(
            &password_file,
            format!("{READER_PASSWORD}\nnot this line\n"),
        )
        .unwrap();
        Db {
            server,
            password_file,
            _dir: dir,
        }
    }

    /// Rows (vhost, day, in, out), values bound as the module binds them.
    pub fn insert(&self, rows: &[(&str, &str, u64, u64)]) {
        let mut conn = self.server.root_conn().expect("root connection");
        for (vhost, day, bytes_in, bytes_out) in rows {
            conn.exec_drop(
                format!(
                    "INSERT INTO {DATABASE}.{TABLE} (vhost, day, `in`, `out`) VALUES (?, ?, ?, ?)"
                ),
                (vhost, day, bytes_in, bytes_out),
            )
            .unwrap_or_else(|e| panic!("insert {vhost} {day}: {e}"));
        }
    }

    /// The flags that find this database, over TCP.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--server".into(),
            self.server.tcp_address(),
            "--db".into(),
            DATABASE.into(),
            "--table".into(),
            TABLE.into(),
            "--user".into(),
            READER.into(),
            "--password-file".into(),
            self.password_file.display().to_string(),
        ]
    }

    /// bw-report with this database's flags, then `args`; must succeed.
    pub fn report(&self, args: &[&str]) -> String {
        let out = bw_report(&self.flags(), args);
        assert!(
            out.status.success(),
            "bw-report {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.report(&[args, &["--format", "json"]].concat());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    pub fn csv(&self, args: &[&str]) -> Vec<Vec<String>> {
        let text = self.report(&[args, &["--format", "csv"]].concat());
        parse_csv(&text)
    }
}

pub fn bw_report(flags: &[String], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
    cmd.args(flags).args(args);
    run(&mut cmd, Duration::from_secs(60))
}

/// With a real RFC 4180 reader; the header is the first record.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("valid csv").iter().map(str::to_string).collect())
        .collect()
}
