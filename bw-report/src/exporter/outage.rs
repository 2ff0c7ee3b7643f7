//! The database between scrapes. After a failed scrape, the next ones get
//! the same error at once for a few seconds instead of each waiting on a
//! dead server while more scrapes queue up behind it; the log gets one line
//! when an outage starts and one when it ends, not one per scrape.

use std::time::{Duration, Instant};

/// How long a failure is answered without asking the database again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Outage {
    down: Option<Down>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    error: String,
    retry_at: Instant,
}

impl Outage {
    /// The error to answer with, without trying, while it is too early to
    /// try again.
    pub fn wait(&self, now: Instant) -> Option<&str> {
        self.down
            .as_ref()
            .filter(|d| now < d.retry_at)
            .map(|d| d.error.as_str())
    }

    /// A scrape failed with `error`: the line to log if an outage starts.
    pub fn failed(&mut self, now: Instant, error: String) -> Option<String> {
        let retry_at = now + RETRY_AFTER;
        match &mut self.down {
            Some(down) => {
                down.error = error;
                down.retry_at = retry_at;
                None
            }
            None => {
                let line = format!("/metrics answers 503 until the database is back: {error}");
                self.down = Some(Down {
                    since: now,
                    error,
                    retry_at,
                });
                Some(line)
            }
        }
    }

    /// A scrape worked: the line to log if an outage ends.
    pub fn ended(&mut self, now: Instant) -> Option<String> {
        let down = self.down.take()?;
        let secs = now.saturating_duration_since(down.since).as_secs();
        Some(format!(
            "the database answers again after {secs} s; /metrics answers 200"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_outage_and_a_pause_between_tries() {
        let t0 = Instant::now();
        let mut outage = Outage::default();
        assert_eq!(outage.wait(t0), None);
        assert_eq!(outage.ended(t0), None, "no outage, nothing to say");
        let line = outage.failed(t0, "cannot reach server x".into()).unwrap();
        assert!(line.ends_with(": cannot reach server x"), "{line}");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(outage.wait(t1), Some("cannot reach server x"));
        let t5 = t0 + RETRY_AFTER;
        assert_eq!(outage.wait(t5), None, "time to try again");
        assert_eq!(outage.failed(t5, "still down".into()), None, "no new line");
        assert_eq!(outage.wait(t5), Some("still down"));
        let t12 = t0 + Duration::from_secs(12);
        assert_eq!(
            outage.ended(t12).unwrap(),
            "the database answers again after 12 s; /metrics answers 200"
        );
        assert_eq!(outage.wait(t12), None);
        assert_eq!(outage.ended(t12), None);
    }
}
