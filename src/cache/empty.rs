//! A thread cache's stack of empty spans of one size class.
//!
//! The cache's thread pushes and pops; other threads may take the whole
//! stack at once (`take_all`): the background thread from a cache that has
//! not touched its empty spans for a while, so that a thread that freed a
//! lot and went idle gives the memory back, and a thread about to grow the
//! heap from every cache (registry.rs, `reclaim_empties`). So the stack is
//! a lock-free one, linked through `SpanCold::evicted_by` (see there why
//! that word).
//!
//! Only the owner pushes, so a pop cannot meet ABA: between the owner's
//! read of the head and its compare-exchange, the head can only have been
//! emptied by a `take_all` (then the exchange fails, and the owner reads
//! again), never replaced by the same span. A pop that loses that race may
//! read the link of a span the taker already handed on: records are never
//! unmapped and the field is atomic, so it reads a stale value that the
//! failed exchange throws away.

use crate::span::Span;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

pub struct EmptyStack {
    head: AtomicPtr<Span>,
}

impl EmptyStack {
    pub const fn new() -> EmptyStack {
        EmptyStack { head: AtomicPtr::new(null_mut()) }
    }

    /// Push `s` (owner only).
    ///
    /// # Safety
    /// `s` is a live span record owned by the calling cache, on no list.
    pub unsafe fn push(&self, s: *mut Span) {
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: per the contract.
            unsafe { (*s).cold().evicted_by.store(h as *mut u8, Ordering::Relaxed) };
            // Release: a taker that sees `s` sees its fields.
            match self.head.compare_exchange_weak(h, s, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => h = now,
            }
        }
    }

    /// The newest span, or null (owner only).
    pub fn pop(&self) -> *mut Span {
        let mut h = self.head.load(Ordering::Acquire);
        while !h.is_null() {
            // SAFETY: span records are never unmapped (see the module comment
            // for a span a taker got first).
            let next = unsafe { link(h) };
            match self.head.compare_exchange_weak(h, next, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    // SAFETY: ours now; the word goes back to being a hint.
                    unsafe { (*h).cold().evicted_by.store(null_mut(), Ordering::Relaxed) };
                    return h;
                }
                Err(now) => h = now,
            }
        }
        h
    }

    /// Take every span (owner or another thread): the returned chain,
    /// linked through `next_of`, is the caller's.
    pub fn take_all(&self) -> *mut Span {
        self.head.swap(null_mut(), Ordering::Acquire)
    }

    /// Is the stack empty? (A hint for any thread but the owner.)
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Each span on the stack, newest first (owner, with no taker running).
    pub fn iter(&self) -> impl Iterator<Item = *mut Span> + '_ {
        let mut s = self.head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            (!s.is_null()).then(|| {
                let cur = s;
                // SAFETY: a live span on this stack.
                s = unsafe { link(cur) };
                cur
            })
        })
    }
}

/// The span after `s` on a stack, or on a chain from `take_all`.
///
/// # Safety
/// `s` is a span record.
pub unsafe fn link(s: *mut Span) -> *mut Span {
    // SAFETY: per the contract (records are never unmapped).
    unsafe { (*s).cold().evicted_by.load(Ordering::Relaxed) as *mut Span }
}

/// The span after `s` on a chain from `take_all`; `s`'s link word goes
/// back to being a hint.
///
/// # Safety
/// `s` is a live span of such a chain, which the caller owns.
pub unsafe fn next_of(s: *mut Span) -> *mut Span {
    // SAFETY: per the contract.
    unsafe {
        let next = link(s);
        (*s).cold().evicted_by.store(null_mut(), Ordering::Relaxed);
        next
    }
}
