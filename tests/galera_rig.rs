//! The Galera rig itself (tests/common/galera.rs): a 3-node cluster comes
//! up, replicates, survives losing a node and takes it back. Timings are
//! printed (run with --nocapture), never asserted: the machine may be busy.

mod common;

use std::time::Instant;

use common::galera::{Galera, NODES};
use common::mariadb::{DATABASE, TABLE};
use mysql::prelude::Queryable;

fn insert(cluster: &Galera, node: usize, vhost: &str) {
    let mut conn = cluster.root_conn(node).expect("root connection");
    conn.exec_drop(
        format!("INSERT INTO `{DATABASE}`.`{TABLE}` VALUES (?, '2024-05-01', 1, 2)"),
        (vhost,),
    )
    .unwrap_or_else(|e| panic!("insert {vhost} on node {node}: {e}"));
}

fn has_row(cluster: &Galera, node: usize, vhost: &str) -> bool {
    cluster.rows(node).iter().any(|(v, ..)| v == vhost)
}

/// How many state transfers node `node` has completed as a joiner, by
/// kind ("SST": full, "IST": incremental).
fn transfers(cluster: &Galera, node: usize, kind: &str) -> usize {
    let done = format!("rsync {kind} completed on joiner");
    cluster.error_log(node).matches(&done).count()
}

#[test]
fn cluster_replicates_and_takes_a_killed_node_back() {
    let started = Instant::now();
    let mut cluster = Galera::start();
    println!(
        "galera: start (3 nodes Synced, schema applied) {:?}",
        started.elapsed()
    );
    for i in 0..NODES {
        assert_eq!(cluster.state(i).unwrap().cluster_size, NODES);
    }

    let options = cluster.module_options(&[1, 0, 2]);
    let servers = format!(
        "bw_counter.mysql_server = ( \"{}\", \"{}\", \"{}\" )\n",
        cluster.tcp_address(1),
        cluster.tcp_address(0),
        cluster.tcp_address(2)
    );
    assert!(options.starts_with(&servers), "{options}");

    insert(&cluster, 0, "written-on-0.example");
    for i in 1..NODES {
        assert!(has_row(&cluster, i, "written-on-0.example"), "node {i}");
    }

    let killed = Instant::now();
    cluster.kill(1);
    // Acknowledged while node 1 is gone (it may wait for the others to
    // notice that node 1 is gone).
    insert(&cluster, 2, "written-while-1-was-down.example");
    cluster.wait_synced();
    println!(
        "galera: kill node 1 until 2 nodes Synced {:?}",
        killed.elapsed()
    );
    assert_eq!(cluster.state(2).unwrap().cluster_size, 2);
    assert!(has_row(&cluster, 0, "written-while-1-was-down.example"));

    let (full_before, incremental_before) =
        (transfers(&cluster, 1, "SST"), transfers(&cluster, 1, "IST"));
    let restarted = Instant::now();
    cluster.restart(1);
    println!(
        "galera: restart node 1 until 3 nodes Synced {:?}",
        restarted.elapsed()
    );
    for i in 0..NODES {
        assert_eq!(cluster.state(i).unwrap().cluster_size, NODES, "node {i}");
    }
    assert!(has_row(&cluster, 1, "written-while-1-was-down.example"));
    assert_eq!(cluster.rows(0), cluster.rows(1));

    // Informative only: either way of catching up is correct.
    let how = match (
        transfers(&cluster, 1, "SST") - full_before,
        transfers(&cluster, 1, "IST") - incremental_before,
    ) {
        (0, 1) => "an incremental state transfer",
        (1, 0) => "a full state transfer",
        _ => "state transfers (see its error log)",
    };
    println!("galera: node 1 rejoined by {how}");
    println!("galera: total {:?}", started.elapsed());
}
