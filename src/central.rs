//! mcentral: per size class, the spans no thread cache holds.
//!
//! Each class has a lock, two lists — `partial` (at least an eighth of the
//! slots free, see `Span::worth_reusing`) and `full` (the rest) — and a
//! lock-free sweep queue. A thread cache takes a partial span (or a
//! fresh one from the heap) when its own is used up, and gives spans back
//! when they are full or when the thread exits.
//!
//! # Frees from threads that do not own the span
//!
//! This is where explicit free replaces Go's sweeper. Such a free never
//! takes a lock: it sets the object's bit in the span's atomic
//! `freed_bits`. If a cache owns the span, that cache folds the bits in
//! when it runs out of slots. If nobody owns it, the first such free pushes
//! the span on its class's sweep queue (a Treiber stack; `span.queued` keeps
//! a span on it at most once). mcentral drains the queue under its lock —
//! when a cache asks it for a span and no partial span is left (so queued
//! spans gather several frees per visit), from the background scavenger
//! every tick, and in malloc_trim — folding the bits in: a full span that
//! got enough frees moves to `partial`, a span whose objects are all free
//! goes back to the page heap.
//! This is Go's "sweep in response to allocation" plus its background
//! sweeper, with the freed bits standing in for mark bits.
//!
//! # Empty spans
//!
//! A span whose last object goes is put on its class's `empty` list rather
//! than straight back to the page heap, while all classes' empty lists hold
//! less than 16 MiB (a sixteenth of `GOHEAP_MEMORY_LIMIT` if set). A cache
//! that finds no partial span takes one from there before asking the heap,
//! so a program that frees and reallocates in phases (or threads that exit
//! and are replaced) recycles spans under the class lock, not the global
//! heap lock, and the page allocator is not updated twice per span. Each
//! span is stamped with the scavenger's tick; every tick gives back to the
//! heap the ones that sat unused for a whole tick, and `malloc_trim` all of
//! them. (Go's mcentral returns empty spans to the heap at once: its sweeper
//! frees them in bulk, so it has no such churn.)
//!
//! # The hand-offs, and why no freed slot is stranded
//!
//! * Ownership: the party taking or dropping a span stores `owner`, then
//!   sweeps, under the class lock; a freer sets its bit, then reads `owner`
//!   and queues the span if it is unowned. With sequentially consistent
//!   order on those operations, either the sweep sees the bit or the freer
//!   sees the span unowned and queues it.
//! * The queue: the drainer clears `queued`, then sweeps; a freer sets its
//!   bit, then reads `queued`. Either the sweep sees the bit, or the freer
//!   sees `queued` clear and queues the span again.
//! * A span that is on the queue is never returned to the heap (the queue
//!   would point into freed metadata); it waits, empty, on `partial` until
//!   the drain reaches it.
//! * A freer must not use the span once its bit is set: from then on a
//!   sweep may fold the bit in, find the span empty and return it to the
//!   heap. So a freer that finds the span unowned queues it *before* setting
//!   its bit (the span cannot die before: the object being freed still
//!   counts in it), and afterwards only reads: if the span is still queued
//!   (a drain clears `queued` before it sweeps) or owned, the bit will be
//!   seen; otherwise — the owner let go meanwhile, or a drain ran between
//!   the queueing and the bit — it takes the class lock, re-validates the
//!   span and sweeps it itself. (An earlier version queued after setting the
//!   bit and returned spans to the heap twice: found by
//!   tests-c/torture_lastfree_handoff and the bench suite's xmalloc.)

use crate::heap;
use crate::heap::pagecache::PageCache;
use crate::platform::lock::{Guard, Locked};
use crate::sizeclass::{CLASSES, NUM_CLASSES};
use crate::span::{Owner, Span, SpanList, LIST_EMPTY, LIST_FULL, LIST_PARTIAL, STATE_SMALL, UNOWNED};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

pub struct Central {
    pub partial: SpanList,
    pub full: SpanList,
    /// Empty spans kept for reuse without the heap lock, newest first (see
    /// "Empty spans" in the module comment).
    pub empty: SpanList,
}

/// Bytes of all classes' empty lists, and their bound.
static EMPTY_BYTES: AtomicUsize = AtomicUsize::new(0);
const EMPTY_KEEP: usize = 16 << 20;

/// Bytes of empty spans all classes' empty lists keep (racy: a hint).
pub fn kept_empty_bytes() -> usize {
    EMPTY_BYTES.load(Ordering::Relaxed)
}

/// The scavenger's tick count, for the empty lists' stamps.
static TICK: AtomicU32 = AtomicU32::new(0);

