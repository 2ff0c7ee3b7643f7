//! Reading a request (and lighttpd's clocks) into plain values for the
//! counting decision in `request.rs`.

use std::ptr;

use super::{buffer_bytes, ErrorLog};
use crate::ffi;
use crate::request::{Hook, Protocol, RequestFacts};

/// lighttpd's clocks, in seconds: (wall clock since the epoch, monotonic).
/// Both are globals lighttpd updates once per event-loop turn. The wall
/// clock decides the day a request belongs to; the monotonic one times
/// the report interval, so a wall-clock step cannot delay or rush it.
pub fn clocks() -> (i64, i64) {
    // SAFETY: plain integer globals that only lighttpd's thread writes, and
    // hooks (the only callers) run on that thread (invariant 1): no race.
    unsafe { (ffi::log_epoch_secs, ffi::log_monotonic_secs) }
}

/// The error log of the request's scope (stderr if there is no request).
///
/// # Safety
/// `r` must be null or the request lighttpd passed to the current hook.
pub unsafe fn request_log(r: *const ffi::request_st) -> ErrorLog {
    // SAFETY: by the contract r is null or a live request (invariant 4).
    let Some(req) = (unsafe { r.as_ref() }) else {
        return ErrorLog::STDERR;
    };
    // SAFETY: r->conf.errh is the log lighttpd set up for the request's
    // scope, open until every cleanup has run (invariant 3).
    unsafe { ErrorLog::from_raw(req.conf.errh) }
}

/// What the counting decision needs to know about a request.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook;
/// the returned facts (which borrow its buffers) must not outlive it.
pub unsafe fn request_facts<'a>(hook: Hook, r: *const ffi::request_st) -> RequestFacts<'a> {
    // SAFETY: by the contract r points to a live request that nothing else
    // touches while the hook runs (invariants 1 and 4).
    let req = unsafe { &*r };
    // SAFETY: the shim's http_request_stats_bytes_in/out only read fields
    // of the live request r.
    let (stats_in, stats_out) =
        unsafe { (ffi::bwc_request_bytes_in(r), ffi::bwc_request_bytes_out(r)) };
    // SAFETY: uri.authority is embedded in the live request; server_name is
    // null or a buffer of the request's configuration, which outlives it.
    let (authority, server_name) = unsafe {
        (
            buffer_bytes(&req.uri.authority),
            buffer_bytes(req.server_name),
        )
    };
    RequestFacts {
        hook,
        protocol: protocol(req),
        http_status: req.http_status,
        header_len: req.rqst_header_len,
        body_read: req.reqbody_queue.bytes_in,
        stats_in,
        stats_out,
        authority,
        server_name,
        now: clocks().0,
    }
}

/// HTTP/1, an HTTP/2 stream, or the HTTP/2 connection's own request
/// record (`r == &r->con->request`).
fn protocol(req: &ffi::request_st) -> Protocol {
    if req.http_version != ffi::HTTP_VERSION_2 || req.con.is_null() {
        return Protocol::Http1;
    }
    // SAFETY: req.con is non-null and points to the request's live
    // connection; only the address of its embedded request is computed,
    // nothing is read.
    let connection_request = unsafe { ptr::addr_of!((*req.con).request) };
    if ptr::eq(req, connection_request) {
        Protocol::H2Connection
    } else {
        Protocol::H2Stream
    }
}
