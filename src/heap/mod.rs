//! The page heap (Go's mheap): ties the page allocator, the arenas and span
//! metadata together under one lock.
//!
//! * Small-object spans for mcentral and large objects (> 32 KiB) both come
//!   from here, as runs of 8 KiB pages found by the page allocator.
//! * When the page allocator has no run long enough, the heap grows: address
//!   space is reserved at Go's hint addresses (0x00c0<<32, then
//!   0x01c0<<32, ...: well away from where the kernel puts mmaps and the
//!   program's own heap), contiguously while the hint is free, and made
//!   usable at once. Growth is in 4 MiB steps at least (Go's
//!   pallocChunkBytes), so a program that allocates steadily grows its heap
//!   rarely. Only what is made usable is reserved (Go reserves whole 64 MiB
//!   arenas): RLIMIT_AS (`ulimit -v`) counts reserved address space too, so
//!   the heap's address space stays in proportion to the heap, and a growth
//!   the OS refuses gives its reservation back.
//! * Fresh pages are "scavenged" in the page allocator's bitmap: untouched
//!   and zero. The page allocator reports how much of each allocation was
//!   scavenged, and a span made only of such pages starts with
//!   `needzero == false`.
//!
//! * Free pages go back to the OS through the page-level scavenging methods
//!   in `scavenge.rs` (Go's `pageAlloc.scavenge`); who calls them, and when,
//!   is decided above (the background thread, malloc_trim), except for the
//!   memory limit, which an allocation enforces here.
//!
//! The heap is generic over the `Os` it gets memory from, so tests build
//! heaps of their own on a fake OS that can refuse any call; the process's
//! heap is `HEAP`, on this platform's `Sys`.
//!
//! Lock order: a central list's lock may be held while taking the heap lock,
//! never the reverse; the persistent allocator's lock comes after both.

pub mod pagecache;
pub mod scavenge;

use crate::arena::{self, ARENA_BYTES, FREED_SPAN};
use crate::fixalloc::FixAlloc;
use crate::pagealloc::{DirtyRuns, PageAlloc, CHUNK_BYTES, PAGE_SHIFT, PAGE_SIZE};
use crate::platform::lock::{Guard, Locked};
use crate::platform::{align_up, Os, Sys, SYS};
use crate::span::{Span, STATE_DEAD, STATE_LARGE};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

/// Go's first arena hint on 64-bit Linux; later hints add 1 << 40. The
/// arena map reads arenas there with one load (`arena::WINDOW_BASE`).
const FIRST_HINT: usize = crate::arena::WINDOW_BASE;
const HINT_STEP: usize = 1 << 40;
const HINT_TRIES: usize = 0x80;

/// The largest request the heap will try: beyond this no 48-bit address
/// space could hold it.
pub const MAX_ALLOC: usize = 1 << 46;

pub struct Heap<O: Os = Sys> {
    os: O,
    pub pages: PageAlloc,
    /// Span records, by size bucket (see `record_bucket`).
    spanalloc: [FixAlloc; 4],
    next_hint: usize,
    hints_used: usize,
    /// Bytes made usable (Prepared) so far, i.e. given to the page allocator.
    pub mapped_bytes: usize,
    /// Bytes of address space reserved for the heap (all of it mapped).
    pub reserved_bytes: usize,
    /// Live large objects and their bytes.
    pub large_count: usize,
    pub large_bytes: usize,
    /// Bytes returned to the OS by the scavenger, ever.
    pub released_bytes: usize,
    /// Bytes in spans (small spans and large objects), and their peak.
    pub span_bytes: usize,
    pub peak_span_bytes: usize,
    /// The lowest free-unscavenged byte count since the scavenger last
    /// looked (see scavenge.rs).
    low_water: usize,
    /// Soft limit on retained memory (`GOHEAP_MEMORY_LIMIT`); 0 = none.
    pub memory_limit: usize,
    /// Pages being released with the lock dropped (scavenge.rs), and the
    /// lock id of the thread releasing them.
    in_flight: (usize, usize),
    in_flight_by: u32,
}

// SAFETY: the page allocator's raw metadata pointers are only used under the heap lock.
unsafe impl<O: Os + Send> Send for Heap<O> {}

/// The process's heap.
pub static HEAP: Locked<Heap> = Locked::new(Heap::new(SYS));

