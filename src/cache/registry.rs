//! The thread registry: every live thread cache on one list (fork
//! handling and statistics), the shared fallback cache of threads that may
//! not have one, the pthread key whose destructor hands a thread's cache
//! back at exit, and the reclaiming of vanished threads' caches in a fork
//! child.
//!
//! The key is created the first time a thread wants a cache; until that has
//! succeeded, and while it is being created (pthread functions may call
//! malloc), threads allocate through the fallback cache.

use super::{set_word, word, Cache, Transit, TLS_NO_CACHE};
use crate::central;
use crate::fixalloc::FixAlloc;
use crate::heap::scavenge;
use crate::platform::lock::Locked;
use crate::sizeclass::NUM_CLASSES;
use crate::span::Span;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
#[cfg(not(target_os = "macos"))]
type KeyWord = core::sync::atomic::AtomicU32;
/// macOS: pthread_key_t is an unsigned long there.
#[cfg(target_os = "macos")]
type KeyWord = core::sync::atomic::AtomicU64;
static KEY: KeyWord = KeyWord::new(0);

/// True once thread caches may be created (the key exists).
#[inline]
fn ensure_key() -> bool {
    match STATE.load(Ordering::Acquire) {
        DONE => true,
        UNINIT => create_key(),
        _ => false,
    }
}

#[cold]
fn create_key() -> bool {
    if STATE.compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return STATE.load(Ordering::Acquire) == DONE;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a plain libc call with valid arguments; it may re-enter malloc,
    // which takes the fallback path while STATE is RUNNING.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
        STATE.store(FAILED, Ordering::Release);
        return false;
    }
    KEY.store(key, Ordering::Relaxed);
    STATE.store(DONE, Ordering::Release);
    true
}

/// Give this thread a cache of its own, if it may have one (null: use the
/// fallback cache).
#[cold]
pub fn create_thread_cache() -> *mut Cache {
    if !ensure_key() {
        return null_mut();
    }
    // Re-entrant calls (pthread_setspecific may calloc) use the fallback.
    set_word(TLS_NO_CACHE);
    let c = new_cache();
    if c.is_null() {
        return c;
    }
    // SAFETY: the key was created by create_key.
    if unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed), c as *const libc::c_void) } != 0 {
        // SAFETY: the cache was never used.
        unsafe { destroy_cache(c) };
        return null_mut();
    }
    set_word(c as usize);
    c
}

/// pthread key destructor: the thread is exiting. Later destructors of
/// other libraries may still call malloc/free on this thread; they go
/// through the fallback cache (on macOS the word keeps TLS_NO_CACHE through
/// libpthread's cleanup passes because its key restores it: `platform::tls`).
/// A thread whose first allocation comes after those passes (from a static
/// key's destructor on macOS) still gets a cache, which nothing destroys.
extern "C" fn thread_exit(v: *mut libc::c_void) {
    set_word(TLS_NO_CACHE);
    if !v.is_null() {
        // SAFETY: v is the cache this thread registered, and it is done with it.
        unsafe { destroy_cache(v as *mut Cache) };
        scavenge::poll();
    }
}

/// The calling thread's own cache, if it has one.
pub fn current() -> Option<*mut Cache> {
    let v = word();
    (v > TLS_NO_CACHE).then_some(v as *mut Cache)
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
    // Caches are initialised field by field (`Cache::init_in_place`).
    records: FixAlloc::new_uninit(core::mem::size_of::<Cache>()),
    count: 0,
    retired_nmalloc: 0,
    retired_nfree: 0,
});

/// The shared cache of threads that have none (see the module comment).
pub static FALLBACK: Locked<Cache> = Locked::new(Cache::zeroed());

