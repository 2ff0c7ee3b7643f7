//! Issue #9, case 7, and issue #10: the flusher, robust. It runs in a
//! process of its own that keeps out of lighttpd's way (signals,
//! descriptors), a name lookup cannot hang it past the connect timeout,
//! and a panic in it is logged and survived without losing a count.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{self as rig, Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::{oracle, TempDir};

const WAIT: Duration = Duration::from_secs(30);

fn setup(db: &MariaDb) -> Setup {
    Setup::new(db.module_options() + "bw_counter.report_interval = 1\n")
}

/// The flusher process of lighttpd `pid` (its one child of that name).
fn flusher_of(pid: u32) -> u32 {
    let found = common::wait_for(WAIT, || {
        let found = common::children_named(pid, "bw_counter-flus");
        (found.len() == 1).then_some(found[0])
    });
    found.expect("lighttpd has one flusher process")
}

/// A signal mask line of /proc/<pid>/status ("SigIgn:", "SigBlk:").
fn signal_mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .expect(field)
}

/// Issue #10: any second thread puts lighttpd's process on glibc's slower
/// multi-threaded paths, so the flusher is a process. lighttpd keeps one
/// thread; the flusher process holds none of lighttpd's descriptors (a
/// listening socket held there would keep the port bound) and ignores the
/// signals meant for lighttpd, which still stops promptly.
#[test]
fn lighttpd_keeps_one_thread_and_the_flusher_process_keeps_out_of_its_way() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db));
    l.expect_log("database check ok", WAIT);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", l.pid()))
        .unwrap()
        .count();
    assert_eq!(tasks, 1, "lighttpd's process has one thread");
    let flusher = flusher_of(l.pid());
    let ignored = signal_mask(flusher, "SigIgn:");
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGPIPE,
    ] {
        assert!(
            ignored & (1 << (sig - 1)) != 0,
            "signal {sig} not ignored by the flusher process: SigIgn {ignored:x}"
        );
    }
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{flusher}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<i32>().unwrap() > 2)
        })
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    let sockets = fds.iter().filter(|f| f.starts_with("socket:")).count();
    let files: Vec<&String> = fds.iter().filter(|f| !f.starts_with("socket:")).collect();
    // Its socket to lighttpd and, for the database, at most one more.
    assert!(sockets <= 2, "{fds:?}");
    assert!(
        files.iter().all(|f| f.ends_with("error.log")),
        "only lighttpd's error log besides sockets: {fds:?}"
    );
    let pid = l.pid();
    let t = Instant::now();
    l.stop_ok();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        common::wait_for(WAIT, || (!common::group_alive(pid)).then_some(())).is_some(),
        "the flusher process exits after lighttpd"
    );
}

