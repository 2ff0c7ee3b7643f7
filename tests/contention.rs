//! Issue #4 (part): lock contention. Two lighttpd instances with two workers
//! each flush the same (host, day) rows every second into one table; every
//! deadlock or lock-wait timeout must be retried, and the totals must be
//! exact.

mod common;

use std::thread;

use common::lighttpd::{Lighttpd, Setup};
use common::load;
use common::mariadb::MariaDb;
use common::oracle;

const HOSTS: [&str; 6] = [
    "a.example",
    "b.example",
    "c.example",
    "d.example",
    "e.example",
    "f.example",
];

#[test]
fn two_instances_with_two_workers_each_flushing_the_same_rows_every_second() {
    let db = MariaDb::start();
    let setup = Setup::new(format!(
        "{}bw_counter.report_interval = 1\nserver.max-worker = 2\n",
        db.module_options()
    ));
    let mut one = Lighttpd::start(&setup);
    let mut two = Lighttpd::start(&setup);
    let (p1, p2) = (one.port, two.port);
    let t1 = thread::spawn(move || load::for_duration(p1, &HOSTS, 30));
    let t2 = thread::spawn(move || load::for_duration(p2, &HOSTS, 30));
    let requests = t1.join().unwrap() + t2.join().unwrap();
    one.stop_ok();
    two.stop_ok();

    let expected = oracle::expected_totals_of(&[&one.access_log, &two.access_log]);
    let actual = oracle::table_totals(&db);
    assert_eq!(actual, expected, "{requests} requests over 4 writers");
    for l in [&one, &two] {
        let log = l.all_output();
        assert!(!log.contains("undelivered"), "{log}");
        assert!(
            !log.contains("database unreachable") && !log.contains("turned the flush away"),
            "a lock conflict must be retried, not reported:\n{log}"
        );
    }
}
