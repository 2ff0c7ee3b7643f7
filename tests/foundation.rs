//! Issue #2: the real lighttpd loads the module, bad configuration stops it
//! with a message naming the option, and the start-up database check
//! reports success or the MySQL error without ever stopping lighttpd.

mod common;

use std::time::Duration;

use common::http;
use common::lighttpd::{self as rig, Lighttpd, Setup};
use common::mariadb::{MariaDb, DATABASE, PASSWORD, TABLE, USER};
use common::oracle;

const LOG_WAIT: Duration = Duration::from_secs(20);

/// Options that pass validation but point at nothing: for tests that only
/// care about start-up checks of other options.
fn valid_options() -> String {
    "bw_counter.mysql_server = \"127.0.0.1:9\"\n\
     bw_counter.mysql_db = \"bw_counter\"\n\
     bw_counter.mysql_table = \"bandwidth\"\n\
     bw_counter.mysql_user = \"bw_counter\"\n"
        .to_string()
}

fn options_without(key: &str) -> String {
    valid_options()
        .lines()
        .filter(|l| !l.starts_with(key))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Issue #11: the suite runs against the lighttpd and the module build it
/// was pointed at (lighttpd-headers/test-release.sh sets BWC_LIGHTTPD,
/// BWC_MODULE and BWC_EXPECT_LIGHTTPD_VERSION): the running process is
/// that binary, of that release, and the mod_bw_counter.so it mapped has
/// the bytes of that build.
#[test]
fn the_lighttpd_and_module_under_test_are_the_ones_asked_for() {
    let l = Lighttpd::start(&Setup::new(valid_options()));
    let exe = std::fs::read_link(format!("/proc/{}/exe", l.pid())).unwrap();
    assert_eq!(
        exe,
        std::fs::canonicalize(rig::lighttpd_program()).unwrap(),
        "the lighttpd running"
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", l.pid())).unwrap();
    let mapped = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/mod_bw_counter.so"))
        .expect("lighttpd mapped mod_bw_counter.so");
    assert!(
        std::fs::read(mapped).unwrap() == std::fs::read(rig::module_path()).unwrap(),
        "{mapped} is not {}",
        rig::module_path().display()
    );
    if let Ok(version) = std::env::var("BWC_EXPECT_LIGHTTPD_VERSION") {
        let out = std::process::Command::new(rig::lighttpd_program())
            .arg("-v")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with(&format!("lighttpd/{version} ")),
            "expected lighttpd {version}: {said}"
        );
    }
}

/// Issue #11: a module whose bindings assumed another kind of lighttpd
/// build (with or without PCRE, which changes the layout of structures it
/// reads) refuses to load, naming both and what to do, before it reads
/// any of them. Shown with the test build's switch that flips what the
/// bindings assumed (the same code path as a real mismatch).
#[test]
fn a_module_built_for_another_pcre_configuration_refuses_to_load() {
    let mut s = Setup::new(valid_options());
    s.module_so = Some(rig::panic_test_module_path());
    s.env = vec![("BWC_TEST_ASSUME_OTHER_PCRE".into(), "1".into())];
    let refused = match Lighttpd::try_start(&s) {
        Ok(_) => panic!("lighttpd started with a module built for another configuration"),
        Err(refused) => refused,
    };
    assert!(!refused.status.success());
    assert!(
        refused
            .output
            .contains("this mod_bw_counter.so was built for a lighttpd configured ")
            && refused.output.contains("so the module refuses to load")
            && refused.output.contains("LIGHTTPD_SRC"),
        "{}",
        refused.output
    );
    // And without the switch, the same build loads.
    let mut s = Setup::new(valid_options());
    s.module_so = Some(rig::panic_test_module_path());
    Lighttpd::start(&s);
}

#[test]
fn module_loads_serves_and_reports_a_working_database() {
    let db = MariaDb::start();
    let l = Lighttpd::start(&Setup::new(db.module_options()));

    let resp = http::get(l.port, Some("www.example.org"), "/index.html");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.body.starts_with(b"<html>"));

    let line = l.expect_log("database check ok", LOG_WAIT);
    assert!(
        line.contains(&format!("table `{TABLE}` in database {DATABASE}")),
        "{line}"
    );
    assert!(line.contains(&format!("at {}", db.tcp_address())), "{line}");
    assert!(line.contains("MariaDB"), "server version missing: {line}");
    assert!(
        !l.all_output().contains(PASSWORD),
        "the password must never be logged"
    );
}

