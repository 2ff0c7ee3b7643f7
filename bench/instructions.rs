//! What the module costs each request, counted in CPU instructions, which
//! do not depend on what else the machine runs (issue #10's method): the
//! real lighttpd runs under `valgrind --tool=callgrind`, with and without
//! the module, and serves N1 and then N2 requests to a fresh instance
//! each time; instructions per request = (I(N2) - I(N1)) / (N2 - N1) from
//! callgrind's totals (all threads) as dumped right after the requests
//! (`callgrind_control -d`), which cancels start-up and leaves out the stop.
//!
//! Variants: lighttpd without the module; with it (`report_interval =
//! 3600`, so that the request path is measured, not the flush); and, as a
//! control, without the module but with one idle thread preloaded into
//! lighttpd, which is what any thread costs a glibc program (once a second
//! thread exists, glibc takes its multi-threaded paths in malloc and around
//! every blocking system call).
//!
//! Two more variants (issue #12): 100 host conditions that set
//! `bw_counter.account` (the module remembers each host's answer), and the
//! same plus one URL condition that sets `exclude` (every request then
//! evaluates the 101 conditions).
//!
//! BENCH_BASELINE_SO=/path/to/an/older/libmod_bw_counter.so adds that build
//! as a variant, measured in the same run, for before/after figures.
//!
//! Then lighttpd's CPU time per request (utime + stime from /proc, no
//! valgrind), with and without the module, interleaved over rounds.
//!   cargo bench --bench instructions       (make bench runs all benchmarks)
//! BENCH_N1 (2000), BENCH_N2 (12000), BENCH_ROUNDS (5) tune the run;
//! BENCH_LOADS=1,100,10000,new,h2 picks loads (all by default);
//! BENCH_IDLE_THREAD=1 adds the idle-thread control (lighttpd's process has
//! had no thread of the module's since the flusher became a process);
//! BENCH_CPU_REQUESTS=0 skips the CPU-time rounds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::lighttpd::{Lighttpd, Setup};
use common::TempDir;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, PartialEq)]
enum Variant {
    Without,
    With,
    /// Another build of the module (BENCH_BASELINE_SO), for before/after.
    Baseline(PathBuf),
    IdleThread,
    /// The module with 100 `$HTTP["host"] == ...` conditions, each setting
    /// `bw_counter.account` (issue #12): remembered per host.
    AccountsByHost,
    /// The same and one `$HTTP["url"]` exclusion: every request evaluates
    /// the 101 conditions.
    Accounts,
}

impl Variant {
    fn name(&self) -> &'static str {
        match self {
            Variant::Without => "without the module",
            Variant::With => "with mod_bw_counter",
            Variant::Baseline(_) => "with the baseline build",
            Variant::IdleThread => "without, plus one idle thread",
            Variant::AccountsByHost => "with, 100 host conditions (accounts)",
            Variant::Accounts => "with, same + 1 URL condition",
        }
    }

    fn setup(&self, idle_thread: &Path) -> Setup {
        let mut s = Setup::new(
            "server.max-keep-alive-requests = 1000000\n\
             server.max-keep-alive-idle = 60\n",
        );
        s.modules.clear();
        s.load_module = false;
        match self {
            Variant::Without => {}
            Variant::With | Variant::Baseline(_) | Variant::Accounts | Variant::AccountsByHost => {
                s.load_module = true;
                if let Variant::Baseline(so) = self {
                    s.module_so = Some(so.clone());
                }
                // Nothing answers there: the start-up check fails once, and
                // with reports an hour apart the flusher stays idle.
                s.conf.push_str(
                    "bw_counter.mysql_server = \"127.0.0.1:9\"\n\
                     bw_counter.mysql_db = \"bw\"\n\
                     bw_counter.mysql_table = \"t\"\n\
                     bw_counter.mysql_user = \"u\"\n\
                     bw_counter.report_interval = 3600\n",
                );
                if matches!(self, Variant::Accounts | Variant::AccountsByHost) {
                    for i in 0..100 {
                        s.conf.push_str(&format!(
                            "$HTTP[\"host\"] == \"h{i}.example\" {{ bw_counter.account = \"c{}\" }}\n",
                            i % 10
                        ));
                    }
                }
                if *self == Variant::Accounts {
                    s.conf.push_str(
                        "$HTTP[\"url\"] =~ \"^/health\" { bw_counter.exclude = \"enable\" }\n",
                    );
                }
            }
            Variant::IdleThread => {
                s.env = vec![("LD_PRELOAD".into(), idle_thread.display().to_string())];
            }
        }
        s
    }
}

