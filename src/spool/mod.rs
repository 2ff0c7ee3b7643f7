//! The spool file's whole life: counts the database could not take when
//! lighttpd stopped wait here until the next start replays them.
//!
//! 1. At stop, [`keep`] appends them (under a lock, fsynced).
//! 2. At the next start, [`take_over`] claims the file (an atomic rename to
//!    a name only this process knows, so with several workers exactly one
//!    replays it) and reads it.
//! 3. The flusher delivers the claimed batches first; when all are in, it
//!    [`Claimed::retire`]s the file. If lighttpd stops before that, what is
//!    left goes into a new spool by [`keep`], which retires the claimed one.
//!
//! Rows the table refuses for good (a value it cannot hold) are set aside
//! by [`Rejects`] in `<spool>.rejected`, in the same format.
//!
//! The record format is in [`format`].

pub mod format;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::counters::{Batch, Counters};
use crate::log::LogQueue;
use crate::schema;

pub use self::format::Parsed;

/// A spool file this process took over: renamed to `<spool>.claimed.<pid>`.
#[derive(Debug)]
pub struct Claimed {
    path: PathBuf,
}

impl Claimed {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every batch of the claimed file is in the table: the file goes.
    pub fn retire(self, log: &LogQueue) {
        match fs::remove_file(&self.path) {
            Ok(()) => log.push(format!("spool {} replayed completely", self.path.display())),
            Err(e) => log.push(format!(
                "cannot remove replayed spool {}: {e}",
                self.path.display()
            )),
        }
    }
}

/// What an earlier run left to deliver, delivered before anything new.
#[derive(Debug, Default)]
pub struct Replay {
    pub batches: Vec<Batch>,
    pub claimed: Option<Claimed>,
}

/// At start: takes over the spool file of an earlier run, if there is one,
/// and says so in the log. `remembered` is how long the ledger keeps batch
/// ids: an older spool is replayed, with a warning.
pub fn take_over(path: &Path, log: &LogQueue, remembered: Duration, rejects: &Rejects) -> Replay {
    match claim(path) {
        Ok(None) => Replay::default(),
        Ok(Some((claimed, parsed))) => {
            warn_if_older(&claimed.path, remembered, log);
            let good: usize = parsed.batches.iter().map(|b| b.rows.len()).sum();
            if parsed.skipped > 0 {
                log.push(format!(
                    "spool file {}: skipped {} corrupt or truncated records; replaying the {good} good ones",
                    path.display(),
                    parsed.skipped
                ));
            }
            let rows: Vec<_> = parsed
                .batches
                .iter()
                .flat_map(|b| b.rows.iter().cloned())
                .collect();
            log.push(format!(
                "replaying {} from spool file {} (claimed as {})",
                Counters::summary_of(&rows),
                path.display(),
                claimed.path.display()
            ));
            Replay {
                batches: fitting(parsed.batches, rejects, log),
                claimed: Some(claimed),
            }
        }
        Err(e) => {
            log.push(format!(
                "cannot claim spool file {}: {e}; it stays for the next start",
                path.display()
            ));
            Replay::default()
        }
    }
}

/// The spooled rows the tables can hold; the others are set aside (a spool
/// file is checked for damage, but a well-formed record can still hold a
/// value no table takes, and it must not block the rest).
fn fitting(batches: Vec<Batch>, rejects: &Rejects, log: &LogQueue) -> Vec<Batch> {
    let mut out = Vec::new();
    for batch in batches {
        let (fit, misfits): (Vec<_>, Vec<_>) = batch
            .rows
            .into_iter()
            .partition(|r| schema::misfit(&batch.id, r).is_none());
        for row in misfits {
            let why = schema::misfit(&batch.id, &row).unwrap_or_default();
            let single = Batch {
                id: batch.id.clone(),
                rows: vec![row],
            };
            rejects.set_aside(&single, &format!("spooled row: {why}"), log);
        }
        if !fit.is_empty() {
            out.push(Batch {
                id: batch.id,
                rows: fit,
            });
        }
    }
    out
}

