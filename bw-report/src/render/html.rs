//! `html`: one self-contained page (its CSS and the chart, as SVG, inline;
//! no script, nothing fetched) with the range, the totals, the top table
//! and the chart. Every text from the table is escaped; the page is also
//! well-formed XML, so that tests read it with an XML parser.

use std::fmt::Write;

use crate::chart::Chart;
use crate::dates::Range;
use crate::report::{Top, Totals};
use crate::units::{grouped, human, percent};

use super::chart::{colour, hex};

/// Light, quiet, numbers aligned; no web font (nothing external).
const STYLE: &str = "
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #e1e6ec; --page: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, \"Segoe UI\", \"DejaVu Sans\", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 20px 40px; }
h1 { font-size: 26px; font-weight: 600; margin: 0; }
h2 { font-size: 17px; font-weight: 600; margin: 28px 0 10px; }
.scope { color: var(--muted); margin: 2px 0 22px; }
.totals { display: grid; grid-template-columns: repeat(3, 1fr); gap: 16px; }
.card, figure, table { background: #fff; border: 1px solid var(--line); border-radius: 10px; }
.card { padding: 14px 20px; }
.card h2 { margin: 0; font-size: 13px; letter-spacing: .06em; text-transform: uppercase;
  color: var(--muted); }
.human { font-size: 28px; font-weight: 600; margin: 2px 0 0; }
.exact { color: var(--muted); margin: 0; font-variant-numeric: tabular-nums; }
figure { margin: 22px 0 0; padding: 10px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; padding: 4px 8px 2px; }
table { width: 100%; border-collapse: separate; border-spacing: 0; overflow: hidden; }
th, td { padding: 9px 14px; text-align: left; border-bottom: 1px solid var(--line); }
thead th { font-size: 13px; color: var(--muted); font-weight: 600; background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.vhost { overflow-wrap: anywhere; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
tfoot th, tfoot td { font-weight: 600; border-bottom: 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  margin-right: 9px; vertical-align: -1px; }
.none { color: var(--muted); text-align: center; }
footer { color: var(--muted); font-size: 13px; margin-top: 22px; }
";

/// The page. `svg` is `chart` drawn; `vhosts` is what `--vhost` kept.
pub fn page(range: &Range, vhosts: &[String], top: &Top, chart: &Chart, svg: &str) -> String {
    let mut page = String::new();
    let title = format!("Traffic from {} to {}", range.from, range.to);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{title} · bw-report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>{title}</h1>\n<p class=\"scope\">{}</p>\n</header>\n",
        escape(&scope(range, vhosts, top)),
    );
    totals(&mut page, &top.all);
    let _ = write!(
        page,
        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        caption(top, chart)
    );
    table(&mut page, top, chart);
    page.push_str(
        "<footer>Made by bw-report from mod_bw_counter's table. Binary units: 1 KiB is \
         1024 bytes; hover a figure for its exact count.</footer>\n</main>\n</body>\n</html>\n",
    );
    page
}

/// What the chart stacks, said in words.
fn caption(top: &Top, chart: &Chart) -> String {
    let shown = chart.series.iter().filter(|s| !s.others).count();
    let folded = top.vhosts.saturating_sub(shown);
    let biggest = match shown {
        1 => "the biggest vhost".to_string(),
        n => format!("each of the {n} biggest vhosts"),
    };
    let colours = match folded {
        0 => "a colour for each vhost".to_string(),
        1 => format!("a colour for {biggest}, grey for the other one"),
        n => format!("a colour for {biggest}, grey for the other {n}"),
    };
    format!("Bytes in + out per day, stacked: {colours}. A day without traffic is an empty bar.")
}

/// What the range covers: days, vhosts, and the --vhost filter if any.
fn scope(range: &Range, vhosts: &[String], top: &Top) -> String {
    let days = range.days().count();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut scope = format!("{}, {}", plural(days, "day"), plural(top.vhosts, "vhost"));
    if !vhosts.is_empty() {
        let names: Vec<String> = vhosts.iter().map(|v| super::table::printable(v)).collect();
        scope.push_str(&format!(" (only {})", names.join(", ")));
    }
    scope
}

/// In, out and total of every vhost: in binary units and exact bytes.
fn totals(page: &mut String, all: &Totals) {
    page.push_str("<section class=\"totals\" aria-label=\"Totals\">\n");
    for (name, bytes) in [
        ("In", all.bytes_in),
        ("Out", all.bytes_out),
        ("Total", all.total),
    ] {
        let _ = writeln!(
            page,
            "<div class=\"card\"><h2>{name}</h2><p class=\"human\">{}</p>\
             <p class=\"exact\"><data value=\"{bytes}\">{} bytes</data></p></div>",
            human(bytes),
            grouped(bytes),
        );
    }
    page.push_str("</section>\n");
}

/// `top`'s table: the same rows and figures, each vhost with its colour
/// in the chart.
fn table(page: &mut String, top: &Top, chart: &Chart) {
    page.push_str(
        "<h2>Top vhosts</h2>\n<table class=\"top\">\n<thead><tr><th>vhost</th>\
         <th class=\"num\">in</th><th class=\"num\">out</th><th class=\"num\">total</th>\
         <th class=\"num\">share</th></tr></thead>\n<tbody>\n",
    );
    for (i, row) in top.rows.iter().enumerate() {
        let b = &row.bytes;
        let swatch = chart
            .series
            .get(i)
            .filter(|s| !s.others && s.name == b.vhost)
            .map(|s| {
                format!(
                    "<span class=\"swatch\" style=\"background: {}\"></span>",
                    hex(colour(s, i))
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td class=\"vhost\">{swatch}{}</td>{}{}{}<td class=\"num\">{}</td></tr>",
            escape(&super::table::printable(&b.vhost)),
            bytes_cell(b.bytes_in),
            bytes_cell(b.bytes_out),
            bytes_cell(row.total),
            percent(row.share),
        );
    }
    if top.rows.is_empty() {
        page.push_str("<tr><td class=\"none\" colspan=\"5\">No traffic in this range</td></tr>\n");
    }
    let all = &top.all;
    let share = if all.total == 0 {
        "-".into()
    } else {
        percent(1.0)
    };
    let _ = write!(
        page,
        "</tbody>\n<tfoot><tr><th>total ({} vhosts)</th>{}{}{}<td class=\"num\">{share}</td>\
         </tr></tfoot>\n</table>\n",
        top.vhosts,
        bytes_cell(all.bytes_in),
        bytes_cell(all.bytes_out),
        bytes_cell(all.total),
    );
}

/// A figure in binary units, its exact byte count in the markup and on hover.
fn bytes_cell(bytes: u64) -> String {
    format!(
        "<td class=\"num\"><data value=\"{bytes}\" title=\"{} bytes\">{}</data></td>",
        grouped(bytes),
        human(bytes)
    )
}

/// Text for HTML and XML alike, in content and in quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caption_says_what_is_grey() {
        use crate::report::{self, DayBytes};
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let range = Range { from: day, to: day };
        let rows: Vec<DayBytes> = ["a", "b", "c"]
            .iter()
            .map(|v| DayBytes {
                day,
                vhost: v.to_string(),
                bytes_in: 1,
                bytes_out: 1,
            })
            .collect();
        let caption_for = |limit| {
            let top = report::top(report::vhost_totals(&rows), Some(limit));
            caption(&top, &crate::chart::build(&rows, &range, limit))
        };
        assert!(caption_for(3).contains(": a colour for each vhost."));
        assert!(caption_for(2).contains("each of the 2 biggest vhosts, grey for the other one."));
        assert!(caption_for(1).contains("for the biggest vhost, grey for the other 2."));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("</svg><script>alert(\"x\" & 'y')</script> ü"),
            "&lt;/svg&gt;&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt; ü"
        );
        assert_eq!(escape("www.example.org"), "www.example.org");
    }

    #[test]
    fn the_style_needs_no_escaping_and_fetches_nothing() {
        assert!(!STYLE.contains(['<', '&']));
        assert!(!STYLE.contains("url(") && !STYLE.contains("@import"));
    }
}