/// A new cache record registered in the cache list, or null.
fn new_cache() -> *mut Cache {
    let mut cs = CACHES.lock();
    let c = cs.records.alloc() as *mut Cache;
    if c.is_null() {
        return c;
    }
    // SAFETY: a fresh record nobody else sees yet; the list is locked.
    unsafe {
        Cache::init_in_place(c);
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
unsafe fn destroy_cache(c: *mut Cache) {
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
        let (m, f) = Cache::counts(c);
        cs.retired_nmalloc += m;
        cs.retired_nfree += f;
    }
    cs.records.free(c as usize);
}

/// (mallocs, frees) counted by every thread cache, live or destroyed, and
/// by the fallback cache. Takes the cache-list lock, then the fallback lock
/// (the global order), one at a time. Live caches' counters are read while
/// their threads may be writing them: exact only when those threads are idle.
pub fn counts() -> (u64, u64) {
    let (m, f) = {
        let cs = CACHES.lock();
        let (mut m, mut f) = (cs.retired_nmalloc, cs.retired_nfree);
        let mut c = cs.head;
        while !c.is_null() {
            // SAFETY: records on the list stay live while the list is locked;
            // the counters are plain words another thread may be bumping, so
            // they are read with volatile loads (a torn or stale value is an
            // accepted inaccuracy of the statistics).
            unsafe {
                let (cm, cf) = Cache::counts(c);
                m += cm;
                f += cf;
                c = (*c).next;
            }
        }
        (m, f)
    };
    let fb = FALLBACK.lock();
    // SAFETY: the fallback record, locked.
    let (fm, ff) = unsafe { Cache::counts(&*fb) };
    (m + fm, f + ff)
}

/// Add up the blocks on every live cache's free stacks, per class
/// (statistics; read while their threads may change them).
pub fn stacked_counts(out: &mut [u64; NUM_CLASSES]) {
    let cs = CACHES.lock();
    let mut c = cs.head;
    while !c.is_null() {
        // SAFETY: records on the list stay live while the list is locked;
        // the stack tops are plain words their threads write (volatile reads,
        // an accepted inaccuracy as in `counts`).
        unsafe {
            for (class, n) in out.iter_mut().enumerate() {
                *n += Cache::stacked(c, class);
            }
            c = (*c).next;
        }
    }
}

/// In a fork child, the parent's other threads are gone: hand back every
/// cache but `keep` (the forking thread's). Locks were already reset.
pub fn reclaim_after_fork(keep: *mut Cache) {
    let mut any = false;
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
        // SAFETY: its thread does not exist in the child; its lists may be
        // half-updated, so its spans are found in the page map below.
        unsafe {
            (*victim).forget_spans();
            destroy_cache(victim);
        }
        any = true;
    }
    // Spans another thread was taking from caches when the process forked
    // (owned by `TRANSIT`) are orphans too.
    if !any && !super::in_transit() {
        return;
    }
    // Every small span owned by a cache that is neither `keep` nor the
    // fallback belonged to a vanished thread (or was in transit). Collect
    // them first (giving one back changes the page map), linked through
    // `next`.
    let fallback = FALLBACK.data_ptr() as *mut u8;
    let mut orphans: *mut Span = null_mut();
    crate::arena::for_each_arena(|abase, a| {
        for (i, e) in a.spans.iter().enumerate() {
            let s = e.load(core::sync::atomic::Ordering::Relaxed);
            if s.is_null() || s == crate::arena::FREED_SPAN {
                continue;
            }
            // SAFETY: spans in the page map are live (single-threaded child).
            let sp = unsafe { &mut *s };
            let owner = sp.owner.load(core::sync::atomic::Ordering::Relaxed);
            if sp.base != abase + (i << crate::pagealloc::PAGE_SHIFT)
                || sp.state.load(core::sync::atomic::Ordering::Relaxed) != crate::span::STATE_SMALL
                || owner == crate::span::UNOWNED
                || owner == keep as *mut u8
                || owner == fallback
            {
                continue;
            }
            sp.cold().next = orphans;
            orphans = s;
        }
    });
    while !orphans.is_null() {
        // SAFETY: live spans of a vanished cache, in the single-threaded
        // child; it may have stopped half-way through updating one.
        unsafe {
            let s = orphans;
            orphans = (*s).cold().next;
            (*s).recount();
            (*s).cold().next = null_mut();
            (*s).cold().prev = null_mut();
            (*s).cold().list = crate::span::LIST_NONE;
            (*s).notify = 0;
            central::uncache_span(s);
        }
    }
    super::transit_reclaimed();
}

/// Bytes of empty spans the background thread takes from caches per tick,
/// so that one tick's give-back (class and heap locks, span by span) stays
/// short.
const RECLAIM_BUDGET: usize = 8 << 20;

/// Take the empty spans thread caches keep (`Cache::reclaim_empty`): the
/// background thread, each tick `now`, those of caches that did not use
/// them for a whole tick, up to `RECLAIM_BUDGET` bytes; a thread about to
/// grow the heap or trimming it (`idle_since` None), all of them. Takes
/// them under the cache list's lock (so no cache is destroyed meanwhile),
/// and gives them to mcentral after dropping it, holding one lock at a
/// time (see `Cache::reclaim_empty`). Returns the bytes taken.
///
/// A program thread (`idle_since` None) does it with every signal blocked:
/// a fork from a signal handler between the take and the give-back would
/// have the child reclaim the spans in transit from the page map, and the
/// interrupted give-back then return them a second time. (The background
/// thread runs with every signal blocked anyway.)
pub fn reclaim_empties(idle_since: Option<u32>) -> usize {
    if super::kept_empty_bytes() == 0 {
        return 0;
    }
    let mask = idle_since.is_none().then(crate::platform::os::block_signals);
    let taken = reclaim_empties_unmasked(idle_since);
    if let Some(m) = mask {
        crate::platform::os::restore_signals(m);
    }
    taken
}

fn reclaim_empties_unmasked(idle_since: Option<u32>) -> usize {
    let budget = if idle_since.is_some() { RECLAIM_BUDGET } else { usize::MAX };
    let mut transit = Transit::new();
    let mut taken = 0;
    {
        let cs = CACHES.lock();
        let mut c = cs.head;
        while !c.is_null() && taken < budget {
            // SAFETY: records on the list stay live while the list is locked.
            unsafe {
                taken += Cache::reclaim_empty(c, idle_since, budget - taken, &mut transit);
                c = (*c).next;
            }
        }
    }
    transit.give_back();
    taken
}

pub fn list_mutex() -> &'static crate::platform::lock::Mutex {
    &CACHES.mutex
}

pub fn fallback_mutex() -> &'static crate::platform::lock::Mutex {
    &FALLBACK.mutex
}
