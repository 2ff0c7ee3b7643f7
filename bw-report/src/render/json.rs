//! `--format json`: an array of objects with exact integers (u64, never
//! floats, so a script's sums are exact), written by serde_json.

use std::io::{self, Write};

use serde::Serialize;

use crate::report::{DayBytes, Top};

#[derive(Serialize)]
struct VhostObject<'a> {
    vhost: &'a str,
    #[serde(rename = "in")]
    bytes_in: u64,
    #[serde(rename = "out")]
    bytes_out: u64,
    total: u64,
}

#[derive(Serialize)]
struct DayObject<'a> {
    day: String,
    vhost: &'a str,
    #[serde(rename = "in")]
    bytes_in: u64,
    #[serde(rename = "out")]
    bytes_out: u64,
}

pub fn top(out: &mut dyn Write, top: &Top) -> io::Result<()> {
    let objects: Vec<VhostObject> = top
        .rows
        .iter()
        .map(|r| VhostObject {
            vhost: &r.bytes.vhost,
            bytes_in: r.bytes.bytes_in,
            bytes_out: r.bytes.bytes_out,
            total: r.total,
        })
        .collect();
    write(out, &objects)
}

pub fn daily(out: &mut dyn Write, rows: &[DayBytes]) -> io::Result<()> {
    let objects: Vec<DayObject> = rows
        .iter()
        .map(|r| DayObject {
            day: r.day.format("%Y-%m-%d").to_string(),
            vhost: &r.vhost,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
        })
        .collect();
    write(out, &objects)
}

fn write(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    writeln!(out)
}
