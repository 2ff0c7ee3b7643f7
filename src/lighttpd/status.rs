//! The status URL's side of the adapter: whether a request is for it (by
//! lighttpd's conditions, as mod_status decides for `status.status-url`),
//! and the answer written into lighttpd's response.

use super::buffer_bytes;
use crate::config::Scopes;
use crate::ffi;

/// A request for the status URL.
pub struct StatusRequest<'a> {
    /// GET or HEAD (anything else is answered 405).
    pub readable: bool,
    /// The raw query string (`format=prometheus`).
    pub query: &'a [u8],
}

/// `Some` when request `r` asks for the status URL its scope sets and no
/// other module has taken it yet.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook;
/// the result must not outlive the hook.
pub unsafe fn status_request<'a>(
    r: *mut ffi::request_st,
    scopes: &Scopes,
) -> Option<StatusRequest<'a>> {
    // SAFETY: by the contract r is live, and nothing else touches it while
    // the hook runs (invariants 1 and 4).
    let req: &'a ffi::request_st = unsafe { &*r };
    if !req.handler_module.is_null() {
        return None;
    }
    // SAFETY: as in request_scope: config_check_cond on the live request,
    // on lighttpd's thread, with condition numbers from lighttpd's cvlist.
    let url = scopes.status_url(|c| unsafe { ffi::config_check_cond(r, c) } != 0)?;
    // SAFETY: uri.path is embedded in the live request (decoded and
    // simplified by lighttpd by handle_uri_clean time, like mod_status sees it).
    if unsafe { buffer_bytes(&req.uri.path) } != url {
        return None;
    }
    let method = req.http_method;
    Some(StatusRequest {
        readable: method == ffi::HTTP_METHOD_GET || method == ffi::HTTP_METHOD_HEAD,
        // SAFETY: uri.query is embedded in the live request.
        query: unsafe { buffer_bytes(&req.uri.query) },
    })
}

/// Answers request `r` with `status`, `content_type` and `body`; the hook
/// then returns `HANDLER_FINISHED`.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
pub unsafe fn respond(r: *mut ffi::request_st, status: i32, content_type: &str, body: &str) {
    // SAFETY: the shim sets headers and appends a copy of the body to the
    // live request's write queue (lighttpd's own functions, on its thread);
    // both slices are valid for the lengths given.
    unsafe {
        ffi::bwc_respond(
            r,
            status,
            content_type.as_ptr().cast(),
            content_type.len(),
            body.as_ptr().cast(),
            body.len(),
        )
    };
}

/// `server.max-worker` (0: one process serves).
///
/// # Safety
/// `srv` must be lighttpd's live server.
pub unsafe fn max_workers(srv: *const ffi::server) -> usize {
    // SAFETY: by the contract srv is live (invariant 3).
    unsafe { srv.as_ref() }.map_or(0, |s| usize::from(s.srvconf.max_worker))
}
