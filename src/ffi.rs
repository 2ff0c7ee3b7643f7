//! lighttpd's C API as bindgen generated it at build time from the headers
//! of the targeted release (see build.rs), plus the version constants.
//! Nothing hand-written lives here, so the project's lints (Cargo.toml
//! `[lints]`) are not applied to what bindgen writes.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::too_many_lines
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
include!(concat!(env!("OUT_DIR"), "/lighttpd_version.rs"));
