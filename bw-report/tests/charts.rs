//! bw-report chart and html against a real private MariaDB (the rig of
//! tests/support), with rows the tests write: the SVG read back with an
//! XML parser, the PNG decoded, the page's figures compared with the rows
//! and with `top`, hostile vhosts, empty ranges, ranges across years, and
//! the page as Chromium renders it.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use roxmltree::{Document, Node};
use serde_json::Value;
use support::common::{self as common, TempDir};
use support::{bw_report, Db, ACROSS_YEARS, ACROSS_YEARS_RANGE};

type Row = (String, String, u64, u64);

const JANUARY: [&str; 4] = ["--from", "2026-01-01", "--to", "2026-01-31"];

/// Six vhosts over January 2026, each on some days only, no row at all on
/// the 10th to the 12th, and rows just outside the month.
fn january_rows() -> Vec<Row> {
    let vhosts = [
        "www.example.org",
        "shop.example.com",
        "static.example.net",
        "api.example.com",
        "blog.example.org",
        "mail.example.com",
    ];
    let mut rows = Vec::new();
    for day in (1..=31).filter(|d| !(10..=12).contains(d)) {
        for (k, vhost) in vhosts.iter().enumerate() {
            let k = k as u64;
            if (day + k) % (k + 2) == 0 {
                continue;
            }
            let out = (7 - k) * 40_000_000 + day * 1_000_003;
            rows.push((
                vhost.to_string(),
                format!("2026-01-{day:02}"),
                out / 50 + k,
                out,
            ));
        }
    }
    rows.push(("www.example.org".into(), "2025-12-31".into(), 1 << 40, 1));
    rows.push(("mail.example.com".into(), "2026-02-01".into(), 1 << 40, 1));
    rows
}

fn insert(db: &Db, rows: &[Row]) {
    let borrowed: Vec<(&str, &str, u64, u64)> = rows
        .iter()
        .map(|(v, d, i, o)| (v.as_str(), d.as_str(), *i, *o))
        .collect();
    db.insert(&borrowed);
}

/// What the chart must show, worked out from the rows here rather than by
/// bw-report's code: the `limit` biggest vhosts (ties by name), and for
/// each series the days with bytes in the range.
struct Expected {
    top: Vec<String>,
    others: usize,
    /// Per series (the top ones, then others if any): days with bytes.
    bar_days: Vec<usize>,
}

