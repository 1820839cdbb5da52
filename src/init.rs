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
#[cfg(all(target_os = "macos", feature = "export"))]
use crate::zone;
use crate::{background, central, debug, ffi, fixalloc, heap, hooks, profile, series, settings, sigfork, stats};
use core::sync::atomic::{AtomicU64, Ordering};

/// Hand each setting to the module that owns it.
fn apply_settings() {
    heap::lock().memory_limit = settings::MEMORY_LIMIT.load(Ordering::Relaxed);
    debug::set_enabled(settings::DEBUG.load(Ordering::Relaxed));
    if settings::STATS.load(Ordering::Relaxed) {
        stats::keep_exit_output();
        crate::platform::os::time_syscalls(true);
    }
    profile::add_entry_points(&ffi::entry_points());
    profile::add_entry_points(&hooks::entry_points());
    #[cfg(all(feature = "export", target_os = "linux", target_arch = "x86_64"))]
    profile::add_entry_points(&crate::cxx::entry_points());
    profile::enable();
    hooks::refresh();
}

extern "C" fn on_load() {
    // macOS: libSystem's malloc (and every zone call) comes to goheap from
    // here on; the fork handlers are the zone's (libSystem's fork calls the
    // zones' force_lock after the pthread_atfork handlers, as glibc does
    // with its own malloc locks), so no pthread_atfork as well: the
    // locks would be taken twice.
    #[cfg(all(target_os = "macos", feature = "export"))]
    zone::install(zone::Fork { prepare: fork_prepare, parent: fork_parent, child: fork_child, locked: any_lock_held });
    settings::load();
    apply_settings();
    background::install();
    #[cfg(not(all(target_os = "macos", feature = "export")))]
    // SAFETY: registering plain extern "C" handlers; pthread_atfork may
    // call malloc, which is ready.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
    };
    // macOS: dyld no longer runs `__mod_term_func` entries, so the exit
    // hook is an atexit handler (atexit may allocate: goheap serves it).
    #[cfg(target_os = "macos")]
    // SAFETY: registers a plain extern "C" function.
    unsafe {
        libc::atexit(on_exit)
    };
    // No goheap lock is held here, so a thread can be created.
    series::start_if_configured();
}

/// Initialise when the library is loaded (also in a static link: the
/// C library runs `.init_array` before `main`).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY: extern "C" fn() = on_load;

/// macOS: dyld runs an image's `__mod_init_func` pointers (after those of
/// the libraries it depends on, libSystem included) before `main`, for a
/// dylib and a static link alike; by hand rather than the `ctor` crate,
/// as on Linux: one static, no dependency.
#[cfg(target_os = "macos")]
#[used]
#[link_section = "__DATA,__mod_init_func,mod_init_funcs"]
static MOD_INIT_FUNC: extern "C" fn() = on_load;

/// At exit, in this order: the time series' last line (the heap as the
/// program left it), the heap profile, the statistics summary. None of them
/// in a fork child that exits in side mode (`sigfork`): the heap and the
/// profile's tables may be half-updated, their locks held.
extern "C" fn on_exit() {
    if hooks::off_heap() {
        return;
    }
    series::at_exit();
    profile::at_exit();
    stats::at_exit();
}

// `.fini_array` rather than atexit: no allocation, and the same in the
// shared library and a static link.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".fini_array"]
static FINI_ARRAY: extern "C" fn() = on_exit;

// Fork: take every lock in the global order before fork so the child
// inherits a consistent heap, then release (parent) or reset (child).
//
// A lock the forking thread itself holds is skipped: fork was called from
// a signal handler that interrupted goheap, and waiting for it would wait
// for the interrupted call. `sigfork` says what the child does then.
//
// glibc's fork takes its stdio list lock after running these handlers, and
// stdio calls malloc with stream locks held: a thread in getline (stream
// lock held, waiting for a heap lock) and one in fflush(NULL) (list lock
// held, waiting for that stream) would deadlock a fork that held the heap
// locks first. So the list lock comes first here (it is recursive; glibc
// resets it in the child itself). glibc takes and resets it only when the
// process is multi-threaded (`__libc_single_threaded` clear, the same test
// as its fork's, and only threads change it): so must we, or the child of a
// single-threaded parent keeps it held by its main thread, and a thread it
// starts later blocks forever in fopen or fflush(NULL).
#[cfg(target_env = "gnu")]
extern "C" {
    fn _IO_list_lock();
    fn _IO_list_unlock();
    static __libc_single_threaded: core::ffi::c_char;
}

/// Whether fork_prepare took glibc's stdio list lock.
#[cfg(target_env = "gnu")]
static IO_LIST_TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// How many locks `for_each_lock` gives: the cache list, the fallback
/// cache, the central lists of classes 1 .. NUM_CLASSES - 1, the heap, the
/// persistent allocator, the profile tables, the debug quarantine.
const FORK_LOCKS: usize = NUM_CLASSES + 5;
const _: () = assert!(FORK_LOCKS <= 128);
/// `for_each_lock`'s index of the cache list's lock.
const CACHE_LIST: usize = 0;

