//! What the flusher has done so far, for the status URL (issue #12): the
//! worker reports each attempt to a [`Watcher`]; [`Progress`] is the pure
//! record of those reports (unit-tested), which the status code publishes.

use std::time::Duration;

use crate::counters::Summary;

/// One thing the flusher did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// A batch reached the table (or the ledger showed it already had).
    Delivered { rows: usize, took: Duration },
    /// The database did not take a batch (or the connection check failed).
    Failed { error: &'a str, took: Duration },
    /// Rows the table refuses for good were set aside.
    SetAside { rows: usize },
    /// Nothing was attempted; what waits may have changed.
    Idle,
}

/// The flusher after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlusherState {
    /// Rows received from lighttpd and not yet in the table.
    pub pending: Summary,
    /// Whether delivery is exactly-once (its ledger table works).
    pub exactly_once: bool,
    /// Which of `mysql_server`'s servers is in use (or tried next).
    pub server: usize,
}

/// Told about every attempt, with the flusher's state after it. Called on
/// the flusher thread; must not block on anything slow.
pub trait Watcher: Send + Sync {
    fn attempt(&self, attempt: Attempt<'_>, state: FlusherState);
}

/// The longest error text kept.
pub const MAX_ERROR_LEN: usize = 1024;

/// The flusher's record since its process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Unix seconds of the last batch delivered (0: never).
    pub last_success: i64,
    /// Unix seconds of the last attempt, successful or not (0: never).
    pub last_attempt: i64,
    /// How long the last attempt took.
    pub last_duration_ms: u64,
    pub consecutive_failures: u64,
    pub failures_total: u64,
    /// The last failure's text ("" if none since the last success).
    pub last_error: String,
    pub batches_delivered: u64,
    pub rows_delivered: u64,
    pub rows_set_aside: u64,
}

impl Progress {
    /// Records `attempt`, made at `now` (unix seconds).
    pub fn record(&mut self, attempt: Attempt<'_>, now: i64) {
        match attempt {
            Attempt::Delivered { rows, took } => {
                self.attempted(now, took);
                self.last_success = now;
                self.consecutive_failures = 0;
                self.last_error.clear();
                self.batches_delivered += 1;
                self.rows_delivered += rows as u64;
            }
            Attempt::Failed { error, took } => {
                self.attempted(now, took);
                self.consecutive_failures += 1;
                self.failures_total += 1;
                self.last_error = truncated(error, MAX_ERROR_LEN).to_string();
            }
            Attempt::SetAside { rows } => self.rows_set_aside += rows as u64,
            Attempt::Idle => {}
        }
    }

    fn attempted(&mut self, now: i64, took: Duration) {
        self.last_attempt = now;
        self.last_duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_until_a_success_clears_them() {
        let mut p = Progress::default();
        let took = Duration::from_millis(7);
        p.record(
            Attempt::Failed {
                error: "down",
                took,
            },
            100,
        );
        p.record(
            Attempt::Failed {
                error: "still down",
                took,
            },
            101,
        );
        assert_eq!(
            (p.consecutive_failures, p.failures_total, p.last_success),
            (2, 2, 0)
        );
        assert_eq!((p.last_attempt, p.last_error.as_str()), (101, "still down"));
        p.record(
            Attempt::Delivered {
                rows: 3,
                took: Duration::from_millis(12),
            },
            105,
        );
        p.record(Attempt::Idle, 106);
        p.record(Attempt::SetAside { rows: 2 }, 107);
        assert_eq!(
            p,
            Progress {
                last_success: 105,
                last_attempt: 105,
                last_duration_ms: 12,
                consecutive_failures: 0,
                failures_total: 2,
                last_error: String::new(),
                batches_delivered: 1,
                rows_delivered: 3,
                rows_set_aside: 2,
            }
        );
    }

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        let mut p = Progress::default();
        let error = "é".repeat(MAX_ERROR_LEN);
        p.record(
            Attempt::Failed {
                error: &error,
                took: Duration::ZERO,
            },
            1,
        );
        assert_eq!(p.last_error.len(), MAX_ERROR_LEN);
        assert!(p.last_error.chars().all(|c| c == 'é'));
    }
}