fn expected(rows: &[Row], from: &str, to: &str, limit: usize) -> Expected {
    let in_range: Vec<&Row> = rows
        .iter()
        .filter(|r| r.1.as_str() >= from && r.1.as_str() <= to)
        .collect();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &in_range {
        *totals.entry(&r.0).or_default() += r.2 + r.3;
    }
    let mut order: Vec<(&str, u64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = order.iter().take(limit).map(|v| v.0.to_string()).collect();
    let others = order.len().saturating_sub(limit);
    let mut days: Vec<BTreeMap<&str, u64>> = vec![BTreeMap::new(); top.len() + 1];
    for r in &in_range {
        let series = top.iter().position(|t| *t == r.0).unwrap_or(top.len());
        *days[series].entry(&r.1).or_default() += r.2 + r.3;
    }
    let mut bar_days: Vec<usize> = days
        .iter()
        .map(|d| d.values().filter(|&&b| b > 0).count())
        .collect();
    if others == 0 {
        bar_days.pop();
    }
    Expected {
        top,
        others,
        bar_days,
    }
}

/// `bw-report COMMAND --out DIR/FILE ARGS...`, which must succeed; the file.
fn write_out(db: &Db, dir: &TempDir, command: &str, file: &str, args: &[&str]) -> PathBuf {
    let path = dir.path().join(file);
    db.report(&[&[command, "--out", path_arg(&path)][..], args].concat());
    path
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// The text of an SVG `<text>`: plotters writes it between line breaks.
fn svg_text(node: Node) -> String {
    let text = node.text().unwrap_or_default();
    let text = text.strip_prefix('\n').unwrap_or(text);
    text.strip_suffix('\n').unwrap_or(text).to_string()
}

fn elements<'a, 'i>(doc: &'a Document<'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    doc.descendants().filter(move |n| n.has_tag_name(name))
}

/// The SVG's legend: each name and the fill of the swatch drawn before it
/// (the only texts that follow a coloured rect).
fn legend(doc: &Document) -> Vec<(String, String)> {
    elements(doc, "text")
        .filter_map(|text| {
            let swatch = text.prev_sibling_element()?;
            let fill = swatch.attribute("fill")?;
            (swatch.has_tag_name("rect") && fill != "#FFFFFF")
                .then(|| (svg_text(text), fill.to_string()))
        })
        .collect()
}

/// How many rects are filled with each colour.
fn rects_by_fill(doc: &Document) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for rect in elements(doc, "rect") {
        *count
            .entry(rect.attribute("fill").unwrap_or_default().to_string())
            .or_default() += 1;
    }
    count
}

fn all_texts(doc: &Document) -> Vec<String> {
    elements(doc, "text").map(svg_text).collect()
}

/// Bars: one rect per day and series with bytes, in the series' legend
/// colour (plus the legend's own swatch); names and colours as expected.
fn check_bars(doc: &Document, want: &Expected) {
    let legend = legend(doc);
    let mut names: Vec<String> = want.top.clone();
    match want.others {
        0 => {}
        1 => names.push("others (1 vhost)".into()),
        n => names.push(format!("others ({n} vhosts)")),
    }
    let legend_names: Vec<&str> = legend.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(legend_names, names);
    let rects = rects_by_fill(doc);
    for ((name, fill), days) in legend.iter().zip(&want.bar_days) {
        assert_eq!(rects.get(fill), Some(&(days + 1)), "{name}: {fill}");
    }
    let mut fills: Vec<&str> = legend.iter().map(|(_, f)| f.as_str()).collect();
    fills.sort_unstable();
    fills.dedup();
    assert_eq!(fills.len(), legend.len(), "distinct colours: {legend:?}");
    if want.others > 0 {
        let grey = &legend.last().unwrap().1;
        assert!(
            grey[1..3] == grey[3..5] && grey[3..5] == grey[5..7],
            "{grey}"
        );
    }
}

#[test]
fn svg_chart_stacks_the_top_vhosts_and_others() {
    let db = Db::start();
    let rows = january_rows();
    insert(&db, &rows);
    let dir = TempDir::new("chart-svg");
    let file = write_out(
        &db,
        &dir,
        "chart",
        "january.svg",
        &[&["--limit", "3"][..], &JANUARY].concat(),
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let doc = Document::parse(&text).unwrap_or_else(|e| panic!("not XML: {e}"));
    let svg = doc.root_element();
    assert_eq!(
        (svg.attribute("width"), svg.attribute("height")),
        (Some("1200"), Some("600"))
    );
    check_bars(&doc, &expected(&rows, "2026-01-01", "2026-01-31", 3));
    let texts = all_texts(&doc);
    let title = &texts[0];
    assert!(
        title.contains("2026-01-01 to 2026-01-31") && title.contains("in + out"),
        "{title}"
    );
    for label in ["Jan 1", "Jan 31", "bytes in + out per day"] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with('0') && t.ends_with("iB")),
        "the byte axis in binary units: {texts:?}"
    );

    // The default limit (8) leaves nobody to fold.
    let all = write_out(&db, &dir, "chart", "all.SVG", &JANUARY);
    let text = std::fs::read_to_string(&all).unwrap();
    check_bars(
        &Document::parse(&text).unwrap(),
        &expected(&rows, "2026-01-01", "2026-01-31", 8),
    );

    // --vhost restricts, as in the other reports.
    let only_args = [&["--vhost", "blog.example.org"][..], &JANUARY].concat();
    let only = write_out(&db, &dir, "chart", "only.svg", &only_args);
    let text = std::fs::read_to_string(&only).unwrap();
    let only_blog: Vec<Row> = rows
        .iter()
        .filter(|r| r.0 == "blog.example.org")
        .cloned()
        .collect();
    check_bars(
        &Document::parse(&text).unwrap(),
        &expected(&only_blog, "2026-01-01", "2026-01-31", 8),
    );
}

/// A decoded PNG as RGB pixels.
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

fn decode_png(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("sized")];
    let info = reader.next_frame(&mut buf).expect("decodes");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Image {
        width: info.width,
        height: info.height,
        pixels,
    }
}

impl Image {
    fn count(&self, colour: [u8; 3]) -> usize {
        self.pixels.iter().filter(|&&p| p == colour).count()
    }

    fn distinct_colours(&self) -> usize {
        let mut all = self.pixels.clone();
        all.sort_unstable();
        all.dedup();
        all.len()
    }
}

/// `#4E79A7` as RGB.
fn rgb(hex: &str) -> [u8; 3] {
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex colour");
    [byte(1), byte(3), byte(5)]
}

