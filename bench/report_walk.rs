//! What one report costs lighttpd's process as a function of the
//! connections it has open (issue #15: at each report the module walks
//! every open connection to count the bytes of requests in progress).
//! Counted, not timed: lighttpd runs under `valgrind --tool=callgrind` with
//! `report_interval = 1`, so that each of its once-a-second triggers is a
//! report, against an address where no database answers (the walk happens
//! in lighttpd's process either way; the flusher is a process of its own).
//!
//! For each load the bench opens the connections, zeroes callgrind's
//! counters (`callgrind_control -z`), lets lighttpd run for BENCH_SECONDS,
//! dumps (`callgrind_control -d`), and reads from the dump of lighttpd's own
//! process the calls of `mod_bw_counter::hooks::handle_trigger` and the
//! instructions spent in it and everything it calls (inclusive). Per report
//! = inclusive ÷ calls; per connection = (I(N) − I(0)) ÷ N.
//!
//! Throughout, one more connection asks for a small file four times a
//! second, so every report has a row to hand over to the flusher.
//!
//! Loads: N idle keep-alive connections (each served one request, then
//! silent); N downloads of a 1 GiB file whose client reads up to 64 KiB
//! from each connection four times a second (requests in progress that
//! move bytes between reports: lighttpd's sockets get a small send buffer
//! through LD_PRELOAD, see [`small_send_buffer_library`]); N downloads
//! whose client reads nothing (in progress, stalled).
//! `bw_counter.count_in_progress` "enable" and "disable" are run in turn
//! for each load; a module that does not know the option yet (it
//! refuses to start) is measured once, without it.
//!
//!   cargo build --release && cargo bench --bench report_walk
//! BENCH_LOADS=idle0,idle1000,idle9000,reading100,reading1000,stalled1000
//! (the default) picks loads; BENCH_SECONDS (10) is each window.
//!
//! lighttpd allows at most half its file descriptors as connections. The
//! bench raises its RLIMIT_NOFILE to the hard limit and sets
//! `server.max-fds` to it; under valgrind lighttpd's setrlimit fails (it
//! logs so) and it keeps the limit valgrind leaves it, 12 less. Where the
//! hard limit is 20,000 (and cannot be raised) that is 9,994 connections,
//! hence 9,000, not 10,000: the slope gives the rest.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::lighttpd::{Lighttpd, Setup};
use common::TempDir;

/// The module's trigger hook as callgrind names it (demangled).
const HOOK: &str = "mod_bw_counter::hooks::handle_trigger";

#[derive(Clone, Copy, PartialEq)]
enum Counting {
    /// The option not set: a module from before issue #15.
    Absent,
    Enable,
    Disable,
}

impl Counting {
    fn name(self) -> &'static str {
        match self {
            Counting::Absent => "option absent",
            Counting::Enable => "enable",
            Counting::Disable => "disable",
        }
    }

    /// lighttpd allowed `max_fds` descriptors (it takes at most half as
    /// connections), with `preload` loaded into it.
    fn setup(self, max_fds: u64, preload: &Path) -> Setup {
        let mut s = Setup::new(format!(
            "server.max-keep-alive-requests = 1000000\n\
             server.max-keep-alive-idle = 3600\n\
             server.max-read-idle = 3600\n\
             server.max-write-idle = 3600\n\
             server.max-fds = {max_fds}\n\
             server.max-connections = {}\n\
             bw_counter.mysql_server = \"127.0.0.1:9\"\n\
             bw_counter.mysql_db = \"bw\"\n\
             bw_counter.mysql_table = \"t\"\n\
             bw_counter.mysql_user = \"u\"\n\
             bw_counter.report_interval = 1\n",
            max_fds / 2
        ));
        s.modules.clear();
        s.env = vec![("LD_PRELOAD".into(), preload.display().to_string())];
        if self != Counting::Absent {
            s.conf.push_str(&format!(
                "bw_counter.count_in_progress = \"{}\"\n",
                self.name()
            ));
        }
        s
    }
}

#[derive(Clone, Copy)]
enum Load {
    /// Keep-alive connections that were served one small file each.
    Idle(usize),
    /// Downloads whose client reads a little four times a second.
    Reading(usize),
    /// Downloads whose client reads nothing.
    Stalled(usize),
}

impl Load {
    fn parse(name: &str) -> Option<Load> {
        let digits = name.find(|c: char| c.is_ascii_digit())?;
        let n = name[digits..].parse().ok()?;
        match &name[..digits] {
            "idle" => Some(Load::Idle(n)),
            "reading" => Some(Load::Reading(n)),
            "stalled" => Some(Load::Stalled(n)),
            _ => None,
        }
    }

