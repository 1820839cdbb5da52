//! fork() from a signal handler that interrupted goheap (process life, with
//! `init`).
//!
//! fork is async-signal-safe, so a program may call it from a signal
//! handler whatever the handler interrupted — also a malloc or free that
//! holds goheap locks. The fork handlers (`init`) take every goheap lock
//! except those the forking thread itself holds (`Mutex::held_by_me`):
//! waiting for those would wait for the interrupted call, which cannot go
//! on until the handler returns.
//!
//! * Parent: the handlers release what they took; the interrupted call
//!   finishes when the handler returns.
//! * Child: the handlers reset what they took. The skipped locks stay held
//!   by the interrupted call, whose data may be half-updated: if the
//!   handler returns, the call finishes and releases them; if the child
//!   stays in the handler (allocates, then `_exit`s or `exec`s), nothing
//!   may touch that data. So the child enters *side mode*
//!   (`enter_side_mode`): every allocation is served by a mapping of its
//!   own (`os::alloc`), recorded in a small table (`SLOTS` blocks at a
//!   time; beyond that, ENOMEM), and the heap is not touched at all — a
//!   free of a heap block is skipped (the block is leaked), a realloc of
//!   one copies it to a side block, and statistics and trim do nothing.
//! * Side mode ends at the forking thread's first call after the
//!   interrupted call released the skipped locks (which it does only after
//!   the handler returned): then the repairs a fork child needs (`init`'s,
//!   postponed from the fork) run, and goheap serves the child normally.
//!   Side blocks stay valid; freeing one (from any thread, at any time)
//!   unmaps it.
//!
//! How the layers below see it: side mode is a hook. While it is on, or
//! side blocks live, this module's functions are installed in `hooks`
//! (`hooks::set_side`), which then tags the cache words so the fast paths
//! fall to the hooks, and asks the side hook before debug mode and the
//! profiler. `init` hands in what only it knows (whether the skipped locks
//! are still held, and the repairs) as function pointers: nothing below
//! imports this module.
//!
//! A lock held by the interrupted call means its structure may be
//! half-updated; so does the thread cache's busy mark (`Cache::enter`),
//! set while its own thread changes it without a lock (the fast paths, a
//! refill between two locks): either puts the child in side mode, and the
//! call, if the handler returns, finishes first. (A thread-exit flush is
//! not marked: its cache is no longer the thread's.)

use crate::hooks::{self, Side};
use crate::platform::lock;
use crate::platform::os;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// The forking thread's lock id (child in side mode).
static FORK_ID: AtomicU32 = AtomicU32::new(0);
/// Side mode is on (see the module comment).
static MODE: AtomicBool = AtomicBool::new(false);
/// Side blocks alive.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// `init`'s functions: whether the forking thread still holds a lock the
/// fork handlers skipped, and the postponed repairs of the fork child.
static STILL_HELD: AtomicPtr<()> = AtomicPtr::new(null_mut());
static REPAIR: AtomicPtr<()> = AtomicPtr::new(null_mut());

const SLOTS: usize = 256;
/// The side blocks' addresses (0 = free slot).
static TABLE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// Bytes before each side block: its mapping's base and length.
const HEADER: usize = 16;

/// What `hooks` calls while side mode is on or side blocks live.
static SIDE: Side = Side { serving, alloc, owns, usable, free };

/// Fork child of a fork that interrupted a goheap call (locks skipped, or
/// the thread's cache busy): enter side mode. `still_held` tells whether
/// that call (on the forking thread, the caller) is still unfinished;
/// `repair` does the fork child's repairs once it is finished.
pub fn enter_side_mode(still_held: fn() -> bool, repair: fn()) {
    STILL_HELD.store(still_held as *mut (), Ordering::Relaxed);
    REPAIR.store(repair as *mut (), Ordering::Relaxed);
    FORK_ID.store(lock::thread_id(), Ordering::Relaxed);
    MODE.store(true, Ordering::Release);
    hooks::set_side(Some(&SIDE));
}

