//! Messages for lighttpd's error log from code that must not call lighttpd.
//!
//! lighttpd's `log_error` is not thread-safe (one static buffer), so the
//! flusher thread never calls it: it pushes lines here, and the hook layer
//! writes them out from lighttpd's own thread (once a second in the trigger
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

    /// Takes the queue's lock and keeps it, so that no other thread holds
    /// it when the process forks (lighttpd's `server.graceful-restart-bg`):
    /// a lock held by a thread that does not exist in the child would stay
    /// locked there for ever. Undone by [`LogQueue::release`].
    pub fn hold(&self) {
        // Held without a guard; `release` unlocks it.
        std::mem::forget(self.inner.lock());
    }

    /// Gives back the lock [`LogQueue::hold`] took.
    ///
    /// # Safety
    /// The calling thread must have called `hold` and not yet `release`
    /// (in a forked child: the copy of the thread that called `hold`).
    pub unsafe fn release(&self) {
        // SAFETY: by the contract the lock is held by this thread, taken in
        // `hold` with its guard forgotten, so no guard exists.
        unsafe { self.inner.force_unlock() };
    }

    /// In a process forked while [`LogQueue::hold`] held the lock: a new
    /// queue with the lines, leaving the old lock as it is (a thread parked
    /// on it at the fork existed only in the parent).
    ///
    /// # Safety
    /// The calling thread must be the copy of the one that called `hold`
    /// before the fork, with no `release` since.
    pub unsafe fn take_after_fork(&self) -> LogQueue {
        // SAFETY: by the contract this thread holds the lock (its guard was
        // forgotten in `hold`), so nothing else touches the contents.
        let inner = std::mem::take(unsafe { &mut *self.inner.data_ptr() });
        LogQueue {
            inner: Mutex::new(inner),
            capacity: self.capacity,
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
