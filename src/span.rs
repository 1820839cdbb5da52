//! Spans (Go's mspan): a run of pages holding objects of one size class, or
//! one large object.
//!
//! Allocation state, as in malloc.go:
//! * `alloc_bits`: one bit per object, set while the object is allocated.
//!   Only the span's owner writes it: the thread cache that holds the span,
//!   or mcentral under its lock when no cache holds it. (Go rebuilds these
//!   bits from mark bits at each sweep; goheap sets a bit on every
//!   allocation and clears it on free, which is what makes double frees and
//!   foreign pointers detectable.)
//! * `freeindex` and `alloc_cache`: the allocation cursor. Slots below
//!   `freeindex` have been looked at in this pass; `alloc_cache` holds the
//!   inverted alloc bits of the 64 slots from `freeindex` on, so the next
//!   free slot is a count-trailing-zeros away.
//! * `freed_bits`: Go's mark bits turned around. A free from a thread that
//!   does not own the span sets the object's bit here atomically; the owner
//!   "sweeps" (folds these bits into `alloc_bits`) when it runs out of slots
//!   and whenever the span changes hands.
//!
//! `needzero` is false while every free slot is known to hold zeros (the
//! span's pages came zeroed from the OS and its first pass is not over:
//! slots freed behind the cursor are reused only after a `rewind`, which
//! sets it), so calloc can skip its memset.

use crate::pagealloc::PAGE_SHIFT;
use crate::sizeclass::{object_slot, CLASSES};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

pub const STATE_DEAD: u8 = 0;
pub const STATE_SMALL: u8 = 1;
pub const STATE_LARGE: u8 = 2;

/// `owner` of a span no cache holds. Not null: the free fast path compares
/// `owner` with the thread's cache word, which is 0 or 1 for a thread
/// without a cache, so neither value may stand for "unowned".
pub const UNOWNED: *mut u8 = UNOWNED_WORD as *mut u8;
pub const UNOWNED_WORD: usize = 2;

/// What a span's `owner` points at while a thread cache holds it: the
/// cache's first cache line (cache/mod.rs puts it there). Through it, a
/// thread that frees into a span it does not own tells the owner that its
/// used-up spans may have room again (see `Cache::scan_full`), so an owner
/// that nobody frees into never sweeps them in vain.
#[repr(C, align(64))]
pub struct Owner {
    /// Not used here: a record free list may link through the first word
    /// of a record that is not in use (fixalloc.rs), so the counter is not
    /// there (a late remote free may still count into a freed record).
    _link: usize,
    /// Remote frees into spans this owner held when they were counted
    /// (approximately: concurrent freers may count as one). Only grows
    /// (wrapping); the owner compares it with what it saw.
    pub remote: AtomicU64,
}

impl Owner {
    pub const fn new() -> Owner {
        Owner { _link: 0, remote: AtomicU64::new(0) }
    }
}

impl Default for Owner {
    fn default() -> Self {
        Self::new()
    }
}

/// Which mcentral list a span sits on, if any.
pub const LIST_NONE: u8 = 0;
pub const LIST_PARTIAL: u8 = 1;
pub const LIST_FULL: u8 = 2;
/// Which list of its owning thread cache a held span sits on (cache/mod.rs).
pub const LIST_HELD_READY: u8 = 3;
pub const LIST_HELD_EMPTY: u8 = 4;
pub const LIST_HELD_FULL: u8 = 5;
/// mcentral's list of empty spans kept for reuse (central.rs).
pub const LIST_EMPTY: u8 = 6;

