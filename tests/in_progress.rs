//! Issue #15: long transfers are counted while they flow. At each report the
//! module adds, for every request still in progress, the bytes it moved
//! since it was last counted, to the day of the report; at its end only the
//! remainder. So the table grows while a download, an upload, an HTTP/2
//! stream or a WebSocket tunnel runs, a transfer across midnight is split
//! by when its bytes flowed, a SIGKILL loses at most the last interval, and
//! the sum over a request's life still equals lighttpd's access log.
//!
//! Transfers are throttled to about 2 MiB/s (lighttpd's
//! `connection.kbytes-per-second`, or a pacing client), reports come every
//! second, and each test has its own vhost, lighttpd and MariaDB.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle;

/// The file downloaded and the body uploaded: 20 MiB.
const SIZE: u64 = 20 << 20;
/// About 2 MiB/s: `connection.kbytes-per-second = 2048`, and the pace of
/// the uploading client.
const RATE: u64 = 2048 << 10;
const THROTTLE: &str = "connection.kbytes-per-second = 2048\n";
/// What the table must show for a transfer still running 5 s after it
/// started (about 10 MiB will have flowed by then).
const GROWN: u64 = 5_000_000;
const GROWN_AFTER: Duration = Duration::from_secs(5);
/// A throttled 20 MiB transfer takes about 10 s; this is for a slow machine.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the table is read while a transfer runs.
const POLL_EVERY: Duration = Duration::from_millis(250);

fn setup(db: &MariaDb, extra: &str) -> Setup {
    Setup::new(format!(
        "{}bw_counter.report_interval = 1\n{extra}",
        db.module_options()
    ))
}

/// A file of `len` bytes in the docroot (sparse: reads as zeros).
fn big_file(l: &Lighttpd, name: &str, len: u64) {
    std::fs::File::create(l.docroot.join(name))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// The table's (in, out) for `vhost`, summed over days; (0, 0) without a row.
fn counted(db: &MariaDb, vhost: &str) -> (u64, u64) {
    oracle::table_totals(db)
        .get(vhost)
        .copied()
        .unwrap_or_default()
}

/// A client's running count of the bytes it moved, with when: the test's
/// thread reads it while it polls the table, and afterwards asks what it
/// was at a given moment.
#[derive(Clone)]
struct Progress(Arc<Mutex<Moved>>);

struct Moved {
    started: Instant,
    /// Whether the client reports its bytes (else only when it finished).
    tracked: bool,
    /// (when, bytes moved by then), in order.
    samples: Vec<(Instant, u64)>,
    finished: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress::start(true)
    }

    /// For a client program that only tells when it has finished.
    fn untracked() -> Progress {
        Progress::start(false)
    }

    fn start(tracked: bool) -> Progress {
        let now = Instant::now();
        Progress(Arc::new(Mutex::new(Moved {
            started: now,
            tracked,
            samples: vec![(now, 0)],
            finished: false,
        })))
    }

    fn add(&self, n: u64) {
        let mut m = self.0.lock().unwrap();
        let total = m.samples.last().unwrap().1 + n;
        m.samples.push((Instant::now(), total));
    }

    fn finish(&self) {
        self.0.lock().unwrap().finished = true;
    }

    fn bytes(&self) -> u64 {
        self.0.lock().unwrap().samples.last().unwrap().1
    }

    fn tracked(&self) -> bool {
        self.0.lock().unwrap().tracked
    }

    fn finished(&self) -> bool {
        self.0.lock().unwrap().finished
    }

    fn started(&self) -> Instant {
        self.0.lock().unwrap().started
    }

    /// Bytes moved by `t`.
    fn at(&self, t: Instant) -> u64 {
        let m = self.0.lock().unwrap();
        m.samples
            .iter()
            .take_while(|(when, _)| *when <= t)
            .last()
            .map_or(0, |s| s.1)
    }
}