/// Rows the table refuses for good, set aside where an admin finds them:
/// `<spool_file>.rejected` (in the spool's format, after a comment line
/// saying why), or, without a spool file, only the error log. Each row also
/// gets a log line naming it and why.
#[derive(Debug, Clone, Default)]
pub struct Rejects {
    path: Option<PathBuf>,
}

impl Rejects {
    /// Next to the spool file, if there is one.
    pub fn beside(spool: Option<&Path>) -> Rejects {
        Rejects {
            path: spool.map(|s| {
                let mut name = s.as_os_str().to_owned();
                name.push(".rejected");
                PathBuf::from(name)
            }),
        }
    }

    pub fn set_aside(&self, batch: &Batch, why: &str, log: &LogQueue) {
        let kept = match &self.path {
            Some(path) => match append(path, &format!("# {why}\n"), batch) {
                Ok(()) => format!("set aside in {}", path.display()),
                Err(e) => format!(
                    "cannot write {}: {e}; not in the table: add it by hand once the table \
                     can take it",
                    path.display()
                ),
            },
            None => "not in the table: add it by hand once the table can take it".to_string(),
        };
        for row in &batch.rows {
            log.push(format!(
                "the table refuses vhost {} day {} ({} bytes in, {} bytes out, batch {}): {why}; \
                 {kept}",
                row.host, row.day, row.traffic.bytes_in, row.traffic.bytes_out, batch.id
            ));
        }
    }
}

/// The ledger may have forgotten the ids of a spool written longer ago than
/// it keeps them: a batch whose COMMIT had landed would be added again.
fn warn_if_older(path: &Path, remembered: Duration, log: &LogQueue) {
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    if let Some(age) = age.filter(|a| *a > remembered) {
        log.push(format!(
            "spool file {} was written {} days ago, longer than the ledger keeps batch ids \
             ({} days): a batch in it whose COMMIT had landed before the reply was lost is \
             added again",
            path.display(),
            age.as_secs() / 86_400,
            remembered.as_secs() / 86_400
        ));
    }
}

/// At stop: appends `batches` to the spool for the next start. `claimed`
/// is this process's replay, whose undelivered rest is among `batches`:
/// once they are safely on disk, it goes.
pub fn keep(path: &Path, batches: &[Batch], claimed: Option<Claimed>) -> io::Result<()> {
    append_all(path, batches)?;
    if let Some(c) = claimed {
        let _ = fs::remove_file(c.path);
    }
    Ok(())
}

fn append_all(path: &Path, batches: &[Batch]) -> io::Result<()> {
    write_locked(path, &format::format(batches))
}

fn append(path: &Path, comment: &str, batch: &Batch) -> io::Result<()> {
    let records = format::format(std::slice::from_ref(batch));
    write_locked(path, &format!("{comment}{records}"))
}

/// Appends `text` to the file and fsyncs, under an exclusive lock so
/// that several lighttpd workers stopping together do not interleave.
fn write_locked(path: &Path, text: &str) -> io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    // SAFETY: flock(2) only reads the descriptor number, which `f` owns and
    // keeps open for the call; the lock goes when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Renames the spool to a name only this process knows (rename is atomic,
