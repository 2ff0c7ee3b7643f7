//! A lighttpd for one test: temp config, docroot and module dir (the built
//! module staged as mod_bw_counter.so next to links to the system modules),
//! `lighttpd -D -f … -m …` on a free loopback port; stopped on drop.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, program, wait_for, TempDir};

/// The module under test: `BWC_MODULE` if set, else the cdylib cargo built
/// next to this test binary (same profile).
///
/// `cargo test` does not rebuild a cdylib for integration tests, so `make
/// test` runs `cargo build` first; this refuses a .so older than the
/// sources rather than silently testing stale code.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BWC_MODULE") {
        return PathBuf::from(p);
    }
    let profile_dir = profile_dir();
    built_module(&profile_dir.join("libmod_bw_counter.so"), "")
}

/// The module built with `--features panic-test` into its own target
/// directory, `target/panic-test` (see the Makefile); BWC_PANIC_TEST_MODULE
/// overrides it.
pub fn panic_test_module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BWC_PANIC_TEST_MODULE") {
        return PathBuf::from(p);
    }
    let profile_dir = profile_dir();
    let target = profile_dir.parent().expect("target/");
    let so = target
        .join("panic-test")
        .join(profile_dir.file_name().unwrap())
        .join("libmod_bw_counter.so");
    built_module(&so, " --features panic-test --target-dir target/panic-test")
}

/// `target/<profile>`, from this test binary's `target/<profile>/deps/…`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// `so` if it was built after the last change to the sources.
fn built_module(so: &Path, build_flags: &str) -> PathBuf {
    let release = profile_dir().file_name().is_some_and(|p| p == "release");
    let flags = format!("{}{build_flags}", if release { " --release" } else { "" });
    let built = fs::metadata(so)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} not built: run `make test`, or `cargo build{flags}` first",
                so.display()
            )
        });
    let top = super::project_dir();
    let newest = newest_mtime(&[
        top.join("src"),
        top.join("build.rs"),
        // What build.rs compiles from lighttpd-headers/ (its scripts do
        // not change the module).
        top.join("lighttpd-headers/wrapper.h"),
        top.join("lighttpd-headers/shim.h"),
        top.join("lighttpd-headers/shim.c"),
        top.join("lighttpd-headers/debian-config.h"),
        top.join("Cargo.toml"),
        top.join("tls-roots"),
    ]);
    assert!(
        built >= newest,
        "{} is older than the sources: run `cargo build{flags}` before the tests",
        so.display()
    );
    so.to_path_buf()
}

fn newest_mtime(paths: &[PathBuf]) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for p in paths {
        if p.file_name().is_some_and(|n| n == "upstream") {
            continue;
        }
        if let Ok(meta) = fs::metadata(p) {
            if meta.is_dir() {
                let children: Vec<PathBuf> = fs::read_dir(p)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                newest = newest.max(newest_mtime(&children));
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
        }
    }
    newest
}

/// The lighttpd to run: BWC_LIGHTTPD (another release, see
/// lighttpd-headers/test-release.sh), else the installed one.
pub fn lighttpd_program() -> PathBuf {
    std::env::var_os("BWC_LIGHTTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| program("lighttpd"))
}

/// Where the installed lighttpd keeps its modules (mod_accesslog.so).
pub fn system_module_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("BWC_LIGHTTPD_MODDIR") {
        return PathBuf::from(p);
    }
    for d in [
        "/usr/lib/lighttpd",
        "/usr/lib64/lighttpd",
        "/usr/local/lib/lighttpd",
        "/usr/local/lib",
    ] {
        if Path::new(d).join("mod_accesslog.so").is_file() {
            return PathBuf::from(d);
        }
    }
    panic!("mod_accesslog.so not found: install lighttpd or set BWC_LIGHTTPD_MODDIR")
}

/// Tab-separated: host as lighttpd parsed it, %I, %O, status, request line
/// (last, as it is the only field a client controls).
pub const ACCESSLOG_FORMAT: &str = "%V\\t%I\\t%O\\t%s\\t%r";

/// How a test wants lighttpd set up.
#[derive(Clone)]
pub struct Setup {
    /// Lines appended to the generated lighttpd.conf (bw_counter.* etc.).
    /// `*.sh` files in the docroot run as CGI when `mod_cgi` is in
    /// `modules` (a backend that reads request bodies).
    pub conf: String,
    /// Modules before mod_bw_counter in server.modules.
    pub modules: Vec<String>,
    /// Load mod_bw_counter at all (benchmarks and baselines don't).
    pub load_module: bool,
    /// Extra environment for the lighttpd process (TZ, LD_PRELOAD, ...).
    pub env: Vec<(String, String)>,
    /// Another build of the module to load (default: [`module_path`]).
    pub module_so: Option<PathBuf>,
    /// RLIMIT_FSIZE for lighttpd: no file it writes may grow past this
    /// (writes fail with EFBIG, as on a full disk; SIGXFSZ is ignored).
    pub max_file_size: Option<u64>,
    /// A program lighttpd runs under (e.g. valgrind and its options), and
    /// how long to wait for it to serve.
    pub wrapper: Vec<String>,
    pub start_timeout: Duration,
}