#[test]
fn png_chart_is_1200_by_600_and_drawn() {
    let db = Db::start();
    let rows = january_rows();
    insert(&db, &rows);
    let dir = TempDir::new("chart-png");
    let args = [&["--limit", "3"][..], &JANUARY].concat();
    let file = write_out(&db, &dir, "chart", "january.png", &args);
    let svg = write_out(&db, &dir, "chart", "january.svg", &args);
    let image = decode_png(&file);
    assert_eq!((image.width, image.height), (1200, 600));
    let background = image.count([255, 255, 255]);
    assert!(
        background < image.pixels.len() * 9 / 10,
        "mostly blank: {background} white pixels"
    );
    assert!(image.distinct_colours() > 20, "text is anti-aliased");
    // Each series' colour (read from the SVG of the same data) fills its bars.
    let text = std::fs::read_to_string(&svg).unwrap();
    for (name, fill) in legend(&Document::parse(&text).unwrap()) {
        let pixels = image.count(rgb(&fill));
        assert!(pixels > 500, "{name} ({fill}): {pixels} pixels");
    }
}

/// No font file: the PNG fails in one line naming the file and the
/// package, with status 69 and no file; the SVG needs none.
#[test]
fn png_without_its_font_is_one_line_and_svg_still_works() {
    let db = Db::start();
    db.insert(&[("www.example.org", "2026-01-05", 1, 2)]);
    let dir = TempDir::new("chart-font");
    let missing = dir.path().join("no-such-font.ttf");
    let chart = |out: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
        cmd.env("BW_REPORT_FONT", &missing)
            .args(db.flags())
            .args(["chart", "--out", path_arg(out)])
            .args(JANUARY);
        common::run(&mut cmd, Duration::from_secs(60))
    };
    let png = dir.path().join("chart.png");
    let out = chart(&png);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(path_arg(&missing)) && stderr.contains("fonts-dejavu-core"),
        "{stderr}"
    );
    assert!(!png.exists());
    let svg = dir.path().join("chart.svg");
    let out = chart(&svg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Document::parse(&std::fs::read_to_string(&svg).unwrap()).is_ok());
}

fn page(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The page parsed: it is well-formed XML as well as HTML, and its only
/// DTD is `<!DOCTYPE html>`.
fn parse_page(text: &str) -> Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    Document::parse_with_options(text, options).unwrap_or_else(|e| panic!("not well-formed: {e}"))
}

/// The exact byte counts (`<data value>`) under `node`, in document order.
fn data_values(node: Node) -> Vec<u64> {
    node.descendants()
        .filter(|n| n.has_tag_name("data"))
        .map(|n| n.attribute("value").expect("value").parse().expect("bytes"))
        .collect()
}

fn with_class<'a, 'i>(doc: &'a Document<'i>, class: &str) -> Node<'a, 'i> {
    doc.descendants()
        .find(|n| n.attribute("class") == Some(class))
        .unwrap_or_else(|| panic!("no element of class {class}"))
}

/// The top table's rows: vhost and the exact in, out and total.
fn table_rows(doc: &Document) -> Vec<(String, Vec<u64>)> {
    let table = with_class(doc, "top");
    let body = table.children().find(|n| n.has_tag_name("tbody")).unwrap();
    body.children()
        .filter(|n| n.has_tag_name("tr"))
        .filter(|tr| tr.descendants().any(|n| n.has_tag_name("data")))
        .map(|tr| {
            let vhost = tr.children().find(|n| n.has_tag_name("td")).unwrap();
            let name: String = vhost
                .descendants()
                .filter(|n| n.is_text())
                .map(|n| n.text().unwrap())
                .collect();
            (name, data_values(tr))
        })
        .collect()
}

