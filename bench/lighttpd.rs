//! What the module costs the real lighttpd, measured with wrk on loopback:
//! throughput with and without the module and against its peers
//! (mod_accesslog writing a file, mod_rrdtool), latency with the database
//! healthy and stopped, and memory per host. Configurations are run
//! interleaved (A B C D, A B C D, ...) and medians compared, because this
//! machine is shared and noisy.
//!   cargo bench --bench lighttpd          (make bench runs all benchmarks)
//! BENCH_ROUNDS (default 5) and BENCH_SECONDS (default 5) tune the run;
//! BENCH_ONLY=throughput, isolation or memory runs one part.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    BwCounter,
    AccessLog,
    RrdTool,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "lighttpd alone",
            Variant::BwCounter => "with mod_bw_counter",
            Variant::AccessLog => "with mod_accesslog",
            Variant::RrdTool => "with mod_rrdtool",
        }
    }

    fn setup(self, db: &MariaDb, dir: &std::path::Path) -> Setup {
        let mut s = Setup::new("server.max-keep-alive-requests = 100000\n");
        s.modules.clear();
        s.load_module = false;
        match self {
            Variant::Bare => {}
            Variant::BwCounter => {
                s.load_module = true;
                s.conf.push_str(&format!(
                    "{}bw_counter.report_interval = 1\n",
                    db.module_options()
                ));
            }
            Variant::AccessLog => s.modules.push("mod_accesslog".into()),
            Variant::RrdTool => {
                s.modules.push("mod_rrdtool".into());
                s.conf.push_str(&format!(
                    "rrdtool.binary = \"/usr/bin/rrdtool\"\nrrdtool.db-name = \"{}/lighttpd.rrd\"\n",
                    dir.display()
                ));
            }
        }
        s
    }
}

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(port: u16, path: &str, close: bool, secs: u64) -> WrkResult {
    let mut cmd = Command::new(common::program("wrk"));
    cmd.args([
        "-t",
        "1",
        "-c",
        "32",
        "-d",
        &format!("{secs}s"),
        "--latency",
        "-H",
        "Host: bench.example",
    ]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    let out = common::run(&mut cmd, Duration::from_secs(secs + 30));
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
    };
    let ms = |v: String| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => f64::NAN,
        }
    };
    WrkResult {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50_ms: field("50%").map(ms).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(ms).unwrap_or(f64::NAN),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn throughput(db: &MariaDb, rounds: u64, secs: u64) {
    let dir = common::TempDir::new("bench");
    let variants = [
        Variant::Bare,
        Variant::BwCounter,
        Variant::AccessLog,
        Variant::RrdTool,
    ];
    let servers: Vec<Lighttpd> = variants
        .iter()
        .map(|v| Lighttpd::start(&v.setup(db, dir.path())))
        .collect();
    for l in &servers {
        std::fs::write(l.docroot.join("small.html"), vec![b'x'; 1024]).unwrap();
        std::fs::write(l.docroot.join("big.bin"), vec![b'y'; 1 << 20]).unwrap();
    }
    for (label, path, close) in [
        ("1 KiB file, keep-alive", "/small.html", false),
        (
            "1 KiB file, new connection per request",
            "/small.html",
            true,
        ),
        ("1 MiB file, keep-alive", "/big.bin", false),
    ] {
        let mut rps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..rounds {
            for (i, l) in servers.iter().enumerate() {
                rps[i].push(wrk(l.port, path, close, secs).rps);
            }
        }
        let base = median(&rps[0]);
        println!("throughput, {label} (wrk -t1 -c32, {secs}s x {rounds} interleaved rounds, median req/s):");
        for (v, r) in variants.iter().zip(&rps) {
            let m = median(r);
            println!(
                "  {:24} {m:10.0} req/s   ratio to alone {:.3}",
                v.name(),
                m / base
            );
        }
        let with = median(&rps[1]) / base;
        println!(
            "  target with / without >= 0.99: {}",
            if with >= 0.99 { "met" } else { "MISSED" }
        );
    }
}

fn isolation(rounds: u64, secs: u64) {
    let db = MariaDb::start();
    let l = Lighttpd::start(&Variant::BwCounter.setup(&db, std::path::Path::new("/tmp")));
    l.expect_log("database check ok", Duration::from_secs(20));
    let (mut healthy, mut stopped) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        healthy.push(wrk(l.port, "/index.html", false, secs));
        common::signal(db.pid(), libc::SIGSTOP);
        stopped.push(wrk(l.port, "/index.html", false, secs));
        common::signal(db.pid(), libc::SIGCONT);
    }
    let p =
        |v: &[WrkResult], f: fn(&WrkResult) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let (h50, h99) = (p(&healthy, |r| r.p50_ms), p(&healthy, |r| r.p99_ms));
    let (s50, s99) = (p(&stopped, |r| r.p50_ms), p(&stopped, |r| r.p99_ms));
    println!("latency with MariaDB healthy vs kill -STOP'ed ({secs}s x {rounds} interleaved rounds, medians):");
    println!("  healthy: p50 {h50:.3} ms, p99 {h99:.3} ms");
    println!("  stopped: p50 {s50:.3} ms, p99 {s99:.3} ms");
    println!(
        "  p99 ratio stopped / healthy: {:.3} (target <= 1.1: {})",
        s99 / h99,
        if s99 / h99 <= 1.1 { "met" } else { "MISSED" }
    );
}

