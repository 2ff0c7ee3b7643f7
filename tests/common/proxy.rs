//! A loopback TCP proxy in front of MariaDB that can lose a COMMIT's reply:
//! it forwards the client's COMMIT to the server, lets the server commit,
//! then cuts the connection before the OK reaches the client. The worst
//! moment for a flusher: the rows are in, but it cannot know. It can cut
//! the connection the same way at any other statement ([`arm_on`]).
//!
//! [`arm_on`]: CommitDropper::arm_on

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// COM_QUERY (0x03) followed by the statement text.
const COMMIT: &[u8] = b"\x03COMMIT";

/// What the next cut waits for: a statement containing these bytes.
type Trigger = Arc<Mutex<Option<Vec<u8>>>>;

pub struct CommitDropper {
    pub port: u16,
    armed: Trigger,
    dropped: Arc<AtomicU32>,
}

impl CommitDropper {
    pub fn start(upstream_port: u16) -> CommitDropper {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let armed: Trigger = Arc::default();
        let dropped = Arc::new(AtomicU32::new(0));
        let (a, d) = (armed.clone(), dropped.clone());
        // The accept loop lives as long as the test process (it only ever
        // touches loopback).
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                pipe(client, server, a.clone(), d.clone());
            }
        });
        CommitDropper {
            port,
            armed,
            dropped,
        }
    }

    /// The next COMMIT through the proxy loses its reply.
    pub fn arm(&self) {
        self.arm_on(COMMIT);
    }

    /// The next client packet containing `statement` reaches the server,
    /// and then the connection is cut before any reply.
    pub fn arm_on(&self, statement: &[u8]) {
        *self.armed.lock().unwrap() = Some(statement.to_vec());
    }

    /// Connections cut so far.
    pub fn dropped_commits(&self) -> u32 {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn pipe(client: TcpStream, server: TcpStream, armed: Trigger, dropped: Arc<AtomicU32>) {
    let cut = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let cut_up = cut.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            let fire = {
                let mut trigger = armed.lock().unwrap();
                let hit = trigger
                    .as_ref()
                    .is_some_and(|t| chunk.windows(t.len()).any(|w| w == t.as_slice()));
                if hit {
                    *trigger = None;
                }
                hit
            };
            if fire {
                // Nothing from the server reaches the client from now on.
                cut_up.store(true, Ordering::SeqCst);
                let _ = s_out.write_all(chunk);
                thread::sleep(Duration::from_millis(500)); // the server commits
                dropped.fetch_add(1, Ordering::SeqCst);
                let _ = c_in.shutdown(Shutdown::Both);
                let _ = s_out.shutdown(Shutdown::Both);
                return;
            }
            if s_out.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
    });
    let (mut s_in, mut c_out) = (server, client);
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s_in.read(&mut buf) {
            if n == 0 || cut.load(Ordering::SeqCst) || c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
    });
}
