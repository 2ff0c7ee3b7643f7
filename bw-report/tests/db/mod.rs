//! The database the bw-report tests read: the module's rig's private
//! MariaDB, a user that may only SELECT, and the binary run against it,
//! once (`bw_report`) or as a server (`Exporter`). Shared by the tests of
//! every subcommand and the exporter's bench (`mod db;` next to
//! `mod common;`).
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql::prelude::Queryable;

use crate::common::http::{self, Response};
use crate::common::mariadb::{MariaDb, DATABASE, TABLE};
use crate::common::{run, wait_for, TempDir};

/// A user with nothing but SELECT: all bw-report may need.
pub const READER: &str = "reader";
pub const READER_PASSWORD: &str = "read-only \"pw\"";

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
}

pub fn bw_report(flags: &[String], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
    cmd.args(flags).args(args);
    run(&mut cmd, Duration::from_secs(60))
}

/// `bw-report exporter` running, killed when dropped (also when a test
/// fails); its stderr is collected line by line.
pub struct Exporter {
    child: Child,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts `cmd` (bw-report with `exporter --listen 127.0.0.1:0` among
    /// its arguments) and waits until it serves; the port is the one its
    /// "serving" line names.
    pub fn spawn(mut cmd: Command) -> Exporter {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::common::own_group_dies_with_test(&mut cmd);
        let mut child = cmd.spawn().expect("spawn bw-report exporter");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut exporter = Exporter {
            child,
            port: 0,
            stderr,
        };
        let serving = exporter.wait_for_line(|l| l.contains("serving http://"));
        let address = serving.split("http://").nth(1).unwrap();
        let port = address.split('/').next().unwrap().rsplit(':').next();
        exporter.port = port
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {serving:?}"));
        exporter
    }

    /// Its stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line of stderr that `matches`, waiting up to 60 s for it.
    pub fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let line = wait_for(Duration::from_secs(60), || {
            let log = self.log();
            if let Some(line) = log.iter().find(|l| matches(l)) {
                return Some(Ok(line.clone()));
            }
            let exited = self.child.try_wait().ok().flatten();
            exited.map(|status| Err(format!("exited {status}: {log:?}")))
        });
        match line {
            Some(Ok(line)) => line,
            Some(Err(why)) => panic!("bw-report exporter {why}"),
            None => panic!("no such line within 60 s: {:?}", self.log()),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http::get(self.port, Some("127.0.0.1"), path)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