/// goheap's locks in the global order, each with its index (0 ..
/// FORK_LOCKS): the cache list, the fallback cache, the central lists by
/// class, the heap, the persistent allocator, then the leaf locks of the
/// profile tables and the debug quarantine.
fn for_each_lock(mut f: impl FnMut(usize, &'static Mutex)) {
    f(CACHE_LIST, cache::list_mutex());
    f(1, cache::fallback_mutex());
    for c in 1..NUM_CLASSES {
        f(1 + c, central::mutex(c));
    }
    f(NUM_CLASSES + 1, heap::mutex());
    f(NUM_CLASSES + 2, fixalloc::persistent_lock());
    f(NUM_CLASSES + 3, profile::mutex());
    f(FORK_LOCKS - 1, debug::mutex());
}

/// The locks fork_prepare did not take because the forking thread held
/// them (bit i = `for_each_lock`'s index i); kept in the child until its
/// repairs are done.
static SKIPPED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn set_skipped(mask: u128) {
    SKIPPED[0].store(mask as u64, Ordering::Relaxed);
    SKIPPED[1].store((mask >> 64) as u64, Ordering::Relaxed);
}

fn skipped() -> u128 {
    SKIPPED[0].load(Ordering::Relaxed) as u128 | (SKIPPED[1].load(Ordering::Relaxed) as u128) << 64
}

extern "C" fn fork_prepare() {
    #[cfg(target_env = "gnu")]
    // SAFETY: glibc's exported flag, a byte it writes when the first thread
    // is created, and its exported, recursive stdio list lock.
    unsafe {
        let multi = core::ptr::read_volatile(core::ptr::addr_of!(__libc_single_threaded)) == 0;
        if multi {
            _IO_list_lock();
        }
        IO_LIST_TAKEN.store(multi, Ordering::Relaxed);
    }
    let mut skipped = 0u128;
    for_each_lock(|i, m| {
        if m.held_by_me() {
            skipped |= 1 << i;
        } else {
            m.lock();
        }
    });
    set_skipped(skipped);
}

extern "C" fn fork_parent() {
    let skipped = skipped();
    for_each_lock(|i, m| {
        if skipped & (1 << i) == 0 {
            m.unlock();
        }
    });
    set_skipped(0);
    #[cfg(target_env = "gnu")]
    if IO_LIST_TAKEN.load(Ordering::Relaxed) {
        // SAFETY: releases the hold taken in fork_prepare.
        unsafe { _IO_list_unlock() };
    }
}

extern "C" fn fork_child() {
    let skipped = skipped();
    for_each_lock(|i, m| {
        if skipped & (1 << i) == 0 {
            m.reset_after_fork();
        }
    });
    // The other threads do not exist here, the scavenger included: their
    // caches' spans go back, and a scavenger starts again when needed.
    background::suppress_in_fork_child();
    if skipped == 0 && !cache_busy() {
        child_repair();
    } else {
        // The interrupted call holds locks, or is changing this thread's
        // cache: the heap waits for it.
        sigfork::enter_side_mode(interrupted_call_unfinished, child_repair);
    }
}

/// Whether the calling thread's cache is in the middle of a change (a
/// fork from a signal handler interrupted it: see `Cache::enter`).
fn cache_busy() -> bool {
    // SAFETY: this thread's live cache, read by its own thread.
    cache::current().is_some_and(|c| unsafe { (*c).is_busy() })
}

/// Side mode's question (`sigfork`, asked on the forking thread): is the
/// call the fork interrupted still unfinished, holding a lock fork_prepare
/// skipped or changing this thread's cache?
fn interrupted_call_unfinished() -> bool {
    skipped_still_held() || cache_busy()
}

/// Whether any goheap lock is held (the macOS zone's `zone_locked`).
#[cfg(all(target_os = "macos", feature = "export"))]
fn any_lock_held() -> bool {
    let mut held = false;
    for_each_lock(|_, m| held |= m.is_locked());
    held
}

/// Side mode's question (`sigfork`, asked on the forking thread): does
/// this thread still hold a lock fork_prepare skipped?
fn skipped_still_held() -> bool {
    let skipped = skipped();
    let mut held = false;
    for_each_lock(|i, m| held |= skipped & (1 << i) != 0 && m.held_by_me());
    held
}

/// A fork child's repairs: the caches and in-flight work of the parent's
/// other threads go back to the heap. Right after fork, or, when the fork
/// interrupted a goheap call, once that call has released the locks it
/// held (`sigfork`). If it held the cache list's lock, the list may have
/// been half-updated then: the other threads' caches are left alone (their
/// spans stay allocated), not reclaimed.
fn child_repair() {
    let skipped = skipped();
    set_skipped(0);
    let keep: *mut Cache = cache::current().unwrap_or(core::ptr::null_mut());
    if skipped & (1 << CACHE_LIST) == 0 {
        cache::reclaim_after_fork(keep);
    }
    central::repair_after_fork();
    // The child has one thread here, or (repairs postponed by side mode)
    // others it started since, which keep off the heap until side mode
    // ends, after these repairs; every goheap lock is free (reset by
    // fork_child, or released by the interrupted call).
    let reset = |s| {
        // SAFETY: a span of a surviving cache, no other thread on the heap.
        unsafe { central::reset_marks_after_fork(s) }
    };
    if !keep.is_null() {
        // SAFETY: the forking thread's own cache.
        unsafe { (*keep).for_each_span(reset) };
    }
    // SAFETY: no other thread on the heap; the fallback lock is free.
    unsafe { cache::FALLBACK.get_unchecked() }.for_each_span(reset);
    // SAFETY: no other thread on the heap; the heap lock is free.
    unsafe { heap::HEAP.get_unchecked() }.recover_after_fork();
    background::allow_after_fork_child();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_locks_are_numbered_in_order() {
        let mut next = 0;
        for_each_lock(|i, _| {
            assert_eq!(i, next);
            next += 1;
        });
        assert_eq!(next, FORK_LOCKS);
    }
}
