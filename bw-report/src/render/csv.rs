//! `--format csv`: exact byte counts, one header line, RFC 4180 quoting
//! (vhosts come from Host headers and may hold anything). Lines end in
//! `\n`, as Unix tools expect; RFC 4180 readers accept that too.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::report::{DayBytes, Top};

pub fn top(out: &mut dyn Write, top: &Top) -> io::Result<()> {
    record(out, &["vhost", "in", "out", "total", "share"])?;
    for row in &top.rows {
        let b = &row.bytes;
        record(
            out,
            &[
                &b.vhost,
                &b.bytes_in.to_string(),
                &b.bytes_out.to_string(),
                &row.total.to_string(),
                // A fraction of the grand total: spreadsheets format it as %.
                &format!("{:.6}", row.share),
            ],
        )?;
    }
    Ok(())
}

pub fn daily(out: &mut dyn Write, rows: &[DayBytes]) -> io::Result<()> {
    record(out, &["day", "vhost", "in", "out"])?;
    for r in rows {
        record(
            out,
            &[
                &r.day.format("%Y-%m-%d").to_string(),
                &r.vhost,
                &r.bytes_in.to_string(),
                &r.bytes_out.to_string(),
            ],
        )?;
    }
    Ok(())
}

fn record(out: &mut dyn Write, fields: &[&str]) -> io::Result<()> {
    let line: Vec<Cow<str>> = fields.iter().map(|f| quoted(f)).collect();
    writeln!(out, "{}", line.join(","))
}

/// A field quoted when it holds a comma, a quote or a line break, its
/// quotes doubled (RFC 4180, 2.6 and 2.7).
fn quoted(field: &str) -> Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quoted("www.example.org"), "www.example.org");
        assert_eq!(quoted("a,b"), "\"a,b\"");
        assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quoted("two\nlines"), "\"two\nlines\"");
        assert_eq!(quoted("cr\r"), "\"cr\r\"");
        assert_eq!(quoted("back\\slash ünï"), "back\\slash ünï");
        assert_eq!(quoted(""), "");
    }

    #[test]
    fn records() {
        let mut out = Vec::new();
        record(&mut out, &["a,b", "1", "x\"y"]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"a,b\",1,\"x\"\"y\"\n");
    }
}
