//! Drawing a [`Chart`] with plotters: one drawing, on the SVG backend
//! (text left to the viewer's fonts, so no font file is read: nothing
//! here asks plotters to measure text) and on the bitmap backend, whose
//! text ab_glyph renders from a font file read at run time.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{Chart, Series};
use crate::error::Error;

/// Width and height in pixels (the SVG's viewBox too).
pub const SIZE: (u32, u32) = (1200, 600);
/// The PNG's font: Debian's fonts-dejavu-core.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT_PACKAGE: &str = "fonts-dejavu-core";
/// Another font file for the PNG (tests use it to take the font away).
pub const FONT_VARIABLE: &str = "BW_REPORT_FONT";

/// Tableau's ten colours less their grey (kept for "others"): distinct in
/// hue and lightness, and readable on white.
const PALETTE: [RGBColor; 9] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
];
pub const OTHERS: RGBColor = RGBColor(0xb0, 0xb0, 0xb0);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const FAINT: RGBColor = RGBColor(0x88, 0x88, 0x88);

const TITLE_HEIGHT: u32 = 50;
const LEGEND_WIDTH: u32 = 280;
/// Longer names are cut in the middle in the legend (the html table
/// shows them whole).
const LEGEND_CHARS: usize = 30;

/// The colour of the `index`th series: the palette, then hues a golden
/// angle apart (past nine series no palette stays distinct anyway).
pub fn colour(series: &Series, index: usize) -> RGBColor {
    if series.others {
        return OTHERS;
    }
    PALETTE.get(index).copied().unwrap_or_else(|| {
        let hue = (index as f64 * 137.508).rem_euclid(360.0) / 360.0;
        let (r, g, b) = HSLColor(hue, 0.55, 0.5).to_backend_color().rgb;
        RGBColor(r, g, b)
    })
}

/// `#rrggbb`, for CSS.
pub fn hex(colour: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2)
}

/// plotters' mesh takes our tick positions (`with_key_points`) and label
/// texts only on integer axes: a day is this many x units wide, and the
/// byte axis runs from 0 to this many y units.
const DAY_WIDTH: i64 = 100;
const Y_UNITS: f64 = 1_000_000.0;

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, Error> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root, chart).map_err(drawing_failed)?;
        root.present().map_err(drawing_failed)?;
    }
    Ok(text)
}

/// The chart as a PNG image, its text drawn with the font in `font`.
pub fn png(chart: &Chart, font: &Path) -> Result<Vec<u8>, Error> {
    register_font(font)?;
    let (width, height) = SIZE;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, chart).map_err(drawing_failed)?;
        root.present().map_err(drawing_failed)?;
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&rgb))
        .map_err(drawing_failed)?;
    Ok(png)
}

/// The font file the PNG's text is drawn with: $BW_REPORT_FONT, or [`FONT`].
pub fn font_file() -> PathBuf {
    std::env::var_os(FONT_VARIABLE).map_or_else(|| PathBuf::from(FONT), PathBuf::from)
}

/// Reads `file` and gives it to plotters as its sans-serif font.
fn register_font(file: &Path) -> Result<(), Error> {
    let unavailable = |why: String| {
        Error::Unavailable(format!(
            "cannot draw the PNG's text: font {}: {why}; it comes with Debian's {FONT_PACKAGE} \
             (an SVG chart needs no font)",
            file.display()
        ))
    };
    let bytes = std::fs::read(file).map_err(|e| unavailable(e.to_string()))?;
    // plotters keeps registered fonts for the life of the process; one
    // font file, read once per run.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| unavailable("not a TrueType or OpenType font".into()))
}

fn drawing_failed(e: impl std::fmt::Display) -> Error {
    Error::Output(io::Error::other(format!("drawing the chart: {e}")))
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(TITLE_HEIGHT);
    let title = format!(
        "Traffic per day (bytes in + out), {} to {}",
        chart.range.from, chart.range.to
    );
    let centred = Pos::new(HPos::Center, VPos::Center);
    head.draw(&Text::new(
        title,
        (SIZE.0 as i32 / 2, TITLE_HEIGHT as i32 / 2 + 4),
        ("sans-serif", 24).into_font().color(&INK).pos(centred),
    ))?;
    let (plot, legend_area) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    bars(&plot, chart)?;
    legend(&legend_area, chart)
}

