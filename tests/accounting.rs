//! Issue #3: every request's bytes land once, under the right host, and the
//! table equals lighttpd's own access log (%I/%O per request, summed per
//! host) to the byte.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle;

const FLUSH_WAIT: Duration = Duration::from_secs(20);

fn setup(db: &MariaDb, interval: u32, extra: &str) -> Setup {
    let mut s = Setup::new(format!(
        "{}bw_counter.report_interval = {interval}\n{extra}",
        db.module_options()
    ));
    s.modules.push("mod_cgi".into());
    s
}

fn stop(l: &mut Lighttpd) {
    l.stop_ok();
}

fn write_file(l: &Lighttpd, name: &str, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(l.docroot.join(name), data).unwrap();
}

#[test]
fn http1_requests_are_counted_exactly() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    write_file(&l, "file.bin", 100_000);

    // HTTP/1.0, one connection per request, various hosts and spellings.
    for host in [
        "www.example.org",
        "WWW.Example.Org:8080",
        "www.example.org.",
        "shop.example.com",
    ] {
        assert_eq!(http::get(l.port, Some(host), "/file.bin").status, 200);
    }
    // No Host header at all.
    assert_eq!(http::get(l.port, None, "/index.html").status, 200);
    // 404 and HEAD.
    assert_eq!(
        http::get(l.port, Some("shop.example.com"), "/missing").status,
        404
    );
    let head = http::exchange(
        l.port,
        b"HEAD /file.bin HTTP/1.0\r\nHost: head.example\r\n\r\n",
    );
    assert!(
        head.starts_with(b"HTTP/1.0 200"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );

    // HTTP/1.1 keep-alive: three hosts on one connection, pipelined.
    let pipelined = "GET /index.html HTTP/1.1\r\nHost: a.example\r\n\r\n\
                     GET /file.bin HTTP/1.1\r\nHost: b.example\r\n\r\n\
                     GET /missing HTTP/1.1\r\nHost: c.example\r\nConnection: close\r\n\r\n";
    let raw = http::exchange(l.port, pipelined.as_bytes());
    let statuses: Vec<u16> = http::parse_responses(&raw, &[])
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 404]);

    // Keep-alive, not pipelined: each request waits for its answer.
    let mut s = http::connect(l.port);
    for host in ["a.example", "b.example", "a.example"] {
        s.write_all(format!("GET /index.html HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    drop(s);

    // A 1 MB POST body, read by a CGI backend.
    let body = vec![b'x'; 1_000_000];
    let mut post = format!("POST /upload.sh HTTP/1.1\r\nHost: upload.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    post.extend_from_slice(&body);
    let raw = http::exchange(l.port, &post);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("read 1000000 bytes"),
        "{text}"
    );

    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    for host in [
        "www.example.org",
        "shop.example.com",
        "_nohost",
        "head.example",
        "a.example",
        "b.example",
        "c.example",
        "upload.example",
    ] {
        assert!(totals.contains_key(host), "no row for {host}: {totals:?}");
    }
    assert!(
        totals["upload.example"].0 > 1_000_000,
        "the POST body is counted in: {totals:?}"
    );
    assert!(
        totals["www.example.org"].1 > 300_000,
        "three downloads of 100 kB: {totals:?}"
    );
    assert_eq!(totals.len(), 8, "{totals:?}");
}

/// Issue #10: the hosts of a day are numbered once, and an authority seen
/// before skips the key rule. Many hosts in turn on one keep-alive
/// connection, each under several spellings (port, case, trailing dot),
/// across reports (the numbers outlive each one): the table equals the
/// access log, one row per host.
#[test]
fn hosts_in_turn_under_several_spellings_are_counted_exactly() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    let hosts = 150;
    for round in 0..3 {
        let mut s = http::connect(l.port);
        let mut req = String::new();
        for i in 0..hosts {
            for host in [
                format!("site{i}.example"),
                format!("Site{i}.Example:8080"),
                format!("site{i}.example."),
                format!("site{i}.example:{}", 1000 + round),
            ] {
                req.push_str(&format!("GET /index.html HTTP/1.1\r\nHost: {host}\r\n\r\n"));
            }
        }
        req.push_str("GET /index.html HTTP/1.1\r\nHost: last.example\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let ok = http::parse_responses(&raw, &[])
            .iter()
            .filter(|r| r.status == 200)
            .count();
        assert_eq!(ok, hosts * 4 + 1, "round {round}");
        // Past a report, so that the next round counts into rows taken.
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(totals.len(), hosts + 1, "{totals:?}");
    assert!(totals.contains_key("site149.example"), "{totals:?}");
}

#[test]
fn server_name_is_the_key_for_requests_without_host() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, "server.name = \"srv.example\"\n"));
    assert_eq!(http::get(l.port, None, "/index.html").status, 200);
    assert_eq!(
        http::get(l.port, Some("named.example"), "/index.html").status,
        200
    );
    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, Some("srv.example"));
    assert_eq!(
        totals.keys().collect::<Vec<_>>(),
        vec!["named.example", "srv.example"]
    );
}

