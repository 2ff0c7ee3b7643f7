//! lighttpd's C API as bindgen generated it at build time from the headers
//! of the targeted release (see build.rs), plus the version constants.
//! Nothing hand-written lives here.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
include!(concat!(env!("OUT_DIR"), "/lighttpd_version.rs"));
