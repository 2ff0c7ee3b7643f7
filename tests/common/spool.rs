//! The spool file, as tests see it: an independent re-statement of the
//! record format of src/spool/format.rs (`BWC1 <fnv> <batch> <day> <in>
//! <out> <host>`), and the lighttpd set-up that uses one.

use std::path::Path;

use super::lighttpd::Setup;
use super::mariadb::MariaDb;
use super::oracle::Totals;

/// A record as the module writes it.
pub fn record(batch: &str, day: &str, bytes_in: u64, bytes_out: u64, host: &str) -> String {
    let body = format!("{batch} {day} {bytes_in} {bytes_out} {host}");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in body.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("BWC1 {h:016x} {body}\n")
}

/// Per-vhost sums of the records in a spool-format file (`#` lines are
/// comments), and how many records there are.
pub fn totals(path: &Path) -> (Totals, usize) {
    let mut out = Totals::new();
    let mut records = 0;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(f.len(), 7, "record {line:?}");
        let e = out.entry(f[6].to_string()).or_default();
        e.0 += f[4].parse::<u64>().unwrap();
        e.1 += f[5].parse::<u64>().unwrap();
        records += 1;
    }
    (out, records)
}

/// The module on `db`, reporting every `interval` seconds, with `spool`.
pub fn setup(db: &MariaDb, spool: &Path, interval: u32) -> Setup {
    Setup::new(format!(
        "{}bw_counter.report_interval = {interval}\nbw_counter.spool_file = \"{}\"\n",
        db.module_options(),
        spool.display()
    ))
}
