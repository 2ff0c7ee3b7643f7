//! A global allocator that counts heap allocations per thread: the
//! request-path tests (unit tests of `tally`) and the hot-path benchmark
//! install it to prove that counting a known host allocates nothing.
//! Nothing installs it in the module lighttpd loads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Install with `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

// SAFETY: every method forwards to the system allocator with its own
// arguments, so `Counting` upholds GlobalAlloc's contract exactly as
// `System` does; the bookkeeping is a const-initialised thread-local Cell,
// which never allocates (no re-entry into the allocator).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: `layout` is the caller's, valid for GlobalAlloc::alloc.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc`/`realloc` above, i.e. by
        // `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the
        // caller's, valid for GlobalAlloc::realloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) made by the calling thread so far.
pub fn this_thread() -> u64 {
    COUNT.with(Cell::get)
}