/// One reading of the table while a transfer ran.
#[derive(Debug)]
struct Seen {
    /// Since the transfer started.
    after: Duration,
    /// The vhost's (in, out) in the table.
    table: (u64, u64),
    /// What the client had moved right after the table was read (None:
    /// the client does not tell).
    client: Option<u64>,
    /// Whether the client had finished by then.
    client_finished: bool,
}

/// Reads the vhost's row every [`POLL_EVERY`] from `from` after the
/// transfer started until the client finished (at most
/// [`TRANSFER_TIMEOUT`]).
fn watch(db: &MariaDb, vhost: &str, progress: &Progress, from: Duration) -> Vec<Seen> {
    let started = progress.started();
    let mut seen = Vec::new();
    while started.elapsed() < TRANSFER_TIMEOUT {
        let wait = (started + from).saturating_duration_since(Instant::now());
        thread::sleep(wait.max(POLL_EVERY));
        let table = counted(db, vhost);
        let client_finished = progress.finished();
        seen.push(Seen {
            after: started.elapsed(),
            table,
            client: progress.tracked().then(|| progress.bytes()),
            client_finished,
        });
        if client_finished {
            break;
        }
    }
    seen
}

/// The table must have shown, while the client was still moving the
/// transfer, at least [`GROWN`] bytes and less than the whole transfer (so
/// it was counted part by part, not at its end). `bytes` picks in or out.
fn assert_grew_while_running(seen: &[Seen], whole: u64, bytes: fn(&Seen) -> u64, what: &str) {
    let grown = seen
        .iter()
        .find(|s| !s.client_finished && (GROWN..whole).contains(&bytes(s)));
    assert!(
        grown.is_some(),
        "{what}: the table never showed between {GROWN} and {whole} bytes while the \
         transfer ran (read from {GROWN_AFTER:?} on); seen:\n{}",
        describe(seen)
    );
}

/// The readings, one a line; a run of readings with the same table
/// values is shown by its first and last.
fn describe(seen: &[Seen]) -> String {
    let mut out = String::new();
    for (i, s) in seen.iter().enumerate() {
        let same_as = |j: Option<usize>| {
            j.and_then(|j| seen.get(j))
                .is_some_and(|o| o.table == s.table)
        };
        if same_as(i.checked_sub(1)) && same_as(Some(i + 1)) {
            if !out.ends_with("...\n") {
                out.push_str("  ...\n");
            }
            continue;
        }
        out.push_str(&format!(
            "  after {:.2}s: table in {} out {}; client moved {}{}\n",
            s.after.as_secs_f64(),
            s.table.0,
            s.table.1,
            s.client.map_or("?".to_string(), |n| n.to_string()),
            if s.client_finished { " (finished)" } else { "" }
        ));
    }
    out
}

/// What a download thread saw.
struct Downloaded {
    /// The response head (status line and headers).
    head: String,
    /// Every byte received: head and body.
    total: u64,
    /// Why reading stopped, if not a clean end of stream.
    error: Option<std::io::Error>,
}

