//! Hooks: debug mode (`debug.rs`) and the heap profiler (`profile/`) see
//! every allocation and free while they are on, and cost the fast paths
//! nothing measurable while they are off.
//!
//! * malloc and free: while a hook is on, the thread's cache word carries
//!   `cache::HOOK_TAG`. malloc's fast path tests the word as a signed
//!   number, and free's compares it with the span's owner, so both fail
//!   their usual checks and take their slow paths: malloc's asks `any()`
//!   (`malloc_slow`), free's calls the free hook that `refresh` installs in
//!   the malloc layer.
//! * Every other entry point (calloc, realloc, reallocarray, the five
//!   aligned allocators, malloc_usable_size) tests `any()` at its top (ffi.rs).
//!
//! Debug mode comes first: with both on, the profiler does not see debug
//! mode's blocks. Both call the C semantics below them (`semantics`), so an
//! allocation passes a hook once. The dispatchers are never inlined, so the
//! profiler can tell their frames from the program's (`entry_points`).

use crate::semantics::{self, AlignedCore};
use crate::{cache, debug, malloc, profile};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);

/// Is a hook on?
#[inline(always)]
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// Recompute `any()` from the hooks' switches (init calls this once the
/// settings are applied), and make the fast paths fall to the slow ones
/// while it is true.
pub fn refresh() {
    let on = debug::on() || profile::on();
    ANY.store(on, Ordering::Relaxed);
    cache::set_hook_tag(on);
    malloc::set_free_hook(if on { Some(free_hook) } else { None });
}

/// The dispatchers, for the profiler's frame cutting.
pub fn entry_points() -> [usize; 11] {
    [
        malloc_slow as *const () as usize,
        malloc as *const () as usize,
        calloc as *const () as usize,
        realloc as *const () as usize,
        reallocarray as *const () as usize,
        posix_memalign as *const () as usize,
        aligned_alloc as *const () as usize,
        memalign as *const () as usize,
        valloc as *const () as usize,
        pvalloc as *const () as usize,
        free_hook as *const () as usize,
    ]
}

/// Everything malloc's fast path does not do, hooks first.
#[cold]
#[inline(never)]
pub fn malloc_slow(size: usize) -> *mut u8 {
    if any() {
        return malloc(size) as *mut u8;
    }
    semantics::malloc(size) as *mut u8
}

#[inline(never)]
pub fn malloc(size: usize) -> *mut c_void {
    if debug::on() {
        debug::malloc(size)
    } else if profile::on() {
        profile::malloc(size)
    } else {
        semantics::malloc(size)
    }
}

/// What free's slow path calls while a hook is on.
///
/// # Safety
/// As `free`.
#[inline(never)]
unsafe fn free_hook(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe { free(p as *mut c_void) }
}

/// # Safety
/// As `free`.
pub unsafe fn free(p: *mut c_void) {
    if debug::on() {
        // SAFETY: forwarded contract.
        unsafe { debug::free(p) }
    } else if profile::on() {
        // SAFETY: forwarded contract.
        unsafe { profile::free(p) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { semantics::free(p) }
    }
}

/// A sized free (C23's free_sized and free_aligned_sized, C++'s sized
/// delete) of non-null `p`, named `func`: debug mode checks the size (and
/// `align`, if not 0) against the block; otherwise as `free`.
///
/// # Safety
/// As `free`.
pub unsafe fn free_sized(p: *mut c_void, size: usize, align: usize, func: &'static [u8]) {
    if debug::on() {
        // SAFETY: forwarded contract.
        unsafe { debug::free_sized(p, size, align, func) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { free(p) }
    }
}

#[inline(never)]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    if debug::on() {
        debug::calloc(n, size)
    } else if profile::on() {
        profile::calloc(n, size)
    } else {
        semantics::calloc(n, size)
    }
}

/// # Safety
/// As `realloc`.
#[inline(never)]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if debug::on() {
        // SAFETY: forwarded contract.
        unsafe { debug::realloc(p, size) }
    } else if profile::on() {
        // SAFETY: forwarded contract.
        unsafe { profile::realloc(p, size) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { semantics::realloc(p, size) }
    }
}

/// # Safety
/// As `reallocarray`.
#[inline(never)]
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        // SAFETY: forwarded contract (fails with ENOMEM, p untouched).
        None => unsafe { semantics::reallocarray(p, n, size) },
    }
}

/// The aligned allocators' core under debug mode, else the plain one.
fn aligned_core() -> AlignedCore {
    if debug::on() {
        debug::aligned
    } else {
        semantics::aligned
    }
}

/// # Safety
/// As `posix_memalign`.
#[inline(never)]
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !debug::on() && profile::on() {
        // SAFETY: forwarded contract.
        return unsafe { profile::posix_memalign(out, align, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { semantics::posix_memalign(out, align, size, aligned_core()) }
}

/// One of the four aligned allocators that return the block: `f(align,
/// size, core)`, seen by the profiler unless debug mode is on.
#[inline(always)]
fn aligned_via(align: usize, size: usize, f: fn(usize, usize, AlignedCore) -> *mut c_void) -> *mut c_void {
    if debug::on() {
        f(align, size, debug::aligned)
    } else if profile::on() {
        profile::aligned(align, size, f)
    } else {
        f(align, size, semantics::aligned)
    }
}

#[inline(never)]
pub fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    aligned_via(align, size, semantics::aligned_alloc)
}

#[inline(never)]
pub fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_via(align, size, semantics::memalign)
}

#[inline(never)]
pub fn valloc(size: usize) -> *mut c_void {
    aligned_via(0, size, |_, size, core| semantics::valloc(size, core))
}

#[inline(never)]
pub fn pvalloc(size: usize) -> *mut c_void {
    aligned_via(0, size, |_, size, core| semantics::pvalloc(size, core))
}

/// # Safety
/// As `malloc_usable_size`.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if debug::on() {
        // SAFETY: forwarded contract.
        unsafe { debug::usable_size(p) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { semantics::usable_size(p) }
    }
}
