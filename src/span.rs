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
//! span's pages came zeroed from the OS and nothing has been freed since),
//! so calloc can skip its memset.

use crate::pagealloc::PAGE_SHIFT;
use crate::sizeclass::{object_index, CLASSES};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

pub const STATE_DEAD: u8 = 0;
pub const STATE_SMALL: u8 = 1;
pub const STATE_LARGE: u8 = 2;

/// Which mcentral list a span sits on, if any.
pub const LIST_NONE: u8 = 0;
pub const LIST_PARTIAL: u8 = 1;
pub const LIST_FULL: u8 = 2;

/// A span's metadata record: this header, followed in the same record by
/// its bitmaps, sized for its class (see `record_bytes`). Records come from
/// the heap's fixallocs, 64-byte aligned, so the first line holds exactly
/// the fields the allocation fast path touches.
#[repr(C)]
pub struct Span {
    // The owner's hot fields, in the first cache line.
    pub alloc_cache: u64,
    pub base: usize,
    pub freeindex: u32,
    pub nelems: u32,
    pub elemsize: u32,
    pub div_mul: u32,
    pub alloc_count: u32,
    pub class: u8,
    pub needzero: bool,
    pub list: u8,
    pub state: AtomicU8,
    /// The thread cache holding this span, or null (then mcentral owns it).
    pub owner: AtomicPtr<u8>,
    pub npages: usize,
    pub next: *mut Span,
    pub prev: *mut Span,
    /// Set while the span waits on its class's sweep queue (see central.rs).
    pub queued: AtomicBool,
    /// The next span on that queue.
    pub qnext: *mut Span,
    /// The bitmaps, right after this header in the same record: alloc and
    /// freed words interleaved (alloc word w at 2w, freed word w at 2w+1), so
    /// a free touches one cache line of bitmaps.
    bits: *mut AtomicU64,
}

/// Bitmap words (of each kind) a span of class `class` needs.
pub const fn bitmap_words(class: usize) -> usize {
    if class == 0 {
        0
    } else {
        (CLASSES[class].nelems as usize).div_ceil(64)
    }
}

