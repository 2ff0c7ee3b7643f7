//! Prometheus text as a scraper reads it: through Python's
//! prometheus_client parser (Debian's python3-prometheus-client), not a
//! parser of our own, so escaping mistakes cannot cancel out.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;

/// One sample as prometheus_client's parser reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family's `# TYPE` (counter, gauge, ...).
    pub family_type: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `text`; panics with the parser's message if it refuses
/// the text.
pub fn parse(text: &str) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        print(json.dumps([f.type, s.name, s.labels, s.value]))
"#;
    // Debian's python3, not whatever `python3` comes first in PATH.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (apt-get install python3-prometheus-client)");
    let mut stdin = child.stdin.take().unwrap();
    let text_owned = text.to_string();
    // Written from a thread: a large text would fill the pipe while the
    // parser's output fills the other one.
    let writer = thread::spawn(move || stdin.write_all(text_owned.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (family_type, name, labels, value) =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            Sample {
                family_type,
                name,
                labels,
                value,
            }
        })
        .collect()
}
