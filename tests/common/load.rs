//! Keep-alive HTTP load on lighttpd instances from threads of the test:
//! each round is one connection with one request per host, the last one
//! closing it. Runs for a time ([`for_duration`]) or until told to stop
//! ([`Load`]), so that a test can pause it and compare the table with the
//! access logs at a quiet moment.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::http;

/// One round on `port`: a request per host on one keep-alive connection.
/// Returns how many requests it made.
fn round(port: u16, hosts: &[&str]) -> u64 {
    let mut s = http::connect(port);
    let mut req = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let close = if i + 1 == hosts.len() {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(
            req,
            "GET /index.html HTTP/1.1\r\nHost: {host}\r\n{close}\r\n"
        )
        .unwrap();
    }
    s.write_all(&req).unwrap();
    let mut sink = Vec::new();
    s.read_to_end(&mut sink).unwrap();
    hosts.len() as u64
}

/// Rounds on `port` for `secs`; the number of requests made.
pub fn for_duration(port: u16, hosts: &[&str], secs: u64) -> u64 {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        n += round(port, hosts);
    }
    n
}

/// Rounds on every port, one thread each, until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(ports: &[u16], hosts: &'static [&'static str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let threads = ports
            .iter()
            .map(|&port| {
                let (stop, requests) = (stop.clone(), requests.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        requests.fetch_add(round(port, hosts), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            requests,
            threads,
        }
    }

    /// Stops every thread after its round; the requests made.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.requests.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("load thread");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
