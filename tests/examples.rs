//! Issue #11: the examples work as shipped, typed the way the README says.

mod common;

use std::process::{Command, Stdio};

use common::mariadb::MariaDb;

/// `mariadb bw_counter < examples/report.sql`, as the README has it
/// (here as root over the test server's socket), in batch mode.
fn run_report(db: &MariaDb) -> String {
    let file = std::fs::File::open(common::project_dir().join("examples/report.sql")).unwrap();
    let out = Command::new(common::program("mariadb"))
        .arg(format!("--socket={}", db.socket.display()))
        .args(["-uroot", "--batch", "bw_counter"])
        .stdin(Stdio::from(file))
        .output()
        .expect("run the mariadb client");
    assert!(
        out.status.success(),
        "report.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new user's first rows are small: the report shows them in a unit
/// that suits them (not 0.000 GiB), and the day-by-day query picks the
/// busiest host instead of a name the user does not have.
#[test]
fn report_sql_shows_small_sites_and_the_busiest_host() {
    let db = MariaDb::start();
    db.exec(&format!(
        "INSERT INTO bw_counter.bandwidth (vhost, day, `in`, `out`) VALUES \
         ('tiny.example', CURDATE(), 10, 20), \
         ('small.example', CURDATE(), 300, 1700), \
         ('big.example', CURDATE(), {}, 0), \
         ('big.example', CURDATE() - INTERVAL 40 DAY, 7, 8)",
        5u64 << 30
    ));
    let out = run_report(&db);
    let lines: Vec<&str> = out.lines().collect();
    for expected in [
        "big.example\t5368709120\t0\t5.00 GiB",
        "small.example\t300\t1700\t1.95 KiB",
        "tiny.example\t10\t20\t30 B",
    ] {
        assert!(lines.contains(&expected), "{expected:?} in:\n{out}");
    }
    let today_big = lines
        .iter()
        .filter(|l| l.ends_with("\tbig.example\t5368709120\t0"))
        .count();
    assert_eq!(today_big, 1, "the busiest host day by day:\n{out}");
    assert!(
        !lines.iter().any(|l| l.ends_with("\tbig.example\t7\t8")),
        "40 days ago is outside both windows:\n{out}"
    );
}

/// examples/lighttpd.conf as shipped, with only its database lines and
/// file paths pointed at the test's own: lighttpd accepts it, and its
/// account and exclusion examples count as their comments say.
#[test]
fn the_example_lighttpd_conf_works_as_its_comments_say() {
    use common::http;
    use common::lighttpd::{Lighttpd, Setup};

    let db = MariaDb::start();
    let dir = common::TempDir::new("example-conf");
    let example =
        std::fs::read_to_string(common::project_dir().join("examples/lighttpd.conf")).unwrap();
    let mut conf: String = example
        .lines()
        // The rig loads the module and points at the test's database.
        .filter(|l| !l.starts_with("server.modules") && !l.starts_with("bw_counter.mysql_"))
        .map(|l| {
            l.replace(
                "/var/lib/lighttpd-mod-bw-counter",
                dir.path().to_str().unwrap(),
            ) + "\n"
        })
        .collect();
    conf.push_str(&db.module_options());
    conf.push_str("bw_counter.report_interval := 1\n");
    let mut l = Lighttpd::start(&Setup::new(conf));
    for (host, path) in [
        ("www.example.com", "/index.html"),
        ("static.cdn.example", "/index.html"),
        ("example.com:8080", "/index.html"),
        ("other.example", "/index.html"),
        ("www.example.com", "/health"),
    ] {
        http::get(l.port, Some(host), path);
    }
    // The status URL of the example answers this (loopback) client.
    let status = http::get(l.port, Some("other.example"), "/bw-status");
    assert_eq!(status.status, 200, "{}", status.head);
    assert!(status.head.contains("application/json"), "{}", status.head);
    l.stop_ok();
    let records = common::oracle::read_access_log(&l.access_log);
    let expected = common::oracle::expected_totals_by(&records, |r| match r.host.as_str() {
        _ if r.path() == "/health" => None,
        "other.example" => Some("other.example".into()),
        _ => Some("example.com".into()),
    });
    assert_eq!(expected.len(), 2, "{expected:?}");
    common::oracle::assert_totals_equal(&expected, &common::oracle::table_totals(&db), 6);
}
