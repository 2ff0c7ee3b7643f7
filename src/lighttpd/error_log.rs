//! lighttpd's error log, written from lighttpd's thread only.

use std::ffi::CString;
use std::panic::Location;
use std::ptr;

use crate::ffi;

/// A lighttpd error log (`srv->errh`, `r->conf.errh`), or stderr when null.
/// Valid as long as the server that owns it (invariant 3 in `mod.rs`).
#[derive(Clone, Copy)]
pub struct ErrorLog(*mut ffi::log_error_st);

impl ErrorLog {
    /// No lighttpd log available (in `init`, before lighttpd handed us a
    /// server): lines go to stderr, which is where lighttpd's own go then.
    pub const STDERR: ErrorLog = ErrorLog(ptr::null_mut());

    /// # Safety
    /// `errh` must be null or a log lighttpd handed us (`srv->errh`,
    /// `r->conf.errh`), which lives until every plugin's cleanup has run.
    pub unsafe fn from_raw(errh: *mut ffi::log_error_st) -> ErrorLog {
        ErrorLog(errh)
    }

    /// # Safety
    /// `srv` must be the live server lighttpd passed to the current hook.
    pub unsafe fn of_server(srv: *const ffi::server) -> ErrorLog {
        // SAFETY: by the contract srv points to lighttpd's live server.
        ErrorLog(unsafe { (*srv).errh })
    }

    /// The log's file descriptor, if it writes to one (a file, a pipe,
    /// stderr); `None` for syslog.
    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        if self.0.is_null() {
            return Some(2);
        }
        // SAFETY: self.0 is lighttpd's live log (the type's invariant), read
        // on lighttpd's thread.
        let log = unsafe { &*self.0 };
        (log.mode != ffi::FDLOG_SYSLOG && log.fd >= 0).then_some(log.fd)
    }

    /// Writes `mod_bw_counter: <msg>` with the caller's file and line.
    /// The message is passed as data to a constant `"%.*s"` format.
    #[track_caller]
    pub fn write(&self, msg: &str) {
        let line = format!("mod_bw_counter: {msg}");
        if self.0.is_null() {
            eprintln!("{line}");
            return;
        }
        let loc = Location::caller();
        let file = CString::new(loc.file()).unwrap_or_default();
        // SAFETY: self.0 is lighttpd's live log (the type's invariant).
        // log_error is not thread-safe; this runs on lighttpd's thread,
        // because an ErrorLog is made in a hook and cannot leave that
        // thread (a raw pointer makes it !Send). `file` is NUL-terminated;
        // `line` is passed with its length, never as a format.
        unsafe {
            ffi::bwc_log(
                self.0,
                file.as_ptr(),
                loc.line(),
                line.as_ptr().cast(),
                line.len(),
            );
        }
    }
}
