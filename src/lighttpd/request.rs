//! Reading a request (and lighttpd's clocks) into plain values for the
//! counting decision in `request.rs`: first the few fields that decide,
//! then, only for a request that counts, its bytes and host.

use std::ffi::c_void;
use std::ptr;

use super::{buffer_bytes, ErrorLog};
use crate::config::{RequestScope, Scopes};
use crate::counters::Traffic;
use crate::ffi;
use crate::in_progress::Identity;
use crate::request::{self, Counted, Hook, Measure, Protocol, RequestBytes, RequestFacts};

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

/// Whether request `r` got a response status (false for null).
///
/// # Safety
/// `r` must be null or the request lighttpd passed to the current hook.
#[inline(always)]
pub unsafe fn has_status(r: *const ffi::request_st) -> bool {
    // SAFETY: by the contract r is null or a live request (invariant 4).
    unsafe { r.as_ref() }.is_some_and(|req| req.http_status != 0)
}

/// The few fields of request `r` that decide whether it counts.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(always)]
pub unsafe fn request_facts(hook: Hook, r: *const ffi::request_st) -> RequestFacts {
    // SAFETY: by the contract r points to a live request that nothing else
    // touches while the hook runs (invariants 1 and 4).
    let req = unsafe { &*r };
    RequestFacts {
        hook,
        http_status: req.http_status,
        header_len: req.rqst_header_len,
        protocol: protocol(req),
    }
}

/// What request `r` adds to the tally, read the way `measure` says; `None`
/// when that is nothing. The result borrows the request's buffers; its
/// `server_name` is left empty (see [`server_name`]).
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook;
/// the result must not outlive the hook.
pub unsafe fn counted_request<'a>(
    measure: Measure,
    r: *const ffi::request_st,
) -> Option<Counted<'a>> {
    // SAFETY: by the contract r points to a live request that nothing else
    // touches while the hook runs (invariants 1 and 4).
    let req: &'a ffi::request_st = unsafe { &*r };
    let (mut stats_in, mut stats_out) = (0i64, 0i64);
    // SAFETY: the shim's http_request_stats_bytes_in/out only read fields of
    // the live request r and write the two integers, which are ours.
    unsafe { ffi::bwc_request_bytes(r, &mut stats_in, &mut stats_out) };
    let bytes = match measure {
        Measure::AccessLog => RequestBytes {
            stats_in,
            stats_out,
            ..RequestBytes::default()
        },
        Measure::CancelledStream => RequestBytes {
            stats_out,
            header_len: req.rqst_header_len,
            body_read: req.reqbody_queue.bytes_in,
            ..RequestBytes::default()
        },
    };
    let traffic = request::traffic(measure, &bytes)?;
    // SAFETY: uri.authority is embedded in the live request.
    let authority = unsafe { buffer_bytes(&req.uri.authority) };
    Some(Counted {
        authority,
        // Read by the caller when needed: see [`server_name`].
        server_name: &[],
        traffic,
        now: clocks().0,
    })
}

/// `r->server_name`, the key of requests without a host.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook;
/// the result must not outlive the hook.
pub unsafe fn server_name<'a>(r: *const ffi::request_st) -> &'a [u8] {
    // SAFETY: by the contract r is live; server_name is null or a buffer of
    // the request's configuration, which outlives it.
    unsafe { buffer_bytes((*r).server_name) }
}

/// HTTP/1, an HTTP/2 stream, or the HTTP/2 connection's own request
/// record (`r == &r->con->request`).
#[inline]
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

/// How request `r` is counted, by the conditions lighttpd says it matches.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
pub unsafe fn request_scope(r: *mut ffi::request_st, scopes: &Scopes) -> RequestScope {
    // SAFETY: config_check_cond reads (and caches in) the live request r,
    // on lighttpd's thread during a hook (contract, invariants 1 and 4);
    // every condition number came from lighttpd's cvlist for this config.
    scopes.request_scope(|condition| unsafe { ffi::config_check_cond(r, condition) } != 0)
}