/// A service manager stops a service by signalling all its processes at
/// once (systemd's KillMode=control-group). The flusher process ignores
/// the signal and delivers what lighttpd hands over at its cleanup.
#[test]
fn sigterm_to_the_whole_group_delivers_everything() {
    let db = MariaDb::start();
    let s = Setup::new(db.module_options() + "bw_counter.report_interval = 3600\n");
    let mut l = Lighttpd::start(&s);
    l.expect_log("database check ok", WAIT);
    flusher_of(l.pid());
    for host in ["a.example", "b.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    common::signal_group(l.pid(), libc::SIGTERM);
    l.stop_ok();
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(totals.len(), 2, "{totals:?}");
}

/// What lighttpd handed over survives lighttpd's death: the flusher
/// process reads EOF, sets the counts aside (the database is down) and,
/// with no lighttpd to pass its lines to, writes them into lighttpd's
/// error log itself. The next start delivers them.
#[test]
fn counts_handed_over_survive_a_sigkill_of_lighttpd() {
    let dir = TempDir::new("killed");
    let spool = dir.path().join("bw.spool");
    let mut db = MariaDb::start();
    db.stop();
    let mut l = Lighttpd::start(&common::spool::setup(&db, &spool, 1));
    flusher_of(l.pid());
    for host in ["a.example", "b.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    // Reports every second hand everything to the flusher process; and
    // mod_accesslog (the oracle) flushes its buffer only every 4 seconds,
    // so wait past one such flush before the kill, or the oracle is empty.
    std::thread::sleep(Duration::from_millis(5500));
    l.stop_with(libc::SIGKILL, WAIT);
    let line = l.expect_log("database unavailable at shutdown: wrote", WAIT);
    assert!(
        line.contains("flusher process") && line.contains("to spool file"),
        "{line}"
    );
    db.launch();
    l.launch().expect("starts again");
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(totals.len(), 2, "{totals:?}");
}

/// A flusher process that dies while lighttpd runs (the OOM killer, an
/// admin's kill) is named in the error log with how it ended, and a new
/// one starts within 10 seconds; counts made meanwhile wait in lighttpd's
/// memory and land. Killed while it holds nothing (everything before was
/// delivered), so the table equals the access log.
#[test]
fn a_flusher_process_that_dies_is_replaced_and_later_counts_land() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db));
    l.expect_log("database check ok", WAIT);
    assert_eq!(
        http::get(l.port, Some("before.example"), "/index.html").status,
        200
    );
    common::wait_for(WAIT, || {
        db.rows()
            .iter()
            .any(|r| r.0 == "before.example")
            .then_some(())
    })
    .expect("the first request's row lands");
    let first = flusher_of(l.pid());
    // SAFETY: kill only sends a signal to a process of this test's lighttpd.
    assert_eq!(unsafe { libc::kill(first as i32, libc::SIGKILL) }, 0);
    for _ in 0..5 {
        assert_eq!(
            http::get(l.port, Some("during.example"), "/index.html").status,
            200
        );
    }
    let line = l.expect_log(
        &format!("the flusher process {first} killed by signal 9"),
        WAIT,
    );
    assert!(
        line.ends_with(
            "counts it had received and not yet delivered may be lost (see its lines above); \
             counts since stay in memory for the next flusher process"
        ),
        "{line}"
    );
    l.expect_log("started a new flusher process", WAIT);
    let second = flusher_of(l.pid());
    assert_ne!(first, second);
    assert_eq!(
        http::get(l.port, Some("after.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    for host in ["before.example", "during.example", "after.example"] {
        assert!(totals.contains_key(host), "no row for {host}: {totals:?}");
    }
}

/// lighttpd waits at most 8 seconds at stop for its flusher process; one
/// that takes longer (here: stopped with SIGSTOP) is named in the error
/// log and goes on alone after lighttpd exited: once it runs again it
/// delivers the last counts lighttpd handed it, and the table equals the
/// access log.
#[test]
fn a_flusher_process_slower_than_the_stop_finishes_alone() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db));
    l.expect_log("database check ok", WAIT);
    let flusher = flusher_of(l.pid());
    // Ahead of mod_accesslog's 4-second flush (the oracle), and counted in
    // lighttpd's memory while the flusher process is stopped.
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill only sends signals to processes of this test's lighttpd.
    assert_eq!(unsafe { libc::kill(flusher as i32, libc::SIGSTOP) }, 0);
    for host in ["late-a.example", "late-b.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(l.pid() as i32, libc::SIGTERM) }, 0);
    l.expect_log(
        &format!(
            "the flusher process {flusher} is still delivering after 8s; it goes on alone and \
             writes its last lines to this error log itself"
        ),
        Duration::from_secs(20),
    );
    common::wait_for(WAIT, || {
        (!std::path::Path::new(&format!("/proc/{}/task", l.pid())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", l.pid()))
                .is_ok_and(|s| s.contains(") Z")))
        .then_some(())
    })
    .expect("lighttpd exits without waiting longer");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(flusher as i32, libc::SIGCONT) }, 0);
    l.stop_with(libc::SIGTERM, WAIT);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    for host in ["late-a.example", "late-b.example"] {
        assert!(totals.contains_key(host), "no row for {host}: {totals:?}");
    }
}

/// An LD_PRELOAD library whose getaddrinfo hangs for a minute on
/// `hang.invalid` (and asks the real one otherwise): a resolver that
/// never answers.
fn hanging_resolver(dir: &Path) -> PathBuf {
    common::preload_library(
        dir,
        "hang",
        r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
    int (*real)(const char *, const char *, const struct addrinfo *,
                struct addrinfo **) = dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && strcmp(node, "hang.invalid") == 0) {
        sleep(60);
        return EAI_AGAIN;
    }
    return real(node, service, hints, res);
}
"#,
        &["-ldl"],
    )
}

