//! Hooks: debug mode (`debug.rs`) and the heap profiler (`profile.rs`) see
//! every malloc and free while they are on, and cost the fast paths
//! nothing measurable while they are off.
//!
//! * malloc and free: while a hook is on, the thread's cache word
//!   (cache.rs) carries `HOOK_TAG`. malloc's fast path tests the word as a
//!   signed number, and free's compares it with the span's owner, so both
//!   fail their usual checks and take their slow paths, which test `any()`
//!   and come here. Off, this costs the fast paths nothing.
//! * calloc, realloc and the aligned functions test `any()` at their top.
//!
//! The hooks' own allocations call `malloc.rs` directly, below this layer,
//! so an allocation passes through a hook once.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);

/// Is a hook on?
#[inline(always)]
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// Recompute `any()` from the hooks' settings and mark every thread cache
/// (config.rs calls this after reading the environment; caches created
/// earlier must be marked too).
pub fn refresh() {
    ANY.store(crate::debug::on(), Ordering::Relaxed);
    // Tag (or untag) the calling thread's word; threads creating their
    // cache later tag theirs (cache::set_word). Settings are read at
    // start-up, before other threads exist in all but odd programs.
    crate::cache::set_word(crate::cache::word());
}

/// malloc with a hook on (or `size` large: then maybe none is).
#[cold]
#[inline(never)]
pub fn malloc(size: usize) -> Option<*mut c_void> {
    if crate::debug::on() {
        return Some(crate::debug::malloc(size));
    }
    None
}

/// free with a hook on: Some(()) if a hook took the block.
///
/// # Safety
/// As `free`.
#[cold]
#[inline(never)]
pub unsafe fn free(p: *mut c_void) -> Option<()> {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::debug::free(p) };
        return Some(());
    }
    None
}

/// calloc with a hook on.
#[cold]
pub fn calloc(n: usize, size: usize) -> Option<*mut c_void> {
    if crate::debug::on() {
        return Some(crate::debug::calloc(n, size));
    }
    None
}

/// realloc (of a non-null block, or NULL) with a hook on.
///
/// # Safety
/// As `realloc`.
#[cold]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> Option<*mut c_void> {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        return Some(unsafe { crate::debug::realloc(p, size) });
    }
    None
}

/// The aligned allocation functions with a hook on (alignment and size
/// already validated by the caller).
#[cold]
pub fn aligned(align: usize, size: usize) -> Option<*mut c_void> {
    if crate::debug::on() {
        return Some(crate::debug::aligned(align, size));
    }
    None
}

/// malloc_usable_size with a hook on.
///
/// # Safety
/// As `malloc_usable_size`.
#[cold]
pub unsafe fn usable_size(p: *mut c_void) -> Option<usize> {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        return Some(unsafe { crate::debug::usable_size(p) });
    }
    None
}
