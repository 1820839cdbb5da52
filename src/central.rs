//! mcentral: per size class, the spans no thread cache holds.
//!
//! Each class has its own lock and two lists: `partial` (some slot free) and
//! `full`. A thread cache takes a partial span (or a fresh one from the heap)
//! when its own is used up and gives spans back when they are full or when
//! the thread exits.
//!
//! Frees of objects in spans that no cache holds land here, which is where
//! explicit free replaces Go's sweeper:
//! * a full span that gets a free moves to `partial`;
//! * a span whose last object is freed goes back to the page heap.
//!
//! The ownership hand-off is the subtle part. A cache owns a span while
//! `span.owner` is non-null; other threads then only set bits in the span's
//! atomic `freed_bits` and the owner folds them in. When ownership changes,
//! the party taking or dropping the span stores `owner` and then sweeps, all
//! under this lock; a remote free sets its bit and then re-reads `owner`.
//! With sequentially consistent ordering on those four operations, either the
//! sweep sees the bit, or the freer sees the span unowned and sweeps it
//! itself under the lock. No freed slot is ever stranded.

use crate::heap;
use crate::lock::{Guard, Locked};
use crate::sizeclass::{CLASSES, NUM_CLASSES};
use crate::span::{Span, SpanList, LIST_FULL, LIST_NONE, LIST_PARTIAL, STATE_SMALL};
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

pub struct Central {
    pub partial: SpanList,
    pub full: SpanList,
}

// SAFETY: the raw span pointers are only followed under the class lock.
unsafe impl Send for Central {}

/// One central list per class, each on its own cache line pair.
#[repr(align(128))]
pub struct Padded(pub Locked<Central>);

pub static CENTRAL: [Padded; NUM_CLASSES] =
    [const { Padded(Locked::new(Central { partial: SpanList::new(), full: SpanList::new() })) }; NUM_CLASSES];

#[inline]
fn lock(class: usize) -> Guard<'static, Central> {
    CENTRAL[class].0.lock()
}

impl Central {
    /// Put an unowned span where it belongs after its counts changed.
    /// Returns true if the span is now empty and was taken off the lists:
    /// the caller must hand it to the heap.
    ///
    /// # Safety
    /// `s` is a live span of this class, unowned, and the lock is held.
    unsafe fn settle(&mut self, s: *mut Span) -> bool {
        // SAFETY: per the contract the span is ours under this lock.
        let sp = unsafe { &mut *s };
        let list = sp.list;
        if sp.alloc_count == 0 {
            // SAFETY: the span is on the list its tag names.
            unsafe {
                match list {
                    LIST_PARTIAL => self.partial.remove(s),
                    LIST_FULL => self.full.remove(s),
                    _ => {}
                }
            }
            return true;
        }
        let want = if sp.alloc_count < sp.nelems { LIST_PARTIAL } else { LIST_FULL };
        if want != list {
            // SAFETY: the span is on the list its tag names.
            unsafe {
                match list {
                    LIST_PARTIAL => self.partial.remove(s),
                    LIST_FULL => self.full.remove(s),
                    _ => {}
                }
                if want == LIST_PARTIAL {
                    self.partial.push(s, LIST_PARTIAL);
                } else {
                    self.full.push(s, LIST_FULL);
                }
            }
        }
        false
    }
}

/// Go's mcentral.cacheSpan: a span with at least one free slot, now owned by
/// `owner`, its remote frees folded in and its allocation cursor rewound.
/// Null when memory is exhausted.
pub fn cache_span(class: usize, owner: *mut u8) -> *mut Span {
    {
        let mut c = lock(class);
        let s = c.partial.pop();
        if !s.is_null() {
            // SAFETY: spans on the partial list are live and unowned; the lock makes them ours.
            let sp = unsafe { &mut *s };
            sp.owner.store(owner, Ordering::SeqCst);
            sp.sweep();
            sp.rewind();
            return s;
        }
    }
    let s = heap::alloc_span(class, CLASSES[class].npages as usize);
    if !s.is_null() {
        // SAFETY: a fresh span nobody else can reach through a list yet.
        unsafe { (*s).owner.store(owner, Ordering::SeqCst) };
    }
    s
}

