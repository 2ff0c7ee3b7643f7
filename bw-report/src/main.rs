//! bw-report: what mod_bw_counter's table says, per vhost and day, without
//! writing SQL. This file only wires the layers together; each decision
//! lives in a module named after it.

mod chart;
mod cli;
mod dates;
mod error;
mod exporter;
mod query;
mod render;
mod report;
mod source;
mod units;
// The module's own parser of `bw_counter.mysql_server` and table names
// (pure functions of the text, std only): compiled in here as well, so that
// both read `host:port`, `[v6]:port`, `/socket` and `localhost` by one rule.
#[path = "../../src/config/values.rs"]
mod values;
// Likewise `bw_counter.mysql_ssl`'s modes, and how the module connects
// (TLS meanings, deadlines, exactly where configured).
#[path = "../../src/flush/connect.rs"]
mod connect;
#[path = "../../src/config/tls.rs"]
#[allow(dead_code)] // TlsMode::name() serves the module's log lines
mod tls;
// connect.rs names these through `super`, as in the module.
use tls::TlsMode;
use values::Server;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use cli::{Cli, Command};
use error::Error;

fn main() -> ExitCode {
    let cli = cli::parse_or_exit();
    let today = chrono::Local::now().date_naive();
    match run(cli, today) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Checks the arguments before touching the database, so that a typo is a
/// usage error even when the server is down.
fn run(cli: Cli, today: chrono::NaiveDate) -> Result<(), Error> {
    let range = dates::Range::resolve(cli.range.from, cli.range.to, today)?;
    let source = source::locate(&cli.db)?;
    let mut table = query::Table::open(&source)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cli.command {
        Command::Top { limit, format } => {
            let totals = table.totals(&range, &cli.range.vhosts)?;
            let top = report::top(totals, limit.map(|n| n as usize));
            render::top(&mut out, format, &range, &top)?;
        }
        Command::Chart { limit, out } => {
            let rows = table.daily(&range, &cli.range.vhosts)?;
            render::chart_file(&out, &chart::build(&rows, &range, limit as usize))?;
        }
        Command::Html { limit, out } => {
            let rows = table.daily(&range, &cli.range.vhosts)?;
            let top = report::top(report::vhost_totals(&rows), Some(limit as usize));
            let chart = chart::build(&rows, &range, limit as usize);
            render::html_file(&out, &range, &cli.range.vhosts, &top, &chart)?;
        }
        Command::Daily { format } => {
            let (days, all) = report::daily(table.daily(&range, &cli.range.vhosts)?);
            render::daily(&mut out, format, &range, &days, &all)?;
        }
        Command::Exporter(args) => exporter::serve(table, &source, &args, &cli.range.vhosts)?,
    }
    out.flush()?;
    Ok(())
}