#[test]
fn a_name_lookup_that_hangs_is_cut_off_at_the_connect_timeout() {
    let dir = TempDir::new("resolver");
    let preload = hanging_resolver(dir.path());
    let db = MariaDb::start();
    let conf = db
        .module_options()
        .replace(&db.tcp_address(), "hang.invalid:3306");
    let mut s = Setup::new(conf + "bw_counter.report_interval = 1\n");
    s.env = vec![("LD_PRELOAD".into(), preload.display().to_string())];
    let mut l = Lighttpd::start(&s);
    let line = l.expect_log("database check failed", Duration::from_secs(15));
    assert!(line.contains("no connection within 5s"), "{line}");
    assert_eq!(
        http::get(l.port, Some("served.example"), "/index.html").status,
        200
    );
    let t = Instant::now();
    l.stop_ok();
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert!(
        l.all_output().contains("undelivered: vhost served.example"),
        "{}",
        l.all_output()
    );
}

#[test]
fn a_panic_in_the_flusher_is_logged_and_delivery_goes_on() {
    let db = MariaDb::start();
    let mut s = setup(&db);
    s.module_so = Some(rig::panic_test_module_path());
    let mut l = Lighttpd::start(&s);
    l.expect_log("database check ok", WAIT);
    for host in ["flusher-panic.test", "fine.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    let line = l.expect_log("internal error in the flusher thread", WAIT);
    assert!(line.contains("forced by the panic-test feature"), "{line}");
    common::wait_for(WAIT, || {
        let hosts: Vec<String> = db.rows().into_iter().map(|r| r.0).collect();
        (hosts == ["fine.example", "flusher-panic.test"]).then_some(())
    })
    .expect("delivered after the restart");
    assert_eq!(
        http::get(l.port, Some("later.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Issue #9, case 7: an outage of days. max_hosts bounds the rows of one
/// day, not of several: past two days' worth, the rows waiting for the
/// database go to the spool file, and come back from it when the database
/// does. The days are faked with libfaketime, moved a day at a time.
#[test]
fn an_outage_of_days_keeps_memory_bounded_and_loses_nothing() {
    let preload = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    assert!(
        preload.exists(),
        "libfaketime missing: make test installs faketime"
    );
    let dir = TempDir::new("days");
    let clock = dir.path().join("faketime");
    let spool = dir.path().join("bw.spool");
    std::fs::write(&clock, "@2026-11-20 12:00:00\n").unwrap();
    let mut db = MariaDb::start();
    db.stop();
    let mut s = common::spool::setup(&db, &spool, 1);
    s.conf.push_str("bw_counter.max_hosts = 2\n");
    // lighttpd restarts itself on a clock jump of more than 30 minutes;
    // a real outage of days has no jumps, so neither does this one.
    s.conf
        .push_str("server.feature-flags = ( \"server.clock-jump-restart\" => 0 )\n");
    s.env = vec![
        ("LD_PRELOAD".into(), preload.display().to_string()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            clock.display().to_string(),
        ),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    let mut l = Lighttpd::start(&s);
    // Two vhosts a day (max_hosts = 2), four days: 8 rows, more than the
    // 2 * (2 + 1) = 6 kept in memory.
    for day in 20..24 {
        std::fs::write(&clock, format!("@2026-11-{day} 12:00:00\n")).unwrap();
        // libfaketime reads the file at most once a second, lighttpd its
        // clock once a second.
        std::thread::sleep(Duration::from_millis(2500));
        for host in ["a.example", "b.example"] {
            assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
        }
        std::thread::sleep(Duration::from_millis(1200)); // a report
    }
    let line = l.expect_log("more than the 6 kept in memory: wrote", WAIT);
    assert!(line.contains("to spool file"), "{line}");

    db.launch();
    l.expect_log("replayed completely", Duration::from_secs(60));
    l.stop_ok();
    let days: std::collections::BTreeSet<String> = db.rows().into_iter().map(|r| r.1).collect();
    assert_eq!(days.len(), 4, "one row per vhost and day: {days:?}");
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}
