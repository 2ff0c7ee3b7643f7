//! Writing a report in the format asked for. Each format is a module of
//! its own; they all take the same computed report (crate::report).

mod csv;
mod json;
mod table;

use std::io::{self, Write};

use crate::cli::Format;
use crate::dates::Range;
use crate::report::{DayBytes, Top, Totals};

pub fn top(out: &mut dyn Write, format: Format, range: &Range, top: &Top) -> io::Result<()> {
    match format {
        Format::Table => table::top(out, range, top),
        Format::Csv => csv::top(out, top),
        Format::Json => json::top(out, top),
    }
}

pub fn daily(
    out: &mut dyn Write,
    format: Format,
    range: &Range,
    rows: &[DayBytes],
    all: &Totals,
) -> io::Result<()> {
    match format {
        Format::Table => table::daily(out, range, rows, all),
        Format::Csv => csv::daily(out, rows),
        Format::Json => json::daily(out, rows),
    }
}
