//! The spool file's whole life: counts the database could not take when
//! lighttpd stopped wait here until the next start replays them.
//!
//! 1. At stop, [`keep`] appends them, fsynced; an append that fails part
//!    way is cut back to the last whole record, and the caller learns how
//!    many records are on disk.
//! 2. At the next start, [`take_over`] claims the file: an atomic rename to
//!    a name no other process uses, so with several workers exactly one
//!    replays it. The claimer holds an `flock` on the claimed file for as
//!    long as it lives, so a claimed file nobody holds was left by a
//!    process that died before it finished; `take_over` adopts those too.
//! 3. The flusher reads the claimed files in portions of at most
//!    [`PORTION`] bytes (a spool of any size is never read whole into
//!    memory) and delivers them first; when all is in, it
//!    [`Claimed::retire`]s the file. If lighttpd stops before that, what is
//!    left goes into a new spool by [`keep`], which then removes the
//!    claimed files.
//!
//! Claiming and appending take an `flock` on the spool's directory, so they
//! never interleave, whichever processes do them (workers of a stopping
//! lighttpd and those of a new one). Files are created mode 0600 and never
//! opened through a symlink.
//!
//! Rows the table refuses for good (a value it cannot hold) are set aside
//! by [`Rejects`] in `<spool>.rejected`, in the same format.
//!
//! The record format is in [`format`].

pub mod format;

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::counters::{Batch, Counters, Summary};
use crate::log::LogQueue;
use crate::schema;

pub use self::format::{count_records, Parsed};

/// How much of a claimed spool is read into memory at a time.
pub const PORTION: usize = 16 << 20;

/// A spool file this process took over (renamed to
/// `<spool>.claimed.<pid>.<nanos>`, or adopted from a process that died).
/// The open file carries this process's `flock` on it.
#[derive(Debug)]
pub struct Claimed {
    path: PathBuf,
    reader: BufReader<File>,
    /// The first line of the next portion, read ahead to end the current
    /// one at a batch boundary.
    pending: Option<Vec<u8>>,
    exhausted: bool,
}

impl Claimed {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything has been read (its batches may still be on their way).
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// The next whole batches, about [`PORTION`] bytes of records at most
    /// (a single larger batch is read whole); damaged records are counted.
    pub fn read_portion(&mut self) -> io::Result<Parsed> {
        let mut text = Vec::new();
        let mut last_id: Option<Vec<u8>> = None;
        loop {
            let line = match self.pending.take() {
                Some(line) => line,
                None => {
                    let mut line = Vec::new();
                    if self.reader.read_until(b'\n', &mut line)? == 0 {
                        self.exhausted = true;
                        break;
                    }
                    line
                }
            };
            let id = batch_id_of(&line);
            if text.len() + line.len() > PORTION && id.is_some() && id != last_id {
                self.pending = Some(line);
                break;
            }
            last_id = id.or(last_id);
            text.extend_from_slice(&line);
        }
        Ok(format::parse(&text))
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

    /// Gives the file up without replaying the rest: renamed to say where
    /// its unread rest starts (`….from<offset>`), for the next start to
    /// adopt from there. Returns the new name.
    pub fn leave(mut self) -> io::Result<PathBuf> {
        let offset = self.consumed()?;
        let name = self.path.as_os_str().as_encoded_bytes();
        let base = match name.iter().rposition(|&b| b == b'.') {
            Some(dot) if name[dot + 1..].starts_with(b"from") => &name[..dot],
            _ => name,
        };
        let mut left = OsString::from(String::from_utf8_lossy(base).into_owned());
        left.push(format!(".from{offset}"));
        let left = PathBuf::from(left);
        fs::rename(&self.path, &left)?;
        self.path = left.clone();
        Ok(left)
    }

    /// Bytes of the file taken into memory so far.
    fn consumed(&mut self) -> io::Result<u64> {
        let position = io::Seek::stream_position(self.reader.get_mut())?;
        let unread = self.reader.buffer().len() + self.pending.as_ref().map_or(0, Vec::len);
        Ok(position - unread as u64)
    }

    /// Appends what was not read yet to `out`.
    fn copy_rest(&mut self, out: &mut File) -> io::Result<()> {
        if let Some(line) = self.pending.take() {
            out.write_all(&line)?;
        }
        io::copy(&mut self.reader, out)?;
        Ok(())
    }
}

/// The batch id of a record line (its third field), if it looks like one.
fn batch_id_of(line: &[u8]) -> Option<Vec<u8>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    (fields.next()? == format::MAGIC.as_bytes()).then_some(())?;
    fields.next()?;
    fields.next().map(<[u8]>::to_vec)
}

