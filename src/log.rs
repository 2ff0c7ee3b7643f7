//! Messages for lighttpd's error log from code that must not call lighttpd.
//!
//! The flusher thread runs in the flusher process, which cannot call
//! lighttpd's `log_error` (and lighttpd's is not thread-safe anyway): it
//! pushes lines here, and the flusher process's main thread sends them to
//! lighttpd, whose thread writes them out (once a second in the trigger
//! hook, and at cleanup). Bounded, so a database that fails in a loop cannot
//! eat memory; what was dropped is counted and reported.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Lines waiting for lighttpd's thread.
#[derive(Debug)]
pub struct LogQueue {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<String>,
    dropped: u64,
}

/// What [`LogQueue::drain`] hands to the writer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub lines: Vec<String>,
    /// Lines refused because the queue was full since the last drain.
    pub dropped: u64,
}

impl LogQueue {
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new(capacity: usize) -> Self {
        LogQueue {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// Queues one line (without the "mod_bw_counter: " prefix, which the
    /// writer adds).
    pub fn push(&self, line: impl Into<String>) {
        let mut inner = self.inner.lock();
        if inner.lines.len() >= self.capacity {
            inner.dropped += 1;
        } else {
            inner.lines.push_back(line.into());
        }
    }

    pub fn drain(&self) -> Drained {
        let mut inner = self.inner.lock();
        Drained {
            lines: inner.lines.drain(..).collect(),
            dropped: std::mem::take(&mut inner.dropped),
        }
    }
}

impl Default for LogQueue {
    fn default() -> Self {
        LogQueue::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_and_empties() {
        let q = LogQueue::new(4);
        q.push("a");
        q.push(String::from("b"));
        assert_eq!(
            q.drain(),
            Drained {
                lines: vec!["a".into(), "b".into()],
                dropped: 0
            }
        );
        assert_eq!(q.drain(), Drained::default());
    }

    #[test]
    fn bounded_and_counts_what_it_dropped() {
        let q = LogQueue::new(2);
        for i in 0..5 {
            q.push(format!("{i}"));
        }
        assert_eq!(
            q.drain(),
            Drained {
                lines: vec!["0".into(), "1".into()],
                dropped: 3
            }
        );
        q.push("after");
        assert_eq!(
            q.drain(),
            Drained {
                lines: vec!["after".into()],
                dropped: 0
            }
        );
    }

    #[test]
    fn usable_from_other_threads() {
        let q = std::sync::Arc::new(LogQueue::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || (0..100).for_each(|i| q.push(format!("{t}-{i}"))))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(q.drain().lines.len(), 400);
    }
}
