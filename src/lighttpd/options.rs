//! Reading lighttpd's data structures into plain Rust values, and writing to
//! its error log. Part of the hook layer: everything here runs on lighttpd's
//! own (single) thread, called from a hook.

use std::ffi::{c_void, CString};
use std::panic::Location;
use std::ptr;

use crate::config::{self, FoundKey, KeyId, KeyType, RawValue};
use crate::ffi;

/// A lighttpd error log (`srv->errh`, `r->conf.errh`). Valid as long as the
/// server that owns it; lighttpd keeps `srv->errh` open until after every
/// plugin's `cleanup` has run.
#[derive(Clone, Copy)]
pub struct ErrorLog(*mut ffi::log_error_st);

impl ErrorLog {
    /// No lighttpd log available (in `init`, before lighttpd handed us a
    /// server): lines go to stderr, which is where lighttpd's own go then.
    pub const STDERR: ErrorLog = ErrorLog(ptr::null_mut());

    /// # Safety
    /// `errh` must be null or a log lighttpd handed us (`r->conf.errh`).
    pub unsafe fn from_raw(errh: *mut ffi::log_error_st) -> ErrorLog {
        ErrorLog(errh)
    }

    /// # Safety
    /// `srv` must be the live server lighttpd passed to a hook.
    pub unsafe fn of_server(srv: *const ffi::server) -> ErrorLog {
        // SAFETY: the caller guarantees srv points to lighttpd's server.
        ErrorLog(unsafe { (*srv).errh })
    }

    /// Writes `mod_bw_counter: <msg>` with the caller's file and line.
    /// The message is passed as data to a constant `"%.*s"` format.
    #[track_caller]
    pub fn write(&self, msg: &str) {
        let line = format!("mod_bw_counter: {msg}");
        if self.0.is_null() {
            eprintln!("{line}");
            return;
        }
        let loc = Location::caller();
        let file = CString::new(loc.file()).unwrap_or_default();
        // SAFETY: errh is lighttpd's live log (see the type's invariant) and
        // we are on lighttpd's thread (log_error is not thread-safe); file is
        // NUL-terminated; msg is passed with its length, never as a format.
        unsafe {
            ffi::bwc_log(
                self.0,
                file.as_ptr(),
                loc.line(),
                line.as_ptr().cast(),
                line.len(),
            )
        };
    }
}

/// The bytes of a lighttpd `buffer` (`used` counts the trailing NUL).
///
/// # Safety
/// `b` must be null or point to a live lighttpd buffer.
pub unsafe fn buffer_bytes<'a>(b: *const ffi::buffer) -> &'a [u8] {
    // SAFETY: the caller guarantees b is null or a live buffer; a buffer
    // with used > 0 has `used` initialised bytes at ptr.
    unsafe {
        match b.as_ref() {
            Some(b) if !b.ptr.is_null() && b.used > 0 => {
                std::slice::from_raw_parts(b.ptr.cast::<u8>(), (b.used - 1) as usize)
            }
            _ => &[],
        }
    }
}

/// What `set_defaults` read out of lighttpd.
pub struct ConfigInput {
    /// Every `bw_counter.*` key in any scope, known or not.
    pub found: Vec<FoundKey>,
    /// Values in the global scope, by key.
    pub values: Vec<(KeyId, RawValue)>,
    /// False when lighttpd itself refused a value (it logged why).
    pub lighttpd_accepted: bool,
}