/// How often the process's heap lock was taken (the exit summary shows
/// it: the page caches exist to keep it low).
pub static LOCKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Whether the heap had free pages that are still resident when it last
/// looked (a hint, read without the lock): while it has none, a page
/// cache's fresh or released pages may serve a span without the heap lock
/// (`pagecache::alloc_span_cached`). Updated when pages are freed, and
/// cleared when a page cache under the lock finds none.
static RESIDENT_FREE: AtomicBool = AtomicBool::new(false);

#[inline]
pub fn lock() -> Guard<'static, Heap> {
    let g = HEAP.lock();
    LOCKS.fetch_add(1, Ordering::Relaxed);
    g
}

/// Span record sizes: a header and 2, 4, 8 or 16 bitmap words of each
/// kind. Most classes need 1 or 2 (128-byte records); only the 8- and
/// 16-byte classes need the largest.
const RECORD_BUCKETS: [usize; 4] = [
    crate::span::record_bytes_for(2),
    crate::span::record_bytes_for(4),
    crate::span::record_bytes_for(8),
    crate::span::record_bytes_for(16),
];

fn record_bucket(class: usize) -> usize {
    let need = crate::span::record_bytes(class);
    let mut b = 0;
    while RECORD_BUCKETS[b] < need {
        b += 1;
    }
    b
}

/// Pages of a span of `class` the page map points at the span: every page
/// of a small span, whose interior pointers free and the fast paths look
/// up, and only the first of a large one. free, realloc and
/// malloc_usable_size look a large object up at its start only (any other
/// pointer into it is invalid), so writing and clearing an entry per page
/// (256 for a 2 MiB block: 7% of the time of a workload of mid-size
/// blocks) bought nothing. An interior page of a large span holds null, or
/// the marker a span freed earlier left at its first page; the two paths
/// that take interior pointers (debug mode's headers, the error message of
/// a page-aligned pointer) find the span with `arena::large_covering`.
#[inline]
fn map_pages(class: usize, npages: usize) -> usize {
    if class == 0 {
        1
    } else {
        npages
    }
}

impl<O: Os> Heap<O> {
    /// An empty heap on `os`; makes no OS call until the first allocation.
    pub const fn new(os: O) -> Self {
        Heap {
            os,
            pages: PageAlloc::new(),
            spanalloc: [
                FixAlloc::new(RECORD_BUCKETS[0]),
                FixAlloc::new(RECORD_BUCKETS[1]),
                FixAlloc::new(RECORD_BUCKETS[2]),
                FixAlloc::new(RECORD_BUCKETS[3]),
            ],
            next_hint: FIRST_HINT,
            hints_used: 0,
            mapped_bytes: 0,
            reserved_bytes: 0,
            large_count: 0,
            large_bytes: 0,
            released_bytes: 0,
            span_bytes: 0,
            peak_span_bytes: 0,
            low_water: 0,
            memory_limit: 0,
            in_flight: (0, 0),
            in_flight_by: 0,
        }
    }

    /// Pages were freed: resident free pages may exist now (see
    /// `RESIDENT_FREE`), which may be enough to start the scavenger.
    fn note_freed(&self) {
        let free = self.free_unscavenged_bytes();
        RESIDENT_FREE.store(free != 0, Ordering::Relaxed);
        scavenge::note_free_memory(free);
    }

    /// Free pages not returned to the OS: resident memory the program is
    /// not using.
    pub fn free_unscavenged_bytes(&self) -> usize {
        (self.pages.free_pages() - self.pages.free_scavenged_pages()) << PAGE_SHIFT
    }

    /// Pages handed out (spans and large objects).
    pub fn in_use_bytes(&self) -> usize {
        (self.pages.total_pages() - self.pages.free_pages()) << PAGE_SHIFT
    }

    /// Heap memory that may be resident: in use or free but not released.
    pub fn retained_bytes(&self) -> usize {
        (self.pages.total_pages() - self.pages.free_scavenged_pages()) << PAGE_SHIFT
    }

    /// The low-water mark since the last call, restarting the measurement.
    pub fn take_low_water(&mut self) -> usize {
        let lw = self.low_water;
        self.low_water = self.free_unscavenged_bytes();
        lw
    }

