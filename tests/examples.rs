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