    fn name(self) -> String {
        match self {
            Load::Idle(n) => format!("{n} idle keep-alive connections"),
            Load::Reading(n) => format!("{n} downloads in progress, read slowly"),
            Load::Stalled(n) => format!("{n} downloads in progress, stalled"),
        }
    }

    fn connections(self) -> usize {
        match self {
            Load::Idle(n) | Load::Reading(n) | Load::Stalled(n) => n,
        }
    }

    /// Opens the load's connections to lighttpd on `port`.
    fn open(self, port: u16) -> Vec<TcpStream> {
        match self {
            Load::Idle(n) => idle_connections(port, n),
            Load::Reading(n) | Load::Stalled(n) => (0..n).map(|_| download(port)).collect(),
        }
    }
}

/// `n` keep-alive connections, each having been served /small.txt once;
/// sent 500 at a time so that lighttpd's listen backlog never overflows.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch: Vec<TcpStream> = (0..(n - all.len()).min(500))
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_nodelay(true).unwrap();
                s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: idle.example\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        for s in &batch {
            read_response(s);
        }
        all.extend(batch);
    }
    all
}

/// Reads one response to a GET of /small.txt (Content-Length framed).
fn read_response(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    common::http::read_framed_response(&mut BufReader::new(s));
}

/// A connection asking for /big.bin, which lighttpd serves for as long as
/// the bench runs.
fn download(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: download.example\r\n\r\n")
        .unwrap();
    s
}

/// An LD_PRELOAD library that gives each connection lighttpd accepts a
/// 16 KiB send buffer (the kernel doubles it). With the default, autotuned
/// up to megabytes, lighttpd writes again only once half of it has
/// drained, i.e. not between two reports for a slow reader; with this
/// one, each download moves bytes in lighttpd between reports.
fn small_send_buffer_library(dir: &Path) -> PathBuf {
    common::preload_library(
        dir,
        "small_sndbuf",
        "#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <sys/socket.h>\n\
         static int shrink(int fd) { int size = 16384; \
         if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size); \
         return fd; }\n\
         int accept4(int s, struct sockaddr *a, socklen_t *l, int f) { \
         static int (*real)(int, struct sockaddr *, socklen_t *, int); \
         if (!real) real = dlsym(RTLD_NEXT, \"accept4\"); return shrink(real(s, a, l, f)); }\n\
         int accept(int s, struct sockaddr *a, socklen_t *l) { \
         static int (*real)(int, struct sockaddr *, socklen_t *); \
         if (!real) real = dlsym(RTLD_NEXT, \"accept\"); return shrink(real(s, a, l)); }\n",
        &["-ldl"],
    )
}

/// A thread that runs `step` every 250 ms until the returned flag is set.
fn every_quarter_second(
    mut step: impl FnMut() + Send + 'static,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            step();
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    (stop, thread)
}

/// Reads what is there, at most 64 KiB (loopback's segment size, so that
/// the window reopens), from each download; adds what it read to `moved`.
fn trickle(downloads: &[TcpStream], moved: Arc<AtomicU64>) -> impl FnMut() + Send + 'static {
    let streams: Vec<TcpStream> = downloads
        .iter()
        .map(|s| {
            let s = s.try_clone().unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 65536];
    move || {
        for mut s in &streams {
            match s.read(&mut buf) {
                Ok(n) => {
                    moved.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("download: {e}"),
            }
        }
    }
}

/// One small request on a connection of its own: a row for each report.
fn pulse(port: u16) -> impl FnMut() + Send + 'static {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    move || {
        s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: pulse.example\r\n\r\n")
            .unwrap();
        read_response(&s);
    }
}

/// Calls of the functions named `name`, and the instructions spent in them
/// and their callees, from a callgrind dump (its `cfn=` / `calls=` lines,
/// names compressed to `(id)` after their first mention).
fn inclusive(dump: &str, name: &str) -> (u64, u64) {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let (mut calls, mut cost) = (0u64, 0u64);
    let mut callee_matches = false;
    let mut lines = dump.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line
            .strip_prefix("fn=")
            .or_else(|| line.strip_prefix("cfn="))
        {
            let (id, given) = rest.split_once(' ').unwrap_or((rest, ""));
            if !given.is_empty() {
                names.insert(id, given);
            }
            callee_matches = line.starts_with("cfn=") && names.get(id) == Some(&name);
        } else if let Some(rest) = line.strip_prefix("calls=") {
            if callee_matches {
                calls += field(rest, 0);
                cost += field(lines.next().unwrap_or(""), 1);
            }
        }
    }
    (calls, cost)
}

fn field(line: &str, i: usize) -> u64 {
    line.split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("callgrind line {line:?}"))
}

struct Report {
    calls: u64,
    per_call: f64,
    /// lighttpd's open descriptors when dumped: were the connections held?
    fds: usize,
    /// Bytes the slow readers read during the window.
    moved: u64,
}