/// The request [`download`] sends.
fn get_request(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// GETs `path` from `host` on a thread that counts what arrives, as fast as
/// lighttpd sends it, until lighttpd closes the connection.
fn download(port: u16, host: &str, path: &str) -> (Progress, JoinHandle<Downloaded>) {
    let progress = Progress::new();
    let request = get_request(host, path);
    let p = progress.clone();
    let thread = thread::spawn(move || {
        let mut s = http::connect(port);
        s.write_all(request.as_bytes()).expect("send request");
        let mut start = Vec::new();
        let mut buf = vec![0u8; 65536];
        let mut error = None;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if start.len() < 4096 {
                        start.extend_from_slice(&buf[..n.min(4096)]);
                    }
                    p.add(n as u64);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        p.finish();
        let end = start
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(start.len());
        Downloaded {
            head: String::from_utf8_lossy(&start[..end]).into_owned(),
            total: p.bytes(),
            error,
        }
    });
    (progress, thread)
}

/// Checks a finished download: 200 and the whole body.
fn assert_downloaded_whole(d: &Downloaded) {
    assert!(
        d.error.is_none() && d.head.starts_with("HTTP/1.1 200"),
        "download: {:?}, head {:?}",
        d.error,
        d.head
    );
    assert_eq!(
        d.total,
        d.head.len() as u64 + 4 + SIZE,
        "head and the whole body arrived"
    );
}

/// Test 1: a throttled 20 MiB download shows in the table while it runs,
/// and equals the access log at the end.
#[test]
fn throttled_download_is_counted_while_it_runs() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, THROTTLE));
    big_file(&l, "big.bin", SIZE);
    let (progress, client) = download(l.port, "grow.example", "/big.bin");
    let seen = watch(&db, "grow.example", &progress, GROWN_AFTER);
    let d = client.join().expect("download thread");
    eprintln!(
        "download took {:.1}s; seen:\n{}",
        progress.started().elapsed().as_secs_f64(),
        describe(&seen)
    );
    assert_downloaded_whole(&d);
    assert_grew_while_running(&seen, SIZE, |s| s.table.1, "bytes out of grow.example");
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Test 2: a 20 MiB upload to a CGI, paced by the client, shows in bytes
/// in while its body is still arriving, and equals the access log at the
/// end.
#[test]
fn paced_upload_is_counted_while_its_body_arrives() {
    let db = MariaDb::start();
    let mut s = setup(&db, "");
    s.modules.push("mod_cgi".into());
    let mut l = Lighttpd::start(&s);
    let progress = Progress::new();
    let port = l.port;
    let p = progress.clone();
    let client = thread::spawn(move || {
        let mut s = http::connect(port);
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /upload.sh HTTP/1.1\r\nHost: upgrow.example\r\n\
             Content-Length: {SIZE}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("send head");
        p.add(head.len() as u64);
        let chunk = vec![b'u'; 64 << 10];
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < SIZE {
            let n = chunk.len().min((SIZE - sent) as usize);
            s.write_all(&chunk[..n]).expect("send body");
            sent += n as u64;
            p.add(n as u64);
            let due = started + Duration::from_secs_f64(sent as f64 / RATE as f64);
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        p.finish();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let seen = watch(&db, "upgrow.example", &progress, GROWN_AFTER);
    let answer = client.join().expect("upload thread");
    eprintln!(
        "upload took {:.1}s; seen:\n{}",
        progress.started().elapsed().as_secs_f64(),
        describe(&seen)
    );
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("read {SIZE} bytes")),
        "the CGI read the whole body: {answer:?}"
    );
    assert_grew_while_running(&seen, SIZE, |s| s.table.0, "bytes in of upgrow.example");
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Test 3: a throttled HTTP/2 stream (cleartext, prior knowledge) shows in
/// the table while it runs, and equals the access log at the end (its
/// connection record left out).
#[test]
fn throttled_http2_stream_is_counted_while_it_runs() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, THROTTLE));
    big_file(&l, "big.bin", SIZE);
    let progress = Progress::untracked();
    let url = format!("http://127.0.0.1:{}/big.bin", l.port);
    let p = progress.clone();
    let client = thread::spawn(move || {
        let out = common::run(
            Command::new(common::program("nghttp"))
                .args(["-n", "--no-dep", "-H", ":authority: h2grow.example", "-s"])
                .arg(&url),
            TRANSFER_TIMEOUT,
        );
        p.finish();
        out
    });
    let seen = watch(&db, "h2grow.example", &progress, GROWN_AFTER);
    let out = client.join().expect("nghttp thread");
    eprintln!(
        "HTTP/2 download took {:.1}s; seen:\n{}",
        progress.started().elapsed().as_secs_f64(),
        describe(&seen)
    );
    assert!(
        out.status.success(),
        "nghttp: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_grew_while_running(&seen, SIZE, |s| s.table.1, "bytes out of h2grow.example");
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let stream = records
        .iter()
        .find(|r| r.host == "h2grow.example" && !r.is_h2_connection_record())
        .unwrap_or_else(|| panic!("no stream record: {records:?}"));
    assert!(
        stream.status == 200 && stream.bytes_out > SIZE,
        "the whole file on the stream: {stream:?}"
    );
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Test 4: a throttled download across a faked midnight (libfaketime,
/// lighttpd's local clock starting at 23:59:52) lands on both days, split
/// where its bytes flowed: the first day holds what the client had
/// received when lighttpd's clock crossed midnight, within two report
/// intervals' worth; both rows sum to the access log.
#[test]
fn download_across_midnight_is_split_by_when_its_bytes_flowed() {
    let preload = common::libfaketime();
    let db = MariaDb::start();
    let mut s = setup(&db, THROTTLE);
    // lighttpd's clock starts at 23:59:52 local time when its process
    // starts (8 s: room for a slow start on a busy machine; the 10 s
    // download still runs across midnight); a zone 3 hours east of UTC, so
    // that the local day matters.
    let to_midnight = Duration::from_secs(8);
    s.env = vec![
        ("LD_PRELOAD".into(), preload.display().to_string()),
        ("FAKETIME".into(), "@2026-11-28 23:59:52".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("TZ".into(), "XST-3".into()),
    ];
    let before_start = Instant::now();
    let mut l = Lighttpd::start(&s);
    let after_start = Instant::now();
    assert!(
        after_start < before_start + to_midnight - Duration::from_secs(3),
        "lighttpd took {:?} to start: no time left before its midnight",
        after_start - before_start
    );
    big_file(&l, "big.bin", SIZE);
    let (progress, client) = download(l.port, "midnight.example", "/big.bin");
    let d = client.join().expect("download thread");
    assert_downloaded_whole(&d);
    l.stop_ok();

    // Midnight on lighttpd's clock came between these two moments.
    let (earliest, latest) = (
        progress.at(before_start + to_midnight),
        progress.at(after_start + to_midnight),
    );
    let rows: Vec<_> = db
        .rows()
        .into_iter()
        .filter(|r| r.0 == "midnight.example")
        .collect();
    let days: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        days,
        vec!["2026-11-28", "2026-11-29"],
        "a row on each side of midnight (client had received {earliest}..{latest} \
         bytes at midnight): {rows:?}"
    );
    let first_day = rows[0].3;
    eprintln!(
        "lighttpd started within {:?}; the client had received {earliest}..{latest} bytes \
         at midnight; rows {rows:?}",
        after_start - before_start
    );
    let slack = 2 * RATE;
    assert!(
        (earliest.saturating_sub(slack)..=latest + slack).contains(&first_day),
        "the first day holds {first_day} bytes out; the client had received \
         {earliest}..{latest} when lighttpd's clock crossed midnight (allowed: \
         {slack} either way); rows {rows:?}"
    );
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Test 5: lighttpd SIGKILLed in the middle of a throttled download: the
/// table keeps what was reported before the kill (at least what the client
/// had received one interval before it, less one interval's worth), and
/// never more than lighttpd sent.
#[test]
fn sigkill_mid_download_keeps_what_was_reported() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, THROTTLE));
    big_file(&l, "big.bin", SIZE);
    let (progress, client) = download(l.port, "killed.example", "/big.bin");
    let kill_after = Duration::from_secs(7);
    thread::sleep(kill_after.saturating_sub(progress.started().elapsed()));
    assert!(!progress.finished(), "the download ended before the kill");
    let killed_at = Instant::now();
    // lighttpd's process only: its flusher process delivers what it was
    // handed before the kill, and Lighttpd waits for it to finish.
    l.stop_with(libc::SIGKILL, Duration::from_secs(30));
    let d = client.join().expect("download thread");
    assert!(
        d.head.starts_with("HTTP/1.1 200") && d.total < SIZE,
        "cut short by the kill: {} bytes, head {:?}",
        d.total,
        d.head
    );
    let reported_by = progress.at(killed_at - Duration::from_secs(1));
    let lower = reported_by.saturating_sub(RATE);
    let request_len = get_request("killed.example", "/big.bin").len() as u64;
    let (bytes_in, bytes_out) = counted(&db, "killed.example");
    eprintln!(
        "killed at {:.1}s; client had {reported_by} a second before, {} in all; table in \
         {bytes_in} out {bytes_out}",
        (killed_at - progress.started()).as_secs_f64(),
        d.total
    );
    assert!(
        (lower..=d.total).contains(&bytes_out),
        "table holds {bytes_out} bytes out of killed.example; the client had received \
         {reported_by} one second before the kill (allowed: from {lower}) and {} in all \
         (no more was sent)",
        d.total
    );
    assert!(
        (1..=request_len).contains(&bytes_in),
        "table holds {bytes_in} bytes in of killed.example; the request was {request_len}"
    );
}