    /// Reserve `size` bytes (a multiple of CHUNK_BYTES) of chunk-aligned
    /// address space, preferring the hint addresses.
    fn reserve_region(&mut self, size: usize) -> Option<usize> {
        while self.hints_used < HINT_TRIES {
            let hint = self.next_hint;
            match self.os.reserve(hint, size) {
                Some(p) if p == hint => {
                    self.next_hint = hint + size;
                    return Some(p);
                }
                Some(p) => self.os.free(p, size),
                // Refused (RLIMIT_AS, no room that large): a hint cannot
                // help, and the next growth should still find this one.
                None => return None,
            }
            // Something else lives there: move on to the next hint block.
            self.hints_used += 1;
            self.next_hint = FIRST_HINT + self.hints_used * HINT_STEP;
        }
        // No hint worked: take any address and align it by trimming.
        let p = self.os.reserve(0, size.checked_add(CHUNK_BYTES)?)?;
        let a = align_up(p, CHUNK_BYTES);
        if a > p {
            self.os.free(p, a - p);
        }
        let tail = p + size + CHUNK_BYTES - (a + size);
        if tail > 0 {
            self.os.free(a + size, tail);
        }
        Some(a)
    }

    /// Give the page allocator `[base, base+size)` out of the current region:
    /// map it, register its arenas, add its pages.
    fn add_to_pages(&mut self, base: usize, size: usize) -> bool {
        if !self.os.map(base, size) {
            return false;
        }
        if !arena::register(base & !(ARENA_BYTES - 1), align_up(base + size, ARENA_BYTES) - (base & !(ARENA_BYTES - 1))) {
            return false;
        }
        if !self.pages.grow(&self.os, base, size) {
            return false;
        }
        self.mapped_bytes += size;
        true
    }

    /// Go's mheap.grow: make at least `npages` more contiguous pages free.
    /// Reserves exactly what it maps; if the OS refuses the memory (or its
    /// metadata), the reservation is given back and the hint reused.
    fn grow(&mut self, npages: usize) -> bool {
        let ask = align_up(npages << PAGE_SHIFT, CHUNK_BYTES);
        let Some(base) = self.reserve_region(ask) else {
            note_refused();
            return false;
        };
        if !self.add_to_pages(base, ask) {
            self.os.free(base, ask);
            if self.next_hint == base + ask {
                self.next_hint = base; // reserved at the hint: try there again
            }
            note_refused();
            return false;
        }
        self.reserved_bytes += ask;
        true
    }

    /// Under address-space pressure (`AS_PRESSURE`), after the pages
    /// [base, base + npages pages) were freed: unmap each chunk they touch
    /// that is now entirely free, taking it out of the page allocator. A
    /// chunk at the top of the hint region moves the hint back, so the heap
    /// grows there again; one below leaves a hole the heap does not reuse
    /// unless a growth lands there again.
    fn give_back(&mut self, base: usize, npages: usize) {
        let first = base & !(CHUNK_BYTES - 1);
        let mut c = align_up(base + (npages << PAGE_SHIFT), CHUNK_BYTES);
        // From the top down, so a run of chunks at the top moves the hint
        // down over all of them.
        while c > first {
            c -= CHUNK_BYTES;
            if self.pages.shrink(c, CHUNK_BYTES) {
                // Freed spans leave a marker at their first page: clear
                // them, so someone else's mapping here reads as not ours.
                arena::set_spans(c, CHUNK_BYTES >> PAGE_SHIFT, null_mut(), 0);
                self.os.free(c, CHUNK_BYTES);
                self.mapped_bytes -= CHUNK_BYTES;
                self.reserved_bytes -= CHUNK_BYTES;
                if c + CHUNK_BYTES == self.next_hint {
                    self.next_hint = c;
                }
            }
        }
    }

    /// `npages` contiguous pages: (base, whether they are all known zero);
    /// without `grow`, None when the heap's free pages that are still
    /// resident (not released) are fewer than `npages`, or when no free run
    /// is that long (it would grow). A heuristic: the run it takes is the
    /// lowest free one, which may still be released pages (page-cache
    /// refills look for resident ones first).
    fn alloc_pages_or_grow(&mut self, npages: usize, grow: bool) -> Option<(usize, bool)> {
        if !grow && self.free_unscavenged_bytes() < npages << PAGE_SHIFT {
            return None;
        }
        self.take_pages(npages, grow, None)
    }

