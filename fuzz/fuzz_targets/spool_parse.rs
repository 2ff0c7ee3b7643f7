//! Spool files come from disk and may be torn or damaged: parsing never
//! panics, and what it accepts survives a round trip unchanged.
#![no_main]

#[path = "../../src/fnv.rs"]
mod fnv;

#[path = "../../src/counters.rs"]
#[allow(dead_code)]
mod counters;
#[path = "../../src/day.rs"]
#[allow(dead_code)]
mod day;
#[path = "../../src/spool/format.rs"]
#[allow(dead_code)]
mod spool;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = spool::parse(data);
    let text = spool::format(&parsed.batches);
    let again = spool::parse(text.as_bytes());
    assert_eq!(again.skipped, 0);
    assert_eq!(again.batches, parsed.batches);
});