/// The key of RFC 6455's example handshake and the accept value it gives.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket backend for one connection: answers the Upgrade (RFC 6455's
/// example key only) with 101, then echoes raw bytes until the other end
/// closes (lighttpd does not parse frames, so neither does it). Returns
/// its port.
fn websocket_echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().unwrap().port();
    // Blocked in accept until the test process exits if nobody connects.
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let Ok(head) = read_head(&mut s) else {
            return;
        };
        let head = head.to_ascii_lowercase();
        if !head.contains(&format!(
            "sec-websocket-key: {}",
            WS_KEY.to_ascii_lowercase()
        )) {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {WS_ACCEPT}\r\n\r\n"
        );
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    port
}

/// Reads an HTTP head up to and without its blank line, byte by byte (so
/// that nothing after it is consumed).
fn read_head(s: &mut impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    head.truncate(head.len() - 4);
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Connects to lighttpd and upgrades to a WebSocket for `host`; panics
/// unless the answer is 101 with the accept value for [`WS_KEY`].
fn open_websocket(port: u16, host: &str) -> TcpStream {
    let mut ws = http::connect(port);
    let upgrade = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(upgrade.as_bytes()).expect("send upgrade");
    let head = read_head(&mut ws).expect("read the answer to the upgrade");
    assert!(
        head.starts_with("HTTP/1.1 101") && head.contains(WS_ACCEPT),
        "switched to the tunnel: {head:?}"
    );
    ws
}

/// Test 6: a WebSocket tunnel through mod_proxy, with data both ways for
/// several report intervals, is counted while it is open, and at its close
/// equals what the access log says of the request.
#[test]
fn websocket_tunnel_is_counted_while_open() {
    let db = MariaDb::start();
    let backend = websocket_echo_backend();
    let mut s = setup(
        &db,
        &format!(
            "$HTTP[\"host\"] == \"ws.example\" {{\n\
             proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {backend} ) ) )\n\
             proxy.header = ( \"upgrade\" => \"enable\" )\n}}\n"
        ),
    );
    s.modules.push("mod_proxy".into());
    let mut l = Lighttpd::start(&s);

    let mut ws = open_websocket(l.port, "ws.example");

    // 16 KiB each way every 100 ms for at least 4 s, reading the table;
    // then the tunnel stays open (idle) until the table shows it or 10 s
    // more have passed.
    let opened = Instant::now();
    let message: Vec<u8> = (0..16384u32).map(|i| (i % 251) as u8).collect();
    let mut echoed = vec![0u8; message.len()];
    let mut moved = 0u64;
    let mut seen = Vec::new();
    loop {
        let elapsed = opened.elapsed();
        if elapsed < Duration::from_secs(4) {
            ws.write_all(&message).expect("send through the tunnel");
            ws.read_exact(&mut echoed).expect("echo through the tunnel");
            assert!(echoed == message, "the backend echoes what it got");
            moved += message.len() as u64;
        }
        let table = counted(&db, "ws.example");
        seen.push(Seen {
            after: elapsed,
            table,
            client: Some(moved),
            client_finished: false,
        });
        let shown = table.0 > 0 && table.1 > 0;
        if (elapsed >= Duration::from_secs(4) && shown) || elapsed > Duration::from_secs(14) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let last = seen.last().unwrap().table;
    assert!(
        last.0 > 0 && last.1 > 0,
        "the tunnel (open {:.1}s, {moved} bytes each way) was not in the table while \
         open; seen:\n{}",
        opened.elapsed().as_secs_f64(),
        describe(&seen)
    );
    eprintln!(
        "tunnel open {:.1}s, {moved} bytes each way; seen:\n{}",
        opened.elapsed().as_secs_f64(),
        describe(&seen)
    );
    ws.shutdown(Shutdown::Both).ok();
    drop(ws);
    // lighttpd ends the request when it sees the close; then stops.
    thread::sleep(Duration::from_millis(500));
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let tunnel = records
        .iter()
        .find(|r| r.host == "ws.example")
        .unwrap_or_else(|| panic!("no access-log record of the tunnel: {records:?}"));
    assert!(
        tunnel.status == 101 && tunnel.bytes_in > moved && tunnel.bytes_out > moved,
        "the record has the tunnel's bytes ({moved} each way): {tunnel:?}"
    );
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// Test 7: `bw_counter.count_in_progress = "disable"` counts a request only
/// when it ends: no bytes for the vhost while a throttled download runs,
/// the access log's at the end.
#[test]
fn count_in_progress_disabled_counts_only_at_request_end() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(
        &db,
        &format!("{THROTTLE}bw_counter.count_in_progress = \"disable\"\n"),
    ));
    big_file(&l, "big.bin", SIZE);
    let (progress, client) = download(l.port, "atend.example", "/big.bin");
    let seen = watch(&db, "atend.example", &progress, Duration::ZERO);
    let d = client.join().expect("download thread");
    assert_downloaded_whole(&d);
    // Readings with at least half a second of the transfer still to come
    // (lighttpd may end the request, and report it, while the client reads
    // the last bytes).
    let running: Vec<&Seen> = seen
        .iter()
        .filter(|s| !s.client_finished && s.client.is_some_and(|c| c + RATE / 2 < d.total))
        .collect();
    assert!(
        running.len() >= 10,
        "too few readings while the download ran:\n{}",
        describe(&seen)
    );
    assert!(
        running.iter().all(|s| s.table == (0, 0)),
        "counted before the request ended:\n{}",
        describe(&seen)
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

/// A running request is counted where its end would count it: under its
/// `account`, or not at all when a condition on its URL `exclude`s it (so
/// lighttpd evaluates that condition for the running request, at the
/// report). The status URL shows the running download too. At the end the
/// table equals the access log, with the same rules applied to it.
#[test]
fn running_requests_are_counted_under_their_scope_and_shown_in_the_status() {
    const STATUS: &str = "/bw-status";
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(
        &db,
        &format!(
            "{THROTTLE}\
             $HTTP[\"host\"] == \"acct.example\" {{ bw_counter.account = \"customer\" }}\n\
             $HTTP[\"url\"] =~ \"^/quiet/\" {{ bw_counter.exclude = \"enable\" }}\n\
             $HTTP[\"remoteip\"] == \"127.0.0.1\" {{ bw_counter.status_url = \"{STATUS}\" }}\n"
        ),
    ));
    big_file(&l, "big.bin", SIZE);
    std::fs::create_dir(l.docroot.join("quiet")).unwrap();
    big_file(&l, "quiet/big.bin", SIZE);
    let (progress, counted_client) = download(l.port, "acct.example", "/big.bin");
    let (_, quiet_client) = download(l.port, "quiet.example", "/quiet/big.bin");

    thread::sleep(GROWN_AFTER);
    let status = http::get(
        l.port,
        Some("status.example"),
        &format!("{STATUS}?format=json"),
    );
    let live: serde_json::Value = serde_json::from_slice(&status.body).expect("status JSON");
    let seen = watch(&db, "customer", &progress, Duration::ZERO);
    let quiet_rows = counted(&db, "quiet.example");
    assert_downloaded_whole(&counted_client.join().expect("download thread"));
    assert_downloaded_whole(&quiet_client.join().expect("download thread"));
    eprintln!("seen for customer:\n{}", describe(&seen));

    assert_grew_while_running(&seen, SIZE, |s| s.table.1, "bytes out of account customer");
    let live_out = live["vhosts"]["customer"]["out"].as_u64();
    assert!(
        live_out.is_some_and(|n| (GROWN..SIZE).contains(&n)),
        "the status URL showed the running download under its account: {live}"
    );
    assert_eq!(quiet_rows, (0, 0), "an excluded request is never counted");
    l.stop_ok();
    let expected = oracle::expected_totals_by(&oracle::read_access_log(&l.access_log), |r| {
        if r.path().starts_with("/quiet/") {
            None
        } else if r.host == "acct.example" {
            Some("customer".to_string())
        } else {
            Some(oracle::host_key(&r.host, None))
        }
    });
    assert!(expected.contains_key("customer") && !expected.contains_key("quiet.example"));
    let records = oracle::read_access_log(&l.access_log).len();
    oracle::assert_totals_equal(&expected, &oracle::table_totals(&db), records);
}

/// Reads one Content-Length framed response from a keep-alive connection,
/// `p` told of every byte; returns the head and the body's length.
fn read_response(s: &mut TcpStream, p: &Progress) -> (String, u64) {
    let head = read_head(s).expect("response head");
    p.add(head.len() as u64 + 4);
    let len: u64 = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    let mut left = len;
    let mut buf = vec![0u8; 65536];
    while left > 0 {
        let n = s
            .read(&mut buf[..left.min(65536) as usize])
            .expect("response body");
        assert!(
            n > 0,
            "connection closed with {left} bytes of the body to come"
        );
        left -= n as u64;
        p.add(n as u64);
    }
    (head, len)
}

/// The structures of a request counted in part serve the next ones: more
/// requests on the same keep-alive connection after a download that
/// reports counted while it ran, and a download the client abandons while
/// reports are counting it, each add exactly their own bytes.
#[test]
fn requests_after_a_partly_counted_one_and_abandoned_downloads_count_exactly() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, THROTTLE));
    // About 3 s at the throttled rate: two or three reports see it.
    big_file(&l, "six.bin", 6 << 20);
    std::fs::write(l.docroot.join("small.txt"), b"small\n").unwrap();
    let port = l.port;

    let abandoned = thread::spawn(move || {
        let mut s = http::connect(port);
        s.write_all(get_request("gone.example", "/six.bin").as_bytes())
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(2500);
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        while Instant::now() < deadline {
            got += s.read(&mut buf).expect("download") as u64;
        }
        drop(s); // closed with most of the file still to come
        got
    });

    let progress = Progress::new();
    let mut s = http::connect(port);
    let mut statuses = Vec::new();
    for path in ["/six.bin", "/small.txt", "/six.bin", "/small.txt"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: keep.example\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let (head, len) = read_response(&mut s, &progress);
        statuses.push((head.lines().next().unwrap_or("").to_string(), len));
    }
    drop(s);
    let got = abandoned.join().expect("abandoned download");
    assert!(
        statuses
            .iter()
            .all(|(line, _)| line.starts_with("HTTP/1.1 200")),
        "{statuses:?}"
    );
    assert!(
        got < 6 << 20,
        "the abandoned download ended early: {got} bytes"
    );

    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    assert_eq!(
        records.iter().filter(|r| r.host == "keep.example").count(),
        4,
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| r.host == "gone.example"),
        "the abandoned download is logged: {records:?}"
    );
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}