/// What earlier runs left to deliver, delivered before anything new.
#[derive(Debug, Default)]
pub struct Replay {
    pub claimed: Vec<Claimed>,
}

/// At start: takes over the spool file of an earlier run and the claimed
/// files of processes that died, and says so in the log. `remembered` is
/// how long the ledger keeps batch ids: an older spool is replayed, with a
/// warning.
pub fn take_over(path: &Path, log: &LogQueue, remembered: Duration) -> Replay {
    let claimed = match claim_all(path) {
        Ok(claimed) => claimed,
        Err(e) => {
            log.push(format!(
                "cannot claim spool file {}: {e}; it stays for the next start",
                path.display()
            ));
            return Replay::default();
        }
    };
    for c in &claimed {
        warn_if_older(&c.path, remembered, log);
        match survey(&c.path) {
            Ok((summary, skipped)) => {
                if skipped > 0 {
                    log.push(format!(
                        "spool file {}: skipped {skipped} corrupt or truncated records; \
                         replaying the {} good ones",
                        path.display(),
                        summary.rows
                    ));
                }
                log.push(format!(
                    "replaying {summary} from spool file {} (claimed as {})",
                    path.display(),
                    c.path.display()
                ));
            }
            Err(e) => log.push(format!("cannot read {}: {e}", c.path.display())),
        }
    }
    Replay { claimed }
}

/// Under the directory lock: renames the spool to a claimed name, and
/// adopts claimed files whose claimer is gone (nobody holds their lock).
fn claim_all(path: &Path) -> io::Result<Vec<Claimed>> {
    let _lock = DirLock::take(path)?;
    let mut claimed = Vec::new();
    let prefix = sibling(path, ".claimed.");
    let dir = path.parent().unwrap_or(Path::new("/"));
    for entry in fs::read_dir(dir)?.flatten() {
        let candidate = entry.path();
        if !candidate
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(prefix.as_os_str().as_encoded_bytes())
        {
            continue;
        }
        // Only regular files: a symlink there is not ours to follow.
        let regular = fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_file());
        if !regular {
            continue;
        }
        if let Some(orphan) = open_claimed(candidate, false)? {
            claimed.push(orphan);
        }
    }
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(io::Error::other(
                "it is not a regular file (a symlink?), and is left alone",
            ));
        }
        _ => {}
    }
    let mine = sibling(
        path,
        &format!(
            ".claimed.{}.{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ),
    );
    match fs::rename(path, &mine) {
        Ok(()) => claimed.extend(open_claimed(mine, true)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(claimed)
}

/// Opens a claimed file and takes its lock: `None` if another process
/// holds it (that claimer is alive). `wait`: for our own fresh claim,
/// which nobody else can hold.
fn open_claimed(path: PathBuf, wait: bool) -> io::Result<Option<Claimed>> {
    let file = open_private(&path, OpenOptions::new().read(true))?;
    let how = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock(2) only reads the descriptor number, which `file` owns
    // and keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok(None),
            _ => Err(e),
        };
    }
    let mut reader = BufReader::new(file);
    if let Some(offset) = left_at(&path) {
        io::Seek::seek(&mut reader, io::SeekFrom::Start(offset))?;
    }
    Ok(Some(Claimed {
        path,
        reader,
        pending: None,
        exhausted: false,
    }))
}

/// Where the unread rest of a claimed file that was left starts (its name
/// ends in `.from<offset>`, see [`Claimed::leave`]).
fn left_at(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.rsplit_once(".from")?.1.parse().ok()
}

