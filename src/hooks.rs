//! Hooks: debug mode (`debug.rs`), the heap profiler (`profile/`) and a
//! fork child's side mode (`sigfork.rs`) see every allocation and free
//! while they are on, and cost the fast paths nothing measurable while
//! they are off.
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
//! A fork child's side mode (`sigfork`, above this layer: fork from a
//! signal handler that interrupted goheap) comes first: while it serves a
//! call, the heap, the thread cache and the other hooks' tables are off
//! limits. It is a table of functions that `sigfork` installs
//! (`set_side`) while side mode is on or its blocks live, and removes
//! after. Debug mode comes next: with both on, the profiler does not see
//! debug mode's blocks. Both call the C semantics below them
//! (`semantics`), so an allocation passes a hook once. The dispatchers are
//! never inlined, so the profiler can tell their frames from the
//! program's (`entry_points`).

use crate::semantics::{self, AlignedCore};
use crate::{cache, debug, malloc, profile, stats};
use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);

/// The side hook: a fork child's side mode (`sigfork`), as the functions
/// it installs.
pub struct Side {
    /// Must this call keep off the heap? (Asking may end side mode.)
    pub serving: fn() -> bool,
    /// A side block (`align` a power of two; NULL with ENOMEM on failure).
    pub alloc: AlignedCore,
    /// Is `p` a side block?
    pub owns: fn(*mut c_void) -> bool,
    /// The usable size of side block `p`.
    pub usable: fn(*mut c_void) -> usize,
    /// Unmap `p` if it is a side block; true if it was.
    pub free: fn(*mut c_void) -> bool,
}

/// The installed side hook, or null.
static SIDE: AtomicPtr<Side> = AtomicPtr::new(null_mut());

/// Install (Some) or remove (None) the side hook (`sigfork`), and switch
/// the hooks on or off accordingly.
pub fn set_side(side: Option<&'static Side>) {
    SIDE.store(side.map_or(null_mut(), |s| s as *const Side as *mut Side), Ordering::Release);
    refresh();
}

/// The side hook, if installed.
#[inline(always)]
fn side() -> Option<&'static Side> {
    let p = SIDE.load(Ordering::Acquire);
    // SAFETY: SIDE holds null or a `&'static Side` stored by `set_side`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Whether `p` is a side block: the macOS zone must answer for the blocks
/// it owns outside the arenas too (`zone.rs`).
#[cfg(target_os = "macos")]
pub fn side_owns(p: *mut c_void) -> bool {
    side().is_some_and(|s| (s.owns)(p))
}

/// The side hook, if it serves this call.
#[inline(always)]
fn serving() -> Option<&'static Side> {
    side().filter(|s| (s.serving)())
}

/// Must this call keep off the heap (a fork child's side mode serves it)?
/// The entry points that read or release the heap without allocating
/// (statistics, trim) and the reports at exit ask this first; it costs one
/// load while no hook is on.
#[inline]
pub fn off_heap() -> bool {
    any() && serving().is_some()
}

