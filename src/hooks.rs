//! One short `extern "C"` function per lighttpd hook. Each reads what it
//! needs from lighttpd into plain values, calls [`Module`], writes the
//! resulting log lines, and returns a `handler_t`. All run on lighttpd's
//! thread; every one is wrapped in [`guarded`] so no panic unwinds into C.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::config;
use crate::ffi;
use crate::lighttpd::{self, ErrorLog};
use crate::module::{Module, Request};
use crate::plugin::PluginData;

/// lighttpd's wall clock: seconds since the epoch, updated once per loop
/// turn. Decides the day a request belongs to.
fn now() -> i64 {
    // SAFETY: a plain integer global that lighttpd's thread (ours) writes.
    unsafe { ffi::log_epoch_secs }
}

/// lighttpd's monotonic clock in seconds: times the report interval, so a
/// wall-clock step (NTP, DST has none) cannot delay or rush a report.
fn monotonic() -> i64 {
    // SAFETY: a plain integer global that lighttpd's thread (ours) writes.
    unsafe { ffi::log_monotonic_secs }
}

/// Runs `f`; if it panics, logs the panic to `log` and returns `on_panic`.
/// Needs `panic = "unwind"` (see Cargo.toml).
pub fn guarded<R>(hook: &str, log: ErrorLog, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = crate::panic_message(payload.as_ref());
            // Logging must not unwind either.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                log.write(&format!("internal error in {hook} (please report): {msg}"))
            }));
            on_panic
        }
    }
}

/// Our plugin data behind `p_d`.
///
/// # Safety
/// `p_d` must be what `init` returned, not yet freed by lighttpd, and used
/// only on lighttpd's thread (so the `&mut` is unique).
unsafe fn plugin_data<'a>(p_d: *mut c_void) -> Option<&'a mut PluginData> {
    // SAFETY: per the caller's guarantee p_d is null or our PluginData.
    unsafe { p_d.cast::<PluginData>().as_mut() }
}

/// The module state behind `p_d`.
///
/// # Safety
/// As for [`plugin_data`].
unsafe fn module<'a>(p_d: *mut c_void) -> Option<&'a mut Module> {
    // SAFETY: module is either null or the Box::into_raw of init.
    unsafe { plugin_data(p_d)?.module.as_mut() }
}

fn write_all(log: ErrorLog, lines: Vec<String>) {
    for line in lines {
        log.write(&line);
    }
}

pub unsafe extern "C" fn init() -> *mut c_void {
    guarded("init", ErrorLog::STDERR, ptr::null_mut(), || {
        // SAFETY: calloc returns zeroed memory or null; zero is a valid
        // plugin_data_base and a null module pointer.
        let pd = unsafe { libc::calloc(1, std::mem::size_of::<PluginData>()) }.cast::<PluginData>();
        if pd.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: pd was just allocated with the size of PluginData.
        unsafe { (*pd).module = Box::into_raw(Box::new(Module::new())) };
        pd.cast()
    })
}