/// The scavenger's tick count (thread caches stamp their empty spans with it).
pub fn tick() -> u32 {
    TICK.load(Ordering::Relaxed)
}

/// How many bytes of empty spans mcentral may keep: 16 MiB, or a sixteenth
/// of the memory limit if one is set, so the limit is not overrun by them;
/// none once address space ran out (heap.rs, `under_pressure`).
fn empty_keep() -> usize {
    if heap::under_pressure() {
        return 0; // address space ran out: empty spans go back at once
    }
    match crate::settings::MEMORY_LIMIT.load(Ordering::Relaxed) {
        0 => EMPTY_KEEP,
        limit => EMPTY_KEEP.min(limit / 16),
    }
}

// SAFETY: the raw span pointers are only followed under the class lock.
unsafe impl Send for Central {}

/// One class's lock, lists and sweep queue, padded to its own cache lines.
#[repr(align(128))]
pub struct Class {
    pub lists: Locked<Central>,
    queue: AtomicPtr<Span>,
}

pub static CENTRAL: [Class; NUM_CLASSES] = [const {
    Class {
        lists: Locked::new(Central { partial: SpanList::new(), full: SpanList::new(), empty: SpanList::new() }),
        queue: AtomicPtr::new(null_mut()),
    }
}; NUM_CLASSES];

#[inline]
fn lock(class: usize) -> Guard<'static, Central> {
    CENTRAL[class].lists.lock()
}

/// Spans that became empty under a class lock, returned to the heap once the
/// lock is dropped (returning may start the scavenger thread, which must not
/// happen under a lock). Linked through `qnext`, which is free once a span is
/// off the queue.
struct Empties(*mut Span);

impl Empties {
    fn push(&mut self, s: *mut Span) {
        // SAFETY: s is off every list and queue; its qnext is ours to use.
        unsafe { (*s).cold().qnext = self.0 };
        self.0 = s;
    }
    fn release(self) {
        let mut s = self.0;
        while !s.is_null() {
            // SAFETY: spans on this list are owned by nobody and referenced by nothing else.
            let next = unsafe { (*s).cold().qnext };
            // SAFETY: as above.
            unsafe { heap::free_span(s) };
            s = next;
        }
    }
}

impl Central {
    /// Put an unowned span where its count says it belongs: an empty one on
    /// the empty list while they hold less than `empty_keep()`. Returns true
    /// if it is empty and off the lists: the caller returns it to the heap.
    ///
    /// # Safety
    /// `s` is a live, unowned span of this class, and the lock is held.
    unsafe fn settle(&mut self, s: *mut Span) -> bool {
        // SAFETY: per the contract the span is ours under this lock.
        let sp = unsafe { &mut *s };
        let list = sp.cold().list;
        // A queued span stays (the queue points at it); the drain returns it.
        let want = if sp.alloc_count == 0 && !sp.cold().queued.load(Ordering::SeqCst) {
            0
        } else if sp.worth_reusing() {
            LIST_PARTIAL
        } else {
            LIST_FULL
        };
        if want != list {
            // SAFETY: the span is on the list its tag names.
            unsafe {
                match list {
                    LIST_PARTIAL => self.partial.remove(s),
                    LIST_FULL => self.full.remove(s),
                    _ => {}
                }
                match want {
                    LIST_PARTIAL => self.partial.push(s, LIST_PARTIAL),
                    LIST_FULL => self.full.push(s, LIST_FULL),
                    _ => {}
                }
            }
        }
        if want != 0 {
            return false;
        }
        let bytes = sp.bytes();
        let kept = EMPTY_BYTES.load(Ordering::Relaxed);
        if kept + bytes > empty_keep() {
            return true;
        }
        EMPTY_BYTES.store(kept + bytes, Ordering::Relaxed);
        sp.cold().stamp = TICK.load(Ordering::Relaxed);
        // SAFETY: the span is off the lists now.
        unsafe { self.empty.push(s, LIST_EMPTY) };
        // The scavenger gives them back to the heap once they sit idle.
        crate::heap::scavenge::note_free_memory(kept + bytes);
        false
    }

    /// Take the empty spans stamped before tick `before` (all of them for
    /// `u32::MAX`) off the empty list, oldest first, for the heap.
    fn age_empties(&mut self, before: u32, empties: &mut Empties) {
        loop {
            let s = self.empty.tail;
            // SAFETY: spans on the empty list are live, unowned and ours under the lock.
            if s.is_null() || (before != u32::MAX && unsafe { (*s).cold().stamp } >= before) {
                return;
            }
            // SAFETY: as above; s is on this list.
            unsafe {
                self.empty.remove(s);
                EMPTY_BYTES.fetch_sub((*s).bytes(), Ordering::Relaxed);
            }
            empties.push(s);
        }
    }