/// What every measurement shares.
struct Rig {
    dir: TempDir,
    /// lighttpd's `server.max-fds`: the bench's RLIMIT_NOFILE.
    max_fds: u64,
    /// [`small_send_buffer_library`].
    preload: PathBuf,
    /// How long callgrind counts, once the connections are open.
    window: Duration,
}

impl Rig {
    fn setup(&self, counting: Counting) -> Setup {
        counting.setup(self.max_fds, &self.preload)
    }

    /// Enable and disable if the module knows
    /// `bw_counter.count_in_progress`, else the module as it is.
    fn countings(&self) -> Vec<Counting> {
        match Lighttpd::try_start(&self.setup(Counting::Disable)) {
            Ok(_) => vec![Counting::Enable, Counting::Disable],
            Err(_) => vec![Counting::Absent],
        }
    }
}

/// Runs `load` against a lighttpd under callgrind for the rig's window.
fn measure(rig: &Rig, counting: Counting, load: Load) -> Report {
    let out = rig.dir.path().join("callgrind.out");
    let mut s = rig.setup(counting);
    s.wrapper = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}.%p", out.display()),
    ];
    s.start_timeout = Duration::from_secs(120);
    let l = Lighttpd::start(&s);
    std::fs::write(l.docroot.join("small.txt"), vec![b'x'; 100]).unwrap();
    let big = std::fs::File::create(l.docroot.join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    let connections = load.open(l.port);
    let pulse = every_quarter_second(pulse(l.port));
    let moved = Arc::new(AtomicU64::new(0));
    let reader = matches!(load, Load::Reading(_))
        .then(|| every_quarter_second(trickle(&connections, moved.clone())));
    // Let each download's first bytes be counted and the pulse start.
    std::thread::sleep(Duration::from_secs(3));
    callgrind_control(&l, "-z");
    let before = moved.load(Ordering::Relaxed);
    std::thread::sleep(rig.window);
    callgrind_control(&l, "-d");
    let moved = moved.load(Ordering::Relaxed) - before;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", l.pid())).map_or(0, Iterator::count);
    for (stop, thread) in [Some(pulse), reader].into_iter().flatten() {
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
    let dump = PathBuf::from(format!("{}.{}.1", out.display(), l.pid()));
    let text = std::fs::read_to_string(&dump).expect("callgrind dump");
    drop(l);
    drop(connections);
    let (calls, cost) = inclusive(&text, HOOK);
    assert!(calls > 0, "no call of {HOOK} in {}", dump.display());
    Report {
        calls,
        per_call: cost as f64 / calls as f64,
        fds,
        moved,
    }
}

fn callgrind_control(l: &Lighttpd, command: &str) {
    let done = common::run(
        Command::new(common::program("callgrind_control"))
            .arg(command)
            .arg(l.pid().to_string()),
        Duration::from_secs(120),
    );
    assert!(done.status.success(), "callgrind_control {command} failed");
}

/// The soft RLIMIT_NOFILE raised to the hard one (inherited by lighttpd).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

fn main() {
    let window = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let chosen = std::env::var("BENCH_LOADS")
        .unwrap_or_else(|_| "idle0,idle1000,idle9000,reading100,reading1000,stalled1000".into());
    let loads: Vec<Load> = chosen
        .split(',')
        .map(|n| Load::parse(n).unwrap_or_else(|| panic!("BENCH_LOADS: {n}?")))
        .collect();
    let dir = TempDir::new("bench-in-progress");
    let rig = Rig {
        max_fds: raise_fd_limit(),
        preload: small_send_buffer_library(dir.path()),
        dir,
        window,
    };
    let countings = rig.countings();
    println!(
        "instructions per report ({HOOK}, inclusive / calls; callgrind, {}s windows, \
         report_interval 1, RLIMIT_NOFILE {}):",
        window.as_secs(),
        rig.max_fds
    );
    let mut at_zero: HashMap<&str, f64> = HashMap::new();
    for load in loads {
        for &counting in &countings {
            let r = measure(&rig, counting, load);
            let n = load.connections();
            if n == 0 {
                at_zero.insert(counting.name(), r.per_call);
            }
            let slope = at_zero
                .get(counting.name())
                .filter(|_| n > 0)
                .map_or(String::new(), |i0| {
                    format!("   per connection {:7.1}", (r.per_call - i0) / n as f64)
                });
            let moved = if r.moved > 0 {
                format!(", {:.1} MB read", r.moved as f64 / 1e6)
            } else {
                String::new()
            };
            println!(
                "  {:42} {:14} {:10.0} ({:3} calls, lighttpd fds {:5}{moved}){slope}",
                load.name(),
                counting.name(),
                r.per_call,
                r.calls,
                r.fds
            );
        }
    }
}
