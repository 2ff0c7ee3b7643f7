//! Issue #12, part 2: `bw_counter.status_url`. Its figures are checked
//! against the access log (the bytes of every request before the status
//! request, per row key), its JSON parsed by serde_json and its
//! Prometheus text by Python's `prometheus_client` parser.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle::{self, Record, Totals};
use common::prometheus::{self, Sample};

const STATUS: &str = "/bw-status";

fn setup(db: &MariaDb, extra: &str) -> Setup {
    Setup::new(format!(
        "{}bw_counter.report_interval = 1\n\
         $HTTP[\"remoteip\"] == \"127.0.0.1\" {{ bw_counter.status_url = \"{STATUS}\" }}\n\
         $HTTP[\"host\"] == \"shop.example\" {{ bw_counter.account = \"customer\" }}\n\
         $HTTP[\"host\"] == \"www.shop.example\" {{ bw_counter.account = \"customer\" }}\n{extra}",
        db.module_options()
    ))
}

fn row_key(r: &Record) -> String {
    match r.host.as_str() {
        "shop.example" | "www.shop.example" => "customer".into(),
        host => oracle::host_key(host, None),
    }
}

/// The access log's totals over the records before the `n`-th request for
/// the status URL (in the order lighttpd finished them).
fn totals_before_status(records: &[Record], n: usize) -> Totals {
    let end = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.path().starts_with(STATUS))
        .nth(n)
        .map(|(i, _)| i)
        .expect("the status request is in the access log");
    oracle::expected_totals_by(&records[..end], |r| Some(row_key(r)))
}

fn traffic(l: &Lighttpd) {
    std::fs::write(l.docroot.join("file.bin"), vec![b'z'; 20_000]).unwrap();
    for host in [
        "a.example",
        "b.example:8080",
        "shop.example",
        "www.shop.example",
    ] {
        for path in ["/index.html", "/file.bin", "/nothing-here"] {
            http::get(l.port, Some(host), path);
        }
    }
    let out = common::run(
        Command::new(common::program("nghttp"))
            .args(["-n", "--no-dep", "-H", ":authority: h2.example"])
            .arg(format!("http://127.0.0.1:{}/file.bin", l.port))
            .arg(format!("http://127.0.0.1:{}/index.html", l.port)),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "nghttp: {out:?}");
}

fn status(l: &Lighttpd, query: &str) -> http::Response {
    http::get(l.port, Some("status.example"), &format!("{STATUS}{query}"))
}

fn json_of(response: &http::Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(
        response.head.contains("Content-Type: application/json"),
        "{}",
        response.head
    );
    serde_json::from_slice(&response.body).expect("the status is JSON")
}

fn json_totals(json: &Value) -> Totals {
    json["vhosts"]
        .as_object()
        .expect("vhosts is an object")
        .iter()
        .map(|(k, v)| {
            let n = |d: &str| v[d].as_u64().unwrap_or_else(|| panic!("{k}.{d}: {v}"));
            (k.clone(), (n("in"), n("out")))
        })
        .collect()
}

fn prometheus_totals(samples: &[Sample]) -> Totals {
    let mut totals = Totals::new();
    for s in samples {
        if s.name != "bw_counter_bytes_total" {
            continue;
        }
        assert_eq!(s.family_type, "counter");
        let row = totals.entry(s.labels["vhost"].clone()).or_default();
        match s.labels["direction"].as_str() {
            "in" => row.0 += s.value as u64,
            "out" => row.1 += s.value as u64,
            d => panic!("direction {d}"),
        }
    }
    totals
}

fn sample(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .unwrap_or_else(|| panic!("no sample {name}"))
        .value
}

