//! The test rig shared by every integration test: a private MariaDB, a
//! lighttpd that loads the freshly built module, guards that stop both when
//! a test ends (also by panicking), and the access-log oracle.
//!
//! Nothing is mocked: the real `mariadbd`, the real `lighttpd` and the real
//! `mod_bw_counter.so`, all on loopback.
#![allow(dead_code)] // each test binary uses a different part of the rig

pub mod galera;
pub mod http;
pub mod lighttpd;
pub mod load;
pub mod mariadb;
pub mod oracle;
pub mod pki;
pub mod prometheus;
pub mod proxy;
pub mod spool;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bwc-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("BWC_KEEP_TMP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The project's top directory (for examples/*.sql): the package's own
/// directory, or its nearest parent with examples/schema.sql when the rig
/// is compiled into a workspace member's tests (bw-report/tests).
pub fn project_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("examples/schema.sql").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Finds a program in PATH or the sbin directories (CI shells as root may
/// lack /usr/sbin in PATH).
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].iter().map(PathBuf::from));
    for dir in dirs {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: run `make test`, which installs what the tests need")
}

/// libfaketime's preload library (Debian's faketime package), for tests that
/// move lighttpd's clock.
pub fn libfaketime() -> PathBuf {
    let preload = PathBuf::from("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    assert!(
        preload.exists(),
        "libfaketime missing: make test installs the faketime package"
    );
    preload
}

/// Compiles C `source` into the shared library `<dir>/<name>.so` (for
/// LD_PRELOAD), linked with `libs`; panics with the compiler's output if
/// it fails.
pub fn preload_library(dir: &Path, name: &str, source: &str, libs: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let so = dir.join(format!("{name}.so"));
    std::fs::write(&src, source).unwrap();
    let out = std::process::Command::new(program("cc"))
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .args(libs)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "cc {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// Runs a client program with a deadline (a hung client must fail the
/// test, not hang the suite); returns its output.
pub fn run(cmd: &mut std::process::Command, timeout: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Read output on threads so a chatty client cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let status = wait_for(timeout, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {timeout:?}");
    };
    std::process::Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Starts `cmd` in a process group of its own (so that it and whatever it
/// forks can be signalled together, and a server that signals its group
/// does not hit the test runner), and has it killed if the test process
/// dies first (PR_SET_PDEATHSIG): no server outlives a killed test run.
pub fn own_group_dies_with_test(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: prctl(2) is a plain system
    // call that touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Sends `sig` to the process group led by `pid` (spawned with
/// `process_group(0)`).
pub fn signal_group(pid: u32, sig: libc::c_int) {
    assert!(pid > 1, "refusing to signal group {pid}");
    // SAFETY: kill(2) on a process group we created; no memory involved.
    unsafe { libc::kill(-(pid as libc::pid_t), sig) };
}

/// The live (not zombie) children of `parent` named `comm` (as
/// `/proc/<pid>/comm` has it: at most 15 bytes).
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            (name == comm && f.len() > 1 && f[0] != "Z" && f[1] == parent.to_string())
                .then_some(pid)
        })
        .collect()
}

/// Whether any process of the group led by `pid` is still running
/// (zombies do not count: this sandbox's init may never reap them).
pub fn group_alive(pid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid pgrp ...": comm may contain spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.len() > 2 && f[0] != "Z" && f[2] == pid.to_string()
    })
}

/// Resident memory of a process, KiB (from /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}