#[test]
fn html_figures_are_exact_and_the_same_as_top() {
    let db = Db::start();
    let rows = january_rows();
    insert(&db, &rows);
    let dir = TempDir::new("html");
    let file = write_out(
        &db,
        &dir,
        "html",
        "january.html",
        &[&["--limit", "4"][..], &JANUARY].concat(),
    );
    let text = page(&file);
    let doc = parse_page(&text);
    let in_range = rows.iter().filter(|r| r.1.starts_with("2026-01"));
    let (bytes_in, bytes_out) = in_range.fold((0, 0), |(i, o), r| (i + r.2, o + r.3));
    assert_eq!(
        data_values(with_class(&doc, "totals")),
        [bytes_in, bytes_out, bytes_in + bytes_out],
        "totals of every vhost, not only the top 4"
    );
    let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
    assert!(title.text().unwrap().contains("2026-01-01 to 2026-01-31"));

    let top: Value = serde_json::from_str(
        &db.report(&[&["top", "--limit", "4", "--format", "json"][..], &JANUARY].concat()),
    )
    .unwrap();
    let from_top: Vec<(String, Vec<u64>)> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let n = |k: &str| o[k].as_u64().unwrap();
            (
                o["vhost"].as_str().unwrap().to_string(),
                vec![n("in"), n("out"), n("total")],
            )
        })
        .collect();
    let table = table_rows(&doc);
    assert_eq!(table.len(), 4);
    assert_eq!(table, from_top, "the same rows and figures as top");
    let www: (u64, u64) = rows
        .iter()
        .filter(|r| r.0 == "www.example.org" && r.1.starts_with("2026-01"))
        .fold((0, 0), |(i, o), r| (i + r.2, o + r.3));
    let www_row = table.iter().find(|(v, _)| v == "www.example.org").unwrap();
    assert_eq!(www_row.1, [www.0, www.1, www.0 + www.1], "the rows written");

    // The chart inside is the chart of the same data and limit.
    let svg = doc.descendants().find(|n| n.has_tag_name("svg")).unwrap();
    let svg_text = &text[svg.range()];
    check_bars(
        &Document::parse(svg_text).unwrap(),
        &expected(&rows, "2026-01-01", "2026-01-31", 4),
    );
}

/// Names as they may come from Host headers or accounts: markup, quotes,
/// ampersands, non-ASCII. Each one short enough for the legend to show it
/// whole.
const HOSTILE: [&str; 3] = [
    "</svg><script>\"&'ü</script>",
    "<b onload='x'>&amp;é\"",
    "a&b]]><!-- €",
];

#[test]
fn hostile_vhosts_are_escaped_in_svg_and_html() {
    let db = Db::start();
    let mut rows: Vec<(&str, &str, u64, u64)> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, "2026-01-07", 1000 * (3 - i as u64), 1))
        .collect();
    // A control character cannot be in XML at all: shown escaped.
    rows.push(("line\nbreak\u{1b}", "2026-01-08", 1, 0));
    db.insert(&rows);
    let dir = TempDir::new("hostile");
    let svg = write_out(&db, &dir, "chart", "hostile.svg", &JANUARY);
    let html = write_out(&db, &dir, "html", "hostile.html", &JANUARY);

    let svg_text = std::fs::read_to_string(&svg).unwrap();
    let doc = Document::parse(&svg_text).unwrap_or_else(|e| panic!("not XML: {e}"));
    let names: Vec<String> = legend(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [HOSTILE[0], HOSTILE[1], HOSTILE[2], "line\\nbreak\\u{1b}"]
    );
    assert!(!svg_text.contains("<script") && !svg_text.contains("<b "));
    assert_eq!(svg_text.matches("</svg>").count(), 1);

    let page_text = page(&html);
    let doc = parse_page(&page_text);
    let table: Vec<String> = table_rows(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        table,
        [HOSTILE[0], HOSTILE[1], HOSTILE[2], "line\\nbreak\\u{1b}"]
    );
    assert!(page_text.contains("&lt;/svg&gt;&lt;script&gt;&quot;&amp;&#39;ü&lt;/script&gt;"));
    assert!(!page_text.contains("<script") && !page_text.contains("<b "));
    assert_eq!(
        page_text.matches("</svg>").count(),
        1,
        "only the chart's own"
    );
    assert!(!page_text.contains("]]>") && !page_text.contains("<!--"));
}

#[test]
fn an_empty_range_is_a_chart_that_says_so() {
    let db = Db::start();
    db.insert(&[("www.example.org", "2026-01-05", 1, 2)]);
    let dir = TempDir::new("empty");
    let march = ["--from", "2026-03-01", "--to", "2026-03-31"];
    let svg = write_out(&db, &dir, "chart", "march.svg", &march);
    let png = write_out(&db, &dir, "chart", "march.png", &march);
    let html = write_out(&db, &dir, "html", "march.html", &march);

    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = Document::parse(&text).unwrap();
    let texts = all_texts(&doc);
    assert!(texts
        .iter()
        .any(|t| t == "No traffic from 2026-03-01 to 2026-03-31"));
    assert!(texts.iter().any(|t| t == "Mar 1") && texts.iter().any(|t| t == "Mar 31"));
    assert!(legend(&doc).is_empty());
    assert_eq!(
        rects_by_fill(&doc).keys().collect::<Vec<_>>(),
        ["#FFFFFF"],
        "no bars"
    );
    assert_eq!(decode_png(&png).width, 1200);

    let text = page(&html);
    let doc = parse_page(&text);
    assert_eq!(data_values(with_class(&doc, "totals")), [0, 0, 0]);
    assert!(table_rows(&doc).is_empty());
    assert!(text.contains("No traffic in this range"));
}

