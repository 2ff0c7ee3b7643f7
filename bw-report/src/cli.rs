//! The command line, declared with clap's derive. Argument errors exit
//! with 64 (EX_USAGE) rather than clap's 2, which bw-report keeps for
//! database errors.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::chart;
use crate::error::EXIT_USAGE;

#[derive(Debug, Parser)]
#[command(
    name = "bw-report",
    version,
    about = "Reports on mod_bw_counter's table: bytes per virtual host and day"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the table is: from a lighttpd configuration, from flags, or both
/// (a flag wins over the configuration).
#[derive(Debug, Default, Args)]
pub struct DbArgs {
    /// lighttpd configuration to read the bw_counter.* options from (through `lighttpd -p`)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// host, host:port, [IPv6]:port, /unix/socket; localhost is /run/mysqld/mysqld.sock
    /// (repeat for a list, tried in order, as bw_counter.mysql_server's)
    #[arg(long, global = true)]
    pub server: Vec<String>,
    /// database name
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// table name, or db.table
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// MySQL user (needs only SELECT)
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// file whose first line is the password
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// TLS: disable, prefer, require, verify_ca or verify_identity
    #[arg(long, global = true, value_name = "MODE")]
    pub ssl: Option<String>,
    /// CA certificate(s) (PEM) for verify_ca and verify_identity
    #[arg(long, global = true, value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,
}

/// Which days and vhosts.
#[derive(Debug, Default, Args)]
pub struct RangeArgs {
    /// first day, YYYY-MM-DD (default: the first day of --to's month)
    #[arg(long, global = true, value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// last day, inclusive, YYYY-MM-DD (default: today, local time)
    #[arg(long, global = true, value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// only this vhost (repeat for more)
    #[arg(long = "vhost", global = true, value_name = "NAME")]
    pub vhosts: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bytes in, out and total per vhost over the range, biggest first
    Top {
        /// only the N biggest vhosts (shares stay of the grand total)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Stacked bars of bytes in + out per day: the N biggest vhosts and the others
    Chart {
        /// vhosts with a colour of their own; the rest are "others", in grey
        #[arg(long, value_name = "N", default_value_t = chart::DEFAULT_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// FILE.svg or FILE.png (1200x600; PNG text needs fonts-dejavu-core)
        #[arg(long, value_name = "FILE", value_parser = parse_chart_file)]
        out: ChartFile,
    },
    /// One self-contained HTML page: totals, the top table and the chart
    Html {
        /// vhosts in the table and with a colour in the chart (totals are of all)
        #[arg(long, value_name = "N", default_value_t = chart::DEFAULT_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// the page to write
        #[arg(long, value_name = "FILE.html")]
        out: PathBuf,
    },
    /// One line per day and vhost
    Daily {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Serve /metrics for Prometheus: bytes per vhost, all days summed, and today's
    Exporter(ExporterArgs),
}

/// `bw-report exporter`. --from/--to are refused: the counters sum every
/// day of the table, and today is the local date.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// where to serve /metrics: 127.0.0.1:PORT, [::1]:PORT, or an address of this host
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// days before today whose rows every scrape reads again (late rows land there); older days are summed once a day
    #[arg(long, value_name = "N", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub recent_days: u32,
    /// ledger table whose newest `at` is the time of the newest write (default: <table>_batches, as the module's)
    #[arg(long, value_name = "NAME", value_parser = crate::values::parse_table)]
    pub ledger_table: Option<crate::values::TableName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// aligned columns in binary units (KiB, MiB, ...)
    Table,
    /// exact byte counts, RFC 4180 quoting
    Csv,
    /// exact byte counts, an array of objects
    Json,
}

/// Where `chart` writes, and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    pub path: PathBuf,
    pub format: ChartFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartFormat {
    Svg,
    Png,
}

/// The format is the file's extension (any case): a chart written as
/// SVG into `chart.png` would be a trap.
pub fn parse_chart_file(s: &str) -> Result<ChartFile, String> {
    let path = PathBuf::from(s);
    let extension = path.extension().and_then(|e| e.to_str());
    let format = match extension.map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => ChartFormat::Svg,
        Some("png") => ChartFormat::Png,
        _ => return Err(format!("{s:?}: the chart is FILE.svg or FILE.png")),
    };
    Ok(ChartFile { path, format })
}

/// The arguments, or clap's message and exit status 64 (help and
/// --version print and exit 0, as usual).
pub fn parse_or_exit() -> Cli {
    match Cli::try_parse().and_then(refuse_misplaced) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(i32::from(EXIT_USAGE));
        }
        Err(e) => e.exit(),
    }
}