/// Is a hook on?
#[inline(always)]
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// Recompute `any()` from the hooks' switches (init calls this once the
/// settings are applied), and make the fast paths fall to the slow ones
/// while it is true.
pub fn refresh() {
    let on = debug::on() || profile::on() || side().is_some();
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
    if let Some(side) = serving() {
        (side.alloc)(16, size)
    } else if debug::on() {
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
    if let Some(side) = side() {
        if (side.free)(p) || (side.serving)() {
            // A side block, unmapped; or a heap block in side mode, left
            // alone (leaked).
            return;
        }
    }
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
// Out of line: inlined, its calls made every sized free save registers.
#[cold]
#[inline(never)]
pub unsafe fn free_sized(p: *mut c_void, size: usize, align: usize, func: &'static [u8]) {
    if debug::on() && !side().is_some_and(|s| (s.owns)(p) || (s.serving)()) {
        // SAFETY: forwarded contract.
        unsafe { debug::free_sized(p, size, align, func) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { free(p) }
    }
}

#[inline(never)]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    if let Some(side) = serving() {
        match n.checked_mul(size) {
            Some(total) => (side.alloc)(16, total),
            None => semantics::calloc(n, size), // ENOMEM
        }
    } else if debug::on() {
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
    if let Some(side) = side() {
        let serving = (side.serving)();
        if p.is_null() && serving {
            return (side.alloc)(16, size);
        }
        if !p.is_null() && (serving || (side.owns)(p)) {
            // SAFETY: forwarded contract.
            return unsafe { side_realloc(side, serving, p, size) };
        }
    }
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

/// realloc of a side block, or of any block while side mode serves (`p`
/// non-null): a copy into a new block (a side block while serving); a heap
/// block is left alone (leaked) while serving, freed otherwise.
///
/// # Safety
/// As `realloc`.
unsafe fn side_realloc(side: &Side, serving: bool, p: *mut c_void, size: usize) -> *mut c_void {
    let own = (side.owns)(p);
    // SAFETY: forwarded contract; a heap block's size is read from the page
    // map and its span (or debug mode's header), under no lock.
    let old = if own { (side.usable)(p) } else { unsafe { usable_size_below_side(p) } };
    let q = if size == 0 {
        null_mut()
    } else {
        let q = if serving { (side.alloc)(16, size) } else { malloc(size) };
        if q.is_null() {
            return q;
        }
        // SAFETY: both blocks are live and at least min(old, size) bytes long.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old.min(size)) };
        q
    };
    if own {
        (side.free)(p);
    } else if !serving {
        // SAFETY: forwarded contract; p was copied.
        unsafe { free(p) };
    }
    q
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
    if let Some(side) = serving() {
        // SAFETY: forwarded contract.
        return unsafe { semantics::posix_memalign(out, align, size, side.alloc) };
    }
    if !debug::on() && profile::on() {
        // SAFETY: forwarded contract.
        return unsafe { profile::posix_memalign(out, align, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { semantics::posix_memalign(out, align, size, aligned_core()) }
}

/// One of the four aligned allocators that return the block: `f(align,
/// size, core)`, seen by the profiler unless side mode or debug mode is on.
#[inline(always)]
fn aligned_via(align: usize, size: usize, f: fn(usize, usize, AlignedCore) -> *mut c_void) -> *mut c_void {
    if let Some(side) = serving() {
        f(align, size, side.alloc)
    } else if debug::on() {
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
    if let Some(side) = side() {
        if (side.owns)(p) {
            return (side.usable)(p);
        }
    }
    // SAFETY: forwarded contract.
    unsafe { usable_size_below_side(p) }
}

/// `usable_size` of a block that is not a side block.
///
/// # Safety
/// As `malloc_usable_size`.
unsafe fn usable_size_below_side(p: *mut c_void) -> usize {
    if debug::on() {
        // SAFETY: forwarded contract.
        unsafe { debug::usable_size(p) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { semantics::usable_size(p) }
    }
}

// The entry points that read or release the whole heap without allocating:
// in a fork child's side mode they leave it alone (`off_heap`).

/// malloc_trim and goheap_release: the bytes released.
pub fn trim(keep: usize) -> usize {
    if off_heap() {
        return 0;
    }
    malloc::trim(keep)
}

/// goheap_get_stats: zeros in side mode.
pub fn collect_stats(out: &mut stats::goheap_stats) {
    if off_heap() {
        *out = stats::goheap_stats::zeroed();
        return;
    }
    stats::collect(out)
}

/// mallinfo's and mallinfo2's figures: zeros in side mode.
pub fn mallinfo_figures() -> [usize; 10] {
    if off_heap() {
        return [0; 10];
    }
    stats::mallinfo_figures()
}

/// malloc_info's XML (see `stats::malloc_info`), line by line to `sink`;
/// an empty heap in side mode.
pub fn malloc_info(sink: impl FnMut(&[u8])) {
    if off_heap() {
        let mut sink = sink;
        sink(b"<malloc version=\"1\">\n</malloc>\n");
        return;
    }
    stats::malloc_info(sink)
}

/// malloc_stats: nothing in side mode.
pub fn report_stats() {
    if !off_heap() {
        stats::report(false);
    }
}
