//! Host headers are chosen by clients: whatever lighttpd lets through, the
//! key is printable ASCII, fits the column, and is the same every time; and
//! the key of the authority alone (what the day's host table remembers an
//! authority by) is that key whenever it does not come from server_name.
#![no_main]

#[path = "../../src/fnv.rs"]
mod fnv;

#[path = "../../src/hostkey.rs"]
mod hostkey;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize % (data.len().max(1)));
    let (authority, server_name) = data.split_at(split);
    let mut km = hostkey::KeyMaker::new();
    let key = km.key(authority, server_name).to_string();
    assert!(!key.is_empty());
    assert!(key.len() <= hostkey::MAX_KEY_LEN, "{} bytes", key.len());
    assert!(key.bytes().all(|b| (b' '..=b'~').contains(&b)), "{key:?}");
    assert!(!key.bytes().any(|b| b.is_ascii_uppercase()) || key.contains("\\x"), "{key:?}");
    let again = hostkey::KeyMaker::new().key(authority, server_name).to_string();
    assert_eq!(key, again);
    match km.authority_key(authority) {
        Some(alone) => assert_eq!(alone, key, "{authority:?}"),
        None => assert_eq!(key, hostkey::KeyMaker::new().key(b"", server_name)),
    }
});
