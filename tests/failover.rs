//! Issue #14, the list of servers: `bw_counter.mysql_server` as a lighttpd
//! list. The module uses the first server that answers, in order; when it
//! goes away the next one takes over with one line naming both; the
//! start-up check reports every server; a bad list is refused naming the
//! element. Two independent MariaDB servers here (the Galera cluster of
//! tests/galera.rs is where counts move between nodes of one database):
//! the servers are switched only while nothing is in flight, so the two
//! tables together must equal the access log to the byte.

mod common;

use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Refused, Setup};
use common::mariadb::MariaDb;
use common::oracle::{self, Totals};

const WAIT: Duration = Duration::from_secs(30);

/// The module's options with `mysql_server` a list of `servers`' TCP
/// addresses, in that order.
fn list_setup(servers: &[&MariaDb]) -> Setup {
    let list: Vec<String> = servers
        .iter()
        .map(|s| format!("\"{}\"", s.tcp_address()))
        .collect();
    let single = servers[0].module_options();
    let conf = single.replacen(
        &format!("bw_counter.mysql_server = \"{}\"", servers[0].tcp_address()),
        &format!("bw_counter.mysql_server = ( {} )", list.join(", ")),
        1,
    );
    assert_ne!(conf, single, "the list replaced the single server");
    Setup::new(format!("{conf}bw_counter.report_interval = 1\n"))
}

fn traffic(l: &Lighttpd, hosts: &[&str]) {
    for host in hosts {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
}

/// The tables of `servers` summed per host.
fn tables(servers: &[&MariaDb]) -> Totals {
    let mut totals = Totals::new();
    for server in servers {
        for (host, (i, o)) in oracle::table_totals(server) {
            let row = totals.entry(host).or_default();
            row.0 += i;
            row.1 += o;
        }
    }
    totals
}

/// Waits until the tables of `servers` hold exactly what lighttpd served
/// so far (the access log is written per request: read it while running).
fn wait_until_delivered(l: &Lighttpd, servers: &[&MariaDb]) {
    common::wait_for(WAIT, || {
        let records = oracle::read_access_log(&l.access_log);
        (oracle::expected_totals(&records, None) == tables(servers)).then_some(())
    })
    .expect("the tables catch up with the access log");
}

#[test]
fn the_first_server_that_answers_is_used_and_the_next_takes_over() {
    let mut first = MariaDb::start();
    let mut second = MariaDb::start();
    first.stop();
    let mut l = Lighttpd::start(&list_setup(&[&first, &second]));

    // Start-up: the second answers and is used; the first is reported.
    let ok = l.expect_log("database check ok", WAIT);
    assert!(ok.contains(&second.tcp_address()), "{ok}");
    let others = l.expect_log("database check of the other servers", WAIT);
    assert!(
        others.contains(&format!("{} failed: ", first.tcp_address())),
        "{others}"
    );
    traffic(&l, &["a.example", "b.example", "a.example"]);
    wait_until_delivered(&l, &[&second]);

    // The second goes away while nothing is in flight; the first is back.
    first.launch();
    second.stop();
    traffic(&l, &["a.example", "c.example"]);
    let switched = l.expect_log("now using", WAIT);
    assert!(
        switched.contains(&format!(
            "database server {} failed (",
            second.tcp_address()
        )) && switched.contains(&format!(
            "now using {} (server 1 of 2 in bw_counter.mysql_server)",
            first.tcp_address()
        )),
        "{switched}"
    );
    second.launch();
    wait_until_delivered(&l, &[&first, &second]);
    traffic(&l, &["d.example"]);
    wait_until_delivered(&l, &[&first, &second]);

    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    oracle::assert_totals_equal(
        &oracle::expected_totals(&records, None),
        &tables(&[&first, &second]),
        records.len(),
    );
    assert!(
        oracle::table_totals(&first).contains_key("c.example"),
        "after the switch the first server took the counts"
    );
    let log = l.all_output();
    assert_eq!(
        log.matches("now using").count(),
        1,
        "one switch line:\n{log}"
    );
    assert!(
        !log.contains("database unreachable"),
        "a switch is not an outage:\n{log}"
    );
}

#[test]
fn a_bad_list_is_refused_naming_the_element() {
    let db = MariaDb::start();
    let refused = refused_with(&db, "( \"127.0.0.1:3306\", \"db:99999\" )");
    assert!(
        refused.output.contains(
            "bw_counter.mysql_server = ( \"127.0.0.1:3306\", \"db:99999\" ): server 2 (\"db:99999\"): "
        ),
        "{}",
        refused.output
    );
    let refused = refused_with(&db, "( \"a\" => \"127.0.0.1\" )");
    assert!(
        refused
            .output
            .contains("bw_counter.mysql_server = (a list that is not only strings): must be"),
        "{}",
        refused.output
    );
}

/// lighttpd's refusal to start with `bw_counter.mysql_server = <value>`
/// (the other options `db`'s).
fn refused_with(db: &MariaDb, value: &str) -> Refused {
    let conf = db.module_options().replacen(
        &format!("bw_counter.mysql_server = \"{}\"", db.tcp_address()),
        &format!("bw_counter.mysql_server = {value}"),
        1,
    );
    Lighttpd::try_start(&Setup::new(conf))
        .err()
        .expect("refused")
}