#[test]
fn json_and_prometheus_show_what_the_access_log_shows() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, ""));
    traffic(&l);
    // Let at least one report reach the database, so that the flusher has
    // something to show; counts still waiting are in the answer as well.
    std::thread::sleep(Duration::from_millis(2500));
    let json = json_of(&status(&l, ""));
    let prometheus = status(&l, "?format=prometheus");
    assert_eq!(prometheus.status, 200);
    assert!(
        prometheus
            .head
            .contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        prometheus.head
    );
    let samples = prometheus::parse(&String::from_utf8(prometheus.body.clone()).unwrap());
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);

    let expected = totals_before_status(&records, 0);
    assert!(expected.contains_key("customer") && expected.contains_key("h2.example"));
    assert_eq!(json_totals(&json), expected, "JSON vhosts != access log");
    assert_eq!(
        prometheus_totals(&samples),
        totals_before_status(&records, 1),
        "Prometheus bytes != access log (the JSON request included)"
    );

    // The rest of the JSON: what the module is and does.
    assert_eq!(json["module"]["version"], env!("CARGO_PKG_VERSION"));
    let lighttpd_version = std::env::var("BWC_EXPECT_LIGHTTPD_VERSION").unwrap_or("1.4.69".into());
    assert_eq!(json["module"]["lighttpd"], lighttpd_version.as_str());
    assert_eq!(json["module"]["report_interval"], 1);
    assert_eq!(json["module"]["exactly_once"], true);
    assert_eq!(json["module"]["tls"], "disable");
    assert_eq!(json["module"]["mysql_server"], db.tcp_address());
    assert!(json["module"]["started"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(json["workers"], 1);
    let flusher = &json["flusher"];
    assert!(
        flusher["batches_delivered"].as_u64().unwrap() >= 1,
        "{json}"
    );
    assert!(flusher["rows_delivered"].as_u64().unwrap() >= 1, "{json}");
    assert!(
        flusher["last_success"].as_i64().unwrap() > 1_700_000_000,
        "{json}"
    );
    assert_eq!(flusher["consecutive_failures"], 0, "{json}");
    assert_eq!(flusher["last_error"], Value::Null, "{json}");
    for key in ["rows", "bytes", "rows_set_aside"] {
        assert_eq!(json["spool"][key], 0, "{json}");
    }
    assert_eq!(json["overflow"]["requests"], 0);
    for key in ["rows", "bytes_in", "bytes_out"] {
        assert!(json["pending"][key].is_u64(), "{json}");
    }
    // The Prometheus families the issue names, each once and typed.
    for name in [
        "bw_counter_pending_rows",
        "bw_counter_flush_last_success_timestamp_seconds",
        "bw_counter_flush_duration_seconds",
        "bw_counter_flush_failures_total",
        "bw_counter_spool_rows",
        "bw_counter_rejected_rows_total",
        "bw_counter_overflow_requests_total",
    ] {
        sample(&samples, name);
    }
    assert_eq!(sample(&samples, "bw_counter_flush_failures_total"), 0.0);
    assert!(samples.iter().any(|s| s.name == "bw_counter_info"
        && s.labels.get("version").map(String::as_str) == Some(env!("CARGO_PKG_VERSION"))
        && s.value == 1.0));
    let pending: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "bw_counter_pending_bytes")
        .map(|s| s.labels["direction"].clone())
        .collect();
    assert_eq!(pending, ["in", "out"]);
}

#[test]
fn outside_its_condition_the_url_is_an_ordinary_404() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, ""));
    let curl = |interface: &str, extra: &[&str]| -> String {
        let out = common::run(
            Command::new(common::program("curl"))
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--interface",
                    interface,
                ])
                .args(extra)
                .arg(format!("http://127.0.0.1:{}{STATUS}", l.port)),
            Duration::from_secs(30),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(curl("127.0.0.1", &[]), "200");
    assert_eq!(curl("127.0.0.2", &[]), "404", "another client address");
    assert_eq!(curl("127.0.0.1", &["-d", "x=1"]), "405", "POST");
    assert_eq!(status(&l, "?format=xml").status, 400);
    l.stop_ok();
}

#[test]
fn two_workers_are_summed_in_one_answer() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, "server.max-worker = 2\n"));
    // New connections are spread over both workers by the kernel.
    for i in 0..200 {
        http::get(l.port, Some(&format!("w{}.example", i % 5)), "/index.html");
    }
    // Each worker publishes once a second.
    std::thread::sleep(Duration::from_millis(2500));
    let json = json_of(&status(&l, ""));
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let expected = oracle::expected_totals_by(&records, |r| {
        (!r.path().starts_with(STATUS)).then(|| row_key(r))
    });
    assert_eq!(json["workers"], 2, "{json}");
    let per_worker = json["per_worker"].as_array().unwrap();
    assert_eq!(per_worker.len(), 2, "{json}");
    assert_eq!(json_totals(&json), expected, "both workers summed");
}

#[test]
fn hostile_hosts_cannot_break_either_format() {
    let db = MariaDb::start();
    // Let lighttpd pass odd host names through to the module as it can.
    let mut l = Lighttpd::start(&setup(
        &db,
        "server.http-parseopts = ( \"host-strict\" => \"disable\", \"host-normalize\" => \"disable\" )\n",
    ));
    let hostile: [&[u8]; 8] = [
        b"quo\"te.example",
        b"back\\slash.example",
        b"br{a}ce=s,.example",
        b"new\\nline.example",
        b"tab\tin.example",
        b"caf\xc3\xa9.example",
        b"bad\xff\xfe.example",
        b"# HELP x y.example",
    ];
    let mut sent = 0;
    for host in hostile {
        let mut raw = b"GET /index.html HTTP/1.0\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(b"\r\n\r\n");
        if !http::exchange(l.port, &raw).is_empty() {
            sent += 1;
        }
    }
    assert_eq!(sent, hostile.len());
    std::thread::sleep(Duration::from_millis(1500));
    let json = json_of(&status(&l, ""));
    let prometheus = status(&l, "?format=prometheus");
    let samples = prometheus::parse(&String::from_utf8(prometheus.body).expect("UTF-8"));
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let counted: Vec<&Record> = records.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        counted.len(),
        hostile.len() + 2,
        "every odd host served: {records:?}"
    );
    // lighttpd escapes them in %V as the host key does: quotes and
    // backslashes reach both formats, which must escape them.
    let keys = json_totals(&json);
    assert!(keys.contains_key(r#"quo\"te.example"#), "{keys:?}");
    assert!(keys.contains_key(r"back\\slash.example"), "{keys:?}");
    assert_eq!(json_totals(&json), totals_before_status(&records, 0));
    assert_eq!(
        prometheus_totals(&samples),
        totals_before_status(&records, 1)
    );
}