/// What the derive cannot say: global flags a command has no use for
/// (clap checks conflicts only where the flag was written).
fn refuse_misplaced(cli: Cli) -> Result<Cli, clap::Error> {
    let dated = cli.range.from.is_some() || cli.range.to.is_some();
    if dated && matches!(cli.command, Command::Exporter(_)) {
        return Err(<Cli as clap::CommandFactory>::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "exporter sums every day of the table: --from and --to do not apply",
        ));
    }
    Ok(cli)
}

/// Exactly `YYYY-MM-DD` of a real date: chrono alone would also take
/// `2026-1-5` or `+2026-01-05`, which nobody means.
pub fn parse_day(s: &str) -> Result<NaiveDate, String> {
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let date = shape_ok
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten();
    date.ok_or_else(|| format!("{s:?} is not a day written YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bw-report").chain(args.iter().copied()))
            .and_then(refuse_misplaced)
    }

    #[test]
    fn days_must_be_real_and_written_in_full() {
        assert_eq!(
            parse_day("2024-02-29"),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        for bad in [
            "2026-13-01",
            "2025-02-29",
            "2026-1-05",
            "+2026-01-0",
            "2026/01/05",
            "",
            "2026-01-05 ",
        ] {
            assert!(parse_day(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        let cli = parse(&[
            "--db", "d", "top", "--vhost", "a", "--vhost", "b", "--limit", "3",
        ])
        .unwrap();
        assert_eq!(cli.db.db.as_deref(), Some("d"));
        assert_eq!(cli.range.vhosts, ["a", "b"]);
        let Command::Top { limit, format } = cli.command else {
            panic!("not top")
        };
        assert_eq!((limit, format), (Some(3), Format::Table));
        let cli = parse(&["daily", "--format", "csv", "--from", "2026-01-02"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Daily {
                format: Format::Csv
            }
        ));
        assert_eq!(cli.range.from, NaiveDate::from_ymd_opt(2026, 1, 2));
    }

    #[test]
    fn chart_format_is_the_extension() {
        let cli = parse(&["chart", "--out", "/tmp/Traffic.PNG"]).unwrap();
        let Command::Chart { limit, out } = cli.command else {
            panic!("not chart")
        };
        assert_eq!(limit, chart::DEFAULT_LIMIT);
        assert_eq!(out.format, ChartFormat::Png);
        assert_eq!(out.path, PathBuf::from("/tmp/Traffic.PNG"));
        assert_eq!(
            parse_chart_file("a.b/c.svg").map(|f| f.format),
            Ok(ChartFormat::Svg)
        );
        assert!(parse_chart_file("svg").is_err());
        assert!(parse_chart_file("c.svg.gz").is_err());
        let cli = parse(&["html", "--out", "page.html", "--limit", "3"]).unwrap();
        assert!(matches!(cli.command, Command::Html { limit: 3, .. }));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["top", "--from", "2026-13-01"][..],
            &["top", "--limit", "0"],
            &["top", "--format", "xml"],
            &["chart", "--out", "chart.jpg"],
            &["chart", "--out", "chart"],
            &["chart"],
            &["chart", "--out", "a.svg", "--limit", "0"],
            &["html"],
            &["nope"],
            &[],
            // --from/--to with the exporter, written before or after it
            // (its other refusals: tests/exporter.rs).
            &[
                "exporter",
                "--listen",
                "127.0.0.1:9100",
                "--from",
                "2026-01-01",
            ],
            &["--to", "2026-01-01", "exporter", "--listen", "[::1]:9100"],
        ] {
            let e = parse(bad).expect_err("should be refused");
            assert!(e.use_stderr(), "{bad:?}: {e}");
        }
    }

    #[test]
    fn exporter_takes_an_address_and_the_window() {
        let cli = parse(&["exporter", "--listen", "[::1]:9100", "--vhost", "a"]).unwrap();
        let Command::Exporter(args) = cli.command else {
            panic!("not exporter")
        };
        assert_eq!(args.listen, "[::1]:9100".parse().unwrap());
        assert_eq!((args.recent_days, args.ledger_table), (7, None));
        assert_eq!(cli.range.vhosts, ["a"]);
        let cli = parse(&[
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--recent-days",
            "30",
            "--ledger-table",
            "db.ledger",
        ])
        .unwrap();
        let Command::Exporter(args) = cli.command else {
            panic!("not exporter")
        };
        assert_eq!(args.recent_days, 30);
        assert_eq!(args.ledger_table.unwrap().quoted(), "`db`.`ledger`");
    }
}
