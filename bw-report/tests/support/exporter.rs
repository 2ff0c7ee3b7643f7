//! `bw-report exporter` as a child process of a test or the bench.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::common::http::{self, Response};
use super::common::{own_group_dies_with_test, wait_for};

/// `bw-report exporter` running, killed when dropped (also when a test
/// fails); its stderr is collected line by line.
pub struct Exporter {
    child: Child,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts `cmd` (bw-report with `exporter --listen 127.0.0.1:0` among
    /// its arguments) and waits until it serves; the port is the one its
    /// "serving" line names.
    pub fn spawn(mut cmd: Command) -> Exporter {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        own_group_dies_with_test(&mut cmd);
        let mut child = cmd.spawn().expect("spawn bw-report exporter");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut exporter = Exporter {
            child,
            port: 0,
            stderr,
        };
        let serving = exporter.wait_for_line(|l| l.contains("serving http://"));
        let address = serving.split("http://").nth(1).unwrap();
        let port = address.split('/').next().unwrap().rsplit(':').next();
        exporter.port = port
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {serving:?}"));
        exporter
    }

    /// Its stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line of stderr that `matches`, waiting up to 60 s for it.
    pub fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let line = wait_for(Duration::from_secs(60), || {
            let log = self.log();
            if let Some(line) = log.iter().find(|l| matches(l)) {
                return Some(Ok(line.clone()));
            }
            let exited = self.child.try_wait().ok().flatten();
            exited.map(|status| Err(format!("exited {status}: {log:?}")))
        });
        match line {
            Some(Ok(line)) => line,
            Some(Err(why)) => panic!("bw-report exporter {why}"),
            None => panic!("no such line within 60 s: {:?}", self.log()),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http::get(self.port, Some("127.0.0.1"), path)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
