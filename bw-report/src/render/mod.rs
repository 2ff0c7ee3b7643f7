//! Writing a report in the format asked for. Each format is a module of
//! its own; they all take the same computed report (crate::report, and
//! crate::chart for the drawn ones).

mod chart;
mod csv;
mod html;
mod json;
mod table;

use std::io::{self, Write};
use std::path::Path;

use crate::chart::Chart;
use crate::cli::{ChartFile, ChartFormat, Format};
use crate::dates::Range;
use crate::error::Error;
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

/// `chart --out FILE`: the chart, as SVG or PNG by the file's extension.
pub fn chart_file(out: &ChartFile, chart: &Chart) -> Result<(), Error> {
    let bytes = match out.format {
        ChartFormat::Svg => chart::svg(chart)?.into_bytes(),
        ChartFormat::Png => chart::png(chart, &chart::font_file())?,
    };
    write_file(&out.path, &bytes)
}

/// `html --out FILE`: the page, with the chart inline as SVG.
pub fn html_file(
    path: &Path,
    range: &Range,
    vhosts: &[String],
    top: &Top,
    chart: &Chart,
) -> Result<(), Error> {
    let svg = chart::svg(chart)?;
    write_file(path, html::page(range, vhosts, top, chart, &svg).as_bytes())
}

/// A failure names the file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes)
        .map_err(|e| Error::Output(io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
}