    /// `npages` contiguous free pages, resident or not; growing the heap
    /// for them only with `grow`. With `dirty`, notes there which of them
    /// were not scavenged.
    fn take_pages(&mut self, npages: usize, grow: bool, mut dirty: Option<&mut DirtyRuns>) -> Option<(usize, bool)> {
        let limit = self.memory_limit;
        if limit != 0 {
            // Soft memory limit: release free memory before this allocation
            // would take retained memory past the limit.
            let after = self.retained_bytes() + (npages << PAGE_SHIFT);
            if after > limit {
                self.release_locked(after - limit);
            }
        }
        let mut alloc = |pages: &mut PageAlloc| match dirty.as_deref_mut() {
            Some(d) => pages.alloc_noting_dirty(npages, d),
            None => pages.alloc(npages),
        };
        let (base, scav) = match alloc(&mut self.pages) {
            Some(r) => r,
            None => {
                if !grow || !self.grow(npages) {
                    return None;
                }
                alloc(&mut self.pages)?
            }
        };
        let bytes = npages << PAGE_SHIFT;
        self.os.used(base, bytes);
        self.low_water = self.low_water.min(self.free_unscavenged_bytes());
        Some((base, scav == bytes))
    }

    fn new_span(&mut self, base: usize, npages: usize, class: usize, zeroed: bool) -> *mut Span {
        let s = self.alloc_record(record_bucket(class)) as *mut Span;
        if s.is_null() {
            self.pages.free(base, npages);
            return null_mut();
        }
        // SAFETY: a fresh record of the class's size that nobody else can see yet.
        unsafe { Span::init(s, base, npages, class, !zeroed) };
        arena::set_spans(base, map_pages(class, npages), s, class);
        self.add_span_bytes(npages << PAGE_SHIFT);
        s
    }

    /// A span record of size `bucket`, or 0 if metadata memory ran out.
    /// Then a free record of a larger bucket serves (a heap filled with one
    /// class and freed holds its records in that class's bucket, and
    /// without this, no other size could get a span again while the OS
    /// refuses more metadata), and the refusal counts as address-space
    /// pressure (`note_refused`), so that chunks freed from now on go back
    /// to the OS and make room.
    fn alloc_record(&mut self, bucket: usize) -> usize {
        let r = self.spanalloc[bucket].alloc();
        if r != 0 {
            return r;
        }
        let (mine, larger) = self.spanalloc.split_at_mut(bucket + 1);
        for other in larger {
            let r = mine[bucket].take_free_from(other);
            if r != 0 {
                return r;
            }
        }
        note_refused();
        0
    }

    /// Count `bytes` more in spans (or page caches), and the peak.
    fn add_span_bytes(&mut self, bytes: usize) {
        self.span_bytes += bytes;
        self.peak_span_bytes = self.peak_span_bytes.max(self.span_bytes);
    }

    /// Release a span's pages and record (heap lock held). With
    /// `released`, the pages were already given back to the OS
    /// (`realloc_large`): they are free and scavenged at once.
    ///
    /// # Safety
    /// `s` is a live span that no list, cache or caller refers to any more.
    unsafe fn free_span_pages(&mut self, s: *mut Span, released: bool) {
        // SAFETY: per the contract, s is live and exclusively ours.
        let (base, npages, class) = unsafe { ((*s).base, (*s).cold().npages, (*s).class as usize) };
        arena::set_spans(base, map_pages(class, npages), null_mut(), 0);
        arena::set_spans(base, 1, FREED_SPAN, 0);
        // SAFETY: as above.
        unsafe { (*s).state.store(STATE_DEAD, Ordering::Release) };
        self.pages.free(base, npages);
        if released {
            self.pages.mark_scavenged(base, npages);
            self.released_bytes += npages << PAGE_SHIFT;
        }
        self.span_bytes -= npages << PAGE_SHIFT;
        self.spanalloc[record_bucket(class)].free(s as usize);
        if under_pressure() {
            self.give_back(base, npages);
        }
    }