/// so with several workers exactly one wins) and reads it. `Ok(None)`:
/// there was no spool to claim.
fn claim(path: &Path) -> io::Result<Option<(Claimed, Parsed)>> {
    let claimed = path.with_file_name(format!(
        "{}.claimed.{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    match fs::rename(path, &claimed) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let text = fs::read(&claimed)?;
    Ok(Some((Claimed { path: claimed }, format::parse(&text))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Row, Traffic};
    use crate::day::Day;

    fn batch(id: &str, host: &str, bytes_in: u64) -> Batch {
        Batch {
            id: id.into(),
            rows: vec![Row {
                host: host.into(),
                day: Day(20_420),
                traffic: Traffic {
                    bytes_in,
                    bytes_out: 1,
                },
            }],
        }
    }

    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("bwc-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn kept_at_stop_taken_over_once_at_start_retired_when_replayed() {
        let dir = Dir::new("spool-life");
        let path = dir.0.join("spool");
        let log = LogQueue::default();
        assert!(
            take_over(&path, &log, WEEK, &Rejects::default())
                .claimed
                .is_none(),
            "no spool yet"
        );
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], None).unwrap();
        keep(&path, &[batch("h/1/2/4", "b.example", 20)], None).unwrap();

        let replay = take_over(&path, &log, WEEK, &Rejects::default());
        assert_eq!(
            replay.batches,
            vec![
                batch("h/1/2/3", "a.example", 10),
                batch("h/1/2/4", "b.example", 20)
            ]
        );
        let claimed = replay.claimed.expect("claimed");
        assert!(!path.exists() && claimed.path().exists());
        assert!(
            take_over(&path, &log, WEEK, &Rejects::default())
                .claimed
                .is_none(),
            "claimed once"
        );
        let claimed_path = claimed.path().to_path_buf();
        claimed.retire(&log);
        assert!(!claimed_path.exists());
        let lines = log.drain().lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("replaying 30 bytes in, 2 bytes out in 2 rows from spool file")
        );
        assert!(lines[1].ends_with("replayed completely"), "{lines:?}");
    }

    #[test]
    fn a_spool_older_than_the_ledger_remembers_is_replayed_with_a_warning() {
        let dir = Dir::new("spool-old");
        let path = dir.0.join("spool");
        let log = LogQueue::default();
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], None).unwrap();
        let replay = take_over(&path, &log, Duration::ZERO, &Rejects::default());
        assert_eq!(replay.batches.len(), 1);
        let lines = log.drain().lines;
        assert!(
            lines[0].contains("longer than the ledger keeps batch ids (0 days)"),
            "{lines:?}"
        );
    }

    #[test]
    fn spooled_rows_no_table_can_hold_are_set_aside_and_the_rest_replayed() {
        let dir = Dir::new("spool-misfit");
        let path = dir.0.join("spool");
        let log = LogQueue::default();
        let mut mixed = batch("h/1/2/3", "good.example", 10);
        mixed
            .rows
            .push(batch("x", "big.example", 1 << 63).rows[0].clone());
        let long_id = batch(&"i".repeat(200), "id.example", 5);
        keep(&path, &[mixed, long_id], None).unwrap();
        let rejects = Rejects::beside(Some(&path));
        let replay = take_over(&path, &log, WEEK, &rejects);
        assert_eq!(replay.batches, vec![batch("h/1/2/3", "good.example", 10)]);
        let lines = log.drain().lines;
        let refused: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("the table refuses"))
            .collect();
        assert_eq!(refused.len(), 2, "{lines:?}");
        assert!(refused[0].contains("vhost big.example") && refused[0].contains("bigint"));
        assert!(refused[1].contains("vhost id.example") && refused[1].contains("batch id"));
        let rejected = format::parse(&fs::read(dir.0.join("spool.rejected")).unwrap());
        assert_eq!(rejected.skipped, 0);
        let hosts: Vec<_> = rejected
            .batches
            .iter()
            .map(|b| b.rows[0].host.to_string())
            .collect();
        assert_eq!(hosts, vec!["big.example", "id.example"]);
    }

    #[test]
    fn the_rest_of_a_replay_moves_into_the_new_spool() {
        let dir = Dir::new("spool-rest");
        let path = dir.0.join("spool");
        let log = LogQueue::default();
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], None).unwrap();
        let replay = take_over(&path, &log, WEEK, &Rejects::default());
        let claimed_path = replay.claimed.as_ref().unwrap().path().to_path_buf();
        keep(&path, &replay.batches, replay.claimed).unwrap();
        assert!(!claimed_path.exists(), "the claimed file went");
        assert_eq!(
            take_over(&path, &log, WEEK, &Rejects::default()).batches,
            replay.batches
        );
    }
}
