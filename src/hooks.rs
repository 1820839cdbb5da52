//! Hooks: debug mode (`debug.rs`) and the heap profiler (`profile.rs`) see
//! every malloc and free while they are on, and cost the fast paths
//! nothing measurable while they are off.
//!
//! * malloc and free: while a hook is on, the thread's cache word
//!   (cache.rs) carries `HOOK_TAG`. malloc's fast path tests the word as a
//!   signed number, and free's compares it with the span's owner, so both
//!   fail their usual checks and take their slow paths, which test `any()`
//!   and come here. Off, this costs the fast paths nothing.
//! * calloc, realloc, reallocarray and malloc_usable_size test `any()` at
//!   their top; the aligned family tests the two features itself (ffi.rs).
//!
//! The hooks' own allocations call the `_impl` bodies in ffi.rs and
//! `malloc::free_unhooked`, below this layer, so an allocation passes
//! through a hook once.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);

/// Is a hook on?
#[inline(always)]
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// Recompute `any()` from the hooks' settings (config.rs calls this after
/// reading the environment) and tag or untag the calling thread's cache
/// word; threads that create their cache later tag theirs (`set_word`).
/// Settings are read at start-up, before other threads exist in all but
/// odd programs.
pub fn refresh() {
    ANY.store(crate::debug::on() || crate::profile::on(), Ordering::Relaxed);
    crate::cache::set_word(crate::cache::word());
}

// Debug mode comes first: with both on, the profiler does not see debug
// mode's blocks. The hooks are never inlined, so the profiler can tell
// their frames from the program's (profile.rs, `entry_points`).

#[inline(never)]
pub fn malloc(size: usize) -> *mut c_void {
    if crate::debug::on() {
        crate::debug::malloc(size)
    } else if crate::profile::on() {
        crate::profile::malloc(size)
    } else {
        crate::ffi::malloc_impl(size)
    }
}

/// # Safety
/// As `free`.
#[inline(never)]
pub unsafe fn free(p: *mut c_void) {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::debug::free(p) }
    } else if crate::profile::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::profile::free(p) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { crate::ffi::free_impl(p) }
    }
}

#[inline(never)]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    if crate::debug::on() {
        crate::debug::calloc(n, size)
    } else if crate::profile::on() {
        crate::profile::calloc(n, size)
    } else {
        crate::ffi::calloc_impl(n, size)
    }
}

/// # Safety
/// As `realloc`.
#[inline(never)]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::debug::realloc(p, size) }
    } else if crate::profile::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::profile::realloc(p, size) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { crate::ffi::realloc_impl(p, size) }
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
        None => unsafe { crate::ffi::reallocarray_impl(p, n, size) },
    }
}

/// # Safety
/// As `malloc_usable_size`.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if crate::debug::on() {
        // SAFETY: forwarded contract.
        unsafe { crate::debug::usable_size(p) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { crate::ffi::usable_size_impl(p) }
    }
}
