//! The exported entry point lighttpd looks up after `dlopen`, the plugin
//! table it fills in, and the plugin data lighttpd carries between hooks.

use std::ffi::c_int;

use crate::ffi;
use crate::hooks;
use crate::lighttpd::ErrorLog;
use crate::module::Module;

/// What `init` returns and every hook receives as `p_d`.
///
/// lighttpd writes `id`, `nconfig`, `cvlist` and `self` into the leading
/// `plugin_data_base` (whose layout bindgen took from the targeted
/// headers), and after `cleanup` it `free()`s the whole block and
/// `cvlist`. So the block comes from the C allocator, and the Rust state
/// lives behind a pointer that `cleanup` drops.
#[repr(C)]
pub struct PluginData {
    pub base: ffi::plugin_data_base,
    pub module: *mut Module,
    /// `srv->errh`, remembered for `cleanup`, which gets no server. Zeroed
    /// by calloc = stderr until `set_defaults` sets it.
    pub log: ErrorLog,
}

/// The name lighttpd knows the module by (as in `server.modules`, minus
/// the `mod_` prefix, like lighttpd's own modules).
const NAME: &std::ffi::CStr = c"bw_counter";

/// Called by lighttpd once per load of `mod_bw_counter.so` (again after a
/// graceful restart).
///
/// # Safety
/// `p` must point to the `plugin` struct lighttpd allocated for us.
#[no_mangle]
pub unsafe extern "C" fn mod_bw_counter_plugin_init(p: *mut ffi::plugin) -> c_int {
    hooks::guarded("plugin_init", ErrorLog::STDERR, -1, || {
        // SAFETY: lighttpd passes its own zero-initialised plugin struct,
        // which outlives the module.
        let Some(p) = (unsafe { p.as_mut() }) else {
            return -1;
        };
        p.version = ffi::LIGHTTPD_VERSION_ID;
        p.name = NAME.as_ptr();
        p.init = Some(hooks::init);
        p.set_defaults = Some(hooks::set_defaults);
        p.worker_init = Some(hooks::worker_init);
        p.handle_trigger = Some(hooks::handle_trigger);
        p.handle_request_done = Some(hooks::handle_request_done);
        p.handle_request_reset = Some(hooks::handle_request_reset);
        p.cleanup = Some(hooks::cleanup);
        0
    })
}