/// The axes, the grid and the stacked bars; or "no traffic".
fn bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Drawn<DB> {
    let days = chart.days.len() as i64;
    let x_of = |day: usize, fraction: i64| day as i64 * DAY_WIDTH + fraction;
    let y_of = |bytes: f64| (bytes / chart.y_axis.top * Y_UNITS).round() as i64;
    let x_labels: Vec<(i64, &str)> = chart
        .x_labels
        .iter()
        .map(|(day, text)| (x_of(*day, DAY_WIDTH / 2), text.as_str()))
        .collect();
    let y_labels: Vec<(i64, &str)> = chart
        .y_axis
        .ticks
        .iter()
        .map(|(bytes, text)| (y_of(*bytes), text.as_str()))
        .collect();
    let mut cc = ChartBuilder::on(area)
        .margin_top(8)
        .margin_left(12)
        .margin_right(16)
        .margin_bottom(12)
        .x_label_area_size(36)
        .y_label_area_size(100)
        .build_cartesian_2d(
            (0..days * DAY_WIDTH).with_key_points(x_labels.iter().map(|l| l.0).collect()),
            (0..Y_UNITS as i64).with_key_points(y_labels.iter().map(|l| l.0).collect()),
        )?;
    let label = |labels: &[(i64, &str)], at: i64| {
        let found = labels.iter().find(|(point, _)| *point == at);
        found.map_or_else(String::new, |(_, text)| text.to_string())
    };
    let x_label = |x: &i64| label(&x_labels, *x);
    let y_label = |y: &i64| label(&y_labels, *y);
    cc.configure_mesh()
        .disable_x_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .axis_style(FAINT)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 15).into_font().color(&INK))
        .y_desc("bytes in + out per day")
        .axis_desc_style(("sans-serif", 16).into_font().color(&INK))
        .draw()?;
    let colours: Vec<RGBColor> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| colour(s, i))
        .collect();
    // A gap between bars while they are a few pixels wide; past that the
    // gaps would only flicker, and the bars become one area.
    let gap = if days <= 100 { DAY_WIDTH / 8 } else { 0 };
    cc.draw_series(chart.segments().into_iter().map(|seg| {
        let (left, right) = (x_of(seg.day, gap), x_of(seg.day, DAY_WIDTH - gap));
        let (low, high) = (y_of(seg.low as f64), y_of(seg.high as f64));
        Rectangle::new([(left, low), (right, high)], colours[seg.series].filled())
    }))?;
    if chart.is_empty() {
        let message = format!("No traffic from {} to {}", chart.range.from, chart.range.to);
        let centred = Pos::new(HPos::Center, VPos::Center);
        cc.plotting_area().draw(&Text::new(
            message,
            (days * DAY_WIDTH / 2, Y_UNITS as i64 / 2),
            ("sans-serif", 26).into_font().color(&FAINT).pos(centred),
        ))?;
    }
    Ok(())
}

/// A swatch and a name per series, top to bottom in the order of the
/// bars bottom up, spaced to fit however many there are.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Drawn<DB> {
    let count = chart.series.len().max(1) as i32;
    let room = (SIZE.1 - TITLE_HEIGHT) as i32 - 40;
    let row = (room / count).clamp(6, 26);
    let font_size = f64::from((row * 2 / 3).clamp(6, 16));
    let left = Pos::new(HPos::Left, VPos::Center);
    for (i, series) in chart.series.iter().enumerate() {
        let middle = 20 + row * i as i32 + row / 2;
        let half = (row / 3).clamp(2, 8);
        area.draw(&Rectangle::new(
            [(4, middle - half), (4 + 2 * half, middle + half)],
            colour(series, i).filled(),
        ))?;
        area.draw(&Text::new(
            legend_name(&series.name),
            (4 + 2 * half + 10, middle),
            ("sans-serif", font_size).into_font().color(&INK).pos(left),
        ))?;
    }
    Ok(())
}

/// The name as the legend shows it: control characters escaped (SVG,
/// being XML, cannot hold most of them even escaped), cut in the middle
/// past [`LEGEND_CHARS`]. plotters escapes `<`, `&` and quotes itself.
fn legend_name(name: &str) -> String {
    let name = super::table::printable(name);
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= LEGEND_CHARS {
        return name;
    }
    let keep = (LEGEND_CHARS - 1) / 2;
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart;
    use crate::dates::Range;
    use crate::report::DayBytes;
    use chrono::NaiveDate;

    #[test]
    fn legend_names_are_printable_and_fit() {
        assert_eq!(legend_name("www.example.org"), "www.example.org");
        assert_eq!(legend_name("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(legend_name("<&\"'>"), "<&\"'>", "plotters escapes these");
        let long = format!("{}.example.org", "x".repeat(40));
        let shown = legend_name(&long);
        assert_eq!(shown.chars().count(), 29);
        assert!(shown.starts_with("xxxxxxxxxxxxxx…") && shown.ends_with("x.example.org"));
    }

    #[test]
    fn colours_are_distinct_and_others_are_grey() {
        let series = |others| Series {
            name: String::new(),
            others,
            per_day: Vec::new(),
        };
        let mut seen: Vec<RGBColor> = (0..20).map(|i| colour(&series(false), i)).collect();
        seen.push(colour(&series(true), 3));
        let mut distinct = seen.clone();
        distinct.sort_by_key(|c| (c.0, c.1, c.2));
        distinct.dedup();
        assert_eq!(distinct.len(), seen.len(), "{seen:?}");
        assert_eq!(hex(colour(&series(true), 0)), "#b0b0b0");
        assert_eq!(hex(colour(&series(false), 0)), "#4e79a7");
    }

    /// The SVG backend measures no text: it draws without a font file.
    #[test]
    fn svg_needs_no_font() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let range = Range { from: day, to: day };
        let rows = [DayBytes {
            day,
            vhost: "a.example".into(),
            bytes_in: 1,
            bytes_out: 2,
        }];
        let svg = svg(&chart::build(&rows, &range, 8)).unwrap();
        assert!(
            svg.starts_with("<svg width=\"1200\" height=\"600\""),
            "{svg}"
        );
        assert!(svg.contains("a.example"));
    }
}
