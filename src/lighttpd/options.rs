//! Reading the `bw_counter.*` options out of lighttpd, with lighttpd's own
//! `config_plugin_values_init` and the keys declared in [`config::KEYS`].

use std::ffi::c_void;
use std::ptr;

use super::buffer_bytes;
use crate::config::{self, ConditionValues, FoundKey, KeyId, KeyScope, KeyType, RawValue};
use crate::ffi;

/// What `set_defaults` read out of lighttpd.
pub struct ConfigInput {
    /// Every `bw_counter.*` key in any scope, known or not.
    pub found: Vec<FoundKey>,
    /// Values in the global scope, by key.
    pub values: Vec<(KeyId, RawValue)>,
    /// Values inside each condition that sets one of our options.
    pub conditions: Vec<ConditionValues>,
    /// False when lighttpd itself refused a value (it logged why).
    pub lighttpd_accepted: bool,
}

/// # Safety
/// `srv` and `p_d` must be what lighttpd passed to `set_defaults`: its live
/// server after the configuration was read, and our plugin data, which
/// starts with `plugin_data_base`.
pub unsafe fn read_config(srv: *mut ffi::server, p_d: *mut c_void) -> ConfigInput {
    // SAFETY: srv is lighttpd's live server with its config read (contract).
    let found = unsafe { keys_in_all_scopes(&*srv) };
    let cpk = declared_keys();
    // SAFETY: srv and p_d are lighttpd's (contract); cpk is an array
    // terminated by a null key, alive for the whole call (lighttpd copies
    // what it keeps); the module name is a C string literal.
    let accepted = unsafe {
        ffi::config_plugin_values_init(srv, p_d, cpk.as_ptr(), c"mod_bw_counter".as_ptr())
    } != 0;
    // SAFETY: p_d starts with plugin_data_base (contract), which
    // config_plugin_values_init just filled.
    let scopes = unsafe { values_by_scope(&*p_d.cast::<ffi::plugin_data_base>()) };
    let mut values = Vec::new();
    let mut conditions = Vec::new();
    for (condition, scope_values) in scopes {
        if condition == 0 {
            values.extend(scope_values);
        } else {
            conditions.push(ConditionValues {
                condition,
                // SAFETY: srv is lighttpd's live server (contract).
                text: unsafe { condition_text(&*srv, condition) },
                // SAFETY: as above.
                host_only: unsafe { host_only(&*srv, condition) },
                values: scope_values,
            });
        }
    }
    // SAFETY: srv is lighttpd's live server with its config read (contract).
    values.extend(unsafe { local_values(&*srv) });
    ConfigInput {
        found,
        values,
        conditions,
        lighttpd_accepted: accepted,
    }
}

/// [`config::KEYS`] as lighttpd's `config_plugin_keys_t` array, terminated
/// the way lighttpd expects.
fn declared_keys() -> Vec<ffi::config_plugin_keys_t> {
    let mut cpk: Vec<ffi::config_plugin_keys_t> = config::KEYS
        .iter()
        .map(|k| ffi::config_plugin_keys_t {
            k: k.name.as_ptr(),
            klen: k.name.to_bytes().len() as u8,
            ktype: match k.ty {
                KeyType::String => ffi::T_CONFIG_STRING,
                KeyType::Int => ffi::T_CONFIG_INT,
                // lighttpd marks the key as known and leaves it to us:
                // read_local_values.
                KeyType::StringOrList => ffi::T_CONFIG_LOCAL,
            } as u8,
            scope: match k.scope {
                KeyScope::Server => ffi::T_CONFIG_SCOPE_SERVER,
                KeyScope::Request => ffi::T_CONFIG_SCOPE_CONNECTION,
            } as u8,
        })
        .collect();
    cpk.push(ffi::config_plugin_keys_t {
        k: ptr::null(),
        klen: 0,
        ktype: ffi::T_CONFIG_UNSET as u8,
        scope: ffi::T_CONFIG_SCOPE_UNSET as u8,
    });
    cpk
}

