//! bw-report against a real private MariaDB (the module's test rig), with
//! rows the tests write themselves, run as the built binary: exact figures
//! in every format, the ranges, hostile vhosts, --config through lighttpd,
//! and the exit statuses.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::common::mariadb::{DATABASE, TABLE};
use support::common::{self as common, TempDir};
use support::{bw_report, Db, ACROSS_YEARS, ACROSS_YEARS_RANGE, READER, READER_PASSWORD};

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Three vhosts over January 2026, and rows outside it on both sides.
const JANUARY: &[(&str, &str, u64, u64)] = &[
    ("www.example.org", "2026-01-01", 1000, 3 * GIB),
    ("www.example.org", "2026-01-31", 24, GIB / 2),
    ("shop.example.com", "2026-01-15", 5 * MIB, 700 * MIB),
    ("static.example.net", "2026-01-15", 0, 1500),
    ("www.example.org", "2025-12-31", 9, 9),
    ("shop.example.com", "2026-02-01", 9, 9),
];
const JANUARY_RANGE: [&str; 4] = ["--from", "2026-01-01", "--to", "2026-01-31"];

#[test]
fn top_gives_exact_figures_in_every_format() {
    let db = Db::start();
    db.insert(JANUARY);
    let www = (1024, 3 * GIB + GIB / 2);
    let shop = (5 * MIB, 700 * MIB);
    let all = www.0 + www.1 + shop.0 + shop.1 + 1500;

    let json = db.json(&[&["top"][..], &JANUARY_RANGE].concat());
    assert_eq!(
        json,
        json!([
            {"vhost": "www.example.org", "in": www.0, "out": www.1, "total": www.0 + www.1},
            {"vhost": "shop.example.com", "in": shop.0, "out": shop.1, "total": shop.0 + shop.1},
            {"vhost": "static.example.net", "in": 0, "out": 1500, "total": 1500},
        ])
    );
    assert!(json[0]["total"].is_u64(), "exact integers, not floats");

    let csv = db.csv(&[&["top", "--limit", "2"][..], &JANUARY_RANGE].concat());
    let share = |bytes: u64| format!("{:.6}", bytes as f64 / all as f64);
    assert_eq!(
        csv,
        strings(&[
            &["vhost", "in", "out", "total", "share"],
            &[
                "www.example.org",
                "1024",
                "3758096384",
                "3758097408",
                &share(www.0 + www.1)
            ],
            &[
                "shop.example.com",
                "5242880",
                "734003200",
                "739246080",
                &share(shop.0 + shop.1)
            ],
        ]),
        "--limit keeps the shares of the grand total"
    );

    let table = db.report(&[&["top"][..], &JANUARY_RANGE].concat());
    assert_eq!(
        table,
        "2026-01-01 to 2026-01-31\n\
         vhost                     in         out       total    share\n\
         www.example.org     1.00 KiB    3.50 GiB    3.50 GiB   83.56%\n\
         shop.example.com    5.00 MiB  700.00 MiB  705.00 MiB   16.44%\n\
         static.example.net       0 B    1.46 KiB    1.46 KiB    0.00%\n\
         total (3 vhosts)    5.00 MiB    4.18 GiB    4.19 GiB  100.00%\n"
    );
}

#[test]
fn daily_gives_exact_figures_in_every_format() {
    let db = Db::start();
    db.insert(JANUARY);
    let args = [&["daily"][..], &JANUARY_RANGE].concat();
    assert_eq!(
        db.json(&args),
        json!([
            {"day": "2026-01-01", "vhost": "www.example.org", "in": 1000, "out": 3 * GIB},
            {"day": "2026-01-15", "vhost": "shop.example.com", "in": 5 * MIB, "out": 700 * MIB},
            {"day": "2026-01-15", "vhost": "static.example.net", "in": 0, "out": 1500},
            {"day": "2026-01-31", "vhost": "www.example.org", "in": 24, "out": GIB / 2},
        ])
    );
    assert_eq!(
        db.csv(&args),
        strings(&[
            &["day", "vhost", "in", "out"],
            &["2026-01-01", "www.example.org", "1000", "3221225472"],
            &["2026-01-15", "shop.example.com", "5242880", "734003200"],
            &["2026-01-15", "static.example.net", "0", "1500"],
            &["2026-01-31", "www.example.org", "24", "536870912"],
        ])
    );
    let only_www = db.csv(&[&args[..], &["--vhost", "www.example.org"]].concat());
    assert_eq!(only_www.len(), 3, "--vhost restricts: {only_www:?}");
    assert_eq!(
        db.report(&args),
        "2026-01-01 to 2026-01-31\n\
         day         vhost                     in         out\n\
         2026-01-01  www.example.org       1000 B    3.00 GiB\n\
         2026-01-15  shop.example.com    5.00 MiB  700.00 MiB\n\
         2026-01-15  static.example.net       0 B    1.46 KiB\n\
         2026-01-31  www.example.org         24 B  512.00 MiB\n\
         total                           5.00 MiB    4.18 GiB\n"
    );
}

