//! The lighttpd adapter: the plugin data lighttpd carries between hooks,
//! its error log, the panic guard, and reading lighttpd's structures into
//! plain Rust values. With `hooks.rs` the only code that touches lighttpd
//! pointers.
//!
//! What lighttpd guarantees, relied on by every `SAFETY:` comment here:
//! 1. **One thread.** lighttpd calls every hook of a process on its one
//!    event-loop thread, one hook at a time, and nothing else touches the
//!    structures it passes while a hook runs.
//! 2. **`p_d`** is the pointer `init` returned ([`PluginData::allocate`]),
//!    valid in every hook until lighttpd `free()`s it right after `cleanup`.
//! 3. **`srv`** is lighttpd's live server for the whole call; `srv->errh`
//!    stays open until every plugin's `cleanup` has run.
//! 4. **`r`** is a live request for the whole call; the buffers it points
//!    to (`uri.authority`, `server_name`) live at least as long.

pub mod build_check;
mod error_log;
mod options;
mod request;
mod status;

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::ffi;
use crate::instance::Instance;

pub use self::error_log::ErrorLog;
pub use self::options::{read_config, status_url_anywhere};
pub use self::request::{
    clocks, counted_request, has_progress_token, has_status, progress_slot, request_facts,
    request_log, request_scope, requests_in_progress, running_counted, running_totals, server_name,
};
pub use self::status::{max_workers, respond, status_request, unregister_uri_clean};

/// Runs `f`; if it panics, logs the panic to `log` and returns `on_panic`,
/// so that no panic unwinds into lighttpd's C frames. Needs
/// `panic = "unwind"` (see Cargo.toml).
#[inline(always)]
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

/// What `init` returns and every hook receives as `p_d`.
///
/// lighttpd writes `id`, `nconfig`, `cvlist` and `self` into the leading
/// `plugin_data_base` (whose layout bindgen took from the targeted
/// headers), and after `cleanup` it `free()`s the whole block and
/// `cvlist`. So the block comes from the C allocator, and the Rust state
/// lives behind a pointer that `cleanup` drops.
#[repr(C)]
pub struct PluginData {
    base: ffi::plugin_data_base,
    /// Null, or the `Box::into_raw` of `allocate`, until `take_instance`.
    instance: *mut Instance,
    /// `srv->errh`, remembered for `cleanup`, which gets no server. Zeroed
    /// by calloc = stderr until `set_defaults` sets it.
    log: ErrorLog,
    /// Whether some scope sets `bw_counter.status_url`: read by the
    /// `handle_uri_clean` hook of every request, so kept here, one load
    /// from `p_d` (calloc's zero = false until `set_defaults`).
    serves_status: bool,
}

impl PluginData {
    /// For `init`: a zeroed block from the C allocator holding a new
    /// [`Instance`]; null if memory is short.
    pub fn allocate() -> *mut c_void {
        // SAFETY: calloc(3) has no preconditions; it returns null or a
        // zeroed block of the size asked for, aligned for any type. All
        // zeroes is a valid PluginData: an empty plugin_data_base, a null
        // instance and the stderr log.
        let pd = unsafe { libc::calloc(1, std::mem::size_of::<PluginData>()) };
        let pd = pd.cast::<PluginData>();
        if pd.is_null() {
            return ptr::null_mut();
        }
        let instance = Box::into_raw(Box::new(Instance::new()));
        // SAFETY: pd is non-null and points to the PluginData-sized block
        // just allocated, which nothing else references yet.
        unsafe { (*pd).instance = instance };
        pd.cast()
    }

    /// Our plugin data behind the `p_d` of a hook.
    ///
    /// # Safety
    /// `p_d` must be null or the pointer [`PluginData::allocate`] returned,
    /// not yet freed (invariant 2), and no other reference to it may live
    /// (invariant 1: one hook at a time, and hooks keep none).
    pub unsafe fn from_hook<'a>(p_d: *mut c_void) -> Option<&'a mut PluginData> {
        // SAFETY: by this function's contract p_d is null or a live
        // PluginData that only this call references.
        unsafe { p_d.cast::<PluginData>().as_mut() }
    }

    pub fn instance(&mut self) -> Option<&mut Instance> {
        // SAFETY: `instance` is null or the Box::into_raw of `allocate`,
        // freed only by `take_instance`, which nulls it first; borrowing
        // self mutably makes this the only reference.
        unsafe { self.instance.as_mut() }
    }

    /// For `cleanup`: the instance, out of the block lighttpd will free.
    pub fn take_instance(&mut self) -> Option<Box<Instance>> {
        let raw = std::mem::replace(&mut self.instance, ptr::null_mut());
        if raw.is_null() {
            return None;
        }
        // SAFETY: raw came from Box::into_raw in `allocate`, and the field
        // now holds null, so this Box is made exactly once.
        Some(unsafe { Box::from_raw(raw) })
    }

    /// For `handle_uri_clean`: whether some scope sets a status URL.
    ///
    /// # Safety
    /// `p_d` must be null or the pointer [`PluginData::allocate`] returned,
    /// not yet freed (invariant 2).
    #[inline(always)]
    pub unsafe fn serves_status(p_d: *const c_void) -> bool {
        // SAFETY: by the contract p_d is null or a live PluginData; the
        // field is a plain bool that only lighttpd's thread writes.
        unsafe { p_d.cast::<PluginData>().as_ref() }.is_some_and(|pd| pd.serves_status)
    }

    pub fn set_serves_status(&mut self, on: bool) {
        self.serves_status = on;
    }

    pub fn log(&self) -> ErrorLog {
        self.log
    }

    /// The id lighttpd gave this module: its index into every request's
    /// `plugin_ctx` (written by lighttpd right after `init`; from 1, slot
    /// 0 being lighttpd's own). `None` before lighttpd set it.
    pub fn plugin_id(&self) -> Option<usize> {
        usize::try_from(self.base.id).ok().filter(|&id| id > 0)
    }

    pub fn set_log(&mut self, log: ErrorLog) {
        self.log = log;
    }
}

/// The bytes of a lighttpd `buffer` (`used` counts the trailing NUL).
///
/// # Safety
/// `b` must be null or point to a live lighttpd buffer that outlives `'a`.
pub unsafe fn buffer_bytes<'a>(b: *const ffi::buffer) -> &'a [u8] {
    // SAFETY: by the contract b is null or a live buffer.
    let Some(b) = (unsafe { b.as_ref() }) else {
        return &[];
    };
    if b.ptr.is_null() || b.used == 0 {
        return &[];
    }
    // SAFETY: a lighttpd buffer with used > 0 has `used` initialised bytes
    // at ptr (the last one the NUL), alive as long as the buffer.
    unsafe { std::slice::from_raw_parts(b.ptr.cast::<u8>(), (b.used - 1) as usize) }
}