/// A span's metadata record, in three parts: this header, the bitmaps, then
/// the cold fields (`SpanCold`), sized for its class (see `record_bytes`).
/// Records come from the heap's fixallocs, 64-byte aligned. The header is 48
/// bytes, so the first cache line holds every field the malloc and free fast
/// paths touch and, for spans of up to 64 objects (classes of 128 bytes and
/// up), the bitmap words too: a free or a reuse from a free stack touches one
/// line of metadata, not two.
#[repr(C)]
pub struct Span {
    pub alloc_cache: u64,
    pub base: usize,
    /// The thread cache holding this span, or `UNOWNED` (then mcentral owns
    /// it, or it is a large object's), or, for an empty span another thread
    /// took from a cache and is giving back, `cache::TRANSIT`.
    pub owner: AtomicPtr<u8>,
    pub freeindex: u32,
    pub nelems: u32,
    pub div_mul: u32,
    pub alloc_count: u32,
    /// A local free that leaves `alloc_count` below this calls the owning
    /// cache's slow path (a held span became worth reusing, or empty); 0
    /// for active and unowned spans, so their frees never do.
    pub notify: u32,
    /// Object size (at most 32 KiB); 0 for a large object.
    pub elemsize: u16,
    pub class: u8,
    pub state: AtomicU8,
    // The bitmaps follow this header (`bits`): alloc and freed words
    // interleaved (alloc word w at 2w, freed word w at 2w+1), so a free
    // touches one cache line of bitmaps. Then the cold part (`cold`).
}

/// The fields of a span the fast paths do not touch, after its bitmaps.
#[repr(C)]
pub struct SpanCold {
    pub npages: usize,
    pub next: *mut Span,
    pub prev: *mut Span,
    /// The next span on the class's sweep queue, or on a chain of spans
    /// being returned (central.rs). (A span a cache owns may still be on the
    /// queue, so a cache's own lists cannot link through this.)
    pub qnext: *mut Span,
    /// Set while the span waits on its class's sweep queue (see central.rs).
    pub queued: AtomicBool,
    /// Which list the span sits on (LIST_*).
    pub list: u8,
    /// See the module comment.
    pub needzero: bool,
    /// Set by the first rewind: before it, the slots at and past
    /// `freeindex` were never handed out (`never_allocated`).
    pub rewound: bool,
    /// The scavenger tick in which the span joined mcentral's empty list.
    pub stamp: u32,
    /// The cache that last gave the span up because it held too many (a
    /// hint: a free by that cache into it may take it back, see
    /// `Cache::free_adopting`; mcentral re-checks everything).
    ///
    /// While the span sits on its owning cache's stack of empty spans, this
    /// links that stack instead (cache/empty.rs): the hint only matters
    /// while mcentral holds the span, a span address never equals a cache's,
    /// and the word is atomic, which the stack needs (a cache's thread may
    /// read it from a span another thread just took from the stack).
    pub evicted_by: AtomicPtr<u8>,
}

const _: () = assert!(core::mem::size_of::<Span>() == 48, "the span header must stay 48 bytes");

/// Bitmap words (of each kind) a span of class `class` needs: one per 64
/// objects; a large object's span (class 0, one object) has one too, so
/// that the cold part is always found from `nelems` alone (`cold`).
pub const fn bitmap_words(class: usize) -> usize {
    if class == 0 {
        1
    } else {
        (CLASSES[class].nelems as usize).div_ceil(64)
    }
}

/// Offset of the cold part in the record of a span of `nelems` objects.
#[inline(always)]
const fn cold_offset(nelems: u32) -> usize {
    core::mem::size_of::<Span>() + 2 * 8 * (nelems as usize).div_ceil(64)
}

/// Bytes of a record with `words` bitmap words of each kind.
pub const fn record_bytes_for(words: usize) -> usize {
    core::mem::size_of::<Span>() + 2 * 8 * words + core::mem::size_of::<SpanCold>()
}

/// Bytes of the metadata record of a span of class `class`.
pub const fn record_bytes(class: usize) -> usize {
    record_bytes_for(bitmap_words(class))
}

// SAFETY: shared fields are atomics; the plain ones are only written by the
// span's owner (see the module comment), and the list links under a lock.
unsafe impl Sync for Span {}
unsafe impl Send for Span {}

impl Span {
    pub const fn empty() -> Span {
        Span {
            alloc_cache: 0,
            base: 0,
            owner: AtomicPtr::new(UNOWNED),
            freeindex: 0,
            nelems: 0,
            div_mul: 0,
            alloc_count: 0,
            notify: 0,
            elemsize: 0,
            class: 0,
            state: AtomicU8::new(STATE_DEAD),
        }
    }

