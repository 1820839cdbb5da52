//! Scavenging: returning free pages to the OS (Go's mgcscavenge.go),
//! paced by time and idleness, never by each free.
//!
//! This file holds the page-level part, as Go's `pageAlloc.scavenge`: the
//! heap's methods that release pages, the pacing arithmetic, and the flag
//! through which a free asks for the background thread. The thread itself
//! belongs to process life (`background.rs`), which installs the function
//! that starts it (`set_start_hook`): this layer never imports it.
//!
//! # What is released, and when
//!
//! Free pages that are not yet released ("free-unscavenged") cost the
//! program resident memory. Releasing them costs a madvise now and a page
//! fault each when they are reused, so releasing memory that the program
//! is about to reuse is the trap to avoid (freeing and reallocating a 20 MB
//! block in a loop must not fault 20 MB in every iteration).
//!
//! goheap releases only memory that has been idle: the heap records the
//! low-water mark of its free-unscavenged bytes between two ticks of the
//! scavenger (every allocation of pages lowers it), and the scavenger keeps
//! the marks of the last `GOHEAP_RELEASE_DELAY_MS` worth of ticks. Their
//! minimum is memory that stayed free for the whole delay: that much may go
//! back, less the retention allowance. A program that cycles through its
//! memory keeps dipping the marks and pays nothing; a program that frees
//! a gigabyte and sleeps gets it back after the delay (500 ms by default).
//!
//! Like Go (retainExtraPercent), free memory up to 10% of the heap in use is
//! kept (`GOHEAP_RETAIN_PERCENT`).
//!
//! What is released is always whole OS pages: where an OS page holds more
//! than one goheap page (16 KiB pages on Apple Silicon), the page
//! allocator's candidates are aligned runs of entirely free OS pages
//! (`pagealloc::SCAV_GROUP`), so `Os::unused` gets OS-page-aligned ranges
//! and the pages marked scavenged are the ones the OS really dropped.
//!
//! # Who releases
//!
//! * A background thread, started the first time the heap holds 4 MiB of
//!   free-unscavenged memory (so short-lived and small programs never get
//!   one). Freeing pages only asks for it (`note_free_memory`); it is
//!   started through `poll` at points where the thread holds no goheap lock,
//!   because pthread_create calls calloc. It sleeps in ticks of
//!   a fifth of the delay (100 ms). It drops the heap lock around each
//!   madvise: candidate pages are marked allocated while they are being
//!   released, so nobody else can take them. In a fork child it does not
//!   exist until the child needs one. `GOHEAP_BACKGROUND=0` disables it.
//! * Synchronously, under the heap lock, when a page allocation would take
//!   the heap's retained memory past `GOHEAP_MEMORY_LIMIT`: free memory is
//!   released first (Go's memory-limit scavenging). The limit is soft: if
//!   there is nothing left to release, the heap still grows.
//! * `malloc_trim` / `goheap_release`: everything free, now.
//!
//! # Huge pages
//!
//! goheap makes no MADV_HUGEPAGE / MADV_NOHUGEPAGE / MADV_COLLAPSE calls:
//! Go 1.21 added such calls and 1.21.4 removed them again after they
//! caused stalls (khugepaged collapsing and splitting on every scavenge).
//! The system's THP setting decides. What goheap does to keep huge pages
//! whole is to release the highest free runs first, up to a whole 4 MiB
//! chunk at a time, so the dense low part of the heap is left alone and
//! released regions tend to be whole 2 MiB pages.

use super::{Heap, HEAP};
use crate::pagealloc::{CHUNK_PAGES, PAGE_SHIFT, PAGE_SIZE};
use crate::platform::lock::{thread_id, Locked};
use crate::platform::{os, Os};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

/// Free-unscavenged memory at which the background thread is wanted.
pub const START_THRESHOLD: usize = 4 << 20;
const RING: usize = 64;

/// The background thread's state, written by `background.rs`.
pub const NOT_STARTED: u8 = 0;
pub const STARTED: u8 = 1;
pub const SUPPRESSED: u8 = 2;
pub static WORKER: AtomicU8 = AtomicU8::new(NOT_STARTED);

/// Set when the thread should be started at the next safe point.
pub static WANTED: AtomicBool = AtomicBool::new(false);

/// What `poll` calls when the thread is wanted (set by process life at
/// start-up; null until then, and the wish waits).
static START: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Install the function that starts the background thread.
pub fn set_start_hook(f: fn()) {
    START.store(f as *mut (), Ordering::Release);
}

impl<O: Os> Heap<O> {
    /// Release up to `bytes` without dropping the heap lock (memory-limit
    /// scavenging from inside an allocation). Returns bytes released.
    pub fn release_locked(&mut self, bytes: usize) -> usize {
        let mut done = 0;
        while done < bytes {
            let want = ((bytes - done).div_ceil(PAGE_SIZE)).min(CHUNK_PAGES);
            let Some((base, n)) = self.pages.scavenge_candidate(want) else { break };
            if !self.os.unused(base, n << PAGE_SHIFT) {
                // The OS kept the pages: they stay resident, and so unscavenged.
                break;
            }
            self.pages.mark_scavenged(base, n);
            self.released_bytes += n << PAGE_SHIFT;
            done += n << PAGE_SHIFT;
        }
        done
    }

    /// Take up to `want` pages to release with the lock dropped: they are
    /// marked allocated meanwhile, so nobody else can take them.
    fn begin_release(&mut self, want: usize) -> Option<(usize, usize)> {
        let c = self.pages.scavenge_candidate(want)?;
        self.pages.alloc_range(c.0, c.1);
        self.in_flight = c;
        self.in_flight_by = thread_id();
        Some(c)
    }