/// The good rows and damaged records of a claimed file, read in portions.
fn survey(path: &Path) -> io::Result<(Summary, usize)> {
    let mut reader = BufReader::new(open_private(path, OpenOptions::new().read(true))?);
    if let Some(offset) = left_at(path) {
        io::Seek::seek(&mut reader, io::SeekFrom::Start(offset))?;
    }
    let (mut summary, mut skipped) = (Summary::default(), 0);
    loop {
        let mut chunk = Vec::new();
        let n = (&mut reader).take(PORTION as u64).read_to_end(&mut chunk)?;
        // Whole lines only; the rest of the last one goes with the next.
        reader.read_until(b'\n', &mut chunk)?;
        if n == 0 {
            return Ok((summary, skipped));
        }
        let parsed = format::parse(&chunk);
        skipped += parsed.skipped;
        for b in &parsed.batches {
            summary += Counters::summary_of(&b.rows);
        }
    }
}

/// The spooled rows the tables can hold; the others are set aside (a spool
/// file is checked for damage, but a well-formed record can still hold a
/// value no table takes, and it must not block the rest).
pub fn fitting(batches: Vec<Batch>, rejects: &Rejects, log: &LogQueue) -> Vec<Batch> {
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
            path: spool.map(|s| sibling(s, ".rejected")),
        }
    }

    pub fn set_aside(&self, batch: &Batch, why: &str, log: &LogQueue) {
        let kept = match &self.path {
            Some(path) => {
                let text = format!("# {why}\n{}", format::format(std::slice::from_ref(batch)));
                match append_locked(path, text.as_bytes(), &mut [], Partial::Keep) {
                    Ok(()) => format!("set aside in {}", path.display()),
                    Err(e) => format!(
                        "cannot write {}: {}; not in the table: add it by hand once the table \
                         can take it",
                        path.display(),
                        e.error
                    ),
                }
            }
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

/// A failed [`keep`]: how many of the records given are on disk (the first
/// `records_written`, each whole), why the rest are not, and where the
/// unread rest of each claimed file stays for the next start.
#[derive(Debug)]
pub struct KeepError {
    pub records_written: usize,
    pub error: io::Error,
    pub left: Vec<PathBuf>,
}

/// At stop: appends `batches`, then what was not read yet of the `claimed`
/// files (this process's replay), to the spool for the next start; once
/// that is on disk, the claimed files go. If the claimed files' rest cannot
/// be copied, they stay where they are, to be adopted by the next start.
pub fn keep(path: &Path, batches: &[Batch], mut claimed: Vec<Claimed>) -> Result<(), KeepError> {
    let text = format::format(batches);
    if let Err(mut e) = append_locked(path, text.as_bytes(), &mut claimed, Partial::Keep) {
        e.left = claimed
            .into_iter()
            .map(|c| {
                let at = c.path.clone();
                c.leave().unwrap_or(at)
            })
            .collect();
        return Err(e);
    }
    for c in claimed {
        let _ = fs::remove_file(&c.path);
    }
    Ok(())
}

/// Appends `text` (whole records) and then the unread rest of `claimed`
/// to the file under the directory lock, and fsyncs; on a failure, cuts
/// the file back to its last whole record.
/// Appends `batches` entirely or not at all: a failed write is cut back
/// to where the file ended before (for batches that must not be split).
pub fn keep_whole(path: &Path, batches: &[Batch]) -> io::Result<()> {
    let text = format::format(batches);
    append_locked(path, text.as_bytes(), &mut [], Partial::Drop).map_err(|e| e.error)
}

/// What a failed append leaves of the records it wrote whole.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Partial {
    Keep,
    Drop,
}

fn append_locked(
    path: &Path,
    text: &[u8],
    claimed: &mut [Claimed],
    partial: Partial,
) -> Result<(), KeepError> {
    let nothing = |error| KeepError {
        records_written: 0,
        error,
        left: Vec::new(),
    };
    if text.is_empty() && claimed.is_empty() {
        return Ok(());
    }
    let lock = DirLock::take(path).map_err(nothing)?;
    let mut f = open_private(
        path,
        OpenOptions::new().read(true).append(true).create(true),
    )
    .map_err(nothing)?;
    let start = end_on_a_line_boundary(&mut f).map_err(nothing)?;
    let (written, result) = write_counted(&mut f, text);
    let whole = text[..written]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let records_written = text[..whole].iter().filter(|&&b| b == b'\n').count();
    let cut = |f: &File, len: u64, error| {
        let _ = f.set_len(len);
        let _ = f.sync_all();
        KeepError {
            records_written,
            error,
            left: Vec::new(),
        }
    };
    if let Err(e) = result {
        if partial == Partial::Drop {
            let mut e = cut(&f, start, e);
            e.records_written = 0;
            return Err(e);
        }
        return Err(cut(&f, start + whole as u64, e));
    }
    let records_end = start + text.len() as u64;
    for c in claimed.iter_mut() {
        if let Err(e) = c.copy_rest(&mut f) {
            return Err(cut(&f, records_end, e));
        }
    }
    if let Err(e) = f.sync_all() {
        return Err(cut(&f, start, e));
    }
    let _ = lock.sync();
    Ok(())
}

/// A spool whose last record was torn (a writer died mid-write, before the
/// cut-back) gets a newline, so that the next record is never glued to it.
/// Returns the length before anything is appended.
fn end_on_a_line_boundary(f: &mut File) -> io::Result<u64> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
        return Ok(len + 1);
    }
    Ok(len)
}

