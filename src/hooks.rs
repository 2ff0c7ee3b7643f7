//! One short `extern "C"` function per lighttpd hook. Each reads what it
//! needs from lighttpd through the adapter (`lighttpd/`), calls the core,
//! writes the resulting log lines, and returns a `handler_t`. Every one is
//! wrapped in [`guarded`], so no panic unwinds into C. The invariants the
//! `SAFETY:` comments rely on are listed in `lighttpd/mod.rs`.

use std::ffi::{c_int, c_void};
use std::ptr;

use crate::config;
use crate::counters::Traffic;
use crate::ffi;
use crate::in_progress::InProgress;
use crate::instance::Instance;
use crate::lighttpd::{self, guarded, ErrorLog, PluginData};
use crate::request::{self, Counted, Hook};
use crate::status::Format;

fn write_all(log: ErrorLog, lines: Vec<String>) {
    for line in lines {
        log.write(&line);
    }
}

pub unsafe extern "C" fn init() -> *mut c_void {
    guarded(
        "init",
        ErrorLog::STDERR,
        ptr::null_mut(),
        PluginData::allocate,
    )
}

/// Runs before lighttpd builds its table of hooks (and, as root, before it
/// drops privileges): when no scope can ever set a status URL, the
/// `handle_uri_clean` hook is taken out, so that requests do not pay for a
/// call that would only return.
pub unsafe extern "C" fn priv_defaults(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: srv is lighttpd's live server (invariant 3).
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("priv_defaults", log, ffi::HANDLER_GO_ON, || {
        // A lighttpd of other layouts is refused in set_defaults; read
        // nothing of it here.
        if lighttpd::build_check::check().is_err() {
            return ffi::HANDLER_GO_ON;
        }
        // SAFETY: srv is lighttpd's live server, its config read (invariant
        // 3); p_d is the plugin data of this priv_defaults call.
        unsafe {
            if !lighttpd::status_url_anywhere(srv) {
                lighttpd::unregister_uri_clean(p_d);
            }
        }
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn set_defaults(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: srv is lighttpd's live server (invariant 3).
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("set_defaults", log, ffi::HANDLER_ERROR, || {
        // Before any read of a structure whose layout the check is about.
        if let Err(line) = lighttpd::build_check::check() {
            log.write(&line);
            return ffi::HANDLER_ERROR;
        }
        // SAFETY: srv and p_d are what lighttpd passes to set_defaults, after
        // it read the configuration (invariants 2 and 3).
        let input = unsafe { lighttpd::read_config(srv, p_d) };
        let mut config = match config::parse(&input.found, &input.values, &input.conditions) {
            Ok(c) if input.lighttpd_accepted => c,
            Ok(_) => return ffi::HANDLER_ERROR, // lighttpd logged why
            Err(errors) => {
                errors.iter().for_each(|e| log.write(&e.to_string()));
                return ffi::HANDLER_ERROR;
            }
        };
        if let Err(errors) = config.load_files() {
            errors.iter().for_each(|e| log.write(&e.to_string()));
            return ffi::HANDLER_ERROR;
        }
        write_all(log, config.warnings());
        // SAFETY: p_d is our live plugin data, referenced nowhere else
        // during this hook (invariants 1 and 2).
        let Some(pd) = (unsafe { PluginData::from_hook(p_d) }) else {
            return ffi::HANDLER_ERROR;
        };
        pd.set_log(log);
        let plugin_id = pd.plugin_id();
        let Some(instance) = pd.instance() else {
            return ffi::HANDLER_ERROR;
        };
        let wants_status = config.scopes.has_status_url();
        instance.set_plugin_id(plugin_id);
        instance.configure(config);
        if wants_status {
            // SAFETY: srv is lighttpd's live server (invariant 3).
            let workers = unsafe { lighttpd::max_workers(srv) };
            if let Err(e) = instance.enable_status(workers) {
                log.write(&e);
                return ffi::HANDLER_ERROR;
            }
        }
        pd.set_serves_status(wants_status);
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn worker_init(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: srv is lighttpd's live server (invariant 3).
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("worker_init", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: p_d is our live plugin data, referenced nowhere else
        // during this hook (invariants 1 and 2).
        let pd = unsafe { PluginData::from_hook(p_d) };
        let Some(instance) = pd.and_then(PluginData::instance) else {
            return ffi::HANDLER_GO_ON;
        };
        let (now, monotonic) = lighttpd::clocks();
        if let Err(e) = instance.start_worker(now, monotonic, log.fd()) {
            // Serving matters more than counting: log it and carry on.
            log.write(&e);
        }
        ffi::HANDLER_GO_ON
    })
}

pub unsafe extern "C" fn handle_trigger(srv: *mut ffi::server, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: srv is lighttpd's live server (invariant 3).
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("handle_trigger", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: p_d is our live plugin data, referenced nowhere else
        // during this hook (invariants 1 and 2).
        let pd = unsafe { PluginData::from_hook(p_d) };
        if let Some(instance) = pd.and_then(PluginData::instance) {
            let (now, monotonic) = lighttpd::clocks();
            // Running requests first, so that what they moved goes with
            // this report.
            // SAFETY: srv is lighttpd's live server, during this hook on
            // its thread (invariants 1 and 3).
            unsafe { count_running(srv, instance, now, monotonic) };
            write_all(log, instance.tick(monotonic));
        }
        ffi::HANDLER_GO_ON
    })
}

/// At a report, with `bw_counter.count_in_progress` on: every request
/// lighttpd is serving adds what it moved since it was last counted, on
/// today's row (`now`: the wall clock); its `plugin_ctx` slot remembers
/// what was counted of it (see `in_progress.rs`). Inside the trigger's
/// panic guard.
///
/// # Safety
/// `srv` must be lighttpd's live server, during a hook on its thread.
unsafe fn count_running(srv: *mut ffi::server, instance: &mut Instance, now: i64, monotonic: i64) {
    let Some((id, mut requests)) = instance.begin_walk(monotonic) else {
        return;
    };
    // SAFETY: srv is live, during this hook (contract).
    unsafe { lighttpd::requests_in_progress(srv, &mut requests) };
    for &address in &requests {
        let r = address as *mut ffi::request_st;
        // SAFETY: r is a request lighttpd serves, listed during this hook;
        // id is lighttpd's id for this module.
        let Some((slot, identity)) = (unsafe { lighttpd::progress_slot(r, id) }) else {
            continue; // no slot to remember it by: counted at its end
        };
        // SAFETY: as above.
        let total = unsafe { lighttpd::running_totals(r) };
        // SAFETY: slot points into r's plugin_ctx, which only this module
        // uses at index id; it holds null or a token of ours.
        let token = unsafe { *slot } as usize;
        let (token, moved) = instance.progress(token, identity, total);
        // SAFETY: as above.
        unsafe { *slot = token as *mut c_void };
        if let Some(traffic) = moved {
            // SAFETY: r is live during this hook (listed above), and the
            // result is used only here.
            let counted = unsafe { lighttpd::running_counted(r, traffic, now) };
            // SAFETY: as above.
            unsafe { count_resolved(r, instance, counted) };
        }
    }
    instance.end_walk(requests);
}

pub unsafe extern "C" fn handle_waitpid(
    srv: *mut ffi::server,
    p_d: *mut c_void,
    pid: ffi::pid_t,
    status: c_int,
) -> ffi::handler_t {
    // SAFETY: srv is lighttpd's live server (invariant 3).
    let log = unsafe { ErrorLog::of_server(srv) };
    guarded("handle_waitpid", log, ffi::HANDLER_GO_ON, || {
        // SAFETY: p_d is our live plugin data, referenced nowhere else
        // during this hook (invariants 1 and 2).
        let pd = unsafe { PluginData::from_hook(p_d) };
        let ours = pd
            .and_then(PluginData::instance)
            .is_some_and(|instance| instance.reaped(pid, status));
        // Ours: lighttpd need not look further. The next trigger reads the
        // EOF and logs how it ended.
        if ours {
            ffi::HANDLER_FINISHED
        } else {
            ffi::HANDLER_GO_ON
        }
    })
}

pub unsafe extern "C" fn handle_uri_clean(
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    // Called for every request: without a status URL anywhere, one load
    // and a return (lighttpd calls registered hooks whatever the options).
    // SAFETY: p_d is our plugin data or null (invariant 2).
    if r.is_null() || !unsafe { PluginData::serves_status(p_d) } {
        return ffi::HANDLER_GO_ON;
    }
    // SAFETY: p_d is our live plugin data, referenced nowhere else during
    // this hook (invariants 1 and 2).
    let pd = unsafe { PluginData::from_hook(p_d) };
    let Some(instance) = pd.and_then(PluginData::instance) else {
        return ffi::HANDLER_GO_ON;
    };
    // SAFETY: r is the hook's non-null live request (invariant 4).
    unsafe { serve_status(r, instance) }
}

/// The status URL, if `r` asks for it: answered here, from memory (never
/// the database), as mod_status answers `status.status-url`.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(never)]
unsafe fn serve_status(r: *mut ffi::request_st, instance: &mut Instance) -> ffi::handler_t {
    // SAFETY: r is the hook's live request (contract).
    let log = unsafe { lighttpd::request_log(r) };
    guarded("handle_uri_clean", log, ffi::HANDLER_GO_ON, || {
        let Some(scopes) = instance.scopes() else {
            return ffi::HANDLER_GO_ON;
        };
        // SAFETY: as above; the result is used during this hook only.
        let Some(asked) = (unsafe { lighttpd::status_request(r, scopes) }) else {
            return ffi::HANDLER_GO_ON;
        };
        let (status, content_type, body) = match (asked.readable, Format::from_query(asked.query)) {
            (false, _) => (405, "text/plain", "only GET and HEAD\n".to_string()),
            (true, Err(other)) => (
                400,
                "text/plain",
                format!("unknown format {other:?}: use format=json or format=prometheus\n"),
            ),
            (true, Ok(format)) => {
                let now = lighttpd::clocks().0;
                let body = instance.status(format, ffi::LIGHTTPD_VERSION, now);
                (200, format.content_type(), body.unwrap_or_default())
            }
        };
        // SAFETY: as above.
        unsafe { lighttpd::respond(r, status, content_type, &body) };
        ffi::HANDLER_FINISHED
    })
}

pub unsafe extern "C" fn handle_request_done(
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    // SAFETY: r and p_d are the request and plugin data lighttpd passed to
    // this request hook, which is what on_request asks for.
    unsafe { on_request(Hook::Done, "handle_request_done", r, p_d) }
}

pub unsafe extern "C" fn handle_request_reset(
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    // Nearly every reset is of a request that got a status (request_done
    // counted it, or will): one field read and out, as cheap as a hook
    // can be.
    // SAFETY: r is null or the live request of this hook (invariant 4).
    if unsafe { lighttpd::has_status(r) } {
        return ffi::HANDLER_GO_ON;
    }
    // SAFETY: r and p_d are the arguments lighttpd passed to this hook.
    unsafe { reset_without_status(r, p_d) }
}

/// The rest of `handle_request_reset`, out of line, so that the hook's
/// common case saves and restores no registers.
///
/// # Safety
/// `r` and `p_d` must be the arguments lighttpd passed to a request hook.
#[inline(never)]
#[cold]
unsafe fn reset_without_status(r: *mut ffi::request_st, p_d: *mut c_void) -> ffi::handler_t {
    // SAFETY: r and p_d are the request and plugin data lighttpd passed to
    // this request hook (contract), which is what on_request asks for.
    unsafe { on_request(Hook::Reset, "handle_request_reset", r, p_d) }
}

/// The body of both request hooks: let the core decide what counts
/// (`request::measure`), read that, count it.
///
/// Every request's path runs before the panic guard, because nothing on it
/// can panic: field reads, a match, the shim's two subtractions, and the
/// tally's same-row case (compares and saturating additions, no indexing,
/// no allocation; see `Tally::count_same_row`). Everything else (the key
/// rule, the lookup, a new row) runs inside the guard.
///
/// # Safety
/// `r` and `p_d` must be the arguments lighttpd passed to a request hook.
// Inlined into each hook, so that each runs only its own branch of the
// decision.
#[inline(always)]
unsafe fn on_request(
    hook: Hook,
    name: &str,
    r: *mut ffi::request_st,
    p_d: *mut c_void,
) -> ffi::handler_t {
    if r.is_null() {
        return ffi::HANDLER_GO_ON;
    }
    // SAFETY: r is the hook's non-null live request (invariant 4).
    let facts = unsafe { lighttpd::request_facts(hook, r) };
    let Some(measure) = request::measure(&facts) else {
        return ffi::HANDLER_GO_ON;
    };
    // SAFETY: r is the hook's non-null live request (invariant 4); the
    // result is used only during this hook.
    let Some(counted) = (unsafe { lighttpd::counted_request(measure, r) }) else {
        return ffi::HANDLER_GO_ON;
    };
    // SAFETY: p_d is our live plugin data, referenced nowhere else during
    // this hook (invariants 1 and 2).
    let pd = unsafe { PluginData::from_hook(p_d) };
    let Some(instance) = pd.and_then(PluginData::instance) else {
        return ffi::HANDLER_GO_ON;
    };
    // A request that a report found running had part of its bytes counted
    // then. While no request has been, this is one load and a branch; while
    // some have, a few more for the request's own slot.
    if instance.has_partly_counted() {
        // SAFETY: r is the hook's live request (invariant 4).
        if unsafe { lighttpd::has_progress_token(r, instance.progress_id()) } {
            // SAFETY: as above; counted borrows r's buffers for this hook.
            return unsafe { count_rest(name, r, instance, counted) };
        }
    }
    if instance.counting_is_scoped() {
        // SAFETY: as below.
        return unsafe { count_scoped(name, r, instance, counted) };
    }
    if instance.count_same_row(&counted) {
        return ffi::HANDLER_GO_ON;
    }
    // SAFETY: r is the hook's live request (invariant 4), and counted
    // borrows its buffers for this hook only.
    unsafe { count_guarded(name, r, instance, counted) }
}

/// A request when some scope sets `bw_counter.account` or `exclude`:
/// lighttpd says which conditions match it (as for its own modules'
/// per-request options), then it is counted accordingly.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(never)]
unsafe fn count_scoped(
    name: &str,
    r: *mut ffi::request_st,
    instance: &mut Instance,
    counted: Counted<'_>,
) -> ffi::handler_t {
    // SAFETY: r is the hook's live request (contract, invariant 4).
    let log = unsafe { lighttpd::request_log(r) };
    guarded(name, log, ffi::HANDLER_GO_ON, || {
        // SAFETY: as above.
        unsafe { count_in_its_scope(r, instance, counted) };
        ffi::HANDLER_GO_ON
    })
}

/// A scoped request: lighttpd says which conditions match it, then it is
/// counted accordingly. Inside the caller's panic guard.
///
/// # Safety
/// `r` must be a live request, during a hook on lighttpd's thread.
unsafe fn count_in_its_scope(
    r: *mut ffi::request_st,
    instance: &mut Instance,
    counted: Counted<'_>,
) {
    // SAFETY: as the contract says.
    let ask = |scopes: &_| unsafe { lighttpd::request_scope(r, scopes) };
    let Some(scope) = instance.request_scope(counted.authority, ask) else {
        return;
    };
    if let Some(counted) = instance.count_in_scope(scope, counted) {
        if !instance.count_same_row(&counted) {
            // SAFETY: as above; counted borrows r's buffers.
            unsafe { count_by_host(r, instance, counted) };
        }
    }
}

/// Counts `counted` for request `r` the way its end would: by its scope
/// when some scope sets `account` or `exclude`, else by its host. Inside
/// the caller's panic guard.
///
/// # Safety
/// `r` must be a live request, during a hook on lighttpd's thread.
unsafe fn count_resolved(r: *mut ffi::request_st, instance: &mut Instance, counted: Counted<'_>) {
    if instance.counting_is_scoped() {
        // SAFETY: as the contract says.
        unsafe { count_in_its_scope(r, instance, counted) };
    } else if !instance.count_same_row(&counted) {
        // SAFETY: as the contract says; counted borrows r's buffers.
        unsafe { count_by_host(r, instance, counted) };
    }
}

/// The rest of [`on_request`] while some running request has been counted
/// in part (by a report): `counted` less what was counted of this request
/// already, counted as usual. Out of line and all of the rest, so that the
/// common case keeps nothing alive across a call. Its last lines repeat
/// `on_request`'s on purpose: one function shared by both (even
/// `#[inline(always)]`) made LLVM build `counted` on the stack before the
/// branch, 12 more instructions on every request (callgrind, `HOOKS=1
/// bench/curl-keepalive.sh`).
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(never)]
#[cold]
unsafe fn count_rest(
    name: &str,
    r: *mut ffi::request_st,
    instance: &mut Instance,
    mut counted: Counted<'_>,
) -> ffi::handler_t {
    // SAFETY: r is the hook's live request (contract).
    counted.traffic = unsafe { less_counted_so_far(r, instance, counted.traffic) };
    if counted.traffic == Traffic::default() {
        return ffi::HANDLER_GO_ON;
    }
    if instance.counting_is_scoped() {
        // SAFETY: as above; counted borrows r's buffers.
        return unsafe { count_scoped(name, r, instance, counted) };
    }
    if instance.count_same_row(&counted) {
        return ffi::HANDLER_GO_ON;
    }
    // SAFETY: as above.
    unsafe { count_guarded(name, r, instance, counted) }
}

/// The end of a request while some requests have been counted in part:
/// `traffic` less what reports counted of this request (its record
/// released). Nothing here can panic (the record keeper indexes only what
/// it checked), so it runs outside the panic guard like the rest of the
/// request path. Takes and returns only the two numbers, so that the
/// common case (no request counted in part) moves nothing for it.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(never)]
#[cold]
unsafe fn less_counted_so_far(
    r: *mut ffi::request_st,
    instance: &mut Instance,
    traffic: Traffic,
) -> Traffic {
    let Some((id, in_progress)) = instance.partly_counted() else {
        return traffic;
    };
    // SAFETY: r is the hook's live request (contract); id is lighttpd's id
    // for this module.
    let Some((slot, identity)) = (unsafe { lighttpd::progress_slot(r, id) }) else {
        return traffic;
    };
    // SAFETY: slot points into r's plugin_ctx, which only this module uses
    // at index id; it holds null or a token of ours.
    let token = unsafe { *slot } as usize;
    if token == 0 {
        return traffic;
    }
    // SAFETY: as above: the slot is cleared as the record is released.
    unsafe { *slot = std::ptr::null_mut() };
    InProgress::remainder(traffic, in_progress.finish(token, identity))
}

/// A request for another row than the previous one, inside the panic
/// guard; out of line, so that the common case saves fewer registers.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
#[inline(never)]
#[cold]
unsafe fn count_guarded(
    name: &str,
    r: *mut ffi::request_st,
    instance: &mut Instance,
    counted: Counted<'_>,
) -> ffi::handler_t {
    // SAFETY: r is the hook's live request (contract, invariant 4).
    let log = unsafe { lighttpd::request_log(r) };
    guarded(name, log, ffi::HANDLER_GO_ON, || {
        // SAFETY: as above; counted borrows r's buffers.
        unsafe { count_by_host(r, instance, counted) };
        ffi::HANDLER_GO_ON
    })
}

/// Counts a request by its host, after [`Instance::count_same_row`]
/// returned false; inside the caller's panic guard.
///
/// # Safety
/// `r` must be the non-null request lighttpd passed to the current hook.
unsafe fn count_by_host(r: *mut ffi::request_st, instance: &mut Instance, counted: Counted<'_>) {
    #[cfg(feature = "panic-test")]
    panic_if_asked(counted.authority);
    // Read only here: only a request without a host needs it.
    // SAFETY: r is live (contract); the buffer outlives the hook.
    let server_name = unsafe { lighttpd::server_name(r) };
    instance.count_other_row(Counted {
        server_name,
        ..counted
    });
}

/// Test builds only: a request for host "panic.test" panics in the hook.
#[cfg(feature = "panic-test")]
fn panic_if_asked(authority: &[u8]) {
    if authority == b"panic.test" {
        panic!("forced by the panic-test feature in a request hook");
    }
}

pub unsafe extern "C" fn cleanup(p_d: *mut c_void) {
    guarded("cleanup", ErrorLog::STDERR, (), || {
        // SAFETY: p_d is our live plugin data, referenced nowhere else
        // during this hook (invariants 1 and 2); lighttpd frees the block
        // right after this returns, and the instance is taken out first.
        let Some(pd) = (unsafe { PluginData::from_hook(p_d) }) else {
            return;
        };
        if let Some(mut instance) = pd.take_instance() {
            write_all(pd.log(), instance.shutdown());
        }
    })
}