/// Go's mcentral.uncacheSpan: the owning cache gives `s` back.
///
/// # Safety
/// `s` is a live small span owned by the calling cache.
pub unsafe fn uncache_span(s: *mut Span) {
    // SAFETY: per the contract the span is live; its class never changes while live.
    let class = unsafe { (*s).class as usize };
    let mut c = lock(class);
    // SAFETY: still ours; the order store-then-sweep is the hand-off protocol.
    let empty = unsafe {
        (*s).owner.store(null_mut(), Ordering::SeqCst);
        (*s).sweep();
        c.settle(s)
    };
    drop(c);
    if empty {
        // SAFETY: settle took it off every list and nobody owns it.
        unsafe { heap::free_span(s) };
    }
}

/// What a free from a non-owner found.
pub enum FreeResult {
    Ok,
    DoubleFree,
}

/// Free slot `idx` of small span `s` from a thread that does not own it.
///
/// # Safety
/// `s` was a live small span of class `class` when the caller looked it up.
pub unsafe fn free_foreign(s: *mut Span, class: usize, idx: usize) -> FreeResult {
    // SAFETY: span records are never unmapped; fields below are checked under locks where it matters.
    let sp = unsafe { &*s };
    loop {
        if !sp.owner.load(Ordering::SeqCst).is_null() {
            // Owned by another cache: leave the slot to its sweep.
            if !sp.free_remote(idx) {
                return FreeResult::DoubleFree;
            }
            if sp.owner.load(Ordering::SeqCst).is_null() {
                // The owner let go meanwhile; our bit may have missed its
                // sweep, so settle the span ourselves.
                // SAFETY: forwarded.
                unsafe { settle_after_remote(s, class, idx) };
            }
            return FreeResult::Ok;
        }
        let mut c = lock(class);
        if !sp.owner.load(Ordering::SeqCst).is_null() {
            continue; // a cache took it; go the remote way
        }
        // SAFETY: volatile read of a field that only changes if the span died and was reused.
        let cur_class = unsafe { core::ptr::read_volatile(&sp.class) } as usize;
        if sp.state.load(Ordering::Acquire) != STATE_SMALL || cur_class != class {
            return FreeResult::DoubleFree; // the span died under us: its objects were all freed
        }
        // SAFETY: unowned and locked: the alloc bits are ours to change.
        let spm = unsafe { &mut *s };
        if !spm.free_owned(idx) {
            return FreeResult::DoubleFree;
        }
        // SAFETY: unowned, live, locked.
        let empty = unsafe { c.settle(s) };
        drop(c);
        if empty {
            // SAFETY: settle took it off the lists and nobody owns it.
            unsafe { heap::free_span(s) };
        }
        return FreeResult::Ok;
    }
}

/// After a remote free raced with the owner letting go: fold the bit in
/// under the lock unless someone already did.
unsafe fn settle_after_remote(s: *mut Span, class: usize, idx: usize) {
    let mut c = lock(class);
    // SAFETY: see free_foreign; every condition below is re-checked under the lock.
    let sp = unsafe { &mut *s };
    // SAFETY: volatile read of a field that only changes if the span died and was reused.
    let cur_class = unsafe { core::ptr::read_volatile(&sp.class) } as usize;
    if sp.state.load(Ordering::Acquire) != STATE_SMALL
        || cur_class != class
        || !sp.owner.load(Ordering::SeqCst).is_null()
        || !sp.is_freed_remotely(idx)
    {
        // Dead (so our bit was folded before it died), owned again (the new
        // owner sweeps), or already folded: nothing left to do.
        return;
    }
    sp.sweep();
    // SAFETY: unowned, live, locked.
    let empty = unsafe { c.settle(s) };
    drop(c);
    if empty {
        // SAFETY: settle took it off the lists and nobody owns it.
        unsafe { heap::free_span(s) };
    }
}

/// Visit every span on the central lists of every class, each class locked
/// in turn (for statistics and checks).
pub fn for_each_span(mut f: impl FnMut(usize, *mut Span, u8)) {
    for class in 1..NUM_CLASSES {
        let c = lock(class);
        for s in c.partial.iter() {
            f(class, s, LIST_PARTIAL);
        }
        for s in c.full.iter() {
            f(class, s, LIST_FULL);
        }
    }
    let _ = LIST_NONE;
}

/// The lock of class `class` (for fork handling).
pub fn mutex(class: usize) -> &'static crate::lock::Mutex {
    &CENTRAL[class].0.mutex
}