    /// Give back pages taken by `begin_release`, scavenged if `released`.
    fn end_release(&mut self, (base, n): (usize, usize), released: bool) {
        self.in_flight = (0, 0);
        self.pages.free(base, n);
        if released {
            self.pages.mark_scavenged(base, n);
            self.released_bytes += n << PAGE_SHIFT;
        }
    }

    /// Fork child: a release that was under way belongs to a thread that
    /// does not exist here; give its pages back to the page allocator.
    /// Unless it is this thread's own: a signal handler that interrupted
    /// `release_from` during its madvise forked, and when the handler
    /// returns, the interrupted call ends the release itself (giving the
    /// pages back here too would free them twice, or free them from under
    /// whoever the handler allocated them to).
    pub fn recover_after_fork(&mut self) {
        let (base, n) = self.in_flight;
        if n != 0 && self.in_flight_by != thread_id() {
            self.end_release((base, n), false);
        }
    }
}

/// Release up to `bytes` of `heap`'s free-unscavenged memory, highest
/// addresses first, dropping the heap lock around each madvise. Returns
/// bytes released.
pub fn release_from<O: Os + Copy + Send>(heap: &Locked<Heap<O>>, bytes: usize) -> usize {
    let mut done = 0;
    while done < bytes {
        let want = ((bytes - done).div_ceil(PAGE_SIZE)).min(CHUNK_PAGES);
        let (os, c) = {
            let mut h = heap.lock();
            match h.begin_release(want) {
                Some(c) => (h.os, c),
                None => break,
            }
        };
        let ok = os.unused(c.0, c.1 << PAGE_SHIFT);
        heap.lock().end_release(c, ok);
        if !ok {
            break;
        }
        done += c.1 << PAGE_SHIFT;
    }
    done
}

/// `release_from` the process's heap.
pub fn release(bytes: usize) -> usize {
    release_from(&HEAP, bytes)
}

/// The heap has `free_unscavenged` bytes of free, unreleased pages: ask for
/// the background thread if that is enough to be worth one. Only records the
/// wish: this may run under goheap locks, and starting a thread allocates.
#[inline]
pub fn note_free_memory(free_unscavenged: usize) {
    if free_unscavenged >= START_THRESHOLD && WORKER.load(Ordering::Relaxed) == NOT_STARTED {
        WANTED.store(true, Ordering::Relaxed);
    }
}

/// `poll` for free's paths, which must preserve errno (starting a thread
/// may set it).
#[inline]
pub fn poll_keep_errno() {
    if WANTED.load(Ordering::Relaxed) {
        let e = os::errno();
        start();
        os::set_errno(e);
    }
}

/// Start the background thread if it was asked for. Call only where this
/// thread holds no goheap lock (pthread_create calls calloc).
#[inline]
pub fn poll() {
    if WANTED.load(Ordering::Relaxed) {
        start();
    }
}

#[cold]
fn start() {
    let f = START.load(Ordering::Acquire);
    if !f.is_null() {
        // SAFETY: START only ever holds a `fn()` stored by `set_start_hook`.
        let f: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(f) };
        f();
    }
}

/// Idle-memory bookkeeping of the background scavenger.
pub struct Pacer {
    ring: [usize; RING],
    pos: usize,
    len: usize,
}

impl Pacer {
    pub const fn new(len: usize) -> Pacer {
        Pacer {
            ring: [0; RING],
            pos: 0,
            len: if len == 0 {
                1
            } else if len > RING {
                RING
            } else {
                len
            },
        }
    }

    /// Record the low-water mark of the tick that just ended and return how
    /// much may be released: memory free for the whole window, less what the
    /// retention allowance keeps.
    pub fn tick(&mut self, low_water: usize, free_unscav: usize, in_use: usize, retain_percent: usize) -> usize {
        self.ring[self.pos] = low_water;
        self.pos = (self.pos + 1) % self.len;
        let idle = self.ring[..self.len].iter().copied().min().unwrap_or(0);
        let keep = in_use / 100 * retain_percent;
        idle.min(free_unscav.saturating_sub(keep))
    }

    /// `bytes` were released: they no longer count as idle free memory.
    pub fn released(&mut self, bytes: usize) {
        for e in &mut self.ring[..self.len] {
            *e = e.saturating_sub(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_releases_only_memory_idle_for_the_whole_window() {
        let mb = 1 << 20;
        let mut p = Pacer::new(5);
        // Memory freed in this tick: the window still remembers lower marks.
        for _ in 0..4 {
            assert_eq!(p.tick(0, 1000 * mb, 0, 10), 0);
        }
        // Five ticks with 1000 MiB always free: all of it may go.
        assert_eq!(p.tick(1000 * mb, 1000 * mb, 0, 10), 0);
        for _ in 0..3 {
            p.tick(1000 * mb, 1000 * mb, 0, 10);
        }
        assert_eq!(p.tick(1000 * mb, 1000 * mb, 0, 10), 1000 * mb);
        p.released(1000 * mb);
        assert_eq!(p.tick(0, 0, 0, 10), 0);
    }

    #[test]
    fn pacer_keeps_nothing_back_from_a_churning_program() {
        let mb = 1 << 20;
        let mut p = Pacer::new(5);
        // A program that frees 25 MB and takes it back every few ms: the low
        // water of each tick is near zero, so nothing is released.
        for _ in 0..100 {
            assert_eq!(p.tick(mb / 2, 25 * mb, 400 * mb, 10), 0);
        }
    }

    #[test]
    fn pacer_retains_a_share_of_the_heap_in_use() {
        let mb = 1 << 20;
        let mut p = Pacer::new(1);
        // 100 MiB idle, 500 MiB in use: 10% of 500 MiB = 50 MiB stays.
        assert_eq!(p.tick(100 * mb, 100 * mb, 500 * mb, 10), 50 * mb);
    }
}
