//! `bw-report exporter`: the table as Prometheus metrics on /metrics, so
//! that a fleet of web servers writing into one table is one scrape.
//!
//! This thread reads the database and builds the answers, one request at
//! a time (scrapes are seconds apart; one connection is enough); each
//! answer is written to its client by a thread of its own, so a client
//! that reads slowly holds up nobody.

pub mod cache;
mod metrics;
mod outage;

use std::thread;
use std::time::{Duration, Instant};

use chrono::{Local, NaiveDate, NaiveTime, TimeZone};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::cli::ExporterArgs;
use crate::error::Error;
use crate::query::{Ledger, Table};
use crate::source::Source;
use crate::values::{check_identifier, TableName};
use cache::{Books, Recent, Rows, Sums};
use metrics::Exposition;
use outage::Outage;

/// Serves /metrics until the process is stopped. `table` is open (so a
/// database that is down at start is exit status 2, before listening);
/// `vhosts`, when not empty, are the only ones shown.
pub fn serve(
    table: Table,
    source: &Source,
    args: &ExporterArgs,
    vhosts: &[String],
) -> Result<(), Error> {
    let server = Server::http(args.listen)
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", args.listen)))?;
    let mut exporter = Exporter::new(table, source, args, vhosts);
    // The first sums of the past days, before the first scrape asks.
    exporter.scrape()?;
    log(&format!(
        "serving http://{}/metrics from {source}",
        server.server_addr()
    ));
    loop {
        let request = server.recv().map_err(|e| {
            // tiny_http stops accepting after a failed accept(2) (say, out
            // of file descriptors): exit, for the service manager to restart.
            Error::Output(std::io::Error::new(
                e.kind(),
                format!("the HTTP listener stopped: {e}"),
            ))
        })?;
        let answer = exporter.answer(request.method(), request.url());
        send(request, answer);
    }
}

/// What the exporter keeps between scrapes.
struct Exporter {
    source: Source,
    /// None after a failure: the next scrape connects anew.
    table: Option<Table>,
    books: Books,
    only: Option<Vec<String>>,
    /// None when there is no ledger to read (or it could not be read).
    ledger: Option<TableName>,
    outage: Outage,
}

impl Exporter {
    fn new(table: Table, source: &Source, args: &ExporterArgs, vhosts: &[String]) -> Exporter {
        let mut only = vhosts.to_vec();
        only.sort();
        only.dedup();
        Exporter {
            source: source.clone(),
            table: Some(table),
            books: Books::new(args.recent_days),
            only: (!only.is_empty()).then_some(only),
            ledger: args
                .ledger_table
                .clone()
                .or_else(|| default_ledger(&source.table)),
            outage: Outage::default(),
        }
    }

    fn answer(&mut self, method: &Method, url: &str) -> Answer {
        match route(method, url) {
            Route::NotFound => Answer::text(404, "not found: the metrics are at /metrics\n".into()),
            Route::NotAllowed => Answer::text(405, "/metrics answers GET and HEAD\n".into()),
            Route::Metrics => self.metrics(Instant::now()),
        }
    }

    /// A scrape, or the error that stops it: 503, so that Prometheus marks
    /// the target down (`up` 0) rather than keeping figures nobody read.
    fn metrics(&mut self, now: Instant) -> Answer {
        if let Some(error) = self.outage.wait(now) {
            return Answer::text(503, format!("{error}\n"));
        }
        match self.scrape() {
            Ok(body) => {
                if let Some(line) = self.outage.ended(now) {
                    log(&line);
                }
                Answer {
                    status: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body,
                }
            }
            Err(e) => {
                self.table = None;
                let error = e.one_line();
                if let Some(line) = self.outage.failed(now, error.clone()) {
                    log(&line);
                }
                Answer::text(503, format!("{error}\n"))
            }
        }
    }

    /// The table now, as Prometheus text.
    fn scrape(&mut self) -> Result<String, Error> {
        let today = Local::now().date_naive();
        let table = connected(&mut self.table, &self.source)?;
        let mut rows = TableRows {
            table,
            only: self.only.as_deref(),
        };
        let snapshot = self.books.scrape(&mut rows, today)?;
        let newest_write = newest_write(rows.table, &mut self.ledger)?;
        let exposition = Exposition {
            newest_day_start: snapshot.newest_day.and_then(local_midnight),
            snapshot,
            newest_write,
        };
        metrics::text(exposition)
            .map_err(|_| Error::Database("cannot write the metrics as text".into()))
    }
}

