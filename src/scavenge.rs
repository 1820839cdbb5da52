//! The scavenger: returns free pages to the OS (Go's mgcscavenge.go),
//! paced by time and idleness, never by each free.
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
//! # Who releases
//!
//! * A background thread, started the first time the heap holds 4 MiB of
//!   free-unscavenged memory (so short-lived and small programs never get
//!   one). Freeing pages only asks for it (`note_free_memory`); it is
//!   started by `poll` at points where the thread holds no goheap lock,
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

use crate::config;
use crate::heap::{self, Heap};
use crate::os;
use crate::pagealloc::{CHUNK_PAGES, PAGE_SHIFT, PAGE_SIZE};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Free-unscavenged memory at which the background thread starts.
const START_THRESHOLD: usize = 4 << 20;
const RING: usize = 64;

const NOT_STARTED: u8 = 0;
const STARTED: u8 = 1;
const SUPPRESSED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// Set when the thread should be started at the next safe point.
static WANTED: AtomicBool = AtomicBool::new(false);

/// Pages held by `release` while it madvises without the heap lock (written
/// under the heap lock, so a fork child sees a consistent pair).
static IN_FLIGHT_BASE: AtomicUsize = AtomicUsize::new(0);
static IN_FLIGHT_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Fork child: a release that was under way belongs to a thread that does
/// not exist here; give its pages back to the page allocator.
pub fn recover_after_fork() {
    let n = IN_FLIGHT_PAGES.swap(0, Ordering::Relaxed);
    if n != 0 {
        // SAFETY: single-threaded child; the heap lock was reset.
        unsafe { heap::HEAP.get_unchecked() }.pages.free(IN_FLIGHT_BASE.load(Ordering::Relaxed), n);
    }
}

/// Release up to `bytes` of free-unscavenged memory, highest addresses
/// first, dropping the heap lock around each madvise. Returns bytes released.
pub fn release(bytes: usize) -> usize {
    let mut done = 0;
    while done < bytes {
        let want = ((bytes - done).div_ceil(PAGE_SIZE)).min(CHUNK_PAGES);
        let (base, n) = {
            let mut h = heap::lock();
            match h.pages.scavenge_candidate(want) {
                Some(c) => {
                    // Hold the pages while the lock is dropped.
                    h.pages.alloc_range(c.0, c.1);
                    IN_FLIGHT_BASE.store(c.0, Ordering::Relaxed);
                    IN_FLIGHT_PAGES.store(c.1, Ordering::Relaxed);
                    c
                }
                None => break,
            }
        };
        os::unused(base, n << PAGE_SHIFT);
        {
            let mut h = heap::lock();
            IN_FLIGHT_PAGES.store(0, Ordering::Relaxed);
            h.pages.free(base, n);
            h.pages.mark_scavenged(base, n);
            h.released_bytes += n << PAGE_SHIFT;
        }
        done += n << PAGE_SHIFT;
    }
    done
}

/// Release up to `bytes` without dropping the heap lock (memory-limit
/// scavenging from inside an allocation).
pub fn release_locked(h: &mut Heap, bytes: usize) -> usize {
    let mut done = 0;
    while done < bytes {
        let want = ((bytes - done).div_ceil(PAGE_SIZE)).min(CHUNK_PAGES);
        let Some((base, n)) = h.pages.scavenge_candidate(want) else { break };
        os::unused(base, n << PAGE_SHIFT);
        h.pages.mark_scavenged(base, n);
        h.released_bytes += n << PAGE_SHIFT;
        done += n << PAGE_SHIFT;
    }
    done
}

/// Release everything free now except `keep` bytes (malloc_trim).
pub fn trim(keep: usize) -> usize {
    // The calling thread's kept empty spans go too (other threads' caches
    // are theirs to touch).
    let v = crate::cache::word();
    if v > crate::cache::TLS_NO_CACHE {
        // SAFETY: this thread's live cache.
        unsafe { (*(v as *mut crate::cache::Cache)).release_empty() };
    }
    crate::central::drain_all();
    crate::central::release_empties(u32::MAX);
    let target = heap::lock().free_unscavenged_bytes().saturating_sub(keep);
    release(target)
}

/// The heap has `free_unscavenged` bytes of free, unreleased pages: ask for
/// the background thread if that is enough to be worth one. Only records the
/// wish: this may run under goheap locks, and starting a thread allocates.
#[inline]
pub fn note_free_memory(free_unscavenged: usize) {
    if free_unscavenged >= START_THRESHOLD && STATE.load(Ordering::Relaxed) == NOT_STARTED {
        WANTED.store(true, Ordering::Relaxed);
    }
}

/// `poll` for free's paths, which must preserve errno (starting a thread
/// may set it).
#[inline]
pub fn poll_keep_errno() {
    if WANTED.load(Ordering::Relaxed) {
        let e = crate::os::errno();
        start();
        crate::os::set_errno(e);
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
    WANTED.store(false, Ordering::Relaxed);
    if !config::BACKGROUND.load(Ordering::Relaxed)
        || STATE.compare_exchange(NOT_STARTED, STARTED, Ordering::AcqRel, Ordering::Relaxed).is_err()
    {
        return;
    }
    if !crate::os::spawn_thread(worker, c"goheap-scavenge") {
        STATE.store(NOT_STARTED, Ordering::Release);
    }
}

/// Fork: the child has no scavenger thread; during the child handler none
/// may be started, afterwards one starts again when needed.
pub fn suppress_in_fork_child() {
    STATE.store(SUPPRESSED, Ordering::Relaxed);
}

pub fn allow_after_fork_child() {
    WANTED.store(false, Ordering::Relaxed);
    STATE.store(NOT_STARTED, Ordering::Relaxed);
}

fn sleep_ms(ms: u64) {
    let ts = libc::timespec { tv_sec: (ms / 1000) as libc::time_t, tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long };
    // SAFETY: ts is a valid timespec; an interrupted sleep just ends early.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// Idle-memory bookkeeping of the background scavenger.
pub struct Pacer {
    ring: [usize; RING],
    pos: usize,
    len: usize,
}

impl Pacer {
    pub const fn new(len: usize) -> Pacer {
        Pacer { ring: [0; RING], pos: 0, len: if len == 0 { 1 } else if len > RING { RING } else { len } }
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

extern "C" fn worker(_: *mut libc::c_void) -> *mut libc::c_void {
    let delay = config::RELEASE_DELAY_MS.load(Ordering::Relaxed);
    let tick = (delay / 5).clamp(10, 1000);
    let mut pacer = Pacer::new((delay / tick) as usize);
    loop {
        sleep_ms(tick);
        // Spans emptied by other threads' frees go back to the heap first,
        // and so do empty spans mcentral kept but nobody took for a tick.
        crate::central::drain_all();
        crate::central::tick_empties();
        let target = {
            let mut h = heap::lock();
            let lw = h.take_low_water();
            pacer.tick(lw, h.free_unscavenged_bytes(), h.in_use_bytes(), config::RETAIN_PERCENT.load(Ordering::Relaxed))
        };
        if target >= PAGE_SIZE {
            let r = release(target);
            pacer.released(r);
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
