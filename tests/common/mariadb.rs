//! A private MariaDB server for one test: its own datadir in a temp dir, a
//! loopback TCP port and a unix socket; stopped and deleted on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

use super::{free_port, program, project_dir, wait_for, TempDir};

/// What examples/schema.sql and examples/grants.sql create.
pub const DATABASE: &str = "bw_counter";
pub const TABLE: &str = "bandwidth";
pub const USER: &str = "bw_counter";
pub const PASSWORD: &str = "change-me";

pub struct MariaDb {
    child: Option<Child>,
    /// Extra mariadbd options (e.g. TLS certificates).
    extra_args: Vec<String>,
    pub port: u16,
    pub socket: PathBuf,
    datadir: PathBuf,
    // Last: removed after the server stopped.
    dir: TempDir,
}

impl MariaDb {
    /// Installs a fresh datadir, starts `mariadbd` and waits until it
    /// answers; then creates the counter database exactly as the README
    /// tells an admin to (examples/schema.sql, examples/grants.sql).
    pub fn start() -> MariaDb {
        MariaDb::start_with(Vec::new())
    }

    /// [`MariaDb::start`] with extra `mariadbd` options.
    pub fn start_with(extra_args: Vec<String>) -> MariaDb {
        let dir = TempDir::new("mariadb");
        let datadir = dir.path().join("data");
        install_datadir(&datadir, &dir.path().join("tmp"), "root");
        let mut db = MariaDb {
            child: None,
            extra_args,
            port: 0,
            socket: dir.path().join("mysqld.sock"),
            datadir,
            dir,
        };
        db.launch();
        db.apply_sql_file("schema.sql");
        db.apply_sql_file("grants.sql");
        db
    }

    /// Starts mariadbd on the datadir (again, after [`MariaDb::stop`]), on
    /// the same port when it had one.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        for attempt in 0..5 {
            if self.port == 0 || attempt > 0 {
                self.port = free_port();
            }
            let errlog = self.dir.path().join(ERROR_LOG);
            let mut cmd = mariadbd_command(
                self.dir.path(),
                &self.datadir,
                &self.socket,
                self.port,
                "root",
            );
            cmd.args(&self.extra_args);
            let mut child = cmd.spawn().expect("spawn mariadbd");
            let ready = wait_for(Duration::from_secs(30), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                self.root_conn().ok().map(|_| true)
            });
            if ready == Some(true) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(&errlog).unwrap_or_default();
            if !log.contains("Address already in use") {
                panic!("mariadbd did not come up:\n{log}");
            }
        }
        panic!("mariadbd: no free port after 5 attempts");
    }

    /// The extra `mariadbd` options of the next [`MariaDb::launch`] (e.g.
    /// TLS certificates for a server that had none).
    pub fn set_extra_args(&mut self, extra_args: Vec<String>) {
        self.extra_args = extra_args;
    }

    /// Shuts the server down cleanly (the datadir stays for a relaunch).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::signal(child.id(), libc::SIGTERM);
            let exited = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
            if exited.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn root_conn(&self) -> mysql::Result<Conn> {
        root_conn_at(&self.socket)
    }

    /// Runs an examples/*.sql file as root, statement by statement.
    pub fn apply_sql_file(&self, name: &str) {
        self.exec(&example_sql(name));
    }

    /// Runs `;`-separated statements as root (no `;` inside strings).
    pub fn exec(&self, sql: &str) {
        exec_statements(&mut self.root_conn().expect("root connection"), sql);
    }

    /// `host:port` for bw_counter.mysql_server.
    pub fn tcp_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The bw_counter.* lines for this server, over TCP, as the
    /// least-privilege user of examples/grants.sql.
    pub fn module_options(&self) -> String {
        module_options_for(&format!("\"{}\"", self.tcp_address()))
    }

    /// Rows of the counter table: (vhost, day, in, out), sorted.
    pub fn rows(&self) -> Vec<(String, String, u64, u64)> {
        counter_rows(&mut self.root_conn().expect("root connection"))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

// The pieces below are shared with the Galera rig (galera.rs), whose nodes
// are servers like this one with more options.

/// The error log's name in a server's directory.
pub const ERROR_LOG: &str = "mariadb.err";

/// Fills `datadir` with a fresh system database whose root logs in without
/// a password; `tmp` is created for the bootstrap's temporary files, and
/// the files belong to `user` (mariadbd's --user).
pub fn install_datadir(datadir: &Path, tmp: &Path, user: &str) {
    // A private tmpdir: parallel bootstraps in a shared /tmp were seen
    // to trip over each other's temporary tables.
    fs::create_dir_all(tmp).unwrap();
    let out = Command::new(program("mariadb-install-db"))
        .env("TMPDIR", tmp)
        .args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            // The machine's host name need not resolve: --force skips
            // the resolveip check (--skip-name-resolve alone does not).
            "--skip-name-resolve",
            "--force",
        ])
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--user={user}"))
        .output()
        .expect("run mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `mariadbd` command of a rig server, ready to spawn: no option file,
/// its pid file, [`ERROR_LOG`] and tmp/ in `dir`, small buffers, loopback
/// only, output discarded, in a process group of its own that dies with
/// the test.
pub fn mariadbd_command(
    dir: &Path,
    datadir: &Path,
    socket: &Path,
    port: u16,
    user: &str,
) -> Command {
    let mut cmd = Command::new(program("mariadbd"));
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
        .arg(format!("--log-error={}", dir.join(ERROR_LOG).display()))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .arg(format!("--user={user}"))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=16M",
            "--performance-schema=OFF",
            "--skip-log-bin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    super::own_group_dies_with_test(&mut cmd);
    cmd
}

/// A root connection over the server's unix socket.
pub fn root_conn_at(socket: &Path) -> mysql::Result<Conn> {
    Conn::new(
        OptsBuilder::new()
            .socket(Some(socket.to_string_lossy().into_owned()))
            .user(Some("root"))
            .tcp_connect_timeout(Some(Duration::from_secs(2)))
            .read_timeout(Some(Duration::from_secs(30))),
    )
}

/// The text of an examples/*.sql file.
pub fn example_sql(name: &str) -> String {
    let path = project_dir().join("examples").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `;`-separated statements (no `;` inside strings) on `conn`.
pub fn exec_statements(conn: &mut Conn, sql: &str) {
    let without_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        conn.query_drop(stmt)
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
}

/// The bw_counter.* lines for `server`, the value of
/// bw_counter.mysql_server as lighttpd config text (a quoted string or a
/// list), as the least-privilege user of examples/grants.sql.
pub fn module_options_for(server: &str) -> String {
    format!(
        "bw_counter.mysql_server = {server}\n\
         bw_counter.mysql_db = \"{DATABASE}\"\n\
         bw_counter.mysql_table = \"{TABLE}\"\n\
         bw_counter.mysql_user = \"{USER}\"\n\
         bw_counter.mysql_password = \"{PASSWORD}\"\n"
    )
}

/// Rows of the counter table: (vhost, day, in, out), sorted.
pub fn counter_rows(conn: &mut Conn) -> Vec<(String, String, u64, u64)> {
    conn.query_map(
        format!(
            "SELECT vhost, CAST(day AS CHAR), `in`, `out` FROM `{DATABASE}`.`{TABLE}` ORDER BY vhost, day"
        ),
        |(v, d, i, o): (String, String, u64, u64)| (v, d, i, o),
    )
    .expect("select rows")
}
