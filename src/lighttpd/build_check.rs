//! At load: does the running lighttpd have the layouts the bindings were
//! generated for? lighttpd's own check (`plugin.version`) covers the
//! release; configure options change layouts within a release too, and
//! the one a running lighttpd shows is whether it was built with PCRE2 (or
//! PCRE 1): `configfile.h`'s `data_config`, `cond_match_t` and the end of
//! `server` have PCRE fields only then, and `set_defaults` reads
//! `data_config` to find options set inside conditions. A lighttpd built
//! with PCRE links the library, so its functions are in the process's
//! global scope; the module links no PCRE of its own.
//!
//! Not checkable at run time (the README says they must match): HAVE_IPV6
//! and HAVE_SYS_UN_H (`sock_addr`, inside `connection`), HAVE_MMAP.

use std::ffi::CStr;

use crate::ffi;
use crate::layout::{compare, Pcre};

/// Whether lighttpd's process has `symbol` in its global scope.
fn linked(symbol: &CStr) -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT only looks the name up in the
    // objects already loaded; the pointer is compared, never called.
    !unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) }.is_null()
}

/// The check, as the error-log line to refuse the start with.
pub fn check() -> Result<(), String> {
    let assumed = Pcre {
        pcre2: ffi::BUILT_WITH_PCRE2,
        pcre1: ffi::BUILT_WITH_PCRE,
    };
    // Test builds only: pretend the bindings were made for the other
    // kind of lighttpd, to see the refusal in a real lighttpd.
    #[cfg(feature = "panic-test")]
    let assumed = if std::env::var_os("BWC_TEST_ASSUME_OTHER_PCRE").is_some() {
        Pcre {
            pcre2: !assumed.pcre2,
            ..assumed
        }
    } else {
        assumed
    };
    let found = Pcre {
        pcre2: linked(c"pcre2_match_8"),
        pcre1: linked(c"pcre_exec"),
    };
    compare(assumed, found)
}