    /// A span for size class `class` of `npages` pages, owned by nobody yet;
    /// null if memory is exhausted, or if it would need new memory and
    /// `grow` is false.
    pub fn alloc_span(&mut self, class: usize, npages: usize, grow: bool) -> *mut Span {
        match self.alloc_pages_or_grow(npages, grow) {
            Some((base, zeroed)) => self.new_span(base, npages, class, zeroed),
            None => null_mut(),
        }
    }

    /// Return a span's pages to the page allocator.
    ///
    /// # Safety
    /// `s` is a live span that no list, cache or caller refers to any more.
    pub unsafe fn free_span(&mut self, s: *mut Span) {
        // SAFETY: forwarded contract.
        unsafe { self.free_span_pages(s, false) };
        self.note_freed();
    }

    /// A large object of `size` bytes aligned to `align` (a power of two).
    /// Returns (address, the parts of it that may hold old data) or None
    /// when memory is exhausted.
    pub fn alloc_large(&mut self, size: usize, align: usize) -> Option<(usize, DirtyRuns)> {
        self.alloc_large_in(size, align, true)
    }

    /// `alloc_large`; without `grow`, None rather than growing the heap.
    pub fn alloc_large_in(&mut self, size: usize, align: usize, grow: bool) -> Option<(usize, DirtyRuns)> {
        if size > MAX_ALLOC || align > MAX_ALLOC {
            return None;
        }
        let npages = align_up(size.max(1), PAGE_SIZE) >> PAGE_SHIFT;
        let extra = if align > PAGE_SIZE { (align >> PAGE_SHIFT) - 1 } else { 0 };
        let mut dirty = DirtyRuns::new();
        let (base, zeroed) = self.take_pages(npages + extra, grow, Some(&mut dirty))?;
        let mut start = base;
        if extra != 0 {
            // Over-allocate, then give back the head and tail around the
            // aligned run.
            start = align_up(base, align);
            let head = (start - base) >> PAGE_SHIFT;
            let tail = extra - head;
            for (b, n) in [(base, head), (start + (npages << PAGE_SHIFT), tail)] {
                if n != 0 {
                    self.pages.free(b, n);
                    if zeroed {
                        self.pages.mark_scavenged(b, n);
                    }
                }
            }
        }
        dirty.clip(start, start + (npages << PAGE_SHIFT));
        let s = self.new_span(start, npages, 0, dirty.is_empty());
        if s.is_null() {
            return None;
        }
        self.large_count += 1;
        self.large_bytes += npages << PAGE_SHIFT;
        Some((start, dirty))
    }

    /// Free a large object's span. Returns false if it is no longer a live
    /// large span (a double free, possibly racing with another).
    ///
    /// The state changes under the heap lock, so the page map never shows a
    /// dead span, not even to a fork child.
    ///
    /// # Safety
    /// `s` is the span of a large object the caller is freeing.
    pub unsafe fn free_large(&mut self, s: *mut Span) -> bool {
        // SAFETY: forwarded contract.
        unsafe { self.free_large_pages(s, false) }
    }

    /// `free_large`; with `released`, the object's pages were already given
    /// back to the OS and go back as scavenged.
    ///
    /// # Safety
    /// As `free_large`.
    unsafe fn free_large_pages(&mut self, s: *mut Span, released: bool) -> bool {
        // SAFETY: span records are never unmapped, so the state can be read.
        if unsafe { (*s).state.load(Ordering::Acquire) } != STATE_LARGE {
            return false;
        }
        // SAFETY: the state check under the lock made this thread the span's only owner.
        let (base, bytes) = unsafe { ((*s).base, (*s).bytes()) };
        self.large_count -= 1;
        self.large_bytes -= bytes;
        let mut untouched = Untouched::new();
        // (Under address-space pressure the freed chunks are unmapped instead.)
        if !released && bytes >= UNTOUCHED_MIN && !under_pressure() {
            self.find_untouched(base, bytes, &mut untouched);
        }
        // SAFETY: as above.
        unsafe { self.free_span_pages(s, released) };
        for &(b, n) in &untouched.runs[..untouched.len] {
            self.pages.mark_scavenged(b, n);
        }
        self.note_freed();
        true
    }

