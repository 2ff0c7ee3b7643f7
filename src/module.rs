//! The state of the module in one lighttpd process, driven by the hooks.
//! Plain Rust: the hooks turn lighttpd's calls into these method calls and
//! write the returned log lines to lighttpd's error log.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::flush::{Flusher, Stopped};
use crate::log::LogQueue;

/// How long `cleanup` may wait for the flusher thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Module {
    config: Option<Config>,
    log: Arc<LogQueue>,
    flusher: Option<Flusher>,
}

impl Module {
    pub fn new() -> Self {
        Self::default()
    }

    /// After `set_defaults` validated the options.
    pub fn configure(&mut self, config: Config) {
        self.config = Some(config);
    }

    /// In each lighttpd process that serves requests (after any fork):
    /// starts the flusher thread, which first checks the database.
    pub fn start_worker(&mut self) -> Result<(), String> {
        let Some(config) = &self.config else {
            return Err("worker_init ran before set_defaults: nothing to start".into());
        };
        if self.flusher.is_some() {
            return Ok(());
        }
        let flusher = Flusher::start(config.db.clone(), self.log.clone())
            .map_err(|e| format!("cannot start the flusher thread: {e}"))?;
        self.flusher = Some(flusher);
        Ok(())
    }

    /// Once a second, on lighttpd's thread: what to write to the error log.
    pub fn tick(&mut self) -> Vec<String> {
        self.take_log()
    }

    /// At `cleanup`: stop the flusher and collect its last words.
    pub fn shutdown(&mut self) -> Vec<String> {
        let mut late = Vec::new();
        if let Some(flusher) = self.flusher.take() {
            if flusher.stop(STOP_TIMEOUT) == Stopped::TimedOut {
                late.push(format!(
                    "the flusher thread did not stop within {}s; leaving it behind",
                    STOP_TIMEOUT.as_secs()
                ));
            }
        }
        let mut lines = self.take_log();
        lines.extend(late);
        lines
    }

    fn take_log(&self) -> Vec<String> {
        let drained = self.log.drain();
        let mut lines = drained.lines;
        if drained.dropped > 0 {
            lines.push(format!(
                "{} further log lines were dropped (log queue full)",
                drained.dropped
            ));
        }
        lines
    }
}