#[test]
fn unix_socket_and_password_file_work() {
    let db = MariaDb::start();
    let dir = common::TempDir::new("pwfile");
    let pw = dir.path().join("bw.password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let conf = format!(
        "bw_counter.mysql_server = \"{}\"\n\
         bw_counter.mysql_db = \"{DATABASE}\"\n\
         bw_counter.mysql_table = \"{DATABASE}.{TABLE}\"\n\
         bw_counter.mysql_user = \"{USER}\"\n\
         bw_counter.mysql_password_file = \"{}\"\n",
        db.socket.display(),
        pw.display()
    );
    let l = Lighttpd::start(&Setup::new(conf));
    let line = l.expect_log("database check", LOG_WAIT);
    assert!(line.contains("database check ok"), "{line}");
    assert!(
        line.contains(&format!("table `{DATABASE}`.`{TABLE}`")),
        "{line}"
    );
    assert!(
        line.contains(&format!("unix:{}", db.socket.display())),
        "{line}"
    );
}

#[test]
fn wrong_password_is_a_log_line_not_a_crash() {
    let db = MariaDb::start();
    let conf = db.module_options().replace(PASSWORD, "not-the-password");
    let l = Lighttpd::start(&Setup::new(conf));
    let line = l.expect_log("database check failed", LOG_WAIT);
    assert!(
        line.contains("ERROR 1045"),
        "expected access denied: {line}"
    );
    assert!(line.contains("lighttpd keeps serving"), "{line}");
    for host in ["a.example", "b.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    assert!(!l.all_output().contains("not-the-password"));
}

#[test]
fn missing_table_and_missing_column_are_reported() {
    let db = MariaDb::start();
    db.exec(&format!(
        "CREATE TABLE {DATABASE}.no_out (vhost varchar(255) NOT NULL, day date NOT NULL, \
         `in` bigint NOT NULL, PRIMARY KEY (vhost, day)); \
         GRANT SELECT, INSERT, UPDATE ON {DATABASE}.no_out TO '{USER}'@'127.0.0.1'"
    ));
    for (table, code) in [("nosuchtable", "ERROR 1142"), ("no_out", "ERROR 1054")] {
        // 1142: the least-privilege user may not even see other tables, so
        // MariaDB says "command denied" rather than "doesn't exist".
        let conf = db
            .module_options()
            .replace(&format!("\"{TABLE}\""), &format!("\"{table}\""));
        let l = Lighttpd::start(&Setup::new(conf));
        let line = l.expect_log("database check failed", LOG_WAIT);
        assert!(line.contains(code), "{table}: expected {code}: {line}");
        assert_eq!(
            http::get(l.port, Some("x.example"), "/index.html").status,
            200
        );
    }
    // As root (who can see everything), a missing table is 1146.
    let conf = format!(
        "bw_counter.mysql_server = \"{}\"\n\
         bw_counter.mysql_db = \"{DATABASE}\"\n\
         bw_counter.mysql_table = \"nosuchtable\"\n\
         bw_counter.mysql_user = \"root\"\n",
        db.socket.display()
    );
    let l = Lighttpd::start(&Setup::new(conf));
    let line = l.expect_log("database check failed", LOG_WAIT);
    assert!(line.contains("ERROR 1146"), "{line}");
}

#[test]
fn unreachable_database_keeps_serving_and_stops_promptly() {
    let port = common::free_port();
    let conf = valid_options().replace("127.0.0.1:9", &format!("127.0.0.1:{port}"));
    let mut l = Lighttpd::start(&Setup::new(conf));
    let line = l.expect_log("database check failed", LOG_WAIT);
    assert!(line.contains("Connection refused"), "{line}");
    assert_eq!(
        http::get(l.port, Some("x.example"), "/index.html").status,
        200
    );
    let started = std::time::Instant::now();
    l.stop_ok();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        started.elapsed()
    );
}