impl Setup {
    pub fn new(conf: impl Into<String>) -> Setup {
        Setup {
            conf: conf.into(),
            modules: vec!["mod_accesslog".into()],
            load_module: true,
            env: Vec::new(),
            module_so: None,
            max_file_size: None,
            wrapper: Vec::new(),
            start_timeout: Duration::from_secs(15),
        }
    }
}

pub struct Lighttpd {
    child: Option<Child>,
    max_file_size: Option<u64>,
    wrapper: Vec<String>,
    start_timeout: Duration,
    pub port: u16,
    pub error_log: PathBuf,
    pub access_log: PathBuf,
    pub stderr_log: PathBuf,
    pub docroot: PathBuf,
    pub conf_path: PathBuf,
    pub module_dir: PathBuf,
    env: Vec<(String, String)>,
    // Last: removed after lighttpd stopped.
    dir: TempDir,
}

/// lighttpd exited instead of serving.
#[derive(Debug)]
pub struct Refused {
    pub status: ExitStatus,
    /// stderr and the error log, concatenated.
    pub output: String,
}

impl Lighttpd {
    /// Starts lighttpd and waits until it accepts connections; panics with
    /// its logs if it exits instead.
    pub fn start(setup: &Setup) -> Lighttpd {
        match Lighttpd::try_start(setup) {
            Ok(l) => l,
            Err(r) => panic!("lighttpd refused to start ({}):\n{}", r.status, r.output),
        }
    }

    pub fn try_start(setup: &Setup) -> Result<Lighttpd, Refused> {
        let dir = TempDir::new("lighttpd");
        let docroot = dir.path().join("www");
        fs::create_dir_all(&docroot).unwrap();
        fs::write(
            docroot.join("index.html"),
            "<html><body>mod_bw_counter test</body></html>\n",
        )
        .unwrap();
        // Reads the whole request body, then answers with its size (runs as
        // CGI when mod_cgi is loaded: a backend that consumes bodies).
        fs::write(
            docroot.join("upload.sh"),
            "n=$(wc -c)\nprintf 'Content-Type: text/plain\\r\\n\\r\\nread %s bytes\\n' \"$n\"\n",
        )
        .unwrap();
        let module_dir = dir.path().join("modules");
        let so = setup
            .load_module
            .then(|| setup.module_so.clone().unwrap_or_else(module_path));
        stage_modules(&module_dir, so.as_deref());
        let mut l = Lighttpd {
            child: None,
            max_file_size: setup.max_file_size,
            wrapper: setup.wrapper.clone(),
            start_timeout: setup.start_timeout,
            port: free_port(),
            error_log: dir.path().join("error.log"),
            access_log: dir.path().join("access.log"),
            stderr_log: dir.path().join("stderr.log"),
            docroot,
            conf_path: dir.path().join("lighttpd.conf"),
            module_dir,
            env: setup.env.clone(),
            dir,
        };
        l.write_conf(setup);
        l.launch()?;
        Ok(l)
    }

    fn write_conf(&self, setup: &Setup) {
        let mut modules: Vec<String> = setup.modules.iter().map(|m| format!("\"{m}\"")).collect();
        if setup.load_module {
            modules.push("\"mod_bw_counter\"".into());
        }
        let conf = format!(
            "server.document-root = \"{docroot}\"\n\
             server.bind = \"127.0.0.1\"\n\
             server.port = {port}\n\
             server.errorlog = \"{errlog}\"\n\
             server.modules = ({modules})\n\
             accesslog.filename = \"{access}\"\n\
             accesslog.format = \"{ACCESSLOG_FORMAT}\"\n\
             mimetype.assign = (\".html\" => \"text/html\", \"\" => \"application/octet-stream\")\n\
             {cgi}\
             {extra}\n",
            cgi = if setup.modules.iter().any(|m| m == "mod_cgi") {
                "cgi.assign = (\".sh\" => \"/bin/sh\")\n"
            } else {
                ""
            },
            docroot = self.docroot.display(),
            port = self.port,
            errlog = self.error_log.display(),
            modules = modules.join(", "),
            access = self.access_log.display(),
            extra = setup.conf,
        );
        fs::write(&self.conf_path, conf).unwrap();
    }

    /// Starts the lighttpd process for the written config.
    pub fn launch(&mut self) -> Result<(), Refused> {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .unwrap();
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(lighttpd_program()),
            Some((wrapper, args)) => {
                let mut cmd = Command::new(program(wrapper));
                cmd.args(args).arg(lighttpd_program());
                cmd
            }
        };
        cmd.arg("-D")
            .arg("-f")
            .arg(&self.conf_path)
            .arg("-m")
            .arg(&self.module_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(stderr.try_clone().unwrap())
            .stderr(stderr);
        // Its own process group: lighttpd's watcher (server.max-worker)
        // signals its whole group, which must not include the test runner;
        // and Drop can then kill the workers along with the watcher.
        super::own_group_dies_with_test(&mut cmd);
        if let Some(limit) = self.max_file_size {
            limit_file_size(&mut cmd, limit);
        }
        let child = cmd.spawn().expect("spawn lighttpd");
        self.child = Some(child);
        match self.wait_until_serving(self.start_timeout) {
            Ok(()) => Ok(()),
            Err(status) => Err(Refused {
                status,
                output: self.all_output(),
            }),
        }
    }