/// The values lighttpd collected, per scope: (condition number, values),
/// the global scope's as condition 0. Layout of `cvlist`
/// (configfile-glue.c): `nconfig` headers, each `{k_id: condition number,
/// v.u2: [offset of its values, count]}`; header 0 is the global scope and
/// has count 0 when no key was set there. Each run of values ends with
/// `k_id == -1`; a value's `k_id` indexes the key array.
///
/// # Safety
/// `pd` must have been filled by `config_plugin_values_init`.
unsafe fn values_by_scope(pd: &ffi::plugin_data_base) -> Vec<(i32, Vec<(KeyId, RawValue)>)> {
    if pd.cvlist.is_null() || pd.nconfig <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..pd.nconfig as usize {
        // SAFETY: cvlist starts with nconfig headers (configfile-glue.c).
        let header = unsafe { &*pd.cvlist.add(i) };
        // SAFETY: every header's value of config_plugin_values_init is the
        // u2 pair [offset, count].
        let [offset, count] = unsafe { header.v.u2 };
        if count == 0 {
            continue;
        }
        // SAFETY: the scope's values start `offset` entries into cvlist,
        // inside the array lighttpd allocated, and end with k_id == -1.
        let values = unsafe { values_from(pd.cvlist.add(offset as usize)) };
        out.push((header.k_id, values));
    }
    out
}

/// One scope's run of values, up to its `k_id == -1` terminator.
///
/// # Safety
/// `cpv` must point to a run of values in a `cvlist` filled by
/// `config_plugin_values_init`.
unsafe fn values_from(mut cpv: *const ffi::config_plugin_value_t) -> Vec<(KeyId, RawValue)> {
    let mut out = Vec::new();
    loop {
        // SAFETY: cpv points into the run of values, which lighttpd ends
        // with an entry whose k_id is -1; the loop stops there.
        let v = unsafe { &*cpv };
        if v.k_id == -1 {
            return out;
        }
        let key = usize::try_from(v.k_id).ok().and_then(config::key_by_index);
        let raw = match v.vtype {
            // SAFETY: for T_CONFIG_STRING lighttpd stores a buffer pointer
            // in v.b (a buffer of its config, alive after this call).
            ffi::T_CONFIG_STRING => Some(RawValue::Str(unsafe { buffer_bytes(v.v.b) }.to_vec())),
            // SAFETY: for T_CONFIG_INT lighttpd stores the number in v.u.
            ffi::T_CONFIG_INT => Some(RawValue::Int(unsafe { v.v.u })),
            _ => None,
        };
        if let (Some(key), Some(raw)) = (key, raw) {
            out.push((key.id, raw));
        }
        // SAFETY: this entry was not the terminator, so the next entry is
        // still inside the run.
        cpv = unsafe { cpv.add(1) };
    }
}

/// The values of the `StringOrList` keys in the global scope, read from
/// lighttpd's parsed configuration itself (`T_CONFIG_LOCAL` keys are not
/// in `cvlist`). Inside conditions they are refused as server-wide options
/// by name, whatever their value.
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
unsafe fn local_values(srv: &ffi::server) -> Vec<(KeyId, RawValue)> {
    // SAFETY: srv->config_context is null or lighttpd's array of contexts;
    // item 0 is the global scope, a data_config (configfile.c).
    let global = unsafe { srv.config_context.as_ref() }
        .and_then(|contexts| unsafe { items(contexts) }.first().copied())
        .and_then(|dc| unsafe { dc.cast::<ffi::data_config>().as_ref() })
        .and_then(|dc| unsafe { dc.value.as_ref() });
    let Some(options) = global else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // SAFETY: the options array lives as long as the server's config.
    for &option in unsafe { items(options) } {
        // SAFETY: each item is null or a live data_unset with a key buffer.
        let Some(du) = (unsafe { option.as_ref() }) else {
            continue;
        };
        // SAFETY: the key buffer is embedded in the live data_unset.
        let name = unsafe { buffer_bytes(&du.key) };
        let Some(key) = std::str::from_utf8(name).ok().and_then(config::key_by_name) else {
            continue;
        };
        if key.ty == KeyType::StringOrList {
            // SAFETY: du is a live data_unset of the config (above).
            out.push((key.id, unsafe { string_or_list(du) }));
        }
    }
    out
}

