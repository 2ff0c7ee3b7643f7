//! A board in memory shared by all of lighttpd's processes: each worker
//! and each flusher publishes its figures in the slot of its worker, and a
//! status request, answered by whichever worker gets it, reads every slot.
//!
//! One anonymous `MAP_SHARED` mapping, created in lighttpd's parent before
//! it forks its workers (which fork their flushers), so every process has
//! it at the same contents. Processes meet only through atomics in it:
//! Rust's atomic types exist only where they are lock-free, and lock-free
//! atomics are plain instructions on memory, so they order accesses between
//! processes sharing a page exactly as between threads. Nothing else (no
//! pointer, no lock that a dead process could hold forever) is in it.
//!
//! A slot: the owner's pid (0: free), then a worker area and a flusher
//! area. An area is double-buffered so that a reader never waits for a
//! writer, in whatever process: the writer fills the buffer readers are
//! not using and then switches them over. Its sequence number counts half
//! steps: even, buffer `(seq / 2) % 2` is the latest and nothing is being
//! written; odd, the same buffer is the latest and the other one is being
//! written. A reader copies the latest buffer and checks the sequence
//! again: its copy is intact unless a write into that same buffer may have
//! begun, which is the second write after the one it read (see
//! [`copy_intact`]). One publication during a copy is thus harmless; the
//! reader retries only when two fall in it, and gives up after
//! [`READ_TRIES`].
//!
//! An area has one writer at a time, enforced by a writer word holding the
//! writing process's pid: a flusher outlives its worker on purpose (to
//! deliver what it was handed), so the orphaned flusher and the flusher of
//! the worker that took the slot over may both publish for a while. A
//! writer never waits long: a word held by a dead process is taken over,
//! and one held by a live process past [`LOCK_TRIES`] is [`WriteError::Busy`]
//! (the next publication, a second later, tries again).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(target_has_atomic = "64"))]
compile_error!("the status board needs lock-free 64-bit atomics");

const WORD: usize = 8;
/// A slot starts with its owner's pid, padded to a word.
const SLOT_HEADER: usize = WORD;
/// An area starts with its sequence number and its writer word (padded).
const AREA_HEADER: usize = 2 * WORD;
/// A buffer starts with the length of its blob (padded).
const BUFFER_HEADER: usize = WORD;
/// Copies a reader attempts before it gives up.
pub const READ_TRIES: usize = 16;
/// Attempts to get an area's writer word before [`WriteError::Busy`].
pub const LOCK_TRIES: usize = 1000;

/// The shared mapping. Each process that has it (by creating it, or by
/// forking from one that had) unmaps its own view when it drops it.
pub struct Board {
    base: NonNull<u8>,
    len: usize,
    slots: usize,
    stride: usize,
    worker: Shape,
    flusher: Shape,
}

// SAFETY: every access to the mapping goes through atomics (see
// `Board::atomic_u32`), and the mapping lives as long as the Board, so
// sharing it between threads is as sound as sharing it between processes.
unsafe impl Send for Board {}
// SAFETY: as above.
unsafe impl Sync for Board {}

/// Where an area sits in a slot, and how large a blob it takes.
#[derive(Debug, Clone, Copy)]
struct Shape {
    offset: usize,
    capacity: usize,
    /// Words of one buffer's bytes.
    words: usize,
}

impl Shape {
    fn new(offset: usize, capacity: usize) -> Option<Shape> {
        u32::try_from(capacity).ok()?;
        let shape = Shape {
            offset,
            capacity,
            words: capacity.div_ceil(WORD),
        };
        shape.size()?;
        Some(shape)
    }

    fn buffer_size(&self) -> Option<usize> {
        self.words.checked_mul(WORD)?.checked_add(BUFFER_HEADER)
    }

    fn size(&self) -> Option<usize> {
        self.buffer_size()?.checked_mul(2)?.checked_add(AREA_HEADER)
    }
}

/// Which of a slot's two areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Worker,
    Flusher,
}

/// A slot [`Board::claim`] gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub slot: usize,
    /// The last worker blob of the dead process that owned the slot, so
    /// the new owner carries its totals on. None for a free slot.
    pub inherited: Option<Vec<u8>>,
}

