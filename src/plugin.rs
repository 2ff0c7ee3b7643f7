//! The exported entry point lighttpd looks up after `dlopen`, and the
//! plugin table it fills in: which hook lighttpd calls for what.

use std::ffi::{c_int, CStr};

use crate::ffi;
use crate::hooks;
use crate::lighttpd::{guarded, ErrorLog};

/// The name lighttpd knows the module by (as in `server.modules`, minus
/// the `mod_` prefix, like lighttpd's own modules).
const NAME: &CStr = c"bw_counter";

/// Called by lighttpd once per load of `mod_bw_counter.so` (again after a
/// graceful restart).
///
/// # Safety
/// `p` must be null or the `plugin` struct lighttpd allocated for us.
#[no_mangle]
pub unsafe extern "C" fn mod_bw_counter_plugin_init(p: *mut ffi::plugin) -> c_int {
    guarded("plugin_init", ErrorLog::STDERR, -1, || {
        // SAFETY: lighttpd passes its own zero-initialised plugin struct,
        // which outlives the module and nothing else touches during this
        // call (by the contract).
        let Some(p) = (unsafe { p.as_mut() }) else {
            return -1;
        };
        p.version = ffi::LIGHTTPD_VERSION_ID;
        p.name = NAME.as_ptr();
        p.init = Some(hooks::init);
        p.priv_defaults = Some(hooks::priv_defaults);
        p.set_defaults = Some(hooks::set_defaults);
        p.worker_init = Some(hooks::worker_init);
        p.handle_trigger = Some(hooks::handle_trigger);
        p.handle_waitpid = Some(hooks::handle_waitpid);
        p.handle_uri_clean = Some(hooks::handle_uri_clean);
        p.handle_request_done = Some(hooks::handle_request_done);
        p.handle_request_reset = Some(hooks::handle_request_reset);
        p.cleanup = Some(hooks::cleanup);
        0
    })
}