#[test]
fn counts_reach_the_table_while_lighttpd_runs() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    for _ in 0..5 {
        assert_eq!(
            http::get(l.port, Some("live.example"), "/index.html").status,
            200
        );
    }
    let rows = common::wait_for(FLUSH_WAIT, || {
        let rows = db.rows();
        (!rows.is_empty()).then_some(rows)
    })
    .unwrap_or_else(|| panic!("no row within {FLUSH_WAIT:?}:\n{}", l.all_output()));
    assert_eq!(rows[0].0, "live.example");
    // Later traffic goes into later reports, added to the same row.
    assert_eq!(
        http::get(l.port, Some("live.example"), "/index.html").status,
        200
    );
    stop(&mut l);
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(
        db.rows().len(),
        1,
        "one row per (host, day): {:?}",
        db.rows()
    );
}

#[test]
fn http2_streams_are_counted_without_the_connection_record() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    write_file(&l, "file.bin", 50_000);
    // Cleartext HTTP/2 with prior knowledge; 8 concurrent streams per
    // connection (lighttpd 1.4.69 announces MAX_CONCURRENT_STREAMS = 8).
    let nghttp = |host: &str, path: &str, extra: &[&str]| {
        let out = common::run(
            Command::new(common::program("nghttp"))
                .args([
                    "-n",
                    "--no-dep",
                    "-m",
                    "8",
                    "-H",
                    &format!(":authority: {host}"),
                ])
                .args(extra)
                .arg(format!("http://127.0.0.1:{}{path}", l.port)),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "nghttp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for _ in 0..3 {
        nghttp("h2.example", "/file.bin", &[]);
    }
    nghttp("other.example", "/index.html", &[]);
    // Request bodies over HTTP/2 (DATA frames), read by a CGI backend.
    let body = l.docroot.join("file.bin");
    nghttp(
        "post.example",
        "/upload.sh",
        &["-d", body.to_str().unwrap()],
    );
    stop(&mut l);
    let records = oracle::read_access_log(&l.access_log);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.is_h2_connection_record())
            .count(),
        5,
        "lighttpd logs one connection record per HTTP/2 connection: {records:?}"
    );
    assert_eq!(
        records.iter().filter(|r| r.status == 200).count(),
        40,
        "{records:?}"
    );
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert!(totals["h2.example"].1 > 24 * 50_000, "{totals:?}");
    assert!(totals["post.example"].0 > 8 * 50_000, "{totals:?}");
}

#[test]
fn aborted_download_counts_what_lighttpd_sent() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    std::fs::File::create(l.docroot.join("huge.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut s = http::connect(l.port);
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: abort.example\r\n\r\n")
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while got < 2_000_000 {
        got += s.read(&mut buf).unwrap();
    }
    drop(s); // the client goes away mid-transfer
             // A complete request too, so the host has both kinds.
    assert_eq!(
        http::get(l.port, Some("abort.example"), "/index.html").status,
        200
    );
    std::thread::sleep(Duration::from_millis(500));
    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    let out = totals["abort.example"].1;
    assert!(
        (2_000_000..1 << 30).contains(&out),
        "counted what was queued, not the file size: {out}"
    );
}

#[test]
fn aborted_upload_without_status_counts_what_the_client_sent() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    let head =
        b"POST /upload.sh HTTP/1.1\r\nHost: upload.example\r\nContent-Length: 10000000\r\n\r\n";
    let partial = vec![b'u'; 300_000];
    let mut s = http::connect(l.port);
    s.write_all(head).unwrap();
    s.write_all(&partial).unwrap();
    s.shutdown(Shutdown::Write).unwrap(); // the client gives up mid-body
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    stop(&mut l);

    let sent = (head.len() + partial.len()) as u64;
    let records = oracle::read_access_log(&l.access_log);
    let logged: Vec<_> = records
        .iter()
        .filter(|r| r.host == "upload.example")
        .collect();
    let totals = oracle::table_totals(&db);
    let counted = totals.get("upload.example").copied().unwrap_or_default();
    if logged.is_empty() {
        // No status, so no access-log line: the module must still count it.
        assert_eq!(
            counted,
            (sent, 0),
            "answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    } else {
        oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    }
    assert_eq!(
        counted.0, sent,
        "every byte the client sent was read and counted"
    );
}

#[test]
fn more_than_4_gib_for_one_host_in_one_interval() {
    let db = MariaDb::start();
    // One report for the whole run: delivered by the graceful stop.
    let mut l = Lighttpd::start(&setup(&db, 3600, ""));
    let size: u64 = 2_600_000_000;
    std::fs::File::create(l.docroot.join("sparse.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    for _ in 0..2 {
        let out = Command::new(common::program("curl"))
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                "-H",
                "Host: big.example",
            ])
            .arg(format!("http://127.0.0.1:{}/sparse.bin", l.port))
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), size.to_string());
    }
    assert!(
        db.rows().is_empty(),
        "nothing reported before the interval or the stop"
    );
    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert!(totals["big.example"].1 > 2 * size, "{totals:?}");
    assert!(
        totals["big.example"].1 > u64::from(u32::MAX),
        "past the seed's 32-bit limit"
    );
}