/// Whether this call must be served in side mode. Ends side mode once the
/// interrupted call has released the skipped locks (asked on the forking
/// thread, the one that can know), running the postponed child repairs.
fn serving() -> bool {
    if !MODE.load(Ordering::Acquire) {
        return false;
    }
    if lock::thread_id() != FORK_ID.load(Ordering::Relaxed) {
        return true;
    }
    // SAFETY: both were stored from `fn` pointers by `enter_side_mode`,
    // before MODE was set (read above with Acquire).
    let (still_held, repair) = unsafe {
        (
            core::mem::transmute::<*mut (), fn() -> bool>(STILL_HELD.load(Ordering::Relaxed)),
            core::mem::transmute::<*mut (), fn()>(REPAIR.load(Ordering::Relaxed)),
        )
    };
    if still_held() {
        return true;
    }
    // Repair first: until MODE is off, any other thread (one the child
    // started meanwhile) still keeps off the heap.
    repair();
    MODE.store(false, Ordering::Release);
    if LIVE.load(Ordering::Acquire) == 0 {
        uninstall();
    }
    false
}

/// No side mode and no side block left: the side hook goes (unless a block
/// was made meanwhile by a thread that saw side mode on).
fn uninstall() {
    hooks::set_side(None);
    if LIVE.load(Ordering::Acquire) != 0 {
        hooks::set_side(Some(&SIDE));
    }
}

/// Whether `p` is a side block.
fn owns(p: *mut c_void) -> bool {
    LIVE.load(Ordering::Acquire) != 0 && slot_of(p as usize).is_some()
}

fn slot_of(p: usize) -> Option<usize> {
    if p == 0 {
        return None;
    }
    TABLE.iter().position(|e| e.load(Ordering::Acquire) == p)
}

fn enomem() -> *mut c_void {
    os::set_errno(libc::ENOMEM);
    null_mut()
}

/// A side block of `size` bytes aligned to `align` (a power of two), zero
/// filled (a fresh mapping); NULL with ENOMEM when it cannot be had. The
/// signature of `semantics::AlignedCore`, so the aligned allocators' C
/// rules apply to it unchanged.
fn alloc(align: usize, size: usize) -> *mut c_void {
    let align = align.max(16);
    if size > isize::MAX as usize || align > isize::MAX as usize / 2 + 1 {
        return enomem();
    }
    let Some(len) = size.checked_add(HEADER + align).and_then(|n| n.checked_add(os::OS_PAGE - 1)) else {
        return enomem();
    };
    let len = len & !(os::OS_PAGE - 1);
    let Some(base) = os::alloc(len) else {
        return enomem();
    };
    let p = (base + HEADER + align - 1) & !(align - 1);
    for e in TABLE.iter() {
        if e.compare_exchange(0, p, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            // SAFETY: [p - HEADER, p) lies in the fresh mapping.
            unsafe {
                *((p - HEADER) as *mut usize) = base;
                *((p - HEADER + 8) as *mut usize) = len;
            }
            LIVE.fetch_add(1, Ordering::Release);
            if !MODE.load(Ordering::Acquire) {
                // Side mode ended while this block was made: its free must
                // still come here.
                hooks::set_side(Some(&SIDE));
            }
            return p as *mut c_void;
        }
    }
    os::free(base, len);
    enomem()
}

/// Bytes usable in side block `p` (the caller checked `owns`).
fn usable(p: *mut c_void) -> usize {
    let p = p as usize;
    // SAFETY: p is a side block: its header is ours.
    let (base, len) = unsafe { (*((p - HEADER) as *const usize), *((p - HEADER + 8) as *const usize)) };
    base + len - p
}

/// Free `p` if it is a side block; true if it was. errno is preserved.
fn free(p: *mut c_void) -> bool {
    let Some(i) = slot_of(p as usize) else { return false };
    if TABLE[i].compare_exchange(p as usize, 0, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return true; // freed concurrently: a double free, ignored
    }
    let e = os::errno();
    // SAFETY: the header was written by `alloc`.
    let (base, len) = unsafe { (*((p as usize - HEADER) as *const usize), *((p as usize - HEADER + 8) as *const usize)) };
    os::free(base, len);
    if LIVE.fetch_sub(1, Ordering::AcqRel) == 1 && !MODE.load(Ordering::Acquire) {
        uninstall();
    }
    os::set_errno(e);
    true
}