/// A string, a list of strings, or what else the value is.
///
/// # Safety
/// `du` must be a live `data_unset` of lighttpd's configuration.
unsafe fn string_or_list(du: &ffi::data_unset) -> RawValue {
    match du.type_ {
        ffi::TYPE_STRING => {
            // SAFETY: a TYPE_STRING data_unset is a data_string (array.h).
            let ds = unsafe { &*(du as *const ffi::data_unset).cast::<ffi::data_string>() };
            // SAFETY: its value buffer is embedded in it.
            RawValue::Str(unsafe { buffer_bytes(&ds.value) }.to_vec())
        }
        ffi::TYPE_ARRAY => {
            // SAFETY: a TYPE_ARRAY data_unset is a data_array (array.h).
            let da = unsafe { &*(du as *const ffi::data_unset).cast::<ffi::data_array>() };
            let mut list = Vec::new();
            // SAFETY: its array is embedded in it and lives as long.
            for &item in unsafe { items(&da.value) } {
                // SAFETY: each item is null or a live data_unset.
                let Some(item) = (unsafe { item.as_ref() }) else {
                    continue;
                };
                // SAFETY: the key buffer is embedded in the item.
                let keyed = !unsafe { buffer_bytes(&item.key) }.is_empty();
                if item.type_ != ffi::TYPE_STRING || keyed {
                    return RawValue::Other("a list that is not only strings");
                }
                // SAFETY: a TYPE_STRING item is a data_string (above).
                let ds = unsafe { &*(item as *const ffi::data_unset).cast::<ffi::data_string>() };
                // SAFETY: as above.
                list.push(unsafe { buffer_bytes(&ds.value) }.to_vec());
            }
            RawValue::List(list)
        }
        ffi::TYPE_INTEGER => RawValue::Other("a number"),
        _ => RawValue::Other("neither a string nor a list"),
    }
}

/// The condition numbered `index` as lighttpd names it (without its
/// leading "global / "), for messages.
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
unsafe fn condition_text(srv: &ffi::server, index: i32) -> String {
    // SAFETY: srv->config_context is null or lighttpd's array of contexts,
    // alive as long as the server's config.
    let contexts = unsafe { srv.config_context.as_ref() }.map_or(&[][..], |a| {
        // SAFETY: as above.
        unsafe { items(a) }
    });
    let Some(&context) = usize::try_from(index).ok().and_then(|i| contexts.get(i)) else {
        return format!("condition {index}");
    };
    // SAFETY: each item of config_context is null or a data_config.
    unsafe { data_config_text(context.cast()) }.unwrap_or_else(|| format!("condition {index}"))
}

/// Whether the condition numbered `index`, and every condition it is
/// nested in (`parent`) or chained after (`else`: `prev`), compares only
/// the host (`$HTTP["host"]`, matched against the request's authority).
/// Anything else, or anything unexpected, is `false`: then every request
/// asks lighttpd.
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
unsafe fn host_only(srv: &ffi::server, index: i32) -> bool {
    // SAFETY: srv->config_context is null or lighttpd's array of contexts,
    // alive as long as the server's config.
    let Some(contexts) = (unsafe { srv.config_context.as_ref() }) else {
        return false;
    };
    // SAFETY: as above.
    let contexts = unsafe { items(contexts) };
    let Some(&first) = usize::try_from(index).ok().and_then(|i| contexts.get(i)) else {
        return false;
    };
    let mut pending = vec![first.cast::<ffi::data_config>().cast_const()];
    // Each context is visited once; the bound guards against a cycle.
    let mut visited = 0;
    while let Some(dc) = pending.pop() {
        // SAFETY: every pointer pushed is null or a data_config of the
        // live config (config_context items, their parent and prev links).
        let Some(dc) = (unsafe { dc.as_ref() }) else {
            continue;
        };
        visited += 1;
        if dc.context_ndx == 0 {
            continue; // the global scope: no condition
        }
        if dc.comp != ffi::COMP_HTTP_HOST || visited > contexts.len() {
            return false;
        }
        pending.push(dc.parent);
        pending.push(dc.prev);
    }
    true
}