#[test]
fn an_empty_range_is_an_empty_report() {
    let db = Db::start();
    db.insert(JANUARY);
    let march = ["--from", "2026-03-01", "--to", "2026-03-31"];
    for command in ["top", "daily"] {
        let args = [&[command][..], &march].concat();
        assert_eq!(db.json(&args), json!([]), "{command}");
        assert_eq!(db.csv(&args).len(), 1, "{command}: only the header");
    }
    assert_eq!(
        db.report(&[&["top"][..], &march].concat()),
        "2026-03-01 to 2026-03-31\n\
         vhost              in  out  total  share\n\
         total (0 vhosts)  0 B  0 B    0 B      -\n"
    );
    let none = db.json(&[&["top", "--vhost", "nobody.example"][..], &JANUARY_RANGE].concat());
    assert_eq!(none, json!([]));
}

/// `bw-report daily | head` : a reader that has gone is not an error.
#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let db = Db::start();
    db.insert(JANUARY);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bw-report"))
        .args(db.flags())
        .args(["daily"])
        .args(JANUARY_RANGE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bw-report");
    // Closed long before the report is ready (it connects first).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_range_across_months_and_years_is_inclusive() {
    let db = Db::start();
    db.insert(ACROSS_YEARS);
    let range = ACROSS_YEARS_RANGE;
    let days: Vec<Value> = db
        .json(&[&["daily"][..], &range].concat())
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["day"].clone())
        .collect();
    assert_eq!(
        days,
        ["2025-12-01", "2025-12-31", "2026-01-01", "2026-02-28"]
    );
    assert_eq!(
        db.json(&[&["top"][..], &range].concat()),
        json!([
            {"vhost": "a.example", "in": 22, "out": 220, "total": 242},
            {"vhost": "b.example", "in": 8, "out": 80, "total": 88},
        ])
    );
}

/// Accounts (bw_counter.account) are whatever the admin wrote, and old
/// rows may hold anything: the formats must carry every byte of a name.
#[test]
fn hostile_vhosts_survive_csv_and_json() {
    let db = Db::start();
    let hostile = "a,b \"quoted\"\nnew line\\back\\slash ünïcødé €";
    db.insert(&[
        (hostile, "2026-01-10", 3, 4),
        ("plain.example", "2026-01-10", 1, 1),
    ]);
    let top = db.csv(&[&["top"][..], &JANUARY_RANGE].concat());
    assert_eq!(top[1], [hostile, "3", "4", "7", "0.777778"]);
    let daily = db.csv(&[&["daily"][..], &JANUARY_RANGE].concat());
    assert_eq!(daily[1], ["2026-01-10", hostile, "3", "4"]);
    let json = db.json(&[&["top"][..], &JANUARY_RANGE].concat());
    assert_eq!(json[0]["vhost"], hostile);
    let json = db.json(&[&["daily"][..], &JANUARY_RANGE].concat());
    assert_eq!(json[0]["vhost"], hostile);
    let table = db.report(&[&["top"][..], &JANUARY_RANGE].concat());
    assert_eq!(table.lines().count(), 5, "one line per vhost: {table}");
    assert!(table.contains("a,b \"quoted\"\\nnew line"), "{table}");
}