/// The requests lighttpd is serving now (`bwc_requests_in_progress`: each
/// HTTP/1.x request whose header was read, each HTTP/2 stream), as
/// addresses into `out` (its memory reused from report to report).
///
/// # Safety
/// `srv` must be lighttpd's live server, on lighttpd's thread during a
/// hook; the addresses are valid only until that hook returns.
pub unsafe fn requests_in_progress(srv: *mut ffi::server, out: &mut Vec<usize>) {
    loop {
        out.clear();
        let cap = out.capacity();
        let buf = out.as_mut_ptr().cast::<*mut ffi::request_st>();
        // SAFETY: srv is live and its connection list is not changed while
        // the hook runs (contract, invariant 1); the shim writes at most
        // `cap` pointers into buf, which has room for `cap` (usize and a
        // pointer have the same size and alignment).
        let n = unsafe { ffi::bwc_requests_in_progress(srv, buf, cap) };
        if n <= cap {
            // SAFETY: the shim initialised the first n elements.
            unsafe { out.set_len(n) };
            return;
        }
        out.reserve(n);
    }
}

/// The `plugin_ctx` slot of plugin `id` in request `r`, and the request's
/// identity; `None` if lighttpd gave it no slots.
///
/// # Safety
/// `r` must be a request lighttpd is serving, during a hook on its thread;
/// `id` the plugin id lighttpd gave this module (`plugin_data_base.id`),
/// which indexes `r->plugin_ctx` (lighttpd allocates one slot per loaded
/// plugin plus one). The slot pointer is valid until the hook returns.
pub unsafe fn progress_slot(
    r: *mut ffi::request_st,
    id: usize,
) -> Option<(*mut *mut c_void, Identity)> {
    // SAFETY: r is a live request (contract).
    let req = unsafe { &*r };
    if req.plugin_ctx.is_null() {
        return None;
    }
    let identity = Identity {
        address: r as usize,
        start_secs: req.start_hp.tv_sec,
        start_nanos: req.start_hp.tv_nsec,
    };
    // SAFETY: plugin_ctx has a slot for every plugin id (contract).
    Some((unsafe { req.plugin_ctx.add(id) }, identity))
}

/// Whether request `r`'s `plugin_ctx` slot `id` holds something (a token
/// of ours, when `id` is this module's); false for id 0 (none).
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook;
/// `id` 0 or lighttpd's id for this module.
#[inline(always)]
pub unsafe fn has_progress_token(r: *const ffi::request_st, id: usize) -> bool {
    // SAFETY: r is live (contract); plugin_ctx is null or has a slot for
    // every plugin id.
    unsafe {
        let ctx = (*r).plugin_ctx;
        id != 0 && !ctx.is_null() && !(*ctx.add(id)).is_null()
    }
}

/// What request `r` has moved so far, as mod_accesslog would log it if it
/// ended now (`%I`, `%O`; a negative counter reads as 0).
///
/// # Safety
/// `r` must be a request lighttpd is serving, during a hook on its thread.
pub unsafe fn running_totals(r: *const ffi::request_st) -> Traffic {
    let (mut stats_in, mut stats_out) = (0i64, 0i64);
    // SAFETY: the shim only reads fields of the live request r and writes
    // the two integers, which are ours.
    unsafe { ffi::bwc_request_bytes(r, &mut stats_in, &mut stats_out) };
    Traffic {
        bytes_in: stats_in.max(0) as u64,
        bytes_out: stats_out.max(0) as u64,
    }
}

/// Request `r` counted with `traffic` at wall-clock `now`, borrowing its
/// authority; `server_name` left empty as in [`counted_request`].
///
/// # Safety
/// As [`running_totals`]; the result must not outlive the hook.
pub unsafe fn running_counted<'a>(
    r: *const ffi::request_st,
    traffic: Traffic,
    now: i64,
) -> Counted<'a> {
    // SAFETY: r is live (contract); uri.authority is embedded in it.
    let authority = unsafe { buffer_bytes(&(*r).uri.authority) };
    Counted {
        authority,
        server_name: &[],
        traffic,
        now,
    }
}