/// What a slot shows. A blob is None when nothing (or an empty blob) was
/// published, or no intact copy could be had in [`READ_TRIES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub owner: u32,
    pub worker: Option<Vec<u8>>,
    pub flusher: Option<Vec<u8>>,
}

/// Why a blob was not published; nothing of it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    TooBig {
        len: usize,
        capacity: usize,
    },
    /// Another live process was writing the same area.
    Busy,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::TooBig { len, capacity } => {
                write!(f, "status blob of {len} bytes, room for {capacity}")
            }
            WriteError::Busy => f.write_str("status area busy in another process"),
        }
    }
}

impl std::error::Error for WriteError {}

impl Board {
    /// Maps a board of `slots` slots, zeroed (all free, nothing
    /// published). `MAP_NORESERVE`: pages never written cost nothing.
    pub fn create(slots: usize, worker_bytes: usize, flusher_bytes: usize) -> io::Result<Board> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "status board too large");
        if slots == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "status board needs a slot",
            ));
        }
        let worker = Shape::new(SLOT_HEADER, worker_bytes).ok_or_else(invalid)?;
        let flusher_at = worker
            .offset
            .checked_add(worker.size().ok_or_else(invalid)?);
        let flusher = Shape::new(flusher_at.ok_or_else(invalid)?, flusher_bytes);
        let flusher = flusher.ok_or_else(invalid)?;
        let stride = flusher.size().and_then(|s| s.checked_add(flusher.offset));
        let stride = stride.ok_or_else(invalid)?;
        let len = stride.checked_mul(slots).ok_or_else(invalid)?;
        // SAFETY: mmap(2) with a null hint creates a new mapping and
        // touches no existing memory; the result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(invalid)?;
        Ok(Board {
            base,
            len,
            slots,
            stride,
            worker,
            flusher,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Takes a slot for `pid`: a free one, else one whose owner no longer
    /// exists (with that owner's last worker blob). None if every owner is
    /// alive. A free slot is cleared, so figures of the worker that
    /// released it are not shown as ours; a dead owner's slot keeps
    /// showing its figures, which its heir carries on (and its orphaned
    /// flusher may still publish).
    pub fn claim(&self, pid: u32) -> Option<Claimed> {
        if pid == 0 {
            return None;
        }
        for slot in 0..self.slots {
            let owner = self.owner(slot);
            if owner
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Busy means a live writer still publishes here; its
                // figures show until our first publication replaces them.
                let _ = self.area(slot, Side::Worker).write(&[]);
                let _ = self.area(slot, Side::Flusher).write(&[]);
                return Some(Claimed {
                    slot,
                    inherited: None,
                });
            }
        }
        (0..self.slots).find_map(|slot| self.take_over(slot, pid))
    }

    /// Takes `slot` over from a dead owner.
    fn take_over(&self, slot: usize, pid: u32) -> Option<Claimed> {
        let owner = self.owner(slot);
        let dead = owner.load(Ordering::Acquire);
        if dead == 0 || alive(dead) {
            return None;
        }
        owner
            .compare_exchange(dead, pid, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Claimed {
            slot,
            inherited: self.area(slot, Side::Worker).read(),
        })
    }

    /// Frees `slot` if `pid` owns it; false if it did not.
    pub fn release(&self, slot: usize, pid: u32) -> bool {
        self.owner(slot)
            .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn write_worker(&self, slot: usize, blob: &[u8]) -> Result<(), WriteError> {
        self.area(slot, Side::Worker).write(blob)
    }

    pub fn write_flusher(&self, slot: usize, blob: &[u8]) -> Result<(), WriteError> {
        self.area(slot, Side::Flusher).write(blob)
    }

    pub fn read(&self, slot: usize) -> SlotView {
        SlotView {
            owner: self.owner(slot).load(Ordering::Acquire),
            worker: self.area(slot, Side::Worker).read(),
            flusher: self.area(slot, Side::Flusher).read(),
        }
    }

    /// Start of `slot`. Panics if there is no such slot (a caller's bug,
    /// like indexing a slice out of bounds).
    fn slot_start(&self, slot: usize) -> usize {
        assert!(slot < self.slots, "status slot {slot} of {}", self.slots);
        slot * self.stride
    }

    fn owner(&self, slot: usize) -> &AtomicU32 {
        self.atomic_u32(self.slot_start(slot))
    }

    fn area(&self, slot: usize, side: Side) -> Area<'_> {
        let shape = match side {
            Side::Worker => self.worker,
            Side::Flusher => self.flusher,
        };
        let start = self.slot_start(slot) + shape.offset;
        let buffer = |i: usize| {
            let at = start + AREA_HEADER + i * (BUFFER_HEADER + shape.words * WORD);
            Buffer {
                len: self.atomic_u32(at),
                words: self.atomic_words(at + BUFFER_HEADER, shape.words),
            }
        };
        Area {
            seq: self.atomic_u64(start),
            writer: self.atomic_u32(start + WORD),
            buffers: [buffer(0), buffer(1)],
            capacity: shape.capacity,
        }
    }

    fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let ptr = self.checked_ptr(offset, 4);
        // SAFETY: checked_ptr: in the mapping, aligned; the mapping lives
        // as long as &self, is zero-initialised (a valid AtomicU32) and is
        // accessed only through atomics, by every process that has it.
        unsafe { AtomicU32::from_ptr(ptr.cast()) }
    }

    fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let ptr = self.checked_ptr(offset, WORD);
        // SAFETY: as in atomic_u32.
        unsafe { AtomicU64::from_ptr(ptr.cast()) }
    }

    fn atomic_words(&self, offset: usize, words: usize) -> &[AtomicU64] {
        let ptr = self.checked_ptr(offset, words * WORD);
        // SAFETY: as in atomic_u32, for `words` consecutive aligned words
        // (AtomicU64 has u64's size and alignment).
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), words) }
    }

    /// A pointer to `size` bytes at `offset`, which must lie in the
    /// mapping and be word-aligned (the mapping itself is page-aligned).
    fn checked_ptr(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(offset % 4 == 0 && (size < WORD || offset % WORD == 0));
        assert!(offset.checked_add(size).is_some_and(|end| end <= self.len));
        // SAFETY: offset is within the mapping of `len` bytes (above).
        unsafe { self.base.as_ptr().add(offset) }
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping create() made; no reference
        // into it outlives &self. Other processes keep their own views.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Whether a process exists. kill(pid, 0) checks without sending; EPERM
/// (another user's) still means it exists. Values that are no pid (0, or
/// beyond pid_t, which kill would read as a process group) are not alive.
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 sends nothing; pid is positive, so it
    // names one process, never a group.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether a copy of the buffer that was latest at `before` is intact,
/// given the sequence number `after` read behind it. That buffer is next
/// written from half step `(before & !1) + 3` on: the write that follows
/// the one publishing the other buffer.
fn copy_intact(before: u64, after: u64) -> bool {
    after.wrapping_sub(before & !1) < 3
}

/// The latest buffer at half step `seq`.
fn latest(seq: u64) -> usize {
    ((seq / 2) % 2) as usize
}

/// One side of one slot, as references into the mapping.
struct Area<'a> {
    seq: &'a AtomicU64,
    /// Pid of the process writing, 0: none.
    writer: &'a AtomicU32,
    buffers: [Buffer<'a>; 2],
    capacity: usize,
}

struct Buffer<'a> {
    len: &'a AtomicU32,
    /// The blob, little-endian words, the last one zero-padded.
    words: &'a [AtomicU64],
}