/// The table's reads, as the books ask for them.
struct TableRows<'a> {
    table: &'a mut Table,
    only: Option<&'a [String]>,
}

impl Rows for TableRows<'_> {
    type Error = Error;

    fn before(&mut self, cutoff: NaiveDate) -> Result<Vec<(String, Sums)>, Error> {
        self.table.sums_before(cutoff, self.only)
    }

    fn since(&mut self, cutoff: NaiveDate, today: NaiveDate) -> Result<Vec<Recent>, Error> {
        let all;
        let vhosts = match self.only {
            Some(only) => only,
            None => {
                all = self.table.vhosts()?;
                &all
            }
        };
        self.table.sums_since(cutoff, today, vhosts)
    }
}

/// The open connection if it still answers (the server may have restarted
/// since the last scrape), else a new one.
fn connected<'a>(slot: &'a mut Option<Table>, source: &Source) -> Result<&'a mut Table, Error> {
    if slot.as_mut().is_some_and(|t| !t.answers()) {
        *slot = None;
    }
    let table = match slot.take() {
        Some(table) => table,
        None => Table::open(source)?,
    };
    Ok(slot.insert(table))
}

/// The newest write the ledger knows of. A ledger that cannot be read is
/// said once and not asked again (its figure is left out).
fn newest_write(table: &mut Table, ledger: &mut Option<TableName>) -> Result<Option<i64>, Error> {
    let Some(name) = ledger.as_ref() else {
        return Ok(None);
    };
    match table.newest_write(name)? {
        Ledger::Newest(at) => Ok(at),
        Ledger::Unreadable(why) => {
            log(&format!(
                "the ledger table {name} cannot be read ({why}): \
                 bw_counter_newest_write_timestamp_seconds is left out"
            ));
            *ledger = None;
            Ok(None)
        }
    }
}

/// The module's default: `<table>_batches` next to the table.
fn default_ledger(table: &TableName) -> Option<TableName> {
    let name = format!("{}_batches", table.table);
    check_identifier(&name).ok()?;
    Some(TableName {
        schema: table.schema.clone(),
        table: name,
    })
}

/// Unix time of the local midnight that starts `day` (None in the rare
/// zone whose clocks skip that midnight).
fn local_midnight(day: NaiveDate) -> Option<i64> {
    Local
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.timestamp())
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    NotAllowed,
}

fn route(method: &Method, url: &str) -> Route {
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    match (path, method) {
        ("/metrics", Method::Get | Method::Head) => Route::Metrics,
        ("/metrics", _) => Route::NotAllowed,
        _ => Route::NotFound,
    }
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn text(status: u16, body: String) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// Writes the answer on a thread of its own.
fn send(request: Request, answer: Answer) {
    let mut response = Response::from_string(answer.body).with_status_code(answer.status);
    for (name, value) in [
        ("Content-Type", answer.content_type),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(header) = Header::from_bytes(name, value) {
            response.add_header(header);
        }
    }
    if answer.status == 405 {
        if let Ok(allow) = Header::from_bytes("Allow", "GET, HEAD") {
            response.add_header(allow);
        }
    }
    let writer = thread::Builder::new()
        .name("respond".into())
        .spawn(move || {
            // A client that went away is its own business.
            let _ = request.respond(response);
        });
    if let Err(e) = writer {
        log(&format!("cannot start a thread to answer a request: {e}"));
        thread::sleep(Duration::from_millis(100));
    }
}

fn log(line: &str) {
    eprintln!("bw-report exporter: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_is_served() {
        assert_eq!(route(&Method::Get, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::Head, "/metrics?x=1"), Route::Metrics);
        assert_eq!(route(&Method::Post, "/metrics"), Route::NotAllowed);
        for other in ["/", "/metrics/", "/Metrics", "/metricsx", "metrics", "*"] {
            assert_eq!(route(&Method::Get, other), Route::NotFound, "{other}");
        }
    }

    #[test]
    fn the_ledger_defaults_to_the_modules_name() {
        let table = crate::values::parse_table("stats.traffic").unwrap();
        assert_eq!(
            default_ledger(&table).unwrap().quoted(),
            "`stats`.`traffic_batches`"
        );
        let long = crate::values::parse_table(&"t".repeat(64)).unwrap();
        assert_eq!(default_ledger(&long), None, "too long to add _batches");
    }
}
