//! Process and thread life: start-up (settings applied to the modules that
//! own them, the fork handlers, the background scavenger's hook), fork, and
//! exit.
//!
//! Nothing in the heap needs initialising to serve the first malloc (all
//! global state is constant-initialised), which may come from the dynamic
//! loader or another library's constructor before ours runs; a thread's
//! cache needs only the registry's pthread key, which `cache` creates
//! lazily. What needs the library constructor (`on_load`) is what has
//! effects: reading `GOHEAP_*`, switching hooks on, threads of our own.

use crate::cache::{self, Cache};
use crate::platform::lock::Mutex;
use crate::sizeclass::NUM_CLASSES;
use crate::{background, central, debug, ffi, fixalloc, heap, hooks, profile, series, settings, stats};
use core::sync::atomic::Ordering;

/// Hand each setting to the module that owns it.
fn apply_settings() {
    heap::lock().memory_limit = settings::MEMORY_LIMIT.load(Ordering::Relaxed);
    debug::set_enabled(settings::DEBUG.load(Ordering::Relaxed));
    if settings::STATS.load(Ordering::Relaxed) {
        stats::keep_exit_output();
    }
    profile::add_entry_points(&ffi::entry_points());
    profile::add_entry_points(&hooks::entry_points());
    profile::enable();
    hooks::refresh();
}

extern "C" fn on_load() {
    settings::load();
    apply_settings();
    background::install();
    // SAFETY: registering plain extern "C" handlers; pthread_atfork may
    // call malloc, which is ready.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    // No goheap lock is held here, so a thread can be created.
    series::start_if_configured();
}

/// Initialise when the library is loaded (also in a static link: the
/// C library runs `.init_array` before `main`).
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY: extern "C" fn() = on_load;

/// At exit, in this order: the time series' last line (the heap as the
/// program left it), the heap profile, the statistics summary.
extern "C" fn on_exit() {
    series::at_exit();
    profile::at_exit();
    stats::at_exit();
}

// `.fini_array` rather than atexit: no allocation, and the same in the
// shared library and a static link.
#[used]
#[link_section = ".fini_array"]
static FINI_ARRAY: extern "C" fn() = on_exit;

// Fork: take every lock in the global order before fork so the child
// inherits a consistent heap, then release (parent) or reset (child).
//
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

/// goheap's locks in the global order: the cache list, the fallback cache,
/// the central lists by class, the heap, the persistent allocator, then the
/// leaf locks of the profile tables and the debug quarantine.
fn for_each_lock(mut f: impl FnMut(&'static Mutex)) {
    f(cache::list_mutex());
    f(cache::fallback_mutex());
    for c in 1..NUM_CLASSES {
        f(central::mutex(c));
    }
    f(heap::mutex());
    f(fixalloc::persistent_lock());
    f(profile::mutex());
    f(debug::mutex());
}

extern "C" fn fork_prepare() {
    #[cfg(target_env = "gnu")]
    // SAFETY: glibc's exported, recursive stdio list lock.
    unsafe {
        _IO_list_lock()
    };
    for_each_lock(|m| m.lock());
}

extern "C" fn fork_parent() {
    for_each_lock(|m| m.unlock());
    #[cfg(target_env = "gnu")]
    // SAFETY: releases the hold taken in fork_prepare.
    unsafe {
        _IO_list_unlock()
    };
}

extern "C" fn fork_child() {
    for_each_lock(|m| m.reset_after_fork());
    // The other threads do not exist here, the scavenger included: their
    // caches' spans go back, and a scavenger starts again when needed.
    background::suppress_in_fork_child();
    let keep: *mut Cache = cache::current().unwrap_or(core::ptr::null_mut());
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
    // SAFETY: single-threaded child; the heap lock was reset above.
    unsafe { heap::HEAP.get_unchecked() }.recover_after_fork();
    background::allow_after_fork_child();
}
