//! The flusher: a thread of its own per lighttpd process, so that nothing
//! the database does (slow, dead, locked) can stall lighttpd's event loop.
//!
//! Started from `worker_init` (after lighttpd has forked: a thread started
//! earlier would not exist in the worker), stopped from `cleanup`. It never
//! calls lighttpd: its log lines go through [`LogQueue`].

mod mysql;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::config::DbConfig;
use crate::log::LogQueue;

use self::mysql::Link;

enum Command {
    Stop,
}

/// Handle to the flusher thread, owned by lighttpd's thread.
pub struct Flusher {
    commands: Sender<Command>,
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// How [`Flusher::stop`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Joined,
    /// The thread did not finish in time (stuck on the network); it was left
    /// to end on its own.
    TimedOut,
}

impl Flusher {
    pub fn start(db: DbConfig, log: Arc<LogQueue>) -> io::Result<Flusher> {
        let (commands, inbox) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("bw_counter-flush".into())
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| run(db, &log, inbox)));
                if let Err(payload) = outcome {
                    log.push(format!(
                        "the flusher thread stopped after an internal error: {}",
                        crate::panic_message(payload.as_ref())
                    ));
                }
                let _ = exited_tx.send(());
            })?;
        Ok(Flusher {
            commands,
            exited,
            thread: Some(thread),
        })
    }

    /// Asks the thread to finish and waits for it, at most `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Stopped {
        let _ = self.commands.send(Command::Stop);
        match self.exited.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                Stopped::Joined
            }
            Err(RecvTimeoutError::Timeout) => Stopped::TimedOut,
        }
    }
}

fn run(db: DbConfig, log: &LogQueue, inbox: Receiver<Command>) {
    let mut link = Link::new(db);
    startup_check(&mut link, log);
    // Stop, or the handle was dropped: either way the thread ends.
    match inbox.recv() {
        Ok(Command::Stop) | Err(_) => {}
    }
}

/// One line for the admin: the database is usable, or why not.
fn startup_check(link: &mut Link, log: &LogQueue) {
    let db = link.db();
    let target = format!(
        "table {} in database {} at {} as user {}",
        db.table, db.database, db.server, db.user
    );
    match link.check() {
        Ok(info) => log.push(format!(
            "database check ok: {target} (server {}): columns vhost, day, in, out present",
            info.version
        )),
        Err(e) => log.push(format!(
            "database check failed: {target}: {e}; lighttpd keeps serving and counting"
        )),
    }
}