/// Every way to get the options wrong: lighttpd must refuse to start, exit
/// non-zero, and say which option is wrong, with its value (never the
/// password).
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a table of cases, one per way to get the options wrong"
)]
fn bad_config_refuses_to_start_and_names_the_option() {
    let secret = "Pa55-never-logged";
    let dir = common::TempDir::new("badconf");
    let empty_file = dir.path().join("empty.password");
    std::fs::write(&empty_file, "").unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing db", options_without("bw_counter.mysql_db"), "bw_counter.mysql_db is required"),
        ("missing table", options_without("bw_counter.mysql_table"), "bw_counter.mysql_table is required"),
        ("missing user", options_without("bw_counter.mysql_user"), "bw_counter.mysql_user is required"),
        (
            "empty user",
            valid_options().replace("\"bw_counter\"\n", "\"\"\n"),
            "bw_counter.mysql_user = \"\": must not be empty",
        ),
        (
            "table with a space",
            valid_options().replace("\"bandwidth\"", "\"band width\""),
            "bw_counter.mysql_table = \"band width\": not a valid name",
        ),
        (
            "table with SQL in it",
            valid_options().replace("\"bandwidth\"", "\"t`; DROP TABLE x; --\""),
            "bw_counter.mysql_table = \"t`; DROP TABLE x; --\": not a valid name",
        ),
        (
            "three-part table",
            valid_options().replace("\"bandwidth\"", "\"a.b.c\""),
            "bw_counter.mysql_table = \"a.b.c\": not a valid name",
        ),
        (
            "db name",
            valid_options().replace("mysql_db = \"bw_counter\"", "mysql_db = \"my db\""),
            "bw_counter.mysql_db = \"my db\": not a valid name",
        ),
        (
            "zero interval",
            valid_options() + "bw_counter.report_interval = 0\n",
            "bw_counter.report_interval = 0: must be a whole number of seconds from 1 to 86400",
        ),
        (
            "negative interval",
            // lighttpd's parser has no negative literals; "-10" as a string
            // reaches the module's key and lighttpd refuses it.
            valid_options() + "bw_counter.report_interval = \"-10\"\n",
            "bw_counter.report_interval has a value of the wrong type",
        ),
        (
            "huge interval",
            valid_options() + "bw_counter.report_interval = 100000\n",
            "bw_counter.report_interval = 100000: must be a whole number",
        ),
        (
            "interval not a number",
            valid_options() + "bw_counter.report_interval = \"soon\"\n",
            "bw_counter.report_interval",
        ),
        (
            "zero max_hosts",
            valid_options() + "bw_counter.max_hosts = 0\n",
            "bw_counter.max_hosts = 0: must be a whole number of hosts from 1 to 1000000",
        ),
        (
            "huge max_hosts",
            valid_options() + "bw_counter.max_hosts = 2000000\n",
            "bw_counter.max_hosts = 2000000: must be a whole number of hosts",
        ),
        (
            "bad ledger table",
            valid_options() + "bw_counter.mysql_ledger_table = \"a b\"\n",
            "bw_counter.mysql_ledger_table = \"a b\": not a valid name",
        ),
        (
            "relative spool file",
            valid_options() + "bw_counter.spool_file = \"spool/bw\"\n",
            "bw_counter.spool_file = \"spool/bw\": must be an absolute path",
        ),
        (
            "spool directory missing",
            valid_options() + "bw_counter.spool_file = \"/nonexistent/bw.spool\"\n",
            "bw_counter.spool_file = \"/nonexistent/bw.spool\": its directory does not exist",
        ),
        (
            "unknown TLS mode",
            valid_options() + "bw_counter.mysql_ssl = \"on\"\n",
            "bw_counter.mysql_ssl = \"on\": expected disable, prefer, require, verify_ca or verify_identity",
        ),
        (
            "verify_ca without a CA",
            valid_options() + "bw_counter.mysql_ssl = \"verify_ca\"\n",
            "bw_counter.mysql_ssl_ca is required",
        ),
        (
            "missing CA file",
            valid_options() + "bw_counter.mysql_ssl = \"verify_ca\"\nbw_counter.mysql_ssl_ca = \"/nonexistent/ca.pem\"\n",
            "bw_counter.mysql_ssl_ca = \"/nonexistent/ca.pem\": must be the absolute path of a readable PEM file",
        ),
        (
            "bad port",
            valid_options().replace("127.0.0.1:9", "127.0.0.1:70000"),
            "bw_counter.mysql_server = \"127.0.0.1:70000\": port \"70000\"",
        ),
        (
            "bad IPv6",
            valid_options().replace("127.0.0.1:9", "[::1:3306"),
            "bw_counter.mysql_server = \"[::1:3306\"",
        ),
        (
            "string expected",
            valid_options().replace("mysql_db = \"bw_counter\"", "mysql_db = 5"),
            "bw_counter.mysql_db",
        ),
        (
            "both passwords",
            valid_options()
                + &format!("bw_counter.mysql_password = \"{secret}\"\nbw_counter.mysql_password_file = \"/etc/x\"\n"),
            "bw_counter.mysql_password and bw_counter.mysql_password_file are both set",
        ),
        (
            "password file missing",
            valid_options() + "bw_counter.mysql_password_file = \"/nonexistent/bw.pw\"\n",
            "bw_counter.mysql_password_file = \"/nonexistent/bw.pw\": cannot read it: No such file",
        ),
        (
            "password file empty",
            valid_options() + &format!("bw_counter.mysql_password_file = \"{}\"\n", empty_file.display()),
            "the file is empty",
        ),
        (
            "unknown option",
            valid_options() + "bw_counter.mysql_hostname = \"db\"\n",
            "unknown option bw_counter.mysql_hostname (known: bw_counter.mysql_server,",
        ),
        (
            "option inside a conditional",
            valid_options() + "$HTTP[\"host\"] == \"a.example\" {\n  bw_counter.report_interval = 5\n}\n",
            "bw_counter.report_interval is a server-wide option: set it in the global scope, not inside $HTTP[\"host\"] == \"a.example\"",
        ),
    ];
    let mut failures = Vec::new();
    for (name, conf, expected) in &cases {
        let conf = format!("{conf}\n# {name}\n");
        match Lighttpd::try_start(&Setup::new(conf.clone())) {
            Ok(_) => failures.push(format!("{name}: lighttpd started with\n{conf}")),
            Err(refused) => {
                if refused.status.success() {
                    failures.push(format!("{name}: exit status 0"));
                }
                if !refused.output.contains(expected) {
                    failures.push(format!("{name}: no {expected:?} in\n{}", refused.output));
                }
                if refused.output.contains(secret) {
                    failures.push(format!(
                        "{name}: the password was printed:\n{}",
                        refused.output
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn several_problems_give_one_line_each() {
    let conf = "bw_counter.mysql_table = \"a b\"\nbw_counter.report_interval = 0\n";
    let refused = Lighttpd::try_start(&Setup::new(conf))
        .err()
        .expect("must refuse");
    let ours: Vec<&str> = refused
        .output
        .lines()
        .filter(|l| l.contains("mod_bw_counter:"))
        .collect();
    assert_eq!(
        ours.len(),
        4,
        "db, user missing; table, interval invalid:\n{}",
        refused.output
    );
}

#[test]
fn oracle_reads_access_log_lines_and_applies_the_host_rule() {
    let log = "www.example.org\t100\t2000\t200\tGET / HTTP/1.1\n\
               www.example.org:8080\t10\t20\t404\tGET /x HTTP/1.1\n\
               www.example.org.\t1\t2\t200\tGET / HTTP/1.0\n\
               [::1]:80\t5\t6\t200\tGET / HTTP/1.1\n\
               -\t7\t8\t400\tGET / HTTP/1.0\n\
               h2.example\t300\t400\t100\tPRI * HTTP/2.0\n";
    let records = oracle::parse_access_log(log);
    assert_eq!(records.len(), 6);
    assert!(records[5].is_h2_connection_record());
    let totals = oracle::expected_totals(&records, None);
    assert_eq!(totals["www.example.org"], (111, 2022));
    assert_eq!(totals["[::1]"], (5, 6));
    assert_eq!(totals["_nohost"], (7, 8));
    assert!(!totals.contains_key("h2.example"));
    assert_eq!(
        oracle::expected_totals(&records, Some("srv"))["srv"],
        (7, 8)
    );
}