#[derive(Clone, Copy)]
enum Load {
    /// Keep-alive, one connection, requests cycling through `hosts` names.
    KeepAlive { hosts: usize },
    /// A new connection per request, one host.
    NewConnection,
    /// HTTP/2 (prior knowledge) streams, 8 to a connection (nghttp).
    Http2,
}

impl Load {
    fn name(self) -> String {
        match self {
            Load::KeepAlive { hosts: 1 } => "keep-alive, 1 host (a host already seen)".into(),
            Load::KeepAlive { hosts } => format!("keep-alive, {hosts} hosts in turn"),
            Load::NewConnection => "new connection per request, 1 host".into(),
            Load::Http2 => "HTTP/2 streams, 8 per connection, 1 host".into(),
        }
    }

    /// `n` requests (or streams) to lighttpd on `port`.
    fn run(self, port: u16, n: usize) {
        match self {
            Load::KeepAlive { hosts } => {
                keep_alive(port, (0..n).map(|i| format!("h{}.example", i % hosts)))
            }
            Load::NewConnection => {
                for _ in 0..n {
                    keep_alive(port, std::iter::once("h0.example".to_string()));
                }
            }
            Load::Http2 => {
                for _ in 0..n.div_ceil(8) {
                    let out = common::run(
                        Command::new(common::program("nghttp"))
                            .args(["-n", "--no-dep", "-m", "8", "-H", ":authority: h0.example"])
                            .arg(format!("http://127.0.0.1:{port}/small.txt")),
                        Duration::from_secs(120),
                    );
                    assert!(out.status.success(), "nghttp failed");
                }
            }
        }
    }
}

/// GETs of /small.txt over one HTTP/1.1 connection, one at a time, each
/// response read whole before the next request.
fn keep_alive(port: u16, hosts: impl Iterator<Item = String>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    // One segment per request, sent at once: a request split over two
    // writes would wait for the server's delayed ACK (Nagle), 40 ms each.
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for host in hosts {
        let request = format!("GET /small.txt HTTP/1.1\r\nHost: {host}\r\n\r\n");
        writer.write_all(request.as_bytes()).unwrap();
        common::http::read_framed_response(&mut reader);
    }
}

/// Instructions callgrind counted in a lighttpd that served `n` of `load`.
fn instructions(variant: &Variant, load: Load, n: usize, dir: &Path, idle_thread: &Path) -> u64 {
    // One file per process (%p): the flusher process, forked from lighttpd,
    // runs under callgrind too and must not write over lighttpd's counts.
    let out = dir.join("callgrind.out");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("callgrind.out") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut s = variant.setup(idle_thread);
    s.wrapper = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}.%p", out.display()),
    ];
    s.start_timeout = Duration::from_secs(120);
    let mut l = Lighttpd::start(&s);
    std::fs::write(l.docroot.join("small.txt"), vec![b'x'; 100]).unwrap();
    load.run(l.port, n);
    // Counted up to here: start-up and requests, not the stop (whose
    // flush grows with the rows, which is not the request path).
    let dumped = common::run(
        Command::new(common::program("callgrind_control"))
            .arg("-d")
            .arg(l.pid().to_string()),
        Duration::from_secs(120),
    );
    assert!(dumped.status.success(), "callgrind_control -d failed");
    let pid = l.pid();
    l.stop_with(libc::SIGTERM, Duration::from_secs(120));
    // lighttpd's own process only: the dump is of its pid.
    let first_dump = PathBuf::from(format!("{}.{pid}.1", out.display()));
    let text = std::fs::read_to_string(&first_dump).expect("callgrind dump");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("callgrind totals")
}