    /// The runs of whole pages of the large object at `[base, base+bytes)`
    /// that are not resident, each made zero for sure (a swapped-out page
    /// is not resident either, and still holds data): they go back as
    /// scavenged, so the free memory counted as resident is what really
    /// is, and the page cache, which takes resident free pages first, does
    /// not fault in a freed buffer's untouched tail while its used head
    /// sits idle. Programs often allocate large buffers they fill only in
    /// part (tables reserved ahead, pools, I/O buffers).
    fn find_untouched(&mut self, base: usize, bytes: usize, out: &mut Untouched) {
        let os = &self.os;
        let mut tail_untouched = false;
        os.nonresident(base + bytes - UNTOUCHED_TAIL, UNTOUCHED_TAIL, &mut |_, _| {
            tail_untouched = true;
            false
        });
        if !tail_untouched {
            return;
        }
        // Highest runs first, so that a buffer's untouched tail is among
        // the runs kept; runs under `UNTOUCHED_RUN` are not worth a call.
        os.nonresident(base, bytes, &mut |a, n| {
            let (lo, hi) = (align_up(a, PAGE_SIZE), (a + n) & !(PAGE_SIZE - 1));
            if hi >= lo + UNTOUCHED_RUN && os.unused(lo, hi - lo) {
                out.runs[out.len] = (lo, (hi - lo) >> PAGE_SHIFT);
                out.len += 1;
            }
            out.len < out.runs.len()
        });
    }

    /// Resize a large object in place to `npages` pages: shrinking gives the
    /// tail back; growing takes the following pages if they are free.
    /// Returns false if it could not be done in place.
    ///
    /// # Safety
    /// `s` is a live large span owned by the caller (the object being resized).
    pub unsafe fn resize_large_in_place(&mut self, s: *mut Span, npages: usize) -> bool {
        // SAFETY: the caller owns the object, hence the span.
        let sp = unsafe { &mut *s };
        // Freed by another thread since the caller looked it up (a misuse):
        // the caller's other path reports it.
        if sp.state.load(Ordering::Acquire) != STATE_LARGE {
            return false;
        }
        let old = sp.cold().npages;
        let end = sp.base + (old << PAGE_SHIFT);
        // Only a large span's first page is in the page map (`map_pages`):
        // its tail comes and goes without touching it.
        if npages < old {
            let n = old - npages;
            let tail = sp.base + (npages << PAGE_SHIFT);
            self.pages.free(tail, n);
            self.note_freed();
        } else if npages > old {
            let n = npages - old;
            if !self.pages.is_free(end, n) && !self.grow_after(end, n) {
                return false;
            }
            self.pages.alloc_range(end, n);
            self.os.used(end, n << PAGE_SHIFT);
        }
        sp.cold().npages = npages;
        self.large_bytes = self.large_bytes + (npages << PAGE_SHIFT) - (old << PAGE_SHIFT);
        self.span_bytes = self.span_bytes + (npages << PAGE_SHIFT) - (old << PAGE_SHIFT);
        self.peak_span_bytes = self.peak_span_bytes.max(self.span_bytes);
        true
    }

    /// Make the `n` pages from `end` free by growing the heap there, when
    /// every page from `end` up to where the heap grows next (`next_hint`)
    /// is free: a large block at the top of the heap then grows in place
    /// (realloc), where moving it would copy it and need the address space
    /// of both copies at once, which is what runs out under `ulimit -v`
    /// (glibc grows such blocks with mremap). False if the pages are not
    /// free after all (the heap grew elsewhere: something else lives at the
    /// hint), or if the OS refused.
    fn grow_after(&mut self, end: usize, n: usize) -> bool {
        let hint = self.next_hint;
        if hint < end || hint >= end + (n << PAGE_SHIFT) {
            return false;
        }
        let have = (hint - end) >> PAGE_SHIFT;
        if have > 0 && !self.pages.is_free(end, have) {
            return false;
        }
        self.grow(n - have) && self.pages.is_free(end, n)
    }