/// Bytes of the metadata record of a span of class `class`.
pub const fn record_bytes(class: usize) -> usize {
    core::mem::size_of::<Span>() + 2 * 8 * bitmap_words(class)
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
            freeindex: 0,
            nelems: 0,
            elemsize: 0,
            div_mul: 0,
            alloc_count: 0,
            class: 0,
            needzero: false,
            list: LIST_NONE,
            state: AtomicU8::new(STATE_DEAD),
            owner: AtomicPtr::new(null_mut()),
            npages: 0,
            next: null_mut(),
            prev: null_mut(),
            queued: AtomicBool::new(false),
            qnext: null_mut(),
            bits: null_mut(),
        }
    }

    /// Set up record `s` (at least `record_bytes(class)` bytes) for size
    /// class `class` (0 = one large object) over `npages` pages at `base`.
    ///
    /// # Safety
    /// `s` is a record of that size that nobody else uses.
    pub unsafe fn init(s: *mut Span, base: usize, npages: usize, class: usize, needzero: bool) {
        // SAFETY: per the contract the record is ours and large enough for the header and bitmaps.
        let sp = unsafe {
            (*s).bits = s.add(1) as *mut AtomicU64;
            &mut *s
        };
        sp.base = base;
        sp.npages = npages;
        sp.class = class as u8;
        sp.needzero = needzero;
        sp.freeindex = 0;
        sp.alloc_count = 0;
        sp.list = LIST_NONE;
        sp.next = null_mut();
        sp.prev = null_mut();
        sp.queued.store(false, Ordering::Relaxed);
        sp.qnext = null_mut();
        sp.owner.store(null_mut(), Ordering::Relaxed);
        for w in 0..bitmap_words(class) {
            sp.alloc_word(w).store(0, Ordering::Relaxed);
            sp.freed_word(w).store(0, Ordering::Relaxed);
        }
        if class == 0 {
            sp.nelems = 1;
            sp.elemsize = 0; // large: size is npages * PAGE_SIZE
            sp.div_mul = 0;
            sp.alloc_cache = 0;
            sp.state.store(STATE_LARGE, Ordering::Release);
        } else {
            let c = CLASSES[class];
            sp.nelems = c.nelems;
            sp.elemsize = c.size;
            sp.div_mul = c.div_mul;
            sp.alloc_cache = !0;
            sp.state.store(STATE_SMALL, Ordering::Release);
        }
    }

    #[inline(always)]
    pub fn bytes(&self) -> usize {
        self.npages << PAGE_SHIFT
    }

    #[inline(always)]
    fn words(&self) -> usize {
        (self.nelems as usize).div_ceil(64)
    }

    /// The alloc bitmap word for objects 64w..64w+63.
    #[inline(always)]
    pub fn alloc_word(&self, w: usize) -> &AtomicU64 {
        // SAFETY: bits points at 2 * words() words of this span's record, and w < words().
        unsafe { &*self.bits.add(2 * w) }
    }

    /// The freed (remote free) bitmap word for objects 64w..64w+63.
    #[inline(always)]
    pub fn freed_word(&self, w: usize) -> &AtomicU64 {
        // SAFETY: as in alloc_word.
        unsafe { &*self.bits.add(2 * w + 1) }
    }

    #[inline(always)]
    fn mark_allocated(&mut self, idx: usize) {
        let w = &self.alloc_word(idx / 64);
        w.store(w.load(Ordering::Relaxed) | 1 << (idx % 64), Ordering::Relaxed);
        self.alloc_count += 1;
    }

    /// Go's nextFreeFast: the next free object from the 64-slot cache, or
    /// None when the cache window is used up (the slow path refills it).
    #[inline(always)]
    pub fn next_free_fast(&mut self) -> Option<usize> {
        let bit = self.alloc_cache.trailing_zeros();
        if bit < 64 {
            let idx = self.freeindex + bit;
            if idx < self.nelems {
                let next = idx + 1;
                if next % 64 == 0 && next != self.nelems {
                    return None;
                }
                self.alloc_cache = (self.alloc_cache >> bit) >> 1;
                self.freeindex = next;
                self.mark_allocated(idx as usize);
                return Some(self.base + idx as usize * self.elemsize as usize);
            }
        }
        None
    }

    /// Go's nextFreeIndex: walk the bitmap from `freeindex` to the next free
    /// slot. None when the pass reached the end of the span.
    pub fn next_free(&mut self) -> Option<usize> {
        let nelems = self.nelems;
        let mut bit = self.alloc_cache.trailing_zeros();
        while bit == 64 {
            let fi = (self.freeindex + 64) & !63;
            if fi >= nelems {
                self.freeindex = nelems;
                return None;
            }
            self.freeindex = fi;
            self.refill_cache();
            bit = self.alloc_cache.trailing_zeros();
        }
        let idx = self.freeindex + bit;
        if idx >= nelems {
            self.freeindex = nelems;
            return None;
        }
        self.alloc_cache = (self.alloc_cache >> bit) >> 1;
        self.freeindex = idx + 1;
        if self.freeindex % 64 == 0 && self.freeindex != nelems {
            self.refill_cache();
        }
        self.mark_allocated(idx as usize);
        Some(self.base + idx as usize * self.elemsize as usize)
    }

    /// Load the inverted alloc bits of the 64-slot word at `freeindex`
    /// (which is a multiple of 64).
    #[inline]
    fn refill_cache(&mut self) {
        self.alloc_cache = !self.alloc_word(self.freeindex as usize / 64).load(Ordering::Relaxed);
    }

    /// Are enough slots free (an eighth, at least one) for another pass
    /// over this span to pay for itself? A span with one free slot in 512
    /// would cost a bitmap scan, and on a central list a lock round trip,
    /// per allocation; it waits on the full list for more frees instead.
    #[inline]
    pub fn worth_reusing(&self) -> bool {
        self.nelems - self.alloc_count >= (self.nelems / 8).max(1)
    }

    /// Start a new allocation pass from slot 0 (after a sweep found room).
    pub fn rewind(&mut self) {
        self.freeindex = 0;
        self.refill_cache();
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
            self.needzero = true;
        }
        n
    }

    /// The object index of `addr`, if `addr` is exactly the start of an
    /// object slot of this small span.
    #[inline(always)]
    pub fn slot_of(&self, addr: usize) -> Option<usize> {
        let off = addr.wrapping_sub(self.base);
        let idx = object_index(self.div_mul, off);
        if idx < self.nelems as usize && idx * self.elemsize as usize == off {
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

    /// Free slot `idx` as the span's owner. Returns false if the slot was not
    /// allocated (a double free).
    #[inline(always)]
    pub fn free_owned(&mut self, idx: usize) -> bool {
        let w = &self.alloc_word(idx / 64);
        let bits = w.load(Ordering::Relaxed);
        let m = 1u64 << (idx % 64);
        if bits & m == 0 || self.freed_word(idx / 64).load(Ordering::Relaxed) & m != 0 {
            return false;
        }
        w.store(bits & !m, Ordering::Relaxed);
        self.alloc_count -= 1;
        self.needzero = true;
        true
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
        self.needzero = true;
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
    pub len: usize,
}

impl SpanList {
    pub const fn new() -> Self {
        SpanList { head: null_mut(), len: 0 }
    }

    /// # Safety
    /// `s` is a live span on no list; the caller holds the list's lock.
    pub unsafe fn push(&mut self, s: *mut Span, tag: u8) {
        // SAFETY: per the contract, s and the current head are live spans.
        unsafe {
            (*s).prev = null_mut();
            (*s).next = self.head;
            if !self.head.is_null() {
                (*self.head).prev = s;
            }
            (*s).list = tag;
        }
        self.head = s;
        self.len += 1;
    }

    /// # Safety
    /// `s` is on this list; the caller holds the list's lock.
    pub unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: per the contract, s and its neighbours are live spans on this list.
        unsafe {
            if (*s).prev.is_null() {
                self.head = (*s).next;
            } else {
                (*(*s).prev).next = (*s).next;
            }
            if !(*s).next.is_null() {
                (*(*s).next).prev = (*s).prev;
            }
            (*s).next = null_mut();
            (*s).prev = null_mut();
            (*s).list = LIST_NONE;
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
        self.cur = unsafe { (*s).next };
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::NUM_CLASSES;

    #[test]
    fn records_stay_small() {
        // The header fits in 96 bytes, so spans of most classes (up to 128
        // objects) take one 128-byte record: 1.6% of an 8 KiB span.
        assert!(core::mem::size_of::<Span>() <= 96, "{}", core::mem::size_of::<Span>());
        let small = (1..NUM_CLASSES).filter(|&c| record_bytes(c) <= 128).count();
        assert!(small >= NUM_CLASSES - 5, "only {small} classes fit 128-byte records");
        assert!(record_bytes(1) <= core::mem::size_of::<Span>() + 256);
    }
}