    /// Fold in the frees of every span on the class's sweep queue.
    fn drain(&mut self, class: usize, empties: &mut Empties) {
        let mut s = CENTRAL[class].queue.swap(null_mut(), Ordering::Acquire);
        while !s.is_null() {
            // SAFETY: queued spans stay live until drained (see the module comment).
            let sp = unsafe { &mut *s };
            let next = sp.cold().qnext;
            sp.cold().queued.store(false, Ordering::SeqCst);
            // An owned span is its owner's to sweep.
            if sp.owner.load(Ordering::SeqCst) == UNOWNED {
                sp.sweep();
                // SAFETY: live, unowned, and the lock is held.
                if unsafe { self.settle(s) } {
                    empties.push(s);
                }
            }
            s = next;
        }
    }
}

/// Push an unowned span that just got a remote free on its class's queue,
/// unless it is already there.
fn enqueue(class: usize, s: *mut Span) {
    // SAFETY: span records are never unmapped.
    let sp = unsafe { &mut *s };
    let cold = sp.cold();
    if cold.queued.load(Ordering::SeqCst) || cold.queued.swap(true, Ordering::SeqCst) {
        return;
    }
    let q = &CENTRAL[class].queue;
    let mut head = q.load(Ordering::Relaxed);
    loop {
        cold.qnext = head;
        match q.compare_exchange_weak(head, s, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    // Queued spans are only swept when a cache runs out of partial spans or
    // the background scavenger drains them: ask for the scavenger once
    // enough memory waits there, or memory freed by other threads of an
    // idle program would never go back.
    let waiting = QUEUED_BYTES.fetch_add(sp.bytes(), Ordering::Relaxed) + sp.bytes();
    crate::heap::scavenge::note_free_memory(waiting);
}

/// Bytes of spans queued since the last full drain (an estimate that only
/// decides when to start the scavenger).
static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Go's mcentral.cacheSpan: a span with at least one free slot, now owned by
/// `owner`, its remote frees folded in and its allocation cursor rewound.
/// Null when memory is exhausted.
/// A new span comes from the heap through the thread's page cache `pc`;
/// if that needs new memory, only with `grow`, and then the heap first
/// gets back the empty spans mcentral keeps, of every class: their pages
/// are reused before new memory is touched (see `Cache::refill`). Without
/// `grow`, null also means that. With `resident`, the page cache's own
/// fresh or released pages count as new memory too
/// (`pagecache::alloc_span_cached`).
pub fn cache_span(class: usize, owner: *mut u8, pc: &mut PageCache, grow: bool, resident: bool) -> *mut Span {
    let mut empties = Empties(null_mut());
    let mut c = lock(class);
    // Sweep only when the partial spans are used up (Go sweeps in response
    // to allocation too): in between, queued spans gather more frees, so
    // each visit to a span folds more of them.
    if c.partial.head.is_null() {
        c.drain(class, &mut empties);
    }
    let mut s = c.partial.pop();
    if s.is_null() {
        s = c.empty.pop();
        if !s.is_null() {
            // SAFETY: spans on the empty list are live and unowned.
            EMPTY_BYTES.fetch_sub(unsafe { (*s).bytes() }, Ordering::Relaxed);
        }
    }
    if !s.is_null() {
        // SAFETY: spans on the partial and empty lists are live and unowned; the lock makes them ours.
        let sp = unsafe { &mut *s };
        sp.owner.store(owner, Ordering::SeqCst);
        sp.sweep();
        sp.rewind();
    }
    drop(c);
    empties.release();
    if !s.is_null() {
        // SAFETY: see above; an empty span kept for the queue may have been popped.
        if unsafe { (*s).alloc_count < (*s).nelems } {
            return s;
        }
        crate::error::fatal(b"mcentral: partial span without a free slot");
    }
    let npages = CLASSES[class].npages as usize;
    let mut s = heap::pagecache::alloc_span_cached(pc, class, npages, false, resident);
    if s.is_null() && grow {
        // Only memory that is not resident is left (or none): the heap
        // first gets back what the central lists keep free (empty spans of
        // every class, queued spans that emptied), and the span is asked
        // for once more, new memory allowed. A program that moves from one
        // size to another reuses the old size's pages. (The caller asks
        // without `grow` only while empty spans are kept, so a growing
        // program that keeps none pays nothing here.)
        drain_all();
        release_empties(u32::MAX);
        s = heap::pagecache::alloc_span_cached(pc, class, npages, true, resident);
    }
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
        (*s).owner.store(UNOWNED, Ordering::SeqCst);
        (*s).sweep();
        c.settle(s)
    };
    drop(c);
    if empty {
        // SAFETY: settle took it off every list, nobody owns it and it is not queued.
        unsafe { heap::free_span(s) };
    }
}

/// Under the class lock of `class`: is span record `sp` a live small span
/// of that class that no cache owns and no sweep queue holds? (A record may
/// have been returned and reused since the caller looked it up.)
fn unowned_unqueued(sp: &Span, class: usize) -> bool {
    // SAFETY: a volatile read of a field that changes only when a span is reused.
    let cur_class = unsafe { core::ptr::read_volatile(&sp.class) } as usize;
    sp.state.load(Ordering::Acquire) == STATE_SMALL
        && cur_class == class
        && sp.owner.load(Ordering::SeqCst) == UNOWNED
        && !sp.cold().queued.load(Ordering::SeqCst)
}

/// Give unowned span `s` of `class` to `owner`, the cache that gave it up
/// at its cap and now frees into it, so that its remaining frees there are
/// local instead of remote (and the span is swept, its cursor untouched:
/// the new owner places it). False, with nothing changed, unless the span is
/// live, of this class, unowned, not queued for a sweep, and on the partial
/// or full list.
///
/// # Safety
/// `s` is a span record (records are never unmapped); everything else is
/// checked under the class lock.
pub unsafe fn adopt(s: *mut Span, class: usize, owner: *mut u8) -> bool {
    let mut c = lock(class);
    // SAFETY: a record; the checks below run under the class lock, which
    // any change of a span of this class needs.
    let sp = unsafe { &mut *s };
    if !unowned_unqueued(sp, class) {
        return false;
    }
    // SAFETY: the span is on the list its tag names, under this lock.
    unsafe {
        match sp.cold().list {
            LIST_PARTIAL => c.partial.remove(s),
            LIST_FULL => c.full.remove(s),
            _ => return false,
        }
    }
    // The hand-off protocol of `cache_span`: store the owner, then sweep.
    sp.owner.store(owner, Ordering::SeqCst);
    sp.sweep();
    true
}

/// What a free from a non-owner found.
pub enum FreeResult {
    Ok,
    DoubleFree,
}

/// Free slot `idx` of small span `s` from a thread that does not own it:
/// lock-free in the common case, see the module comment.
///
/// # Safety
/// `s` was a live small span of class `class` when the caller looked it up.
#[inline]
pub unsafe fn free_foreign(s: *mut Span, class: usize, idx: usize) -> FreeResult {
    // SAFETY: span records are never unmapped, and the span is live until
    // our bit is set: the object being freed still counts in it.
    let sp = unsafe { &*s };
    if !sp.is_allocated(idx) {
        return FreeResult::DoubleFree;
    }
    if sp.owner.load(Ordering::SeqCst) == UNOWNED {
        // Queue first, while the span cannot die.
        enqueue(class, s);
    }
    if !sp.set_freed(idx) {
        return FreeResult::DoubleFree;
    }
    // From here on a sweep may fold our bit and return the span: only reads.
    // Owned: tell the owner, which sweeps (a span that changed hands
    // meanwhile only costs its new owner a needless sweep). Still queued (a
    // drain clears `queued` before it sweeps): our bit will be seen.
    // Otherwise check under the lock.
    let owner = sp.owner.load(Ordering::SeqCst);
    if owner != UNOWNED {
        // SAFETY: an owner is a thread cache record (or the fallback cache,
        // or the static `cache::TRANSIT`), never unmapped; `Owner` is its
        // first line, and a stale count into a record freed meanwhile lands
        // in a word nobody else uses.
        let count = unsafe { &(*(owner as *const Owner)).remote };
        // A plain increment, not a locked one: the owner only asks whether
        // the count moved since it last looked, and two freers that both
        // write the same new value still move it. Release: our bit, set
        // above, is seen by an owner that sees the count.
        count.store(count.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    } else if !sp.cold().queued.load(Ordering::SeqCst) && sp.owner.load(Ordering::SeqCst) == UNOWNED {
        // SAFETY: forwarded; everything is re-validated under the lock.
        unsafe { settle_after_remote(s, class, idx) };
    }
    FreeResult::Ok
}

/// A remote free found the span neither queued nor owned after setting its
/// bit (the owner let go, or a drain ran between the queueing and the bit):
/// fold the bit in under the lock, unless someone already did. The span may
/// have been returned and reused meanwhile, so everything is re-checked.
#[cold]
unsafe fn settle_after_remote(s: *mut Span, class: usize, idx: usize) {
    let mut c = lock(class);
    // SAFETY: span records are never unmapped; the checks below run under
    // the class lock, which any change of a span of this class needs.
    let sp = unsafe { &mut *s };
    if !unowned_unqueued(sp, class) || !sp.is_freed_remotely(idx) {
        // Returned (our bit was folded first), owned again (the owner
        // sweeps), queued (a drain will), or already folded.
        return;
    }
    sp.sweep();
    // SAFETY: live, unowned, of this class, and the lock is held.
    let empty = unsafe { c.settle(s) };
    drop(c);
    if empty {
        // SAFETY: settle took it off the lists; nobody owns or queued it.
        unsafe { heap::free_span(s) };
    }
}

/// Drain every class's sweep queue: spans whose objects were all freed by
/// other threads go back to the heap (background scavenger, malloc_trim).
pub fn drain_all() {
    QUEUED_BYTES.store(0, Ordering::Relaxed);
    for (class, c) in CENTRAL.iter().enumerate().skip(1) {
        if c.queue.load(Ordering::Relaxed).is_null() {
            continue;
        }
        let mut empties = Empties(null_mut());
        lock(class).drain(class, &mut empties);
        empties.release();
    }
}

/// Drain class `class`'s sweep queue now (after a free from a thread that
/// does not own the span, while address space is short: heap.rs,
/// `under_pressure`), so emptied spans go back to the heap at once rather
/// than at the next drain.
pub fn drain_class(class: usize) {
    if CENTRAL[class].queue.load(Ordering::Relaxed).is_null() {
        return;
    }
    let mut empties = Empties(null_mut());
    lock(class).drain(class, &mut empties);
    empties.release();
}

/// The background scavenger's tick: the heap gets back the empty spans
/// that sat unused on mcentral's lists for a whole tick.
pub fn tick_empties() {
    let t = TICK.fetch_add(1, Ordering::Relaxed) + 1;
    release_empties(t.wrapping_sub(1));
}

/// Give the heap every empty span stamped before tick `before`, or all of
/// them for `u32::MAX` (malloc_trim).
pub fn release_empties(before: u32) {
    if EMPTY_BYTES.load(Ordering::Relaxed) == 0 {
        return;
    }
    for class in 1..NUM_CLASSES {
        let mut empties = Empties(null_mut());
        {
            let mut c = lock(class);
            if c.empty.head.is_null() {
                continue;
            }
            c.age_empties(before, &mut empties);
        }
        empties.release();
    }
}

/// In a fork child, after the other threads' caches were handed back: a
/// thread that vanished half-way through a remote free may have left a span
/// marked queued but not on the queue. Drain, then settle again every listed
/// span that is still marked or is empty.
pub fn repair_after_fork() {
    for class in 1..NUM_CLASSES {
        let mut empties = Empties(null_mut());
        let mut c = lock(class);
        c.drain(class, &mut empties);
        // After the drain nothing is on the queue: a set flag is stale.
        let mut stranded = Empties(null_mut());
        for s in c.partial.iter().chain(c.full.iter()) {
            // SAFETY: spans on the lists are live under the lock.
            let sp = unsafe { &*s };
            if sp.cold().queued.swap(false, Ordering::SeqCst) | (sp.alloc_count == 0) {
                stranded.push(s);
            }
        }
        let mut s = stranded.0;
        while !s.is_null() {
            // SAFETY: live, unowned spans of this class, lock held.
            let next = unsafe { (*s).cold().qnext };
            // SAFETY: as above.
            unsafe { (*s).sweep() };
            // SAFETY: as above.
            if unsafe { c.settle(s) } {
                empties.push(s);
            }
            s = next;
        }
        drop(c);
        empties.release();
    }
}

/// In a fork child: clear the stale marks of a span a surviving cache owns
/// (call after `repair_after_fork`, when the queues are empty).
///
/// # Safety
/// `s` is a live span owned by a cache of the (single-threaded) child.
pub unsafe fn reset_marks_after_fork(s: *mut Span) {
    // SAFETY: per the contract.
    let sp = unsafe { &*s };
    sp.cold().queued.store(false, Ordering::SeqCst);
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
        for s in c.empty.iter() {
            f(class, s, LIST_EMPTY);
        }
    }
}

/// The lock of class `class` (for fork handling).
pub fn mutex(class: usize) -> &'static crate::platform::lock::Mutex {
    &CENTRAL[class].lists.mutex
}
