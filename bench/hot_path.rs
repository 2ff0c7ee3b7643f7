//! The request path: nanoseconds and heap allocations per counted request,
//! for a host already seen (the same as the previous request's, and 100
//! hosts in turn) and for a new host each time.
//! Runs A/B rounds interleaved and prints medians (this machine is shared
//! and noisy). `make bench` runs it; targets: < 50 ns and 0 allocations
//! for a known host.

use std::hint::black_box;
use std::time::Instant;

use mod_bw_counter::alloc_count::{self, Counting};
use mod_bw_counter::counters::Traffic;
use mod_bw_counter::request::Counted;
use mod_bw_counter::tally::Tally;

#[global_allocator]
static GLOBAL: Counting = Counting;

const NOW: i64 = 1_795_910_000;

/// Distinct hosts below the max_hosts cap: each new one gets its own row.
const MAX_HOSTS: usize = 10_000;

fn req(host: &[u8]) -> Counted<'_> {
    Counted {
        authority: host,
        server_name: b"",
        traffic: Traffic {
            bytes_in: 400,
            bytes_out: 12_000,
        },
        now: NOW,
    }
}

/// (ns per request, allocations per request) for `n` requests to one host.
fn known_host(n: u64) -> (f64, f64) {
    let mut m = Tally::new(MAX_HOSTS);
    let host = b"www.example.org:443".as_slice();
    m.count(req(host));
    let a0 = alloc_count::this_thread();
    let t = Instant::now();
    for _ in 0..n {
        m.count(black_box(req(host)));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    (ns, (alloc_count::this_thread() - a0) as f64 / n as f64)
}

/// The same for `n` requests cycling through `hosts` (each seen before).
fn hosts_in_turn(hosts: &[Vec<u8>], n: usize) -> (f64, f64) {
    let mut m = Tally::new(MAX_HOSTS);
    for h in hosts {
        m.count(req(h));
    }
    let a0 = alloc_count::this_thread();
    let t = Instant::now();
    for h in hosts.iter().cycle().take(n) {
        m.count(black_box(req(h)));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    (ns, (alloc_count::this_thread() - a0) as f64 / n as f64)
}

/// The same for `hosts.len()` requests, each to a host not seen before
/// (below the max_hosts cap, so each gets its own row).
fn new_hosts(hosts: &[Vec<u8>]) -> (f64, f64) {
    let mut m = Tally::new(MAX_HOSTS);
    let a0 = alloc_count::this_thread();
    let t = Instant::now();
    for h in hosts {
        m.count(black_box(req(h)));
    }
    let ns = t.elapsed().as_nanos() as f64 / hosts.len() as f64;
    (
        ns,
        (alloc_count::this_thread() - a0) as f64 / hosts.len() as f64,
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds = 7;
    let hosts: Vec<Vec<u8>> = (0..9_000)
        .map(|i| format!("site{i}.example.com").into_bytes())
        .collect();
    let (mut k_ns, mut k_al, mut n_ns, mut n_al) = (vec![], vec![], vec![], vec![]);
    let (mut t_ns, mut t_al) = (vec![], vec![]);
    for _ in 0..rounds {
        let (ns, al) = known_host(5_000_000);
        k_ns.push(ns);
        k_al.push(al);
        let (ns, al) = hosts_in_turn(&hosts[..100], 1_000_000);
        t_ns.push(ns);
        t_al.push(al);
        let (ns, al) = new_hosts(&hosts);
        n_ns.push(ns);
        n_al.push(al);
    }
    let (kn, nn) = (median(&mut k_ns), median(&mut n_ns));
    println!("hot path, median of {rounds} interleaved rounds:");
    println!(
        "  known host: {kn:7.1} ns/request, {:.3} allocations/request",
        median(&mut k_al)
    );
    println!(
        "  100 hosts in turn: {:7.1} ns/request, {:.3} allocations/request",
        median(&mut t_ns),
        median(&mut t_al)
    );
    println!(
        "  new host:   {nn:7.1} ns/request, {:.3} allocations/request",
        median(&mut n_al)
    );
    println!("  ratio new/known: {:.1}x", nn / kn);
    println!(
        "  target: known host < 50 ns and 0 allocations: {}",
        if kn < 50.0 && median(&mut k_al) == 0.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
