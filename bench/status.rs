//! What the status URL costs (issue #12), for the README: a worker's
//! publication (once a second, and before each answer) and a whole answer,
//! with `KEYS` row keys per worker and two workers on the board. Medians
//! of rounds; wall-clock microseconds on a shared machine, so read them
//! as orders of magnitude.

use std::time::Instant;

use mod_bw_counter::counters::Traffic;
use mod_bw_counter::request::Counted;
use mod_bw_counter::status::{Format, Header, Live};
use mod_bw_counter::tally::Tally;

const NOW: i64 = 1_795_910_000;
const ROUNDS: usize = 15;

fn tally_with(keys: usize) -> Tally {
    let mut t = Tally::new(keys);
    for i in 0..keys {
        let host = format!("host-{i}.customer-sites.example");
        t.count(Counted {
            authority: host.as_bytes(),
            server_name: b"",
            traffic: Traffic {
                bytes_in: 400,
                bytes_out: 12_000,
            },
            now: NOW,
        });
    }
    t
}

fn median_us(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[ROUNDS / 2]
}

fn main() {
    for keys in [100, 10_000] {
        let tally = tally_with(keys);
        // Two workers: this one, and another that published the same.
        let mut other = Live::create(2, keys).expect("board");
        other.start(1, NOW).expect("slot");
        let mut live = other.sharing();
        live.start(std::process::id(), NOW).expect("slot");
        other.publish(&tally);
        let publish = median_us(|| live.publish(&tally));
        let header = Header::default();
        let mut size = (0, 0);
        let json = median_us(|| size.0 = live.answer(&tally, header.clone(), Format::Json).len());
        let prometheus = median_us(|| {
            size.1 = live
                .answer(&tally, header.clone(), Format::Prometheus)
                .len()
        });
        println!(
            "{keys:6} keys per worker, 2 workers: publish {publish:8.0} us; answer JSON \
             {json:8.0} us ({} KiB), Prometheus {prometheus:8.0} us ({} KiB)",
            size.0 / 1024,
            size.1 / 1024
        );
    }
}