/// --config reads the options through lighttpd, includes and variables
/// resolved, from the global scope only; a flag wins over the file.
#[test]
fn config_is_read_the_way_lighttpd_reads_it() {
    let db = Db::start();
    db.insert(JANUARY);
    let dir = TempDir::new("bw-report-conf");
    let inline_password = READER_PASSWORD.replace('"', "\\\"");
    std::fs::write(
        dir.path().join("bw_counter.conf"),
        format!(
            "var.db = \"bw_\" + \"counter\"\n\
             bw_counter.mysql_server = \"{}\"\n\
             bw_counter.mysql_db = var.db\n\
             bw_counter.mysql_table = \"{TABLE}\"\n\
             bw_counter.mysql_user = \"{READER}\"\n\
             bw_counter.mysql_password = \"{inline_password}\"\n\
             $HTTP[\"host\"] == \"other.example\" {{\n\
               bw_counter.mysql_db = \"not_this_one\"\n\
             }}\n",
            db.server.tcp_address()
        ),
    )
    .unwrap();
    let config = dir.path().join("lighttpd.conf");
    std::fs::write(
        &config,
        format!(
            "server.document-root = \"{0}\"\n\
             server.port = {1}\n\
             server.bind = \"127.0.0.1\"\n\
             include \"{0}/bw_counter.conf\"\n",
            dir.path().display(),
            common::free_port()
        ),
    )
    .unwrap();
    let with_config = vec!["--config".to_string(), config.display().to_string()];
    let top = |extra: &[&str]| {
        bw_report(
            &with_config,
            &[&["top", "--format", "json"][..], &JANUARY_RANGE, extra].concat(),
        )
    };
    let out = top(&[]);
    assert_january_top(&out);
    let out = top(&["--table", "no_such_table"]);
    assert_eq!(out.status.code(), Some(2), "the flag wins over the file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_table"), "{stderr}");
    let out = top(&["--password-file", "/nonexistent/pw"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bw_counter.mysql_server` as a list (in --config, or --server given
/// more than once): the first server that answers is read, as the module
/// writes to the first that answers; when none does, one line names each.
#[test]
fn a_list_of_servers_is_read_from_the_first_that_answers() {
    let db = Db::start();
    db.insert(JANUARY);
    let dead = format!("127.0.0.1:{}", common::free_port());
    let dir = TempDir::new("bw-report-list");
    let config = dir.path().join("lighttpd.conf");
    std::fs::write(
        &config,
        format!(
            "server.document-root = \"{}\"\n\
             server.port = {}\n\
             bw_counter.mysql_server = ( \"{dead}\", \"{}\" )\n\
             bw_counter.mysql_db = \"{DATABASE}\"\n\
             bw_counter.mysql_table = \"{TABLE}\"\n\
             bw_counter.mysql_user = \"{READER}\"\n",
            dir.path().display(),
            common::free_port(),
            db.server.tcp_address()
        ),
    )
    .unwrap();
    let flags: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--password-file".into(),
        db.password_file.display().to_string(),
    ];
    let out = bw_report(
        &flags,
        &[&["top", "--format", "json"][..], &JANUARY_RANGE].concat(),
    );
    assert_january_top(&out);

    let other_dead = format!("127.0.0.1:{}", common::free_port());
    let stderr = unreachable(&[&dead, &other_dead]);
    assert!(
        stderr.contains(&format!("servers {dead} then {other_dead}, database stats"))
            && stderr.contains(&format!("{dead}: cannot reach it: "))
            && stderr.contains(&format!("; {other_dead}: cannot reach it: ")),
        "{stderr}"
    );
}

/// `top --format json` of the JANUARY rows: the biggest vhost's total.
fn assert_january_top(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["total"], 1024 + 3 * GIB + GIB / 2);
}

/// `bw-report top` with `servers` (none listening) for table
/// stats.traffic: status 2 and one line on stderr, which is returned.
fn unreachable(servers: &[&str]) -> String {
    let mut flags: Vec<String> = Vec::new();
    for server in servers {
        flags.extend(["--server".to_string(), server.to_string()]);
    }
    for flag in ["--db", "stats", "--table", "traffic", "--user", "nobody"] {
        flags.push(flag.to_string());
    }
    let out = bw_report(&flags, &["top"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn unreachable_database_is_one_line_and_status_2() {
    let port = common::free_port();
    let stderr = unreachable(&[&format!("127.0.0.1:{port}")]);
    for name in [&format!("127.0.0.1:{port}"), "stats", "traffic"] {
        assert!(stderr.contains(name), "{name} not in {stderr}");
    }
}

#[test]
fn a_table_without_the_columns_is_status_2() {
    let db = Db::start();
    db.server.exec(&format!(
        "CREATE TABLE {DATABASE}.no_out (vhost varchar(255) NOT NULL, day date NOT NULL, \
         `in` bigint NOT NULL, PRIMARY KEY (vhost, day))"
    ));
    let mut flags = db.flags();
    let table = flags.iter().position(|f| f == "--table").unwrap() + 1;
    flags[table] = "no_out".into();
    let out = bw_report(&flags, &["daily"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in [
        &db.server.tcp_address(),
        DATABASE,
        "no_out",
        "Unknown column",
    ] {
        assert!(stderr.contains(name), "{name} not in {stderr}");
    }
}

/// Checked before any connection: these fail the same with no database.
#[test]
fn bad_arguments_are_status_64() {
    let nowhere: Vec<String> = [
        "--server",
        "127.0.0.1:1",
        "--db",
        "d",
        "--table",
        "t",
        "--user",
        "u",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for args in [
        &["top", "--from", "2026-13-01"][..],
        &["top", "--from", "2026-02-01", "--to", "2026-01-31"],
        &["daily", "--to", "yesterday"],
        &["top", "--limit", "0"],
        &["top", "--format", "xml"],
        &["report"],
    ] {
        let out = bw_report(&nowhere, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(!stderr.is_empty());
    }
    let out = bw_report(&[], &["top", "--server", "db:0"]);
    assert_eq!(out.status.code(), Some(64));
}