    /// Walk the heap's structures and verify what can be verified: the
    /// page allocator's summaries and counters, and that every page the
    /// arena map attributes to a live span of this heap lies inside that
    /// span and is allocated.
    pub fn check(&self) -> Result<(), &'static str> {
        self.pages.check()?;
        let mut err = None;
        arena::for_each_arena(|abase, a| {
            for (i, e) in a.spans.iter().enumerate() {
                let s = e.load(Ordering::Acquire);
                if s.is_null() || s == FREED_SPAN {
                    continue;
                }
                let page = abase + (i << PAGE_SHIFT);
                // SAFETY: spans in the map are live while the heap lock is held.
                let sp = unsafe { &*s };
                if !self.pages.owns(page) {
                    continue;
                }
                if page < sp.base || page >= sp.base + sp.bytes() {
                    err = Some("page map entry outside its span");
                } else if sp.state.load(Ordering::Relaxed) == STATE_DEAD {
                    err = Some("page map points at a dead span");
                } else if self.pages.is_free(page, 1) {
                    err = Some("page of a live span is free in the page allocator");
                } else if page == sp.base
                    && sp.state.load(Ordering::Relaxed) == STATE_LARGE
                    && (1..sp.cold().npages).any(|k| self.pages.is_free(page + (k << PAGE_SHIFT), 1))
                {
                    // A large span's other pages are not in the map.
                    err = Some("page of a live large span is free in the page allocator");
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Set once the OS refused heap memory while RLIMIT_AS was finite: address
/// space is what runs out, and free address space the heap keeps is missing
/// for the rest of the program (thread stacks, mappings). From then on,
/// whole free chunks go back to the OS as soon as they are free
/// (`give_back`), mcentral keeps no empty spans, and frees into spans no
/// thread owns are folded in at once (malloc.rs).
static AS_PRESSURE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

#[inline]
pub fn under_pressure() -> bool {
    AS_PRESSURE.load(Ordering::Relaxed)
}

#[cold]
fn note_refused() {
    if crate::platform::os::address_space_limited() {
        AS_PRESSURE.store(true, Ordering::Relaxed);
    }
}

/// A span for size class `class` of `npages` pages, owned by nobody yet.
pub fn alloc_span(class: usize, npages: usize) -> *mut Span {
    lock().alloc_span(class, npages, true)
}

/// Return a span's pages to the page allocator.
///
/// # Safety
/// As `Heap::free_span`.
pub unsafe fn free_span(s: *mut Span) {
    // SAFETY: forwarded contract.
    unsafe { lock().free_span(s) }
}

/// A large object from the process's heap (`Heap::alloc_large_in`).
pub fn alloc_large(size: usize, align: usize, grow: bool) -> Option<(usize, DirtyRuns)> {
    lock().alloc_large_in(size, align, grow)
}

/// Free a large object of the process's heap (`Heap::free_large`).
///
/// # Safety
/// As `Heap::free_large`.
pub unsafe fn free_large(s: *mut Span) -> bool {
    // SAFETY: forwarded contract.
    unsafe { lock().free_large(s) }
}

/// Freed large objects at least this big are checked for pages that were
/// never touched (`Heap::find_untouched`). Below it the system call can
/// cost as much as the program's own use of the block (64 KiB-2 MiB blocks
/// freed and reallocated at a high rate ran 30% slower with 1 MiB).
const UNTOUCHED_MIN: usize = 4 << 20;

/// How much of a freed large object's end is looked at first: a buffer
/// filled from its start has its untouched pages there, and one whose end
/// is resident is taken as used throughout (one system call).
const UNTOUCHED_TAIL: usize = 2 << 20;

/// Untouched runs shorter than this are left counted as resident.
const UNTOUCHED_RUN: usize = 64 << 10;

/// Runs of pages found untouched in a freed large object, at most 16 (a
/// hint: more are left as they are).
struct Untouched {
    runs: [(usize, usize); 16],
    len: usize,
}

impl Untouched {
    fn new() -> Untouched {
        Untouched { runs: [(0, 0); 16], len: 0 }
    }
}

/// Large objects at least this big have their old pages released at once
/// when realloc moves them to memory the heap had to map (`realloc_large`);
/// for smaller ones the system call costs more than it saves.
pub const RELEASE_MIN: usize = 256 << 10;

/// How much of the old block `realloc_large` copies before it releases
/// what it copied (a multiple of the page size).
const RELEASE_STEP: usize = 1 << 20;

/// Grow the large block at `addr` (span `s`) to a new block of `size`
/// bytes, copying its contents, when it cannot grow in place: (new block,
/// old block freed).
///
/// If the heap had to map new memory for the new block and the old one is
/// at least `RELEASE_MIN`, the copy goes `RELEASE_STEP` bytes at a time,
/// each piece of the old block released as soon as it is copied, and the
/// block is freed here: resident memory never holds both copies (glibc
/// gets the same from mremap on its mmapped chunks; mremap into goheap's
/// heap would split its mappings at every move, towards the kernel's
/// per-process limit, and before Linux 6.17 fails on a block that spans
/// two of them), and a table grown by doubling does not keep its old copies
/// resident until the scavenger's delay passes (sqlite3's in-memory
/// workload peaked 13 MiB higher that way). This runs under the heap lock,
/// as the growth it follows did: a free of the same block by another
/// thread (a misuse) waits and then finds it gone (a double free), and a
/// fork cannot copy the heap half-way through (its handlers take the lock).
/// Otherwise (free pages were reused: resident memory a churning program
/// is about to reuse) the caller frees the old block.
///
/// Err(ENOMEM) when memory is exhausted (the old block is untouched);
/// Err(EINVAL) when `s` is no longer the live large block at `addr`
/// (freed by another thread since the caller looked it up; reported);
/// without `grow`, Err(WOULD_GROW) when the heap would have to grow.
///
/// # Safety
/// `s` is the span the caller looked up for the block at `addr` it is
/// resizing, and `size` is larger than the block.
pub unsafe fn realloc_large(s: *mut Span, addr: usize, size: usize, grow: bool) -> Result<(usize, bool), i32> {
    // SAFETY: span records are never unmapped; the fields are checked
    // under the heap lock below before they are trusted.
    let sp = unsafe { &*s };
    let e = crate::platform::os::errno();
    let mut h = lock();
    let (old, bytes) = (sp.base, sp.bytes());
    if sp.state.load(Ordering::Acquire) != STATE_LARGE || old != addr {
        drop(h);
        crate::error::bad_pointer(b"realloc", b"double free", addr);
        return Err(libc::EINVAL);
    }
    let mapped = h.mapped_bytes;
    let Some((new, _)) = h.alloc_large_in(size, PAGE_SIZE, grow) else {
        return Err(if grow { libc::ENOMEM } else { WOULD_GROW });
    };
    // Whole OS pages only (16 KiB on Apple Silicon, where a block may start
    // or end in the middle of one).
    let os_page = crate::platform::os::OS_PAGE;
    let release = h.mapped_bytes != mapped && bytes >= RELEASE_MIN && old % os_page == 0 && bytes % os_page == 0;
    if !release {
        drop(h);
        // SAFETY: the caller's block (`bytes` long, smaller than `size`)
        // and the block just allocated, which nobody else has.
        unsafe { core::ptr::copy_nonoverlapping(old as *const u8, new as *mut u8, bytes) };
        return Ok((new, false));
    }
    // Released only if every piece was (else they count as resident, and
    // calloc does not take them for zero).
    let mut released = true;
    let mut off = 0;
    while off < bytes {
        let n = (bytes - off).min(RELEASE_STEP);
        // SAFETY: as above, piece by piece; nobody else can free the old
        // block while the heap lock is held.
        unsafe { core::ptr::copy_nonoverlapping((old + off) as *const u8, (new + off) as *mut u8, n) };
        released &= h.os.unused(old + off, n);
        off += n;
    }
    // SAFETY: the caller's block, validated above and copied.
    unsafe { h.free_large_pages(s, released) };
    drop(h);
    crate::platform::os::set_errno(e);
    Ok((new, true))
}

/// `realloc_large`'s answer, without `grow`, when the heap would have to
/// grow (not an errno value).
pub const WOULD_GROW: i32 = 0;

/// Resize a large object of the process's heap in place
/// (`Heap::resize_large_in_place`).
///
/// # Safety
/// As `Heap::resize_large_in_place`.
pub unsafe fn resize_large_in_place(s: *mut Span, npages: usize) -> bool {
    // SAFETY: forwarded contract.
    unsafe { lock().resize_large_in_place(s, npages) }
}

/// Verify the process's heap (`Heap::check`).
pub fn check() -> Result<(), &'static str> {
    lock().check()
}

/// Heap lock for fork handling.
pub fn mutex() -> &'static crate::platform::lock::Mutex {
    &HEAP.mutex
}

#[cfg(test)]
mod tests;
