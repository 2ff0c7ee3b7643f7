//! The system calls the flusher process needs, each wrapped once with its
//! `SAFETY:` argument: fork, the socket pair, and what the child does to
//! leave lighttpd's resources alone.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::wire::MAX_MESSAGE;

pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// A connected `SOCK_SEQPACKET` pair, both ends close-on-exec (lighttpd
/// execs CGI programs and, for `server.graceful-restart-bg`, itself; none
/// of them may keep the flusher process waiting for an EOF).
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as c_int; 2];
    // SAFETY: socketpair(2) writes two descriptors into `fds`, which is
    // ours and two ints long.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing
    // else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork(2) itself has no memory-safety preconditions. What the
    // child may do afterwards is the caller's contract (see
    // FlusherProcess::spawn: lighttpd's process has one thread).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends the child without running lighttpd's exit handlers or flushing
/// stdio buffers it copied from lighttpd.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit(2) ends the process at once; nothing runs after it.
    unsafe { libc::_exit(code) }
}

pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one whole message (never part of one); `block` waits for room.
pub fn send(fd: &OwnedFd, message: &[u8], block: bool) -> io::Result<()> {
    let flags = libc::MSG_NOSIGNAL | if block { 0 } else { libc::MSG_DONTWAIT };
    loop {
        // SAFETY: send(2) reads `message.len()` bytes from `message`, which
        // is ours for the call.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One message into `buf` (its capacity: at least [`MAX_MESSAGE`]);
/// `Ok(false)` at EOF. With `wait`, waits at most that long for one
/// (`WouldBlock` if none came); without, does not wait.
pub fn receive(fd: &OwnedFd, buf: &mut Vec<u8>, wait: Option<Duration>) -> io::Result<bool> {
    if let Some(wait) = wait {
        if !poll(fd, libc::POLLIN, wait)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
    buf.clear();
    buf.reserve(MAX_MESSAGE);
    // SAFETY: recv(2) writes at most `buf.capacity()` bytes into the
    // spare capacity of `buf`, which is ours; set_len below covers only
    // the bytes it wrote.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.capacity(),
            libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Ok(false),
        n if n > 0 => {
            // SAFETY: recv initialised the first n bytes (n <= capacity).
            unsafe { buf.set_len(n as usize) };
            Ok(true)
        }
        _ => Err(io::Error::last_os_error()),
    }
}

/// Waits at most `wait` for `events` on `fd`: true if they came.
pub fn poll(fd: &OwnedFd, events: libc::c_short, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = wait.as_millis().min(i32::MAX as u128) as c_int;
    // SAFETY: poll(2) on one pollfd that is ours.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

pub fn wait_writable(fd: &OwnedFd, wait: Duration) {
    let _ = poll(fd, libc::POLLOUT, wait);
}

/// The peer reads EOF once everything sent before has been read.
pub fn shut_down_writing(fd: &OwnedFd) {
    // SAFETY: shutdown(2) on a socket we own.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

/// The status of child `pid` if it has ended (and reaps it), without
/// waiting.
pub fn try_reap(pid: libc::pid_t) -> Option<c_int> {
    let mut status = 0;
    // SAFETY: waitpid(2) writes the status into `status`, ours.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// "exited with status 1", "killed by signal 9".
pub fn describe_status(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended (wait status {status})")
    }
}

/// In the child: the signals an admin or a service manager sends to
/// lighttpd's process group are ignored (the process finishes by itself
/// when lighttpd's end closes); SIGPIPE too (a send to a gone lighttpd is
/// an error, not death). The others get their default action, none
/// blocked.
pub fn ignore_lighttpds_signals() {
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN is a valid disposition for these signals.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    for sig in [libc::SIGCHLD, libc::SIGALRM, libc::SIGWINCH] {
        // SAFETY: SIG_DFL is a valid disposition for every signal; this
        // drops handlers copied from lighttpd, whose code must not run here.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut none: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigemptyset writes only `none`; sigprocmask reads it.
    unsafe {
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// In the child: the name `ps -o comm` and `top` show.
pub fn set_process_name(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes from `buf`, which is that.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}

/// In the child: closes every descriptor it inherited from lighttpd
/// (listening sockets, connections, log files, the event loop) except
/// stdin/stdout/stderr and `keep`. A listening socket left open here
/// would keep the port bound after lighttpd stops.
pub fn close_inherited(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closes a descriptor of lighttpd's that nothing in
            // this process uses (this one runs only our code); the
            // directory's own descriptor is already closed, so closing its
            // number fails harmlessly.
            unsafe { libc::close(fd) };
        }
    }
}

/// In the child: a descriptor of its own for lighttpd's error log.
pub fn duplicate(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number; fails harmlessly if
    // it is not open.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: a new descriptor, owned by nothing else.
    (new >= 0).then(|| unsafe { OwnedFd::from_raw_fd(new) })
}