pub unsafe extern "C" fn set_defaults(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: lighttpd passes its live server.
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("set_defaults", log, ffi::HANDLER_ERROR, || {
        // SAFETY: srv and p_d are what lighttpd passes to set_defaults.
        let input = unsafe { lighttpd::read_config(srv, p_d) };
        let mut config = match config::parse(&input.found, &input.values) {
            Ok(c) if input.lighttpd_accepted => c,
            Ok(_) => return ffi::HANDLER_ERROR, // lighttpd logged why
            Err(errors) => {
                errors.iter().for_each(|e| log.write(&e.to_string()));
                return ffi::HANDLER_ERROR;
            }
        };
        if let Err(e) = config.load_secrets() {
            log.write(&e.to_string());
            return ffi::HANDLER_ERROR;
        }
        write_all(log, config.warnings());
        // SAFETY: p_d is ours, on lighttpd's thread.
        let Some(pd) = (unsafe { plugin_data(p_d) }) else {
            return ffi::HANDLER_ERROR;
        };
        pd.log = log;
        // SAFETY: as above.
        let Some(module) = (unsafe { module(p_d) }) else {
            return ffi::HANDLER_ERROR;
        };
        module.configure(config);
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn worker_init(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: lighttpd passes its live server.
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("worker_init", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: p_d is ours, on lighttpd's thread.
        let Some(module) = (unsafe { module(p_d) }) else {
            return ffi::HANDLER_GO_ON;
        };
        if let Err(e) = module.start_worker(now(), monotonic()) {
            // Serving matters more than counting: log it and carry on.
            log.write(&e);
        }
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn handle_trigger(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: lighttpd passes its live server.
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("handle_trigger", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: p_d is ours, on lighttpd's thread.
        if let Some(module) = unsafe { module(p_d) } {
            write_all(log, module.tick(monotonic()));
        }
        ffi::HANDLER_GO_ON
    })
}

// Which hook counts a request (HTTP/1 and HTTP/2 streams alike):
//
// - handle_request_done: every request that got a status, with exactly the
//   numbers mod_accesslog prints as %I and %O (http_request_stats_bytes_in/
//   out). lighttpd calls it once per request, after the last byte was
//   queued, with keep-alive/pipelining checkpoints already applied. The one
//   exception is skipped: when an HTTP/2 connection ends, lighttpd calls it
//   again for the connection itself (status 100, "PRI *"), carrying the
//   wire bytes of all its streams, which were counted already.
// - handle_request_reset: a request whose headers were parsed
//   (rqst_header_len > 0) but that never got a status (client gave up
//   during an upload, or a timeout) never reaches request_done and is
//   missing from the access log; its bytes are counted here (for an HTTP/2
//   stream, lighttpd has zeroed its read counters just before this hook,
//   so they are rebuilt from what they held). Requests with
//   a status are left alone here: either request_done counted them, or the
//   reset comes from an error-handler restart of a request that request_done
//   will still see. Resets after the request was reset once (connection
//   close) find rqst_header_len back at 0.
//
// Bytes of connections that never complete a request header, TLS records
// and HTTP/2 framing belong to no request and are not counted.

/// Reads what the core needs out of a request.
///
/// # Safety
/// `r` must be a live request lighttpd passed to a hook.
unsafe fn request_of<'a>(r: *const ffi::request_st) -> Request<'a> {
    // SAFETY: per the caller; the buffers live as long as the request.
    unsafe {
        let req = &*r;
        Request {
            authority: lighttpd::buffer_bytes(&req.uri.authority),
            server_name: lighttpd::buffer_bytes(req.server_name),
            bytes_in: ffi::bwc_request_bytes_in(r),
            bytes_out: ffi::bwc_request_bytes_out(r),
            now: now(),
        }
    }
}

/// Where an HTTP/2 request sits: the connection's own request (whose
/// request_done is the connection record, see above) or one of its streams.
#[derive(Clone, Copy, PartialEq, Eq)]
enum H2 {
    Http1,
    ConnectionRecord,
    Stream,
}

/// # Safety
/// `r` must be a live request lighttpd passed to a hook.
unsafe fn h2_kind(r: *const ffi::request_st) -> H2 {
    // SAFETY: per the caller; r->con is the request's live connection.
    unsafe {
        let req = &*r;
        if req.http_version != ffi::HTTP_VERSION_2 || req.con.is_null() {
            H2::Http1
        } else if std::ptr::eq(r, std::ptr::addr_of!((*req.con).request)) {
            H2::ConnectionRecord
        } else {
            H2::Stream
        }
    }
}

/// # Safety
/// Called by lighttpd only, with a live request.
unsafe fn request_log(r: *const ffi::request_st) -> ErrorLog {
    // SAFETY: per the caller.
    unsafe {
        r.as_ref()
            .map_or(ErrorLog::STDERR, |req| ErrorLog::from_raw(req.conf.errh))
    }
}

pub unsafe extern "C" fn handle_request_done(
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    // SAFETY: lighttpd passes a live request.
    let log = unsafe { request_log(r) };
    guarded("handle_request_done", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: r is live for the duration of the hook; p_d is ours and
        // used on lighttpd's thread only.
        unsafe {
            #[cfg(feature = "panic-test")]
            panic_if_asked(r);
            if h2_kind(r) != H2::ConnectionRecord {
                if let Some(module) = module(p_d) {
                    module.count(request_of(r));
                }
            }
        }
        ffi::HANDLER_GO_ON
    })
}

/// Test builds only: a request for host "panic.test" panics in the hook.
///
/// # Safety
/// `r` must be a live request lighttpd passed to a hook.
#[cfg(feature = "panic-test")]
unsafe fn panic_if_asked(r: *const ffi::request_st) {
    // SAFETY: per the caller.
    if unsafe { lighttpd::buffer_bytes(&(*r).uri.authority) } == b"panic.test" {
        panic!("forced by the panic-test feature in a request hook");
    }
}

pub unsafe extern "C" fn handle_request_reset(
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    // SAFETY: lighttpd passes a live request.
    let log = unsafe { request_log(r) };
    guarded("handle_request_reset", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: r is live for the duration of the hook; p_d is ours and
        // used on lighttpd's thread only.
        unsafe {
            #[cfg(feature = "panic-test")]
            panic_if_asked(r);
            let req = &*r;
            if req.http_status != 0
                || req.rqst_header_len == 0
                || h2_kind(r) == H2::ConnectionRecord
            {
                return ffi::HANDLER_GO_ON;
            }
            let mut request = request_of(r);
            if h2_kind(r) == H2::Stream {
                // The stream's read counters are already zeroed here (see
                // the shim); count what they held.
                request.bytes_in = ffi::bwc_h2_stream_bytes_in_at_reset(r);
            }
            if let Some(module) = module(p_d) {
                module.count(request);
            }
        }
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn cleanup(p_d: *mut c_void) {
    guarded("cleanup", ErrorLog::STDERR, (), || {
        // SAFETY: p_d is ours (lighttpd frees the block itself right after
        // this returns); taking the module out leaves a null pointer behind.
        let Some(pd) = (unsafe { plugin_data(p_d) }) else {
            return;
        };
        let raw = std::mem::replace(&mut pd.module, ptr::null_mut());
        if raw.is_null() {
            return;
        }
        // SAFETY: raw came from Box::into_raw in init and is dropped once.
        let mut module = unsafe { Box::from_raw(raw) };
        write_all(pd.log, module.shutdown());
    })
}
