//! Option values from lighttpd.conf: any bytes for any key must give a
//! Config or errors that name the option, never a panic; the server and
//! table parsers must hold their promises.
#![no_main]

#[path = "../../src/config/mod.rs"]
#[allow(dead_code, unused_imports)]
mod config;

use config::{FoundKey, RawValue, KEYS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Each \x00-separated piece is one option: first byte picks the key,
    // second whether it is an integer, the rest is the value.
    let mut found = Vec::new();
    let mut values = Vec::new();
    for piece in data.split(|&b| b == 0) {
        let [k, kind, value @ ..] = piece else { continue };
        let key = &KEYS[*k as usize % KEYS.len()];
        let raw = if kind % 2 == 0 {
            RawValue::Str(value.to_vec())
        } else {
            let mut n = [0u8; 4];
            n[..value.len().min(4)].copy_from_slice(&value[..value.len().min(4)]);
            RawValue::Int(u32::from_le_bytes(n))
        };
        let condition = (kind % 4 == 3).then(|| "$HTTP[\"host\"] == \"x\"".to_string());
        found.push(FoundKey { name: key.id.name().to_string(), condition });
        values.push((key.id, raw));
    }
    if let Err(errors) = config::parse(&found, &values, &[]) {
        assert!(!errors.is_empty());
        for e in errors {
            let line = e.to_string();
            assert!(line.contains("bw_counter."), "every error names an option: {line}");
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = config::parse_table(s) {
            let q = t.quoted();
            assert_eq!(q.matches('`').count(), if t.schema.is_some() { 4 } else { 2 }, "{q}");
        }
        if let Ok(config::Server::Tcp { host, port }) = config::parse_server(s) {
            assert!(port > 0 && !host.is_empty());
        }
    }
});