/// Writes as much of `bytes` as the file takes: (bytes written, outcome).
fn write_counted(f: &mut File, bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        match f.write(&bytes[written..]) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

/// `<path><suffix>`, in the same directory.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens (or creates, mode 0600) a spool file, never through a symlink.
fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// An exclusive `flock` on the spool's directory, held while claiming or
/// appending: no extra lock file to leave behind.
struct DirLock(File);

impl DirLock {
    fn take(spool: &Path) -> io::Result<DirLock> {
        let dir = spool.parent().unwrap_or(Path::new("/"));
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        // SAFETY: flock(2) only reads the descriptor number, which `f` owns
        // and keeps open for the call; the lock goes when `f` is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirLock(f))
    }

    /// Makes renames and new files in the directory durable.
    fn sync(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Row, Traffic};
    use crate::day::Day;
    use crate::testdir::TestDir;

    const WEEK: Duration = Duration::from_secs(7 * 86_400);

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

    /// A fresh directory, the spool path in it, and a log.
    fn spool_in(name: &str) -> (TestDir, PathBuf, LogQueue) {
        let dir = TestDir::new(name);
        let path = dir.join("spool");
        (dir, path, LogQueue::default())
    }

    /// Everything a replay holds, read portion by portion.
    fn read_all(replay: &mut Replay) -> Vec<Batch> {
        let mut out = Vec::new();
        for c in &mut replay.claimed {
            while !c.is_exhausted() {
                out.extend(c.read_portion().unwrap().batches);
            }
        }
        out
    }

    #[test]
    fn kept_at_stop_taken_over_once_at_start_retired_when_replayed() {
        let (dir, path, log) = spool_in("spool-life");
        assert!(
            take_over(&path, &log, WEEK).claimed.is_empty(),
            "no spool yet"
        );
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], Vec::new()).unwrap();
        keep(&path, &[batch("h/1/2/4", "b.example", 20)], Vec::new()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private");

        let mut replay = take_over(&path, &log, WEEK);
        assert_eq!(
            read_all(&mut replay),
            vec![
                batch("h/1/2/3", "a.example", 10),
                batch("h/1/2/4", "b.example", 20)
            ]
        );
        assert!(!path.exists());
        assert!(
            take_over(&path, &log, WEEK).claimed.is_empty(),
            "claimed once"
        );
        let claimed = replay.claimed.pop().unwrap();
        let claimed_path = claimed.path().to_path_buf();
        claimed.retire(&log);
        assert!(!claimed_path.exists());
        let lines = log.drain().lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("replaying 30 bytes in, 2 bytes out in 2 rows from spool file")
        );
        assert!(lines[1].ends_with("replayed completely"), "{lines:?}");
        assert!(dir.names().is_empty(), "{:?}", dir.names());
    }

    #[test]
    fn a_claim_nobody_holds_is_adopted_and_one_held_is_not() {
        let (_dir, path, log) = spool_in("spool-orphan");
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], Vec::new()).unwrap();
        let held = take_over(&path, &log, WEEK);
        assert_eq!(held.claimed.len(), 1);
        keep(&path, &[batch("h/1/2/4", "b.example", 20)], Vec::new()).unwrap();
        // A second process while the first is alive: only the new spool.
        let mut second = take_over(&path, &log, WEEK);
        assert_eq!(
            read_all(&mut second),
            vec![batch("h/1/2/4", "b.example", 20)]
        );
        drop(second);
        drop(held); // the first dies without retiring its claim
        let mut third = take_over(&path, &log, WEEK);
        let mut hosts: Vec<String> = read_all(&mut third)
            .iter()
            .map(|b| b.rows[0].host.to_string())
            .collect();
        hosts.sort();
        assert_eq!(
            hosts,
            vec!["a.example", "b.example"],
            "both orphans adopted"
        );
    }

    #[test]
    fn the_rest_of_a_replay_moves_into_the_new_spool() {
        let (dir, path, log) = spool_in("spool-rest");
        let batches: Vec<Batch> = (0..3)
            .map(|i| batch(&format!("h/1/2/{i}"), "a.example", i))
            .collect();
        keep(&path, &batches, Vec::new()).unwrap();
        let replay = take_over(&path, &log, WEEK);
        // Nothing read yet: all of it is the unread rest.
        keep(&path, &[batch("new/1", "n.example", 9)], replay.claimed).unwrap();
        assert_eq!(dir.names(), vec!["spool"], "the claimed file went");
        let mut again = take_over(&path, &log, WEEK);
        let ids: Vec<String> = read_all(&mut again).into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec!["new/1", "h/1/2/0", "h/1/2/1", "h/1/2/2"]);
    }

    #[test]
    fn a_claim_left_part_read_is_adopted_from_where_it_was_left() {
        let (_dir, path, log) = spool_in("spool-left");
        keep(&path, &[batch("h/1", "a.example", 1)], Vec::new()).unwrap();
        let mut replay = take_over(&path, &log, WEEK);
        // What was read is the caller's now; the rest is left.
        let read = replay.claimed[0].read_portion().unwrap();
        assert_eq!(read.batches.len(), 1);
        keep(&path, &[batch("h/2", "b.example", 2)], Vec::new()).unwrap();
        let left = replay.claimed.pop().unwrap().leave().unwrap();
        assert!(
            left.to_string_lossy().contains(".from"),
            "{}",
            left.display()
        );
        let mut next = take_over(&path, &log, WEEK);
        let ids: Vec<String> = read_all(&mut next).into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec!["h/2"], "nothing read before comes back");
    }

    #[test]
    fn a_large_spool_is_read_in_portions_of_whole_batches() {
        let dir = TestDir::new("spool-portions");
        let path = dir.join("spool");
        // About 3 portions, 100 rows a batch.
        let rows_per_batch = 100;
        let row_len = format::format(&[batch("b/00000", "x", 1)]).len();
        let batches = PORTION * 3 / (row_len * rows_per_batch);
        let mut f = File::create(&path).unwrap();
        for b in 0..batches {
            let rows: Vec<Row> = (0..rows_per_batch)
                .map(|r| batch("-", &format!("h{r}"), b as u64).rows[0].clone())
                .collect();
            let text = format::format(&[Batch {
                id: format!("b/{b:05}"),
                rows,
            }]);
            f.write_all(text.as_bytes()).unwrap();
        }
        drop(f);
        let mut replay = take_over(&path, &LogQueue::default(), WEEK);
        let c = &mut replay.claimed[0];
        let mut portions = 0;
        let mut seen = 0;
        while !c.is_exhausted() {
            let portion = c.read_portion().unwrap();
            let text_len: usize = portion.batches.iter().map(|b| b.rows.len() * row_len).sum();
            assert!(text_len <= PORTION, "portion of {text_len} bytes");
            assert!(portion
                .batches
                .iter()
                .all(|b| b.rows.len() == rows_per_batch));
            seen += portion.batches.len();
            portions += 1;
        }
        assert_eq!(seen, batches);
        assert!(portions >= 3, "{portions} portions");
    }

    #[test]
    fn appends_and_claims_from_many_threads_lose_and_repeat_nothing() {
        let dir = TestDir::new("spool-race");
        let path = dir.join("spool");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let b = batch(&format!("w{w}/{i}"), "a.example", 1);
                        keep(&path, &[b], Vec::new()).unwrap();
                    }
                })
            })
            .collect();
        let mut ids = Vec::new();
        let mut done = false;
        while !done {
            done = writers.iter().all(|w| w.is_finished());
            let mut replay = take_over(&path, &LogQueue::default(), WEEK);
            ids.extend(read_all(&mut replay).into_iter().map(|b| b.id));
            for c in replay.claimed {
                c.retire(&LogQueue::default());
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        let mut replay = take_over(&path, &LogQueue::default(), WEEK);
        ids.extend(read_all(&mut replay).into_iter().map(|b| b.id));
        ids.sort();
        let mut expected: Vec<String> = (0..4)
            .flat_map(|w| (0..50).map(move |i| format!("w{w}/{i}")))
            .collect();
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_torn_last_record_is_not_glued_to_the_next() {
        let dir = TestDir::new("spool-torn");
        let path = dir.join("spool");
        let whole = format::format(&[batch("h/1", "a.example", 1)]);
        fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        keep(&path, &[batch("h/2", "b.example", 2)], Vec::new()).unwrap();
        let parsed = format::parse(&fs::read(&path).unwrap());
        assert_eq!(parsed.skipped, 1, "the torn one");
        assert_eq!(parsed.batches, vec![batch("h/2", "b.example", 2)]);
    }

    #[test]
    fn never_through_a_symlink() {
        let dir = TestDir::new("spool-link");
        let path = dir.join("spool");
        let victim = dir.join("victim");
        fs::write(&victim, "").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = keep(&path, &[batch("h/1", "a.example", 1)], Vec::new()).unwrap_err();
        assert_eq!(e.records_written, 0);
        assert_eq!(fs::read(&victim).unwrap(), b"");
    }

    #[test]
    fn spooled_rows_no_table_can_hold_are_set_aside() {
        let (dir, path, log) = spool_in("spool-misfit");
        let mut mixed = batch("h/1/2/3", "good.example", 10);
        mixed
            .rows
            .push(batch("x", "big.example", 1 << 63).rows[0].clone());
        let long_id = batch(&"i".repeat(200), "id.example", 5);
        let rejects = Rejects::beside(Some(&path));
        let kept = fitting(vec![mixed, long_id], &rejects, &log);
        assert_eq!(kept, vec![batch("h/1/2/3", "good.example", 10)]);
        let lines = log.drain().lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("vhost big.example") && lines[0].contains("bigint"));
        assert!(lines[1].contains("vhost id.example") && lines[1].contains("batch id"));
        let rejected = format::parse(&fs::read(dir.join("spool.rejected")).unwrap());
        assert_eq!(rejected.skipped, 0);
        let hosts: Vec<_> = rejected
            .batches
            .iter()
            .map(|b| b.rows[0].host.to_string())
            .collect();
        assert_eq!(hosts, vec!["big.example", "id.example"]);
    }

    #[test]
    fn a_spool_older_than_the_ledger_remembers_is_replayed_with_a_warning() {
        let (_dir, path, log) = spool_in("spool-old");
        keep(&path, &[batch("h/1/2/3", "a.example", 10)], Vec::new()).unwrap();
        let replay = take_over(&path, &log, Duration::ZERO);
        assert_eq!(replay.claimed.len(), 1);
        let lines = log.drain().lines;
        assert!(
            lines[0].contains("longer than the ledger keeps batch ids (0 days)"),
            "{lines:?}"
        );
    }
}
