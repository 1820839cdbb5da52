//! mcache: the per-thread cache of spans, one active span per size class.
//!
//! Allocation from the active span needs no lock and no atomic
//! read-modify-write: the thread owns the span's alloc bits. When the span's
//! pass is over, the cache sweeps it (folding other threads' frees in) and
//! keeps using it if that made room; otherwise it gives the span back to
//! mcentral and takes another.
//!
//! The cache pointer lives in one thread-local word with no destructor (a
//! `thread_local!` with a destructor would make glibc call calloc). On
//! x86-64 Linux that word is accessed with the initial-exec TLS model, a
//! single %fs-relative load, instead of a `__tls_get_addr` call. Thread exit
//! is caught by a pthread key destructor, which hands the spans back.
//!
//! The word's values: 0 = this thread has no cache yet; 1 = this thread must
//! not create one (it is creating one right now, or its cache was already
//! torn down at exit): it allocates through the shared fallback cache under a
//! lock; anything else is the thread's cache.

use crate::central;
use crate::fixalloc::FixAlloc;
use crate::lock::Locked;
use crate::sizeclass::NUM_CLASSES;
use crate::span::Span;
use core::ptr::null_mut;

pub struct Cache {
    pub alloc: [*mut Span; NUM_CLASSES],
    next: *mut Cache,
    prev: *mut Cache,
    /// Small-object mallocs and frees done through this cache (statistics).
    /// Plain counters, written only by the cache's thread (the fallback
    /// cache's under its lock), so counting costs one add on the fast paths;
    /// other threads read them racily (see stats.rs).
    pub nmalloc: u64,
    pub nfree: u64,
}

// SAFETY: a cache is used by one thread at a time; the fallback one by whoever holds its lock.
unsafe impl Send for Cache {}

/// A span with no slots, standing in for "no span" so the fast path needs no
/// null check (Go's emptymspan). Never written.
static EMPTY_SPAN: Span = Span::empty();

#[inline(always)]
fn empty_span() -> *mut Span {
    &EMPTY_SPAN as *const Span as *mut Span
}

impl Cache {
    pub const fn new() -> Cache {
        Cache {
            alloc: [&EMPTY_SPAN as *const Span as *mut Span; NUM_CLASSES],
            next: null_mut(),
            prev: null_mut(),
            nmalloc: 0,
            nfree: 0,
        }
    }

    fn owner_id(&mut self) -> *mut u8 {
        self as *mut Cache as *mut u8
    }

    /// Allocate an object of size class `class`: (address or 0, needzero).
    #[inline(always)]
    pub fn alloc(&mut self, class: usize) -> (usize, bool) {
        // SAFETY: class < NUM_CLASSES (it comes from the size-class tables);
        // the active span is owned by this cache (or is EMPTY_SPAN, whose fast
        // path never writes).
        let sp = unsafe { &mut **self.alloc.get_unchecked(class) };
        if let Some(p) = sp.next_free_fast() {
            self.nmalloc += 1;
            return (p, sp.needzero);
        }
        self.alloc_slow(class)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, class: usize) -> (usize, bool) {
        let r = self.refill(class);
        if r.0 != 0 {
            self.nmalloc += 1;
        }
        // The shared fallback cache runs under its lock; its caller polls.
        if !core::ptr::eq(self, FALLBACK.data_ptr()) {
            crate::scavenge::poll();
        }
        r
    }

    fn refill(&mut self, class: usize) -> (usize, bool) {
        let s = self.alloc[class];
        if s != empty_span() {
            // SAFETY: the active span is owned by this cache.
            let sp = unsafe { &mut *s };
            if let Some(p) = sp.next_free() {
                return (p, sp.needzero);
            }
            // End of the pass: take back what other threads (and this one)
            // freed, and go round again if that made room.
            sp.sweep();
            if sp.worth_reusing() {
                sp.rewind();
                if let Some(p) = sp.next_free() {
                    return (p, sp.needzero);
                }
            }
            self.alloc[class] = empty_span();
            // SAFETY: this cache owns s and drops it here.
            unsafe { central::uncache_span(s) };
        }
        let s = central::cache_span(class, self.owner_id());
        if s.is_null() {
            return (0, false);
        }
        self.alloc[class] = s;
        // SAFETY: cache_span hands over a span owned by this cache with a free slot.
        let sp = unsafe { &mut *s };
        match sp.next_free() {
            Some(p) => (p, sp.needzero),
            None => crate::error::fatal(b"mcentral handed out a span with no free slot"),
        }
    }

    /// Does this cache own `s` (so a free may touch its alloc bits directly)?
    #[inline(always)]
    pub fn owns(&mut self, s: &Span) -> bool {
        s.owner.load(core::sync::atomic::Ordering::Relaxed) == self.owner_id()
    }

    /// Give every span back to mcentral (thread exit, fork child).
    pub fn flush(&mut self) {
        for class in 1..NUM_CLASSES {
            let s = self.alloc[class];
            if s != empty_span() {
                self.alloc[class] = empty_span();
                // SAFETY: this cache owns s and drops it here.
                unsafe { central::uncache_span(s) };
            }
        }
    }

    /// Each active span (fork child repair).
    pub fn for_each_span(&mut self, mut f: impl FnMut(*mut Span)) {
        for class in 1..NUM_CLASSES {
            let s = self.alloc[class];
            if s != empty_span() {
                f(s);
            }
        }
    }
}