    /// The cold part of this span's record (see `SpanCold`).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn cold(&self) -> &mut SpanCold {
        // SAFETY: every span but the static EMPTY_SPAN (whose cold part is
        // never used) lives in a record of record_bytes(class) bytes, whose
        // `nelems` (set before anything else by `init`) gives the bitmap
        // words; the cold fields follow the span's ownership rules like the
        // header's. (From `nelems`, read with the header, rather than from
        // the class table: one cache line less.)
        unsafe { &mut *((self as *const Span as *mut u8).add(cold_offset(self.nelems)) as *mut SpanCold) }
    }

    /// Set up record `s` (at least `record_bytes(class)` bytes) for size
    /// class `class` (0 = one large object) over `npages` pages at `base`.
    ///
    /// # Safety
    /// `s` is a record of that size that nobody else uses.
    pub unsafe fn init(s: *mut Span, base: usize, npages: usize, class: usize, needzero: bool) {
        // SAFETY: per the contract the record is ours and large enough for the header and bitmaps.
        let sp = unsafe { &mut *s };
        // `nelems` first: it locates the cold part.
        sp.nelems = if class == 0 { 1 } else { CLASSES[class].nelems };
        sp.base = base;
        sp.class = class as u8;
        sp.freeindex = 0;
        sp.alloc_count = 0;
        sp.notify = 0;
        sp.owner.store(UNOWNED, Ordering::Relaxed);
        let cold = sp.cold();
        cold.npages = npages;
        cold.needzero = needzero;
        cold.rewound = false;
        cold.list = LIST_NONE;
        cold.next = null_mut();
        cold.prev = null_mut();
        cold.queued.store(false, Ordering::Relaxed);
        cold.qnext = null_mut();
        cold.evicted_by.store(null_mut(), Ordering::Relaxed);
        for w in 0..bitmap_words(class) {
            sp.alloc_word(w).store(0, Ordering::Relaxed);
            sp.freed_word(w).store(0, Ordering::Relaxed);
        }
        if class == 0 {
            sp.elemsize = 0; // large: size is npages * PAGE_SIZE
            sp.div_mul = 0;
            sp.alloc_cache = 0;
            sp.state.store(STATE_LARGE, Ordering::Release);
        } else {
            let c = CLASSES[class];
            sp.elemsize = c.size as u16;
            sp.div_mul = c.div_mul;
            sp.load_cache(0);
            sp.state.store(STATE_SMALL, Ordering::Release);
        }
    }

    #[inline(always)]
    pub fn bytes(&self) -> usize {
        self.cold().npages << PAGE_SHIFT
    }

    #[inline(always)]
    fn words(&self) -> usize {
        (self.nelems as usize).div_ceil(64)
    }

    /// The bitmap words, right after the header: computed, not loaded, so
    /// the fast paths save a dependent load.
    #[inline(always)]
    fn bits(&self) -> *const AtomicU64 {
        // SAFETY: one past the header, inside this span's record (see record_bytes).
        unsafe { (self as *const Span).add(1) as *const AtomicU64 }
    }

    /// The alloc bitmap word for objects 64w..64w+63.
    #[inline(always)]
    pub fn alloc_word(&self, w: usize) -> &AtomicU64 {
        // SAFETY: the record holds 2 * words() bitmap words after the header, and w < words().
        unsafe { &*self.bits().add(2 * w) }
    }

    /// The freed (remote free) bitmap word for objects 64w..64w+63.
    #[inline(always)]
    pub fn freed_word(&self, w: usize) -> &AtomicU64 {
        // SAFETY: as in alloc_word.
        unsafe { &*self.bits().add(2 * w + 1) }
    }

    #[inline(always)]
    fn mark_allocated(&mut self, idx: usize) {
        let w = &self.alloc_word(idx / 64);
        w.store(w.load(Ordering::Relaxed) | 1 << (idx % 64), Ordering::Relaxed);
        self.alloc_count += 1;
    }

    /// Go's nextFreeFast: the next free object from the 64-slot cache, or
    /// None when the cache is used up (the slow path loads the next word).
    ///
    /// Unlike Go's, this needs no bounds or word-boundary checks: the cache
    /// never has bits for slots past `nelems` (see `load_cache`), and when
    /// a pass crosses a word boundary the cache is simply empty, so the
    /// next call takes the slow path, which loads the word at `freeindex`.
    #[inline(always)]
    pub fn next_free_fast(&mut self) -> Option<usize> {
        if self.alloc_cache == 0 {
            return None;
        }
        let bit = self.alloc_cache.trailing_zeros();
        let idx = self.freeindex + bit;
        self.alloc_cache = (self.alloc_cache >> bit) >> 1;
        self.freeindex = idx + 1;
        self.mark_allocated(idx as usize);
        Some(self.base + idx as usize * self.elemsize as usize)
    }

    /// Go's nextFreeIndex: walk the bitmap from `freeindex` to the next free
    /// slot. None when the pass reached the end of the span.
    pub fn next_free(&mut self) -> Option<usize> {
        if self.alloc_cache == 0 {
            // The cache covered slots up to the next multiple of 64 after
            // the last slot handed out; from there, find a word with room.
            // (When `freeindex` is itself a multiple of 64, its word may not
            // have been loaded yet: reading it again is harmless.)
            let nelems = self.nelems;
            let mut fi = self.freeindex.next_multiple_of(64);
            loop {
                if fi >= nelems {
                    self.freeindex = nelems;
                    return None;
                }
                self.load_cache(fi);
                if self.alloc_cache != 0 {
                    break;
                }
                fi += 64;
            }
        }
        self.next_free_fast()
    }

    /// Point the cursor at slot `fi` (a multiple of 64) and load the
    /// inverted alloc bits of its word, without bits past `nelems`.
    #[inline]
    fn load_cache(&mut self, fi: u32) {
        self.freeindex = fi;
        let mut free = !self.alloc_word(fi as usize / 64).load(Ordering::Relaxed);
        let left = self.nelems - fi;
        if left < 64 {
            free &= (1u64 << left) - 1;
        }
        self.alloc_cache = free;
    }

    /// Are enough slots free (an eighth, at least one) for another pass
    /// over this span to pay for itself? A span with one free slot in 512
    /// would cost a bitmap scan, and on a central list a lock round trip,
    /// per allocation; it waits on the full list for more frees instead.
    #[inline]
    pub fn worth_reusing(&self) -> bool {
        self.nelems - self.alloc_count >= (self.nelems / 8).max(1)
    }

    /// For the owning cache, another pass is worth it with fewer free slots
    /// than for mcentral (no lock to take): one per bitmap word it scans.
    /// So a span of up to 64 objects is reused with a single free slot.
    #[inline]
    pub fn worth_rewinding(&self) -> bool {
        self.alloc_count < self.rewind_below()
    }

    /// `worth_rewinding()` is `alloc_count < rewind_below()`.
    #[inline]
    pub fn rewind_below(&self) -> u32 {
        self.nelems - self.words() as u32 + 1
    }

    /// Start a new allocation pass from slot 0 (after a sweep found room).
    pub fn rewind(&mut self) {
        // Slots freed since the span's first pass are dirty; local frees do
        // not say so themselves (one store less on free).
        let cold = self.cold();
        cold.needzero = true;
        cold.rewound = true;
        self.load_cache(0);
    }

    /// Was slot `idx` never handed out since the span was set up (so that
    /// freeing it is an invalid pointer rather than a double free)? Only its
    /// owner may ask: the first pass hands out every slot up to the cursor.
    pub fn never_allocated(&mut self, idx: usize) -> bool {
        !self.cold().rewound && idx >= self.freeindex as usize
    }

    /// Fold other threads' frees into the alloc bits. Only the span's owner
    /// (its cache, or mcentral under its lock) calls this. Returns the
    /// number of objects reclaimed.
    pub fn sweep(&mut self) -> u32 {
        let mut n = 0;
        for w in 0..self.words() {
            // SeqCst pairs with the remote free's fetch_or + owner load.
            if self.freed_word(w).load(Ordering::SeqCst) != 0 {
                let f = self.freed_word(w).swap(0, Ordering::SeqCst);
                let a = self.alloc_word(w);
                let bits = a.load(Ordering::Relaxed);
                if f & !bits != 0 {
                    // A remote free of a slot that is free: the same object was
                    // freed here and on another thread at once. Report it (warn
                    // mode returns) and fold only the frees of allocated slots.
                    let idx = w * 64 + (f & !bits).trailing_zeros() as usize;
                    crate::error::bad_pointer(b"free", b"double free", self.base + idx * self.elemsize as usize);
                }
                let f = f & bits;
                a.store(bits & !f, Ordering::Relaxed);
                n += f.count_ones();
            }
        }
        if n != 0 {
            self.alloc_count -= n;
            self.cold().needzero = true;
        }
        n
    }

    /// The object index of `addr`, if `addr` is exactly the start of an
    /// object slot of this small span.
    #[inline(always)]
    pub fn slot_of(&self, addr: usize) -> Option<usize> {
        let (idx, exact) = object_slot(self.div_mul, addr.wrapping_sub(self.base));
        if exact && idx < self.nelems as usize {
            Some(idx)
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn is_allocated(&self, idx: usize) -> bool {
        self.alloc_word(idx / 64).load(Ordering::Relaxed) & (1 << (idx % 64)) != 0
    }

    #[inline(always)]
    pub fn is_freed_remotely(&self, idx: usize) -> bool {
        self.freed_word(idx / 64).load(Ordering::Relaxed) & (1 << (idx % 64)) != 0
    }

    /// Clear the alloc bit of slot `idx` as the span's owner, leaving the
    /// count to the caller; false if the slot was not allocated (a double
    /// free).
    #[inline(always)]
    pub fn unmark(&mut self, idx: usize) -> bool {
        // The word pair's address once: alloc word, then freed word.
        // SAFETY: idx < nelems, so the pair is inside the bitmaps.
        let pair = unsafe { self.bits().add(idx / 64 * 2) };
        // SAFETY: as above.
        let (w, freed) = unsafe { (&*pair, &*pair.add(1)) };
        let m = 1u64 << (idx % 64);
        // The word with the bit flipped: cleared if the slot was allocated.
        let after = w.load(Ordering::Relaxed) ^ m;
        // Allocated (now clear) and not freed by another thread meanwhile:
        // one test.
        if (after | freed.load(Ordering::Relaxed)) & m != 0 {
            return false;
        }
        w.store(after, Ordering::Relaxed);
        true
    }

    /// Where slot `idx`'s alloc bit is, as one word: four times the
    /// bitmaps' address plus `idx`. The bitmaps are 16-byte aligned (the
    /// header is 48 bytes of a 64-byte aligned record), so the low six bits
    /// are `idx % 64` and `(r >> 6) << 4` is the address of the alloc word
    /// of the slot's 16-byte pair (cache/mod.rs decodes it on reuse).
    #[inline(always)]
    pub fn bit_ref(&self, idx: usize) -> usize {
        debug_assert!((self.bits() as usize).is_multiple_of(16));
        (self.bits() as usize) * 4 + idx
    }

    /// Record a free from a thread that does not own the span (the caller
    /// checked the slot is allocated). Returns false if it was already freed
    /// remotely (a double free).
    #[inline]
    pub fn set_freed(&self, idx: usize) -> bool {
        let m = 1u64 << (idx % 64);
        self.freed_word(idx / 64).fetch_or(m, Ordering::SeqCst) & m == 0
    }

    /// Rebuild the count from the bits, which are written first: for a span
    /// whose owner vanished mid-operation (a thread that did not survive a
    /// fork). A half-done free may also have left `needzero` unset.
    pub fn recount(&mut self) {
        self.alloc_count = self.count_alloc_bits();
        self.cold().needzero = true;
    }

    /// Objects freed by other threads and not yet folded into the alloc
    /// bits by a sweep (statistics: they are no longer in use).
    pub fn count_freed_bits(&self) -> u32 {
        (0..self.words()).map(|w| self.freed_word(w).load(Ordering::Relaxed).count_ones()).sum()
    }

    /// Popcount of the alloc bits (for consistency checks).
    pub fn count_alloc_bits(&self) -> u32 {
        (0..self.words()).map(|w| self.alloc_word(w).load(Ordering::Relaxed).count_ones()).sum()
    }
}

/// An intrusive doubly linked list of spans (mcentral's partial and full
/// lists). The lists' owner holds the lock.
pub struct SpanList {
    pub head: *mut Span,
    pub tail: *mut Span,
    pub len: usize,
}

impl Default for SpanList {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanList {
    pub const fn new() -> Self {
        SpanList { head: null_mut(), tail: null_mut(), len: 0 }
    }

    /// Append `s` at the tail (the lists are FIFO where that matters).
    ///
    /// # Safety
    /// As for `push`.
    pub unsafe fn push_back(&mut self, s: *mut Span, tag: u8) {
        // SAFETY: per the contract, s and the current tail are live spans.
        // (Each span's cold part is located once: finding it reads the
        // span's class.)
        unsafe {
            let c = (*s).cold();
            c.next = null_mut();
            c.prev = self.tail;
            c.list = tag;
            if self.tail.is_null() {
                self.head = s;
            } else {
                (*self.tail).cold().next = s;
            }
        }
        self.tail = s;
        self.len += 1;
    }

    /// # Safety
    /// `s` is a live span on no list; the caller holds the list's lock.
    pub unsafe fn push(&mut self, s: *mut Span, tag: u8) {
        // SAFETY: per the contract, s and the current head are live spans.
        unsafe {
            let c = (*s).cold();
            c.prev = null_mut();
            c.next = self.head;
            c.list = tag;
            if self.head.is_null() {
                self.tail = s;
            } else {
                (*self.head).cold().prev = s;
            }
        }
        self.head = s;
        self.len += 1;
    }

    /// # Safety
    /// `s` is on this list; the caller holds the list's lock.
    pub unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: per the contract, s and its neighbours are live spans on this list.
        unsafe {
            let c = (*s).cold();
            let (prev, next) = (c.prev, c.next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).cold().next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).cold().prev = prev;
            }
            c.next = null_mut();
            c.prev = null_mut();
            c.list = LIST_NONE;
        }
        self.len -= 1;
    }

    pub fn pop(&mut self) -> *mut Span {
        let s = self.head;
        if !s.is_null() {
            // SAFETY: s is the head, so it is on this list.
            unsafe { self.remove(s) };
        }
        s
    }

    pub fn iter(&self) -> SpanIter {
        SpanIter { cur: self.head }
    }
}

pub struct SpanIter {
    cur: *mut Span,
}

impl Iterator for SpanIter {
    type Item = *mut Span;
    fn next(&mut self) -> Option<*mut Span> {
        if self.cur.is_null() {
            return None;
        }
        let s = self.cur;
        // SAFETY: spans on a list are live while the list's lock is held.
        self.cur = unsafe { (*s).cold().next };
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::NUM_CLASSES;

    #[test]
    fn records_stay_small() {
        // Spans of most classes (up to 128 objects) take one 128-byte
        // record: 1.6% of an 8 KiB span; the largest record is under 384.
        let small = (1..NUM_CLASSES).filter(|&c| record_bytes(c) <= 128).count();
        assert!(small >= NUM_CLASSES - 5, "only {small} classes fit 128-byte records");
        assert!(record_bytes(1) <= 384, "{}", record_bytes(1));
        // The fast paths' fields and a 64-object span's bitmaps share a line.
        assert!(core::mem::size_of::<Span>() + 16 <= 64);
    }
}
