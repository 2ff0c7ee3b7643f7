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

/// Takes the module's `handle_uri_clean` hook out of its plugin table, so
/// that lighttpd, which builds its table of hooks right after
/// `priv_defaults` returns, never calls it.
///
/// # Safety
/// `p_d` must be the plugin data lighttpd passed to `priv_defaults`, whose
/// `self` lighttpd set to the module's live plugin table.
pub unsafe fn unregister_uri_clean(p_d: *mut std::ffi::c_void) {
    // SAFETY: p_d starts with plugin_data_base (invariant 2), whose self
    // lighttpd set before calling priv_defaults (plugin.c).
    let Some(base) = (unsafe { p_d.cast::<ffi::plugin_data_base>().as_ref() }) else {
        return;
    };
    // self points to the plugin struct lighttpd allocated (not a const
    // object; only its pointer is typed const in some releases), read by
    // nothing else while this hook runs (invariant 1).
    // The field is `const plugin *` or `plugin *` depending on the release
    // (bindgen follows the headers): the cast is needed for some.
    #[allow(clippy::unnecessary_cast)]
    let plugin = base.self_ as *mut ffi::plugin;
    // SAFETY: as above.
    if let Some(p) = unsafe { plugin.as_mut() } {
        p.handle_uri_clean = None;
    }
}
