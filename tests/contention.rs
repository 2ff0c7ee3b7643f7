//! Issue #4 (part): lock contention. Two lighttpd instances with two workers
//! each flush the same (host, day) rows every second into one table; every
//! deadlock or lock-wait timeout must be retried, and the totals must be
//! exact.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle::{self, Totals};

const HOSTS: [&str; 6] = [
    "a.example",
    "b.example",
    "c.example",
    "d.example",
    "e.example",
    "f.example",
];

/// Keep-alive load on one instance for `secs`, every host in turn.
fn load(port: u16, secs: u64) -> u64 {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let mut s = http::connect(port);
        let mut req = Vec::new();
        for (i, host) in HOSTS.iter().enumerate() {
            let close = if i + 1 == HOSTS.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            write!(
                req,
                "GET /index.html HTTP/1.1\r\nHost: {host}\r\n{close}\r\n"
            )
            .unwrap();
        }
        s.write_all(&req).unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).unwrap();
        n += HOSTS.len() as u64;
    }
    n
}

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
    let t1 = thread::spawn(move || load(p1, 30));
    let t2 = thread::spawn(move || load(p2, 30));
    let requests = t1.join().unwrap() + t2.join().unwrap();
    one.stop_ok();
    two.stop_ok();

    let mut expected = Totals::new();
    for l in [&one, &two] {
        let records = oracle::read_access_log(&l.access_log);
        for (host, (i, o)) in oracle::expected_totals(&records, None) {
            let e = expected.entry(host).or_default();
            e.0 += i;
            e.1 += o;
        }
    }
    let actual = oracle::table_totals(&db);
    assert_eq!(actual, expected, "{requests} requests over 4 writers");
    for l in [&one, &two] {
        let log = l.all_output();
        assert!(!log.contains("undelivered"), "{log}");
        assert!(
            !log.contains("database unreachable"),
            "a lock conflict must be retried, not reported:\n{log}"
        );
    }
}