/// All live thread caches, for fork handling and statistics.
struct Caches {
    head: *mut Cache,
    records: FixAlloc,
    pub count: usize,
    /// Counters of destroyed caches, so a thread's counts outlive it.
    retired_nmalloc: u64,
    retired_nfree: u64,
}

// SAFETY: only touched under its lock.
unsafe impl Send for Caches {}

static CACHES: Locked<Caches> = Locked::new(Caches {
    head: null_mut(),
    records: FixAlloc::new(core::mem::size_of::<Cache>()),
    count: 0,
    retired_nmalloc: 0,
    retired_nfree: 0,
});

/// The shared cache of threads that have none (see the module comment).
pub static FALLBACK: Locked<Cache> = Locked::new(Cache::new());

/// A new cache record registered in the cache list, or null.
pub fn new_cache() -> *mut Cache {
    let mut cs = CACHES.lock();
    let c = cs.records.alloc() as *mut Cache;
    if c.is_null() {
        return c;
    }
    // SAFETY: a fresh record nobody else sees yet; the list is locked.
    unsafe {
        c.write(Cache::new());
        (*c).next = cs.head;
        if !cs.head.is_null() {
            (*cs.head).prev = c;
        }
    }
    cs.head = c;
    cs.count += 1;
    c
}

/// Flush a cache, unlink it and recycle its record.
///
/// # Safety
/// `c` came from `new_cache` and no thread will use it again.
pub unsafe fn destroy_cache(c: *mut Cache) {
    // SAFETY: per the contract c is live and no longer used by its thread.
    unsafe { (*c).flush() };
    let mut cs = CACHES.lock();
    // SAFETY: the list is locked and c is on it.
    unsafe {
        if (*c).prev.is_null() {
            cs.head = (*c).next;
        } else {
            (*(*c).prev).next = (*c).next;
        }
        if !(*c).next.is_null() {
            (*(*c).next).prev = (*c).prev;
        }
    }
    cs.count -= 1;
    // SAFETY: as above; the counters are final now that the thread is done.
    unsafe {
        cs.retired_nmalloc += (*c).nmalloc;
        cs.retired_nfree += (*c).nfree;
    }
    cs.records.free(c as usize);
}

/// (mallocs, frees) counted by every thread cache, live or destroyed, and
/// by the fallback cache. Takes the cache-list lock, then the fallback lock
/// (the global order), one at a time. Live caches' counters are read while
/// their threads may be writing them: exact only when those threads are idle.
pub fn counts() -> (u64, u64) {
    let (mut m, mut f) = {
        let cs = CACHES.lock();
        let (mut m, mut f) = (cs.retired_nmalloc, cs.retired_nfree);
        let mut c = cs.head;
        while !c.is_null() {
            // SAFETY: records on the list stay live while the list is locked;
            // the counters are plain words another thread may be bumping, so
            // they are read with volatile loads (a torn or stale value is an
            // accepted inaccuracy of the statistics).
            unsafe {
                m += core::ptr::read_volatile(&(*c).nmalloc);
                f += core::ptr::read_volatile(&(*c).nfree);
                c = (*c).next;
            }
        }
        (m, f)
    };
    let fb = FALLBACK.lock();
    m += fb.nmalloc;
    f += fb.nfree;
    (m, f)
}

/// In a fork child, the parent's other threads are gone: hand back every
/// cache but `keep` (the forking thread's). Locks were already reset.
pub fn reclaim_after_fork(keep: *mut Cache) {
    loop {
        let victim = {
            // SAFETY: single-threaded child.
            let cs = unsafe { CACHES.get_unchecked() };
            let mut c = cs.head;
            while !c.is_null() && c == keep {
                // SAFETY: live records on the list.
                c = unsafe { (*c).next };
            }
            c
        };
        if victim.is_null() {
            break;
        }
        // SAFETY: its thread does not exist in the child; it may have been
        // stopped half-way through a lock-free update of one of its spans.
        unsafe {
            for &s in (*victim).alloc.iter() {
                if s != empty_span() {
                    (*s).recount();
                }
            }
            destroy_cache(victim);
        }
    }
}

pub fn list_mutex() -> &'static crate::lock::Mutex {
    &CACHES.mutex
}

pub fn fallback_mutex() -> &'static crate::lock::Mutex {
    &FALLBACK.mutex
}

/// The thread-local cache word.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod tls {
    // An 8-byte .tbss slot, accessed with the initial-exec model: stable
    // Rust cannot choose the TLS model of a `thread_local!`.
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __goheap_tls_cache",
        ".hidden __goheap_tls_cache",
        ".type __goheap_tls_cache,@object",
        ".size __goheap_tls_cache,8",
        "__goheap_tls_cache:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn get() -> usize {
        let v: usize;
        // SAFETY: reads this thread's slot through its initial-exec TP offset.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + __goheap_tls_cache@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags)
            );
        }
        v
    }

    #[inline(always)]
    pub fn set(val: usize) {
        // SAFETY: writes this thread's slot through its initial-exec TP offset.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + __goheap_tls_cache@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) val,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// Portable fallback: a const-initialised `thread_local!` without Drop
/// registers no destructor and so never allocates.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub mod tls {
    use core::cell::Cell;
    std::thread_local! { static SLOT: Cell<usize> = const { Cell::new(0) }; }
    #[inline(always)]
    pub fn get() -> usize {
        SLOT.with(|s| s.get())
    }
    #[inline(always)]
    pub fn set(v: usize) {
        SLOT.with(|s| s.set(v))
    }
}

pub const TLS_NONE: usize = 0;
pub const TLS_NO_CACHE: usize = 1;