/// Holds an area's writer word; frees it when dropped.
struct WriterLock<'a>(&'a AtomicU32);

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        // Release: the next writer, which takes the word with Acquire,
        // sees our sequence number.
        self.0.store(0, Ordering::Release);
    }
}

impl Area<'_> {
    fn write(&self, blob: &[u8]) -> Result<(), WriteError> {
        if blob.len() > self.capacity {
            return Err(WriteError::TooBig {
                len: blob.len(),
                capacity: self.capacity,
            });
        }
        let _lock = self.lock()?;
        let target = self.begin_write();
        self.fill(target, blob);
        self.publish();
        Ok(())
    }

    fn lock(&self) -> Result<WriterLock<'_>, WriteError> {
        let me = std::process::id();
        for _ in 0..LOCK_TRIES {
            let taken = match self.writer.load(Ordering::Relaxed) {
                0 => self.take_writer(0, me),
                holder if !alive(holder) => self.take_writer(holder, me),
                _ => false,
            };
            if taken {
                return Ok(WriterLock(self.writer));
            }
            std::thread::yield_now();
        }
        Err(WriteError::Busy)
    }

    fn take_writer(&self, from: u32, me: u32) -> bool {
        self.writer
            .compare_exchange(from, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Announces a write (odd half step) and returns the buffer to fill.
    /// Already odd: a writer died before publishing, and we redo its
    /// write into the same buffer.
    fn begin_write(&self) -> usize {
        // Only the writer-word holder changes seq; Relaxed sees our own
        // last value or, after Acquire on the word, the previous holder's.
        let seq = self.seq.load(Ordering::Relaxed);
        if seq % 2 == 0 {
            // Release: a reader that reads this odd value must also see
            // the buffer published before it (a plain store would not
            // carry the earlier release to it).
            self.seq.store(seq + 1, Ordering::Release);
        }
        // Release fence: a reader whose copy sees any of the stores below
        // also sees the odd half step above when it re-reads seq.
        fence(Ordering::Release);
        1 - latest(seq)
    }

    fn fill(&self, target: usize, blob: &[u8]) {
        let buffer = &self.buffers[target];
        for (word, chunk) in buffer.words.iter().zip(blob.chunks(WORD)) {
            let mut bytes = [0u8; WORD];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        // At most the capacity, which fits u32 (Shape::new).
        buffer.len.store(blob.len() as u32, Ordering::Relaxed);
    }

    /// Makes the filled buffer the latest (even half step). Release: a
    /// reader that reads the new value sees every byte of it.
    fn publish(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Release);
    }

    /// The latest blob; None if empty or no intact copy was had.
    fn read(&self) -> Option<Vec<u8>> {
        for _ in 0..READ_TRIES {
            let before = self.seq.load(Ordering::Acquire);
            let copy = self.copy(latest(before));
            // Acquire fence: if the copy saw a store of a later write, the
            // load below sees that write's odd half step.
            fence(Ordering::Acquire);
            if copy_intact(before, self.seq.load(Ordering::Relaxed)) {
                return copy.filter(|blob| !blob.is_empty());
            }
        }
        None
    }

    /// Buffer `index`'s blob, or None if its length is beyond the
    /// capacity (torn, which the caller's check then notices).
    fn copy(&self, index: usize) -> Option<Vec<u8>> {
        let buffer = &self.buffers[index];
        let len = buffer.len.load(Ordering::Relaxed) as usize;
        if len > self.capacity {
            return None;
        }
        let mut blob = Vec::with_capacity(len.next_multiple_of(WORD));
        for word in &buffer.words[..len.div_ceil(WORD)] {
            blob.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        blob.truncate(len);
        Some(blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn board() -> Board {
        Board::create(3, 100, 40).unwrap()
    }

    #[test]
    fn fresh_board_is_free_and_blank() {
        let board = board();
        assert_eq!(board.slots(), 3);
        for slot in 0..3 {
            let view = board.read(slot);
            assert_eq!((view.owner, view.worker, view.flusher), (0, None, None));
        }
    }

    #[test]
    fn blobs_round_trip_per_slot_and_side() {
        let board = board();
        board.write_worker(1, b"worker one").unwrap();
        board.write_flusher(1, b"flusher one").unwrap();
        board.write_worker(2, &[7u8; 100]).unwrap();
        let view = board.read(1);
        assert_eq!(view.worker.as_deref(), Some(&b"worker one"[..]));
        assert_eq!(view.flusher.as_deref(), Some(&b"flusher one"[..]));
        assert_eq!(board.read(2).worker, Some(vec![7u8; 100]));
        assert_eq!(board.read(0).worker, None);
        // A shorter blob after a longer one: its own length, not the old.
        board.write_worker(2, b"abc").unwrap();
        assert_eq!(board.read(2).worker.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn too_big_is_refused_and_writes_nothing() {
        let board = board();
        board.write_flusher(0, b"kept").unwrap();
        assert_eq!(
            board.write_flusher(0, &[1u8; 41]),
            Err(WriteError::TooBig {
                len: 41,
                capacity: 40
            })
        );
        assert_eq!(board.read(0).flusher.as_deref(), Some(&b"kept"[..]));
        assert_eq!(board.area(0, Side::Flusher).seq.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn sizes_that_cannot_be_mapped_are_errors() {
        assert!(Board::create(0, 8, 8).is_err());
        assert!(Board::create(1, usize::MAX, 8).is_err());
        assert!(Board::create(usize::MAX / 2, 8, 8).is_err());
    }

    /// The interleavings a reader in another process can meet, step by
    /// step with the writer's and the reader's own halves.
    #[test]
    fn a_copy_survives_one_publication_not_two() {
        let board = board();
        let area = board.area(0, Side::Worker);
        area.write(b"A").unwrap();

        // A whole write during the copy goes to the other buffer.
        let before = area.seq.load(Ordering::Acquire);
        area.write(b"B").unwrap();
        let copy = area.copy(latest(before));
        assert!(copy_intact(before, area.seq.load(Ordering::Relaxed)));
        assert_eq!(copy.as_deref(), Some(&b"A"[..]));

        // A reader arriving mid-write reads the latest buffer at once.
        let target = area.begin_write();
        area.fill(target, b"C, being written");
        let before = area.seq.load(Ordering::Acquire);
        assert_eq!(before % 2, 1);
        assert_eq!(area.copy(latest(before)).as_deref(), Some(&b"B"[..]));
        area.publish();
        assert!(copy_intact(before, area.seq.load(Ordering::Relaxed)));
        assert_eq!(area.read().as_deref(), Some(&b"C, being written"[..]));

        // The second write after the copied one starts on its buffer.
        let before = area.seq.load(Ordering::Acquire);
        area.write(b"D").unwrap();
        let target = area.begin_write();
        assert_eq!(target, latest(before));
        area.fill(target, b"E");
        assert!(!copy_intact(before, area.seq.load(Ordering::Relaxed)));
        area.publish();
        assert_eq!(area.read().as_deref(), Some(&b"E"[..]));
    }

    #[test]
    fn a_writer_that_died_mid_write_is_redone_by_the_next() {
        let board = board();
        let area = board.area(0, Side::Worker);
        area.write(b"old").unwrap();
        let target = area.begin_write();
        area.fill(target, b"half");
        // Its process died holding the writer word.
        area.writer.store(dead_pid(), Ordering::Relaxed);
        assert_eq!(area.read().as_deref(), Some(&b"old"[..]));
        board.write_worker(0, b"new").unwrap();
        assert_eq!(board.read(0).worker.as_deref(), Some(&b"new"[..]));
        assert_eq!(area.seq.load(Ordering::Relaxed) % 2, 0);
        assert_eq!(area.writer.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_live_writer_makes_others_busy() {
        let board = board();
        let area = board.area(0, Side::Flusher);
        area.writer.store(std::process::id(), Ordering::Relaxed);
        assert_eq!(board.write_flusher(0, b"x"), Err(WriteError::Busy));
        area.writer.store(0, Ordering::Relaxed);
        board.write_flusher(0, b"x").unwrap();
    }

    /// Readers racing a writer (threads here; processes share the same
    /// atomics) only ever see whole blobs: every byte of a blob is its
    /// length, mod 256.
    #[test]
    fn reads_racing_writes_are_whole() {
        let board = Arc::new(Board::create(1, 4096, 8).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (board, done) = (Arc::clone(&board), Arc::clone(&done));
            std::thread::spawn(move || {
                for i in 0..20_000usize {
                    let len = 1 + (i * 7919) % 4096;
                    board.write_worker(0, &vec![len as u8; len]).unwrap();
                }
                done.store(true, Ordering::Relaxed);
            })
        };
        let mut seen = 0;
        while !done.load(Ordering::Relaxed) {
            if let Some(blob) = board.read(0).worker {
                assert!(blob.iter().all(|&b| b == blob.len() as u8), "torn");
                seen += 1;
            }
        }
        writer.join().unwrap();
        assert!(seen > 0);
    }

    #[test]
    fn claim_takes_free_slots_then_dead_owners() {
        let board = board();
        let me = std::process::id();
        // SAFETY: getppid(2) has no preconditions.
        let parent = unsafe { libc::getppid() } as u32;
        assert_eq!(board.claim(me).map(|c| c.slot), Some(0));
        assert_eq!(board.claim(parent).map(|c| c.slot), Some(1));
        assert_eq!(board.claim(0), None);
        let dead = dead_pid();
        let claimed = board.claim(dead).unwrap();
        assert_eq!(
            claimed,
            Claimed {
                slot: 2,
                inherited: None
            }
        );
        board.write_worker(2, b"dead worker's totals").unwrap();

        let heir = board.claim(me).unwrap();
        assert_eq!(heir.slot, 2);
        assert_eq!(
            heir.inherited.as_deref(),
            Some(&b"dead worker's totals"[..])
        );
        assert_eq!(board.read(2).owner, me);
        // Everyone alive now.
        assert_eq!(board.claim(parent), None);
    }

    #[test]
    fn release_frees_only_ones_own_slot_and_a_free_slot_starts_blank() {
        let board = board();
        let me = std::process::id();
        let slot = board.claim(me).unwrap().slot;
        board.write_worker(slot, b"mine").unwrap();
        board.write_flusher(slot, b"my flusher").unwrap();
        assert!(!board.release(slot, me + 1));
        assert!(board.release(slot, me));
        assert_eq!(board.read(slot).owner, 0);
        let again = board.claim(me).unwrap();
        assert_eq!(
            again,
            Claimed {
                slot,
                inherited: None
            }
        );
        let view = board.read(slot);
        assert_eq!((view.worker, view.flusher), (None, None));
    }

    /// The board from a process that did not create it: a forked child
    /// claims, publishes and exits; the parent sees it all, and inherits
    /// the slot once the child is gone.
    #[test]
    fn a_forked_child_publishes_to_its_parent() {
        let board = board();
        // SAFETY: fork(2). The child (a copy of this multi-threaded test
        // process) only does what is safe there: atomics, getpid and
        // kill, no allocation and no lock, then _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let ok = child_publishes(&board);
            // SAFETY: _exit(2) ends the child at once, running nothing of
            // the copied test process.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert_eq!(wait(pid), 0, "child failed");
        let view = board.read(0);
        assert_eq!(view.owner, pid as u32);
        assert_eq!(view.worker.as_deref(), Some(&b"from the child"[..]));
        assert_eq!(view.flusher.as_deref(), Some(&b"its flusher"[..]));
        let heir = board.claim(std::process::id()).unwrap();
        assert_eq!(heir.slot, 1, "a free slot comes before a dead owner's");
        assert_eq!(board.claim(std::process::id()).map(|c| c.slot), Some(2));
        let claimed = board.claim(std::process::id()).unwrap();
        assert_eq!(claimed.slot, 0);
        assert_eq!(claimed.inherited.as_deref(), Some(&b"from the child"[..]));
    }

    fn child_publishes(board: &Board) -> bool {
        let me = std::process::id();
        board.claim(me).is_some_and(|c| c.slot == 0)
            && board.write_worker(0, b"from the child").is_ok()
            && board.write_flusher(0, b"its flusher").is_ok()
    }

    /// Exit code of a reaped child.
    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waitpid(2) writes the status into `status`, ours.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    /// The pid of a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        // SAFETY: fork(2); the child only calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: as in a_forked_child_publishes_to_its_parent.
            unsafe { libc::_exit(0) };
        }
        assert_eq!(wait(pid), 0);
        assert!(!alive(pid as u32));
        pid as u32
    }

    #[test]
    fn what_is_no_pid_is_not_alive() {
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
        assert!(alive(std::process::id()));
    }
}
