//! `--format table`: for people at a terminal. Binary units, aligned
//! columns, a header and a total line; control characters in a vhost are
//! shown escaped, so a hostile Host header cannot break the columns or
//! send escape sequences to the terminal.

use std::io::{self, Write};

use crate::dates::Range;
use crate::report::{DayBytes, Top, Totals};
use crate::units::{human, percent};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

pub fn top(out: &mut dyn Write, range: &Range, top: &Top) -> io::Result<()> {
    use Align::{Left, Right};
    let mut lines = vec![cells(&["vhost", "in", "out", "total", "share"])];
    for row in &top.rows {
        let b = &row.bytes;
        lines.push(vec![
            printable(&b.vhost),
            human(b.bytes_in),
            human(b.bytes_out),
            human(row.total),
            percent(row.share),
        ]);
    }
    let all = &top.all;
    lines.push(vec![
        format!("total ({} vhosts)", top.vhosts),
        human(all.bytes_in),
        human(all.bytes_out),
        human(all.total),
        if all.total == 0 {
            "-".into()
        } else {
            percent(1.0)
        },
    ]);
    title(out, range)?;
    columns(out, &lines, &[Left, Right, Right, Right, Right])
}

pub fn daily(
    out: &mut dyn Write,
    range: &Range,
    rows: &[DayBytes],
    all: &Totals,
) -> io::Result<()> {
    use Align::{Left, Right};
    let mut lines = vec![cells(&["day", "vhost", "in", "out"])];
    for r in rows {
        lines.push(vec![
            r.day.format("%Y-%m-%d").to_string(),
            printable(&r.vhost),
            human(r.bytes_in),
            human(r.bytes_out),
        ]);
    }
    lines.push(vec![
        "total".into(),
        String::new(),
        human(all.bytes_in),
        human(all.bytes_out),
    ]);
    title(out, range)?;
    columns(out, &lines, &[Left, Left, Right, Right])
}

fn title(out: &mut dyn Write, range: &Range) -> io::Result<()> {
    writeln!(out, "{} to {}", range.from, range.to)
}

fn cells(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Lines of cells, each column as wide as its widest cell, two spaces apart.
fn columns(out: &mut dyn Write, lines: &[Vec<String>], align: &[Align]) -> io::Result<()> {
    let width = |col: usize| {
        lines
            .iter()
            .map(|l| l.get(col).map_or(0, |c| c.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..align.len()).map(width).collect();
    for line in lines {
        let padded: Vec<String> = line
            .iter()
            .zip(align.iter().zip(&widths))
            .map(|(cell, (a, &w))| match a {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())?;
    }
    Ok(())
}

/// The vhost with control characters escaped (`\n`, `\u{1b}`).
pub(super) fn printable(vhost: &str) -> String {
    vhost
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{self, VhostBytes};
    use chrono::NaiveDate;

    #[test]
    fn aligned_with_header_and_total() {
        let v = |vhost: &str, i, o| VhostBytes {
            vhost: vhost.into(),
            bytes_in: i,
            bytes_out: o,
        };
        let top = report::top(vec![v("a.example", 1024, 1536), v("bb", 0, 512)], None);
        let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut out = Vec::new();
        super::top(&mut out, &Range { from: d, to: d }, &top).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "2026-01-01 to 2026-01-01\n\
             vhost                   in       out     total    share\n\
             a.example         1.00 KiB  1.50 KiB  2.50 KiB   83.33%\n\
             bb                     0 B     512 B     512 B   16.67%\n\
             total (2 vhosts)  1.00 KiB  2.00 KiB  3.00 KiB  100.00%\n"
        );
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            printable("a\nb\u{1b}[31m\tc ä,\""),
            "a\\nb\\u{1b}[31m\\tc ä,\""
        );
    }
}