#[test]
fn a_range_across_months_and_years_has_every_day() {
    let db = Db::start();
    let rows: Vec<Row> = ACROSS_YEARS
        .iter()
        .map(|(v, d, i, o)| (v.to_string(), d.to_string(), *i, *o))
        .collect();
    insert(&db, &rows);
    let dir = TempDir::new("years");
    let range = ACROSS_YEARS_RANGE;
    let svg = write_out(&db, &dir, "chart", "winter.svg", &range);
    let html = write_out(&db, &dir, "html", "winter.html", &range);

    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = Document::parse(&text).unwrap();
    check_bars(&doc, &expected(&rows, "2025-12-01", "2026-02-28", 8));
    assert!(all_texts(&doc).iter().any(|t| t == "2025-12-01"));
    // Bars at the slots of days 0, 30, 31 and 89 of 90: every day between
    // has its place, with or without rows.
    let legend_swatch = |r: &Node| {
        r.next_sibling_element()
            .is_some_and(|n| n.has_tag_name("text"))
    };
    let mut lefts: Vec<f64> = elements(&doc, "rect")
        .filter(|r| r.attribute("fill") != Some("#FFFFFF") && !legend_swatch(r))
        .map(|r| r.attribute("x").unwrap().parse().unwrap())
        .collect();
    lefts.sort_by(f64::total_cmp);
    lefts.dedup();
    assert_eq!(lefts.len(), 4, "{lefts:?}");
    let slot = (lefts[3] - lefts[0]) / 89.0;
    assert!(
        (lefts[1] - lefts[0] - 30.0 * slot).abs() <= 1.5,
        "{lefts:?}"
    );
    assert!((lefts[2] - lefts[1] - slot).abs() <= 1.5, "{lefts:?}");

    let doc_text = page(&html);
    let doc = parse_page(&doc_text);
    assert_eq!(
        data_values(with_class(&doc, "totals")),
        [30, 300, 330],
        "2025-12-01 to 2026-02-28 inclusive"
    );
}

/// Nothing on the page is fetched: no src or href anywhere, no URL in
/// any text or attribute (the SVG namespace is a name, not a resource),
/// no script, no CSS import or url().
#[test]
fn the_page_is_self_contained() {
    let db = Db::start();
    insert(&db, &january_rows());
    let dir = TempDir::new("self-contained");
    let html = write_out(&db, &dir, "html", "page.html", &JANUARY);
    let text = page(&html);
    let doc = parse_page(&text);
    for node in doc.descendants() {
        if node.is_element() {
            let tag = node.tag_name().name();
            assert!(
                !["script", "link", "img", "iframe", "object", "embed", "image", "use"]
                    .contains(&tag),
                "<{tag}>"
            );
            for attr in node.attributes() {
                assert!(
                    !["src", "href", "srcset", "action", "data"].contains(&attr.name()),
                    "<{tag} {}>",
                    attr.name()
                );
                assert!(
                    !attr.value().contains("http"),
                    "{}={}",
                    attr.name(),
                    attr.value()
                );
            }
        }
        if let Some(t) = node.text().filter(|_| node.is_text()) {
            assert!(!t.contains("http:") && !t.contains("https:"), "{t}");
            assert!(!t.contains("url(") && !t.contains("@import"), "{t}");
        }
    }
    assert_eq!(
        text.matches("http").count(),
        text.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "only the SVG namespace"
    );
}

/// Headless Chromium in a process group of its own: the group is killed
/// when this drops, also when a test panics, so no browser process (nor
/// its zygote or crash handler) outlives the test.
struct Chromium {
    pid: u32,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        common::signal_group(self.pid, libc::SIGKILL);
    }
}

