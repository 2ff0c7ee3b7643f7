//! Issue #9, case 2: `server.graceful-restart-bg`. On SIGUSR1 lighttpd
//! forks and re-executes itself in the original process; the forked child
//! finishes the requests in progress with a copy of the module's memory
//! (and the old flusher process's socket), until the new generation tells
//! it to stop. Every byte of both generations must reach the table, once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle;

const WAIT: Duration = Duration::from_secs(30);
const BIG: usize = 20 << 20;

/// The tests of this file restart lighttpd while other work competes for
/// the CPU; one at a time keeps lighttpd's own race (below) rare.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// lighttpd 1.4.69 has a race of its own here (server.c): the child resets
/// `graceful_shutdown` only after the fork, and the new generation sends
/// it SIGINT as soon as it is ready; a child not yet scheduled by then
/// takes that SIGINT as a second one and stops at once, cutting the
/// download (no request_done, so neither the access log nor the module
/// counts it). Each attempt checks the table against the access log all
/// the same; the test needs one attempt whose download survived.
#[test]
fn a_background_graceful_restart_delivers_both_generations_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 6 attempts, a second apart: a clean-clone CI run (0d843de) once had
    // 3 attempts in a row cut, which 3 local runs of the same sequence of
    // tests could not repeat. Each attempt checks the table all the same.
    for attempt in 1..=6 {
        if restart_during_a_download() {
            return;
        }
        eprintln!("attempt {attempt}: lighttpd cut the download at the restart (its race)");
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("the download was cut in every attempt");
}

/// One restart with a download in progress; false if lighttpd cut it.
fn restart_during_a_download() -> bool {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&Setup::new(
        db.module_options()
            + "bw_counter.report_interval = 600\n\
               server.feature-flags = ( \"server.graceful-restart-bg\" => \"enable\" )\n",
    ));
    std::fs::write(l.docroot.join("big.bin"), vec![b'x'; BIG]).unwrap();
    l.expect_log("database check ok", WAIT);
    for host in ["before.example", "both.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }

    // A download in progress across the restart, read slowly.
    let mut download = TcpStream::connect(("127.0.0.1", l.port)).unwrap();
    download
        .write_all(b"GET /big.bin HTTP/1.0\r\nHost: download.example\r\n\r\n")
        .unwrap();
    download.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut got = download.read(&mut buf).unwrap();

    l.signal(libc::SIGUSR1);
    let note = l.expect_log("continuing to handle", WAIT);
    let child: u32 = note
        .split("pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {note:?}"));
    // The new generation serves new requests.
    common::wait_for(WAIT, || {
        let r =
            std::panic::catch_unwind(|| http::get(l.port, Some("after.example"), "/index.html"));
        r.ok().filter(|r| r.status == 200).map(|_| ())
    })
    .expect("the new generation serves");
    assert_eq!(
        http::get(l.port, Some("both.example"), "/index.html").status,
        200
    );

    // The old generation finishes the download, then stops (the new one
    // told it to).
    loop {
        match download.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("download: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let whole = got > BIG;
    common::wait_for(WAIT, || (!process_alive(child)).then_some(()))
        .expect("the old generation ends once its download is done");
    l.stop_ok();

    let log = l.all_output();
    if !whole {
        // What lighttpd said when it cut it, for whoever reads a failure.
        eprintln!("cut after {got} of {BIG} bytes; lighttpd's log:\n{log}");
    }
    assert!(!log.contains("did not answer"), "{log}");
    assert!(!log.contains("undelivered"), "{log}");
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    if whole {
        assert!(totals["download.example"].1 > BIG as u64, "{totals:?}");
    }
    whole
}

/// Whether `pid` is running (zombies do not count).
fn process_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z")
}

/// A plain SIGHUP (log reopening) forks nothing: delivery goes on.
#[test]
fn a_plain_sighup_does_not_stop_delivery() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&Setup::new(
        db.module_options() + "bw_counter.report_interval = 1\n",
    ));
    l.expect_log("database check ok", WAIT);
    for round in 0..3 {
        l.signal(libc::SIGHUP);
        let host = format!("round{round}.example");
        assert_eq!(http::get(l.port, Some(&host), "/index.html").status, 200);
        common::wait_for(WAIT, || db.rows().iter().any(|r| r.0 == host).then_some(()))
            .unwrap_or_else(|| panic!("{host} delivered after SIGHUP:\n{}", l.all_output()));
    }
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}