/// Reads the `bw_counter.*` options with lighttpd's own
/// `config_plugin_values_init`, from the keys declared in [`config::KEYS`].
///
/// # Safety
/// `srv` and `p_d` must be what lighttpd passed to `set_defaults`; `p_d`
/// starts with `plugin_data_base`.
pub unsafe fn read_config(srv: *mut ffi::server, p_d: *mut c_void) -> ConfigInput {
    // SAFETY: forwarded caller guarantee.
    let found = unsafe { keys_in_all_scopes(srv) };

    let mut cpk: Vec<ffi::config_plugin_keys_t> = config::KEYS
        .iter()
        .map(|k| ffi::config_plugin_keys_t {
            k: k.name.as_ptr(),
            klen: k.name.to_bytes().len() as u8,
            ktype: match k.ty {
                KeyType::String => ffi::T_CONFIG_STRING,
                KeyType::Int => ffi::T_CONFIG_INT,
            } as u8,
            scope: ffi::T_CONFIG_SCOPE_SERVER as u8,
        })
        .collect();
    cpk.push(ffi::config_plugin_keys_t {
        k: ptr::null(),
        klen: 0,
        ktype: ffi::T_CONFIG_UNSET as u8,
        scope: ffi::T_CONFIG_SCOPE_UNSET as u8,
    });

    // SAFETY: srv/p_d are lighttpd's; cpk is a terminated key array that
    // outlives the call (lighttpd copies what it keeps); the module name is
    // a C string literal.
    let accepted = unsafe {
        ffi::config_plugin_values_init(srv, p_d, cpk.as_ptr(), c"mod_bw_counter".as_ptr())
    } != 0;

    // SAFETY: p_d starts with plugin_data_base, which lighttpd just filled.
    let values = unsafe { global_values(&*p_d.cast::<ffi::plugin_data_base>()) };
    ConfigInput {
        found,
        values,
        lighttpd_accepted: accepted,
    }
}

/// The values lighttpd collected for the global scope. Layout of `cvlist`
/// (configfile-glue.c): `nconfig` headers, each `{k_id: context index,
/// v.u2: [offset of its values, count]}`; header 0 is the global scope and
/// has count 0 when no key was set there. Each run of values ends with
/// `k_id == -1`; a value's `k_id` indexes the key array.
///
/// # Safety
/// `pd` must have been filled by `config_plugin_values_init`.
unsafe fn global_values(pd: &ffi::plugin_data_base) -> Vec<(KeyId, RawValue)> {
    let mut out = Vec::new();
    if pd.cvlist.is_null() || pd.nconfig <= 0 {
        return out;
    }
    // SAFETY: cvlist has at least nconfig headers (configfile-glue.c), and
    // header 0 is the global scope; its values run until k_id == -1.
    unsafe {
        let header = &*pd.cvlist;
        if header.k_id != 0 || header.v.u2[1] == 0 {
            return out;
        }
        let mut cpv = pd.cvlist.add(header.v.u2[0] as usize);
        while (*cpv).k_id != -1 {
            let v = &*cpv;
            if let Some(key) = usize::try_from(v.k_id).ok().and_then(config::key_by_index) {
                let raw = match v.vtype {
                    ffi::T_CONFIG_STRING => Some(RawValue::Str(buffer_bytes(v.v.b).to_vec())),
                    ffi::T_CONFIG_INT => Some(RawValue::Int(v.v.u)),
                    _ => None,
                };
                if let Some(raw) = raw {
                    out.push((key.id, raw));
                }
            }
            cpv = cpv.add(1);
        }
    }
    out
}

/// Every key starting with `bw_counter.` in every config context, with the
/// condition of the context (lighttpd itself only warns about unknown keys
/// and about server options inside conditionals).
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
unsafe fn keys_in_all_scopes(srv: *mut ffi::server) -> Vec<FoundKey> {
    let mut out = Vec::new();
    // SAFETY: srv->config_context is an array of data_config, one per
    // context, index 0 the global scope (configfile.c); each holds an array
    // of data_unset whose key is a buffer.
    unsafe {
        let contexts = (*srv).config_context;
        if contexts.is_null() {
            return out;
        }
        let contexts = &*contexts;
        for u in 0..contexts.used as usize {
            let dc = *contexts.data.add(u) as *const ffi::data_config;
            if dc.is_null() || (*dc).value.is_null() {
                continue;
            }
            // lighttpd names a context by its chain of conditions, starting
            // with "global / "; the rest is what the admin wrote.
            let condition = (u != 0).then(|| {
                let key = String::from_utf8_lossy(buffer_bytes(&(*dc).key)).into_owned();
                key.strip_prefix("global / ")
                    .map(str::to_string)
                    .unwrap_or(key)
            });
            let values = &*(*dc).value;
            for j in 0..values.used as usize {
                let du = *values.data.add(j);
                if du.is_null() {
                    continue;
                }
                let key = buffer_bytes(&(*du).key);
                if key.starts_with(config::PREFIX.as_bytes()) {
                    out.push(FoundKey {
                        name: String::from_utf8_lossy(key).into_owned(),
                        condition: condition.clone(),
                    });
                }
            }
        }
    }
    out
}