/// A context's condition as written, without lighttpd's "global / ".
///
/// # Safety
/// `dc` must be null or a live `data_config`.
unsafe fn data_config_text(dc: *const ffi::data_config) -> Option<String> {
    // SAFETY: by the contract dc is null or live.
    let dc = unsafe { dc.as_ref() }?;
    // SAFETY: the key buffer is embedded in the live data_config.
    let key = String::from_utf8_lossy(unsafe { buffer_bytes(&dc.key) }).into_owned();
    Some(
        key.strip_prefix("global / ")
            .map(str::to_string)
            .unwrap_or(key),
    )
}

/// Whether `bw_counter.status_url` is written anywhere in the
/// configuration (any scope, any value).
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
pub unsafe fn status_url_anywhere(srv: *const ffi::server) -> bool {
    // SAFETY: by the contract srv is live, its config read.
    let Some(srv) = (unsafe { srv.as_ref() }) else {
        return true;
    };
    let name = KeyId::StatusUrl.name();
    // SAFETY: as above.
    unsafe { keys_in_all_scopes(srv) }
        .iter()
        .any(|k| k.name == name)
}

/// The items of a lighttpd `array`.
///
/// # Safety
/// `a` must be a live lighttpd array.
unsafe fn items(a: &ffi::array) -> &[*mut ffi::data_unset] {
    if a.data.is_null() || a.used == 0 {
        return &[];
    }
    // SAFETY: a lighttpd array has `used` initialised item pointers at data.
    unsafe { std::slice::from_raw_parts(a.data, a.used as usize) }
}

/// Every key starting with `bw_counter.` in every config context, with the
/// condition of the context (lighttpd itself only warns about unknown keys
/// and about server options inside conditionals).
///
/// # Safety
/// `srv` must be lighttpd's live server after the config was read.
unsafe fn keys_in_all_scopes(srv: &ffi::server) -> Vec<FoundKey> {
    let mut out = Vec::new();
    // SAFETY: srv->config_context is null or lighttpd's array of contexts.
    let Some(contexts) = (unsafe { srv.config_context.as_ref() }) else {
        return out;
    };
    // SAFETY: the contexts array lives as long as the server's config.
    for (u, &context) in unsafe { items(contexts) }.iter().enumerate() {
        // SAFETY: each item of config_context is null or a data_config
        // (configfile.c), whose `value` is null or its array of options.
        let Some(dc) = (unsafe { context.cast::<ffi::data_config>().as_ref() }) else {
            continue;
        };
        // SAFETY: as above.
        let Some(options) = (unsafe { dc.value.as_ref() }) else {
            continue;
        };
        // lighttpd names a context by its chain of conditions, starting
        // with "global / "; the rest is what the admin wrote. Context 0 is
        // the global scope.
        // SAFETY: dc is a live data_config (above).
        let condition = (u != 0).then(|| unsafe { data_config_text(dc) }).flatten();
        // SAFETY: the options array lives as long as the server's config.
        for &option in unsafe { items(options) } {
            // SAFETY: each item is null or a data_unset with a key buffer.
            let Some(option) = (unsafe { option.as_ref() }) else {
                continue;
            };
            // SAFETY: the key buffer is embedded in the live data_unset.
            let key = unsafe { buffer_bytes(&option.key) };
            if key.starts_with(config::PREFIX.as_bytes()) {
                out.push(FoundKey {
                    name: String::from_utf8_lossy(key).into_owned(),
                    condition: condition.clone(),
                });
            }
        }
    }
    out
}