/// An LD_PRELOAD library that starts one thread, which only sleeps.
fn idle_thread_library(dir: &Path) -> PathBuf {
    common::preload_library(
        dir,
        "idle_thread",
        "#include <pthread.h>\n#include <unistd.h>\n\
         static void *idle(void *a) { for (;;) pause(); return a; }\n\
         __attribute__((constructor)) static void start(void) \
         { pthread_t t; pthread_create(&t, 0, idle, 0); }\n",
        &["-lpthread"],
    )
}

/// lighttpd's CPU time (utime + stime) in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after ")": state is 0, utime is 11, stime is 12.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Microseconds of lighttpd CPU per request for `n` keep-alive requests.
fn cpu_per_request(variant: &Variant, n: usize, idle_thread: &Path) -> f64 {
    let l = Lighttpd::start(&variant.setup(idle_thread));
    std::fs::write(l.docroot.join("small.txt"), vec![b'x'; 100]).unwrap();
    let before = cpu_ticks(l.pid());
    Load::KeepAlive { hosts: 1 }.run(l.port, n);
    let ticks = cpu_ticks(l.pid()) - before;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz * 1e6 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let (n1, n2) = (env_num("BENCH_N1", 2000), env_num("BENCH_N2", 12000));
    let rounds = env_num("BENCH_ROUNDS", 5);
    let dir = TempDir::new("bench-instructions");
    let idle_thread = idle_thread_library(dir.path());
    let mut variants = vec![
        Variant::Without,
        Variant::With,
        Variant::AccountsByHost,
        Variant::Accounts,
    ];
    if let Some(so) = std::env::var_os("BENCH_BASELINE_SO") {
        variants.push(Variant::Baseline(PathBuf::from(so)));
    }
    if std::env::var_os("BENCH_IDLE_THREAD").is_some() {
        variants.push(Variant::IdleThread);
    }
    let all_loads = [
        ("1", Load::KeepAlive { hosts: 1 }),
        ("100", Load::KeepAlive { hosts: 100 }),
        ("10000", Load::KeepAlive { hosts: 10_000 }),
        ("new", Load::NewConnection),
        ("h2", Load::Http2),
    ];
    let chosen = std::env::var("BENCH_LOADS").unwrap_or_default();
    let loads: Vec<Load> = all_loads
        .iter()
        .filter(|(name, _)| chosen.is_empty() || chosen.split(',').any(|c| c == *name))
        .map(|&(_, load)| load)
        .collect();
    println!(
        "instructions per request, (I({n2}) - I({n1})) / {}, callgrind:",
        n2 - n1
    );
    for load in loads {
        let (a, b) = match load {
            // nghttp: a process per 8 streams; fewer streams keep it short.
            Load::Http2 => (n1 / 5, n2 / 5),
            _ => (n1, n2),
        };
        let mut per_request = Vec::new();
        for variant in &variants {
            let low = instructions(variant, load, a, dir.path(), &idle_thread);
            let high = instructions(variant, load, b, dir.path(), &idle_thread);
            per_request.push((high - low) as f64 / (b - a) as f64);
        }
        println!("  {}:", load.name());
        for (variant, i) in variants.iter().zip(&per_request) {
            println!(
                "    {:32} {i:8.0}   without / this: {:.3}",
                variant.name(),
                per_request[0] / i
            );
        }
    }

    let n = env_num("BENCH_CPU_REQUESTS", 30_000);
    if n == 0 {
        return;
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(cpu_per_request(&Variant::Without, n, &idle_thread));
        with.push(cpu_per_request(&Variant::With, n, &idle_thread));
    }
    let (w0, w1) = (median(&mut without), median(&mut with));
    println!(
        "lighttpd CPU time per request (keep-alive, 1 host, {n} requests, median of {rounds} \
         interleaved rounds): without {w0:.2} us, with {w1:.2} us; with / without {:.3}",
        w1 / w0
    );
}
