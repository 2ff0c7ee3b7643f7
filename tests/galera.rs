//! Issue #14: a MariaDB Galera cluster of three nodes on loopback, two
//! lighttpd instances of two workers each writing the same rows through
//! different nodes. A node dies (SIGKILL) under load and later rejoins; a
//! COMMIT reply is cut in front of a node. The cluster's table must equal
//! both access logs summed, to the byte, during the run and after: the
//! ledger, replicated with the counts, keeps a batch retried on another
//! node from landing twice.

mod common;

use std::time::Duration;

use common::galera::Galera;
use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::load::Load;
use common::oracle;
use common::proxy::CommitDropper;
use mysql::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);
const HOSTS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];

fn setup(cluster_options: String) -> Setup {
    Setup::new(format!(
        "{cluster_options}bw_counter.report_interval = 1\nserver.max-worker = 2\n\
         bw_counter.status_url = \"/bw-status\"\n"
    ))
}

/// The servers the flushers of `l` use now, from its status URL.
fn servers_in_use(l: &Lighttpd) -> Vec<String> {
    let answer = http::get(l.port, Some("status.example"), "/bw-status");
    assert_eq!(answer.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    json["per_worker"]
        .as_array()
        .expect("per_worker")
        .iter()
        .filter_map(|w| w["mysql_server"].as_str().map(str::to_string))
        .collect()
}

/// Waits until node `node`'s table equals the access logs of `servers`
/// (summed): everything served so far has landed, once.
fn wait_until_exact(cluster: &Galera, node: usize, servers: &[&Lighttpd]) {
    let logs: Vec<&std::path::Path> = servers.iter().map(|l| l.access_log.as_path()).collect();
    let landed = common::wait_for(WAIT, || {
        let expected = oracle::expected_totals_of(&logs);
        (oracle::totals_of_rows(&cluster.rows(node)) == expected).then_some(())
    });
    if landed.is_none() {
        let expected = oracle::expected_totals_of(&logs);
        oracle::assert_totals_equal(&expected, &oracle::totals_of_rows(&cluster.rows(node)), 0);
    }
}

fn assert_no_outage(servers: &[&Lighttpd]) {
    for l in servers {
        let log = l.all_output();
        assert!(!log.contains("database unreachable"), "{log}");
        assert!(!log.contains("turned the flush away"), "{log}");
        assert!(
            !log.contains("cannot prune"),
            "the ledger is pruned on a cluster:\n{log}"
        );
        assert!(!log.contains("undelivered"), "{log}");
    }
}

#[test]
fn a_node_killed_under_load_loses_and_doubles_nothing() {
    let mut cluster = Galera::start();
    let mut one = Lighttpd::start(&setup(cluster.module_options(&[0, 1, 2])));
    let mut two = Lighttpd::start(&setup(cluster.module_options(&[1, 2, 0])));
    for l in [&one, &two] {
        l.expect_log("database check ok", WAIT);
    }

    let load = Load::start(&[one.port, two.port], &HOSTS);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        servers_in_use(&one)
            .iter()
            .all(|s| *s == cluster.tcp_address(0)),
        "the first of its list"
    );
    cluster.kill(0);
    expect_switch(&one, &cluster.tcp_address(0), &cluster.tcp_address(1));
    std::thread::sleep(Duration::from_secs(3));
    let during = load.stop();
    // The status shows where the flushers write now: the next node (a
    // worker that had nothing to flush since may not have moved yet).
    let in_use = servers_in_use(&one);
    assert!(in_use.contains(&cluster.tcp_address(1)), "{in_use:?}");
    // During: with node 0 dead, the two living nodes hold exactly what
    // both servers served.
    wait_until_exact(&cluster, 1, &[&one, &two]);
    wait_until_exact(&cluster, 2, &[&one, &two]);

    cluster.restart(0);
    cluster.wait_synced();
    let load = Load::start(&[one.port, two.port], &HOSTS);
    std::thread::sleep(Duration::from_secs(3));
    let after = load.stop();
    one.stop_ok();
    two.stop_ok();
    for node in 0..3 {
        wait_until_exact(&cluster, node, &[&one, &two]);
    }
    assert!(
        during + after > 100,
        "{during} + {after} requests: a real load"
    );
    assert_no_outage(&[&one, &two]);
    // One line per flusher that moved (a worker each: at most two), none
    // for the instance whose node stayed.
    let log = one.all_output();
    let switches = log.matches("now using").count();
    assert!((1..=2).contains(&switches), "{log}");
    assert_eq!(two.all_output().matches("now using").count(), 0);
}

#[test]
fn a_commit_reply_cut_in_front_of_a_node_is_not_counted_twice() {
    let cluster = Galera::start();
    let proxy = CommitDropper::start(cluster.port(0));
    let options = cluster.module_options(&[0, 1, 2]).replace(
        &cluster.tcp_address(0),
        &format!("127.0.0.1:{}", proxy.port),
    );
    let mut one = Lighttpd::start(&setup(options));
    let mut two = Lighttpd::start(&setup(cluster.module_options(&[2, 1, 0])));
    for l in [&one, &two] {
        l.expect_log("database check ok", WAIT);
    }
    // Only the instance behind the proxy writes while its COMMIT reply is
    // cut, so that the COMMIT itself cannot lose certification to the other
    // instance's writes (then it would not have landed, and the retry would
    // add the batch as new: exact too, but not the case under test).
    let load = Load::start(&[one.port], &HOSTS);
    std::thread::sleep(Duration::from_secs(2));
    proxy.arm();
    common::wait_for(WAIT, || (proxy.dropped_commits() == 1).then_some(()))
        .expect("a COMMIT reply was cut");
    one.expect_log("was already in the table", WAIT);
    load.stop();
    let load = Load::start(&[one.port, two.port], &HOSTS);
    std::thread::sleep(Duration::from_secs(2));

    // A node that answers but is not ready for application use (Galera's
    // error 1047, as while it is not Synced): the instance using it moves
    // on, naming the error.
    cluster
        .root_conn(2)
        .expect("node 2")
        .query_drop("SET GLOBAL wsrep_reject_queries = ALL_KILL")
        .expect("reject queries");
    expect_switch(&two, &cluster.tcp_address(2), &cluster.tcp_address(1));
    std::thread::sleep(Duration::from_secs(2));
    load.stop();
    one.stop_ok();
    two.stop_ok();
    cluster
        .root_conn(2)
        .expect("node 2")
        .query_drop("SET GLOBAL wsrep_reject_queries = NONE")
        .expect("accept queries");
    for node in 0..3 {
        wait_until_exact(&cluster, node, &[&one, &two]);
    }
    assert_no_outage(&[&one, &two]);
}

/// Waits for `l`'s line saying it left server `from` for `to`, and checks
/// it names both.
fn expect_switch(l: &Lighttpd, from: &str, to: &str) {
    let switched = l.expect_log("now using", WAIT);
    assert!(
        switched.contains(&format!("database server {from} failed"))
            && switched.contains(&format!("now using {to}")),
        "{switched}"
    );
}