#[test]
fn graceful_restart_loses_nothing() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 3600, ""));
    for _ in 0..3 {
        assert_eq!(
            http::get(l.port, Some("before.example"), "/index.html").status,
            200
        );
    }
    l.signal(libc::SIGUSR1);
    // The old generation's cleanup delivers its counts.
    l.expect_log("server started", Duration::from_secs(5));
    let restarted = common::wait_for(Duration::from_secs(20), || {
        (l.all_output().matches("server started").count() >= 2).then_some(())
    });
    assert!(
        restarted.is_some(),
        "no second start after SIGUSR1:\n{}",
        l.all_output()
    );
    l.wait_until_serving(Duration::from_secs(15))
        .expect("serving after SIGUSR1");
    common::wait_for(FLUSH_WAIT, || {
        db.rows()
            .iter()
            .any(|r| r.0 == "before.example")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("counts before SIGUSR1 not delivered:\n{}", l.all_output()));
    for _ in 0..2 {
        assert_eq!(
            http::get(l.port, Some("after.example"), "/index.html").status,
            200
        );
    }
    stop(&mut l);
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(totals.len(), 2, "{totals:?}");
    assert_eq!(
        l.all_output().matches("database check ok").count(),
        2,
        "one check per generation"
    );
}

#[test]
fn two_workers_each_flush_their_own_deltas() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, "server.max-worker = 2\n"));
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for host in ["w1.example", "w2.example", "w3.example"] {
            assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
            n += 1;
        }
    }
    stop(&mut l);
    assert!(
        l.all_output().matches("database check ok").count() >= 2,
        "one flusher per worker:\n{}",
        l.all_output()
    );
    let records = oracle::read_access_log(&l.access_log);
    assert_eq!(records.len(), n, "every request logged");
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// An HTTP/2 client that can stop half way: POSTs `send` bytes of a body
/// declared as `declared` bytes on one stream, then either finishes (and
/// prints the status) or cancels the stream with RST_STREAM. Uses Debian's
/// python3-h2 (no HTTP/2 client on the machine can abort mid-body).
const H2_POST: &str = r#"
import socket, sys, time
import h2.config, h2.connection, h2.events
port, host, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
declared, send, abort = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "abort"
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(20)
c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"),
                     (":authority", host), ("content-length", str(declared))])
body = b"u" * send
for i in range(0, len(body), 16384):
    c.send_data(sid, body[i:i + 16384])
if not abort:
    c.end_stream(sid)
s.sendall(c.data_to_send())
if abort:
    time.sleep(0.5)  # lighttpd reads what was sent
    c.reset_stream(sid, error_code=8)  # CANCEL
    s.sendall(c.data_to_send())
    time.sleep(0.5)
    s.close()
    print("cancelled")
    sys.exit(0)
status = None
while True:
    data = s.recv(65536)
    if not data:
        break
    ended = False
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            status = dict(e.headers)[":status"]
        elif isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
            ended = True
    s.sendall(c.data_to_send())
    if ended:
        break
print(status)
"#;

fn h2_post(port: u16, host: &str, declared: usize, send: usize, abort: bool) -> String {
    let out = common::run(
        Command::new("/usr/bin/python3")
            .args(["-c", H2_POST])
            .args([
                port.to_string().as_str(),
                host,
                "/upload.sh",
                declared.to_string().as_str(),
                send.to_string().as_str(),
                if abort { "abort" } else { "finish" },
            ]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "h2 client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn aborted_http2_upload_counts_what_the_client_sent() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    // The same request, once complete: its %I tells lighttpd's HTTP/1-style
    // length of these headers (same host length, same content-length
    // digits), which an HTTP/2 client cannot see on the wire.
    assert_eq!(
        h2_post(l.port, "full.example", 40_000, 40_000, false),
        "200"
    );
    assert_eq!(
        h2_post(l.port, "abrt.example", 99_999, 30_000, true),
        "cancelled"
    );
    std::thread::sleep(Duration::from_millis(500));
    stop(&mut l);

    let records = oracle::read_access_log(&l.access_log);
    assert!(
        records.iter().all(|r| r.host != "abrt.example"),
        "no status, no access-log line: {records:?}"
    );
    let full = records
        .iter()
        .find(|r| r.host == "full.example")
        .expect("complete upload logged");
    let header_len = full.bytes_in - 40_000;
    let totals = oracle::table_totals(&db);
    assert_eq!(totals.get("full.example").map(|t| t.0), Some(full.bytes_in));
    let aborted = totals.get("abrt.example").copied().unwrap_or_default();
    assert_eq!(
        aborted.0,
        header_len + 30_000,
        "headers and every DATA byte the client sent: {totals:?}"
    );
}