/// Runs Debian's chromium headless on `url` with `args`, in a profile and
/// HOME under `dir`; returns what it printed on stdout.
fn chromium(dir: &Path, url: &str, args: &[String]) -> String {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let stdout = dir.join("chromium.out");
    let stderr = dir.join("chromium.err");
    let mut cmd = Command::new(common::program("chromium"));
    cmd.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        // As root Chromium refuses to start without --no-sandbox.
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--no-first-run", "--no-default-browser-check"])
        .args(["--disable-dev-shm-usage", "--disable-crash-reporter"])
        .args(["--hide-scrollbars", "--force-device-scale-factor=1"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap());
    common::own_group_dies_with_test(&mut cmd);
    let mut child = cmd.spawn().expect("spawn chromium");
    let _group = Chromium { pid: child.id() };
    let status = common::wait_for(Duration::from_secs(120), || child.try_wait().ok().flatten());
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("chromium did not finish:\n{}", log()));
    assert!(status.success(), "chromium {status:?}:\n{}", log());
    std::fs::read_to_string(&stdout).unwrap()
}

/// The page as a person sees it: Chromium lays it out and paints it; the
/// screenshot shows the chart's colours. Chromium's own HTML parser finds
/// no script and no stray element in a hostile name.
#[test]
fn chromium_renders_the_page() {
    let db = Db::start();
    let mut rows = january_rows();
    rows.push((HOSTILE[0].to_string(), "2026-01-20".into(), 10, 10));
    insert(&db, &rows);
    let dir = TempDir::new("chromium");
    let html = write_out(&db, &dir, "html", "page.html", &JANUARY);
    let svg = write_out(&db, &dir, "chart", "chart.svg", &JANUARY);
    let url = format!("file://{}", path_arg(&html));

    let shot = dir.path().join("page.png");
    chromium(
        dir.path(),
        &url,
        &[
            format!("--screenshot={}", path_arg(&shot)),
            "--window-size=1280,1600".into(),
        ],
    );
    let image = decode_png(&shot);
    assert_eq!((image.width, image.height), (1280, 1600));
    assert!(image.distinct_colours() > 50, "a page, not a blank");
    let legend = legend(&Document::parse(&std::fs::read_to_string(&svg).unwrap()).unwrap());
    assert!(legend.len() >= 6, "{legend:?}");
    for (name, fill) in &legend[..6] {
        let pixels = image.count(rgb(fill));
        assert!(pixels > 200, "{name} ({fill}): {pixels} pixels");
    }

    let dom = chromium(dir.path(), &url, &["--dump-dom".to_string()]);
    assert!(dom.contains("<table class=\"top\">"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    assert!(dom.contains("&lt;/svg&gt;&lt;script&gt;"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 1, "{dom}");
}

#[test]
fn chart_arguments_and_write_failures() {
    let db = Db::start();
    let dir = TempDir::new("chart-args");
    for args in [
        &["chart", "--out", "chart.jpg"][..],
        &["chart", "--out", "chart"],
        &["chart", "--out", "a.svg", "--limit", "0"],
        &["chart"],
        &["html"],
    ] {
        let out = bw_report(&db.flags(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
    }
    let nowhere: PathBuf = dir.path().join("no/such/dir/chart.svg");
    let out = bw_report(&db.flags(), &["chart", "--out", path_arg(&nowhere)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains(path_arg(&nowhere)), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// docs/sample-month.sql, the rows of the README's picture, loads as the
/// README says and draws: ten vhosts over November 2026 in a database of
/// their own, the chart's legend in `top`'s order.
#[test]
fn the_readme_pictures_rows_load_and_chart() {
    let db = Db::start();
    let sql = common::project_dir().join("docs/sample-month.sql");
    db.server.exec(&std::fs::read_to_string(&sql).unwrap());
    db.server.exec(&format!(
        "GRANT SELECT ON bw_counter_sample.* TO '{}'@'127.0.0.1'",
        support::READER
    ));
    let mut flags = db.flags();
    let at = flags.iter().position(|f| f == "--db").unwrap() + 1;
    flags[at] = "bw_counter_sample".into();
    let november = ["--from", "2026-11-01", "--to", "2026-11-30"];
    let out = bw_report(
        &flags,
        &[&november[..], &["top", "--format", "json"]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vhost"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[..2], ["static.example.net", "www.example.org"]);

    let dir = TempDir::new("sample-month");
    let svg = dir.path().join("chart.svg");
    let out = bw_report(
        &flags,
        &[&november[..], &["chart", "--out", path_arg(&svg)]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let shown: Vec<String> = legend(&Document::parse(&text).unwrap())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(shown[..8], names[..8]);
    assert_eq!(shown[8], "others (2 vhosts)");
}