/// Sends one request each for `n` new host names, pipelined.
fn distinct_hosts(port: u16, n: usize, tag: &str) {
    let mut sent = 0;
    while sent < n {
        let mut s = http::connect(port);
        let mut req = Vec::new();
        let batch = (n - sent).min(1000);
        for i in 0..batch {
            write!(
                req,
                "GET /index.html HTTP/1.1\r\nHost: {tag}-{}.example.com\r\n\r\n",
                sent + i
            )
            .unwrap();
        }
        req.extend_from_slice(
            b"GET /index.html HTTP/1.1\r\nHost: end.example\r\nConnection: close\r\n\r\n",
        );
        s.write_all(&req).unwrap();
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut sink).unwrap();
        sent += batch;
    }
}

fn memory(db: &MariaDb) {
    println!("memory: lighttpd RSS growth for distinct hosts in one interval (report_interval 3600, max_hosts above n):");
    for n in [1_000usize, 10_000, 100_000] {
        let mut growth = Vec::new();
        for with in [false, true] {
            let mut s = Variant::Bare.setup(db, std::path::Path::new("/tmp"));
            if with {
                s.load_module = true;
                s.conf.push_str(&format!(
                    "{}bw_counter.report_interval = 3600\nbw_counter.max_hosts = 1000000\n",
                    db.module_options()
                ));
            }
            let l = Lighttpd::start(&s);
            distinct_hosts(l.port, 2_000, "warm"); // lighttpd's own buffers first
            let before = common::rss_kib(l.pid());
            distinct_hosts(l.port, n, "new");
            growth.push(common::rss_kib(l.pid()).saturating_sub(before) as f64 * 1024.0);
        }
        let per_host = (growth[1] - growth[0]) / n as f64;
        println!(
            "  {n:7} hosts: without module +{:.0} KiB, with +{:.0} KiB: {per_host:.0} bytes per host (target <= 256: {})",
            growth[0] / 1024.0,
            growth[1] / 1024.0,
            if per_host <= 256.0 { "met" } else { "MISSED" }
        );
    }
}

fn main() {
    let rounds = env_num("BENCH_ROUNDS", 5);
    let secs = env_num("BENCH_SECONDS", 5);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let db = MariaDb::start();
    if part("throughput") {
        throughput(&db, rounds, secs);
    }
    if part("isolation") {
        isolation(rounds, secs);
    }
    if part("memory") {
        memory(&db);
    }
}
