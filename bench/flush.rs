//! Flush throughput: 100k distinct (host, day) rows into a private MariaDB,
//! the module's batched transaction (flush::Link::deliver) against one
//! autocommitted upsert per row (the original module's way), interleaved,
//! plus the statement-size curve. Targets: batched <= 2 s, >= 20x per-row.
//!   cargo bench --bench flush            (make bench runs all benchmarks)

#[path = "../tests/common/mod.rs"]
mod common;
mod link;

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

use common::mariadb::{MariaDb, DATABASE, PASSWORD, TABLE, USER};
use mod_bw_counter::counters::{Batch, Row, Traffic};
use mod_bw_counter::day::Day;
use mod_bw_counter::flush::Sink;

fn rows(n: usize, round: usize) -> Vec<Row> {
    let mut v: Vec<Row> = (0..n)
        .map(|i| Row {
            host: format!("host-{i:06}.example").into(),
            day: Day(20_420 + round as i32),
            traffic: Traffic {
                bytes_in: 1000 + i as u64,
                bytes_out: 50_000 + i as u64,
            },
        })
        .collect();
    v.sort_by(|a, b| (a.host.as_bytes(), a.day).cmp(&(b.host.as_bytes(), b.day)));
    v
}

/// Every measurement starts from an empty table, so that none pays for the
/// rows of the ones before it.
fn empty_table(db: &MariaDb) {
    db.exec(&format!("TRUNCATE TABLE `{DATABASE}`.`{TABLE}`"));
}

fn batched(db: &MariaDb, rows: Vec<Row>, rows_per_statement: usize, id: &str) -> Duration {
    empty_table(db);
    let mut l = link::link(&db.tcp_address());
    l.set_rows_per_statement(rows_per_statement);
    let batch = Batch {
        id: id.into(),
        rows,
    };
    let t = Instant::now();
    l.deliver(&batch).expect("batched flush");
    t.elapsed()
}

fn per_row(db: &MariaDb, rows: &[Row]) -> Duration {
    let mut c = Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(db.port)
            .prefer_socket(false)
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .db_name(Some(DATABASE)),
    )
    .unwrap();
    let sql = format!(
        "INSERT INTO `{TABLE}` (`vhost`, `day`, `in`, `out`) VALUES (?,?,?,?) \
         ON DUPLICATE KEY UPDATE `in` = `in` + VALUES(`in`), `out` = `out` + VALUES(`out`)"
    );
    empty_table(db);
    let t = Instant::now();
    for r in rows {
        let (y, m, d) = r.day.ymd();
        c.exec_drop(
            &sql,
            (
                r.host.as_bytes(),
                format!("{y:04}-{m:02}-{d:02}"),
                r.traffic.bytes_in,
                r.traffic.bytes_out,
            ),
        )
        .unwrap();
    }
    t.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let db = MariaDb::start();
    let n = 100_000;
    let per_row_n = 5_000; // per-row is slow: time 5k rows, scale to 100k
    let rounds = 5;
    let (mut b, mut p) = (vec![], vec![]);
    for round in 0..rounds {
        b.push(
            batched(
                &db,
                rows(n, round),
                mod_bw_counter::flush::ROWS_PER_STATEMENT,
                &format!("bench/b/{round}"),
            )
            .as_secs_f64(),
        );
        p.push(per_row(&db, &rows(per_row_n, 100 + round)).as_secs_f64() * (n / per_row_n) as f64);
    }
    let (bm, pm) = (median(&mut b), median(&mut p));
    println!("flush of {n} distinct (host, day) rows, median of {rounds} interleaved rounds:");
    println!(
        "  batched (1 transaction, {} rows/statement): {bm:6.2} s",
        mod_bw_counter::flush::ROWS_PER_STATEMENT
    );
    println!("  one upsert per row (autocommit), scaled from {per_row_n}: {pm:6.2} s");
    println!("  per-row / batched: {:.1}x", pm / bm);
    println!(
        "  targets: batched <= 2 s ({}), >= 20x faster than per-row ({})",
        if bm <= 2.0 { "met" } else { "MISSED" },
        if pm / bm >= 20.0 { "met" } else { "MISSED" }
    );
    println!("statement size curve (100k rows, median of {rounds} interleaved rounds):");
    let sizes = [10usize, 100, 250, 500, 1000, 2000, 5000, 16_383];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    for r in 0..rounds {
        for (i, size) in sizes.iter().enumerate() {
            let id = format!("bench/c/{size}/{r}");
            times[i].push(batched(&db, rows(n, 200 + r), *size, &id).as_secs_f64());
        }
    }
    for (size, t) in sizes.iter().zip(times.iter_mut()) {
        println!("  {size:6} rows/statement: {:6.2} s", median(t));
    }
}
