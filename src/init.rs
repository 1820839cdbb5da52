//! Process-level set-up: lazy, re-entrancy-safe initialisation, the thread
//! exit hook and fork handling.
//!
//! The first malloc may come from the dynamic loader or a library
//! constructor before any constructor of ours has run, and from any thread.
//! Nothing in the heap needs initialising to serve it (all global state is
//! constant-initialised); what `ensure` adds is the pthread key whose
//! destructor tears a thread's cache down, and the fork handlers. Until that
//! is in place, and while it is being put in place (pthread functions may
//! call malloc), threads allocate through the shared fallback cache.

use crate::cache::{self, Cache};
use crate::central;
use crate::fixalloc;
use crate::heap;
use crate::sizeclass::NUM_CLASSES;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static KEY: AtomicU32 = AtomicU32::new(0);

/// True once thread caches may be created.
#[inline]
pub fn ensure() -> bool {
    match STATE.load(Ordering::Acquire) {
        DONE => true,
        UNINIT => init_slow(),
        _ => false,
    }
}

#[cold]
fn init_slow() -> bool {
    if STATE.compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return STATE.load(Ordering::Acquire) == DONE;
    }
    crate::config::load();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: plain libc calls with valid arguments; they may re-enter malloc, which takes the fallback path while STATE is RUNNING.
    let ok = unsafe {
        libc::pthread_key_create(&mut key, Some(thread_exit)) == 0
            && libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) == 0
    };
    if !ok {
        STATE.store(FAILED, Ordering::Release);
        return false;
    }
    KEY.store(key, Ordering::Relaxed);
    STATE.store(DONE, Ordering::Release);
    true
}

/// Give this thread a cache of its own, if it may have one.
#[cold]
pub fn create_thread_cache() -> *mut Cache {
    if !ensure() {
        return core::ptr::null_mut();
    }
    // Re-entrant calls (pthread_setspecific may calloc) use the fallback.
    cache::set_word(cache::TLS_NO_CACHE);
    let c = cache::new_cache();
    if c.is_null() {
        return c;
    }
    // SAFETY: the key was created by init_slow.
    if unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed), c as *const libc::c_void) } != 0 {
        // SAFETY: the cache was never used.
        unsafe { cache::destroy_cache(c) };
        return core::ptr::null_mut();
    }
    cache::set_word(c as usize);
    c
}

/// pthread key destructor: the thread is exiting. Later destructors of
/// other libraries may still call malloc/free on this thread; they go
/// through the fallback cache.
extern "C" fn thread_exit(v: *mut libc::c_void) {
    cache::set_word(cache::TLS_NO_CACHE);
    if !v.is_null() {
        // SAFETY: v is the cache this thread registered, and it is done with it.
        unsafe { cache::destroy_cache(v as *mut Cache) };
        crate::scavenge::poll();
    }
}

// Fork: take every lock in the global order before fork so the child
// inherits a consistent heap, then release (parent) or reset (child).
// Order: glibc's stdio list, cache list, fallback cache, central lists by
// class, heap, persistent, profile tables, debug quarantine (leaf locks).

// glibc's fork takes its stdio list lock after running these handlers, and
// stdio calls malloc with stream locks held: a thread in getline (stream
// lock held, waiting for a heap lock) and one in fflush(NULL) (list lock
// held, waiting for that stream) would deadlock a fork that held the heap
// locks first. So the list lock comes first here (it is recursive; glibc
// resets it in the child itself).
#[cfg(target_env = "gnu")]
extern "C" {
    fn _IO_list_lock();
    fn _IO_list_unlock();
}

extern "C" fn fork_prepare() {
    #[cfg(target_env = "gnu")]
    // SAFETY: glibc's exported, recursive stdio list lock.
    unsafe {
        _IO_list_lock()
    };
    cache::list_mutex().lock();
    cache::fallback_mutex().lock();
    for c in 1..NUM_CLASSES {
        central::mutex(c).lock();
    }
    heap::mutex().lock();
    fixalloc::persistent_lock().lock();
    crate::profile::mutex().lock();
    crate::debug::mutex().lock();
}

extern "C" fn fork_parent() {
    crate::debug::mutex().unlock();
    crate::profile::mutex().unlock();
    fixalloc::persistent_lock().unlock();
    heap::mutex().unlock();
    for c in (1..NUM_CLASSES).rev() {
        central::mutex(c).unlock();
    }
    cache::fallback_mutex().unlock();
    cache::list_mutex().unlock();
    #[cfg(target_env = "gnu")]
    // SAFETY: releases the hold taken in fork_prepare.
    unsafe {
        _IO_list_unlock()
    };
}

extern "C" fn fork_child() {
    crate::debug::mutex().reset_after_fork();
    crate::profile::mutex().reset_after_fork();
    fixalloc::persistent_lock().reset_after_fork();
    heap::mutex().reset_after_fork();
    for c in 1..NUM_CLASSES {
        central::mutex(c).reset_after_fork();
    }
    cache::fallback_mutex().reset_after_fork();
    cache::list_mutex().reset_after_fork();
    // The other threads do not exist here, the scavenger included: their
    // caches' spans go back, and a scavenger starts again when needed.
    crate::scavenge::suppress_in_fork_child();
    let mine = cache::word();
    let keep = if mine > cache::TLS_NO_CACHE { mine as *mut Cache } else { core::ptr::null_mut() };
    cache::reclaim_after_fork(keep);
    central::repair_after_fork();
    let reset = |s| {
        // SAFETY: a span of a surviving cache, in the single-threaded child.
        unsafe { central::reset_marks_after_fork(s) }
    };
    if !keep.is_null() {
        // SAFETY: the forking thread's own cache.
        unsafe { (*keep).for_each_span(reset) };
    }
    // SAFETY: single-threaded child; the fallback lock was reset above.
    unsafe { cache::FALLBACK.get_unchecked() }.for_each_span(reset);
    crate::scavenge::recover_after_fork();
    crate::scavenge::allow_after_fork_child();
}

extern "C" fn on_load() {
    ensure();
    crate::config::load();
    // No goheap lock is held here, so its thread can be created.
    crate::series::start_if_configured();
}

/// Initialise when the library is loaded, so the common case never takes the
/// lazy path on a hot call (the lazy path still covers earlier callers).
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY: extern "C" fn() = on_load;