    /// Waits until lighttpd's event loop accepts connections. A successful
    /// TCP connect is not enough: lighttpd listens before it configures its
    /// modules, so a connect can succeed and the server still exit on a
    /// config error. Ready means our connection left the listen backlog,
    /// i.e. the event loop accepted it. The probe sends no request, so it
    /// appears in no access log and in no count.
    pub fn wait_until_serving(&mut self, timeout: Duration) -> Result<(), ExitStatus> {
        let port = self.port;
        let child = self.child.as_mut().expect("spawned");
        let mut probe: Option<TcpStream> = None;
        let outcome = wait_for(timeout, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            if probe.is_none() {
                probe = TcpStream::connect(("127.0.0.1", port)).ok();
                return None;
            }
            (listen_backlog(port) == Some(0)).then_some(Ok(()))
        });
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(status)) => {
                self.child = None;
                Err(status)
            }
            None => {
                let mut child = self.child.take().unwrap();
                let _ = child.kill();
                let status = child.wait().unwrap();
                eprintln!("lighttpd did not start serving within {timeout:?}");
                Err(status)
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn error_log_text(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    pub fn all_output(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(&self.stderr_log).unwrap_or_default(),
            self.error_log_text()
        )
    }

    /// Waits until the error log (or stderr) has a line containing
    /// `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        wait_for(timeout, || {
            self.all_output()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
    }

    /// Like [`Lighttpd::wait_for_log`] but panics with the whole log.
    pub fn expect_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log(needle, timeout).unwrap_or_else(|| {
            panic!(
                "no log line with {needle:?} within {timeout:?}:\n{}",
                self.all_output()
            )
        })
    }

    pub fn signal(&self, sig: libc::c_int) {
        super::signal(self.pid(), sig);
    }

    /// Sends `sig` and waits (at most `timeout`) for lighttpd to exit.
    pub fn stop_with(&mut self, sig: libc::c_int, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        super::signal(child.id(), sig);
        let status = wait_for(timeout, || child.try_wait().ok().flatten());
        if status.is_none() {
            super::signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
        // Workers (server.max-worker) exit on their own after the watcher;
        // wait for them so their last flush is done.
        wait_for(timeout, || (!super::group_alive(child.id())).then_some(()));
        status
    }

    /// Graceful stop (SIGTERM), waiting up to 30 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with(libc::SIGTERM, Duration::from_secs(30))
    }

    /// Graceful stop that must end in an exit, not a crash or a kill.
    /// lighttpd exits 1 instead of 0 when connections were still open (e.g.
    /// lingering after a close) at SIGTERM (server.c: rc = 0 only if
    /// srv->conns is empty), so both count as clean.
    pub fn stop_ok(&mut self) {
        match self.stop() {
            Some(status) if matches!(status.code(), Some(0 | 1)) => {}
            other => panic!(
                "lighttpd did not stop cleanly: {other:?}\n{}",
                self.all_output()
            ),
        }
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- lighttpd output ({}) ---\n{}",
                self.conf_path.display(),
                self.all_output()
            );
        }
        if let Some(mut child) = self.child.take() {
            // The whole group: workers forked by the watcher too.
            super::signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Starts `cmd` with RLIMIT_FSIZE at `limit` bytes and SIGXFSZ ignored, so
/// that a write past it fails with EFBIG instead of killing the process.
fn limit_file_size(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and makes
    // only async-signal-safe system calls (setrlimit, signal) on values it
    // owns; an ignored signal stays ignored across exec.
    unsafe {
        cmd.pre_exec(move || {
            let rlim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Connections waiting in the accept queue of the loopback listener on
/// `port` (for a LISTEN socket, /proc/net/tcp's rx_queue is the backlog).
fn listen_backlog(port: u16) -> Option<u32> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let want = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, state, queues) = (f.get(1)?, f.get(3)?, f.get(4)?);
        if !local.ends_with(&want) || *state != "0A" {
            return None;
        }
        u32::from_str_radix(queues.split(':').nth(1)?, 16).ok()
    })
}

/// The module dir for `lighttpd -m`: links to every system module, plus the
/// module under test named as lighttpd expects (`mod_bw_counter.so`).
fn stage_modules(dir: &Path, module: Option<&Path>) {
    fs::create_dir_all(dir).unwrap();
    for entry in fs::read_dir(system_module_dir()).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".so") && name != "mod_bw_counter.so" {
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).unwrap();
        }
    }
    if let Some(so) = module {
        fs::copy(so, dir.join("mod_bw_counter.so"))
            .unwrap_or_else(|e| panic!("{}: {e}", so.display()));
    }
}
