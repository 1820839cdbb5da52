//! Allocation and free, the top of the allocator (Go's malloc.go): route a
//! request to a size class through the thread cache, or to the page heap for
//! large objects; find an object's span on free and check the pointer.
//!
//! Everything here works on plain sizes and addresses; C's conventions
//! (errno, NULL, overflow of `n * size`) live in `semantics`.
//!
//! Hooks (debug mode, the profiler) sit above this layer: while one is on,
//! it installs the function free's slow path hands blocks to
//! (`set_free_hook`), and tags the thread's cache word so the fast paths
//! fall to their slow paths.

use crate::arena::{self, FREED_SPAN};
use crate::cache::{self, Cache, FALLBACK};
use crate::central::{self, FreeResult};
use crate::error::bad_pointer;
use crate::heap::{self, scavenge};
use crate::pagealloc::{PAGE_SHIFT, PAGE_SIZE};
use crate::platform::os;
use crate::sizeclass::{size_to_class, CLASSES, MAX_SMALL_SIZE, NUM_CLASSES};
use crate::span::{Span, STATE_LARGE, STATE_SMALL};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Mallocs and frees that no thread cache counted (large objects, frees
/// from threads without a cache), for statistics.
pub static SHARED_MALLOCS: AtomicU64 = AtomicU64::new(0);
pub static SHARED_FREES: AtomicU64 = AtomicU64::new(0);

/// Where free's slow path sends blocks while a hook is on (null: off).
static FREE_HOOK: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// Install (Some) or remove (None) the function that sees every free while
/// a hook is on; it frees through `free_unhooked`.
pub fn set_free_hook(f: Option<unsafe fn(*mut u8)>) {
    FREE_HOOK.store(f.map_or(ptr::null_mut(), |f| f as *mut ()), Ordering::Relaxed);
}

/// Run `f` with this thread's cache, creating it on first use, or with the
/// shared fallback cache (under its lock) when the thread may not have one.
#[inline(always)]
fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    let v = cache::word();
    if v > cache::TLS_NO_CACHE {
        // SAFETY: a non-sentinel TLS value is this thread's live cache.
        let c = unsafe { &mut *(v as *mut Cache) };
        return c.changing(f);
    }
    with_cache_slow(v, f)
}

#[cold]
#[inline(never)]
fn with_cache_slow<R>(v: usize, f: impl FnOnce(&mut Cache) -> R) -> R {
    if v == cache::TLS_NONE {
        let c = cache::create_thread_cache();
        if !c.is_null() {
            // SAFETY: just created for this thread.
            let c = unsafe { &mut *c };
            return c.changing(f);
        }
    }
    let mut fb = FALLBACK.lock();
    fb.make_usable();
    let r = f(&mut fb);
    drop(fb);
    scavenge::poll();
    r
}

/// The class whose objects are at least `size` bytes and aligned to `align`
/// (a power of two up to the page size), if a small class can do it: spans
/// start page-aligned, so a class whose size is a multiple of `align` has
/// every object aligned.
fn aligned_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    let mut c = size_to_class(size.max(align));
    while c < NUM_CLASSES {
        if (CLASSES[c].size as usize).is_multiple_of(align) {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// malloc's fast path alone: a small object from this thread's cache, or
/// else whatever `slow` returns (called with `size`). Taking the slow path
/// as a function lets every failing branch jump straight to it.
#[inline(always)]
pub fn alloc_fast_or(size: usize, slow: impl FnOnce(usize) -> *mut u8) -> *mut u8 {
    if size <= MAX_SMALL_SIZE {
        // Signed: a hook-tagged word is negative and takes the slow path.
        let v = cache::raw_word();
        if v as isize > cache::TLS_NO_CACHE as isize {
            // SAFETY: a non-sentinel, untagged TLS value is this thread's live cache.
            let c = unsafe { &mut *(v as *mut Cache) };
            if let Some(p) = c.leaf(|c| c.alloc_fast(size_to_class(size))) {
                return p as *mut u8;
            }
        }
    }
    slow(size)
}

/// Allocate `size` bytes; null when out of memory. With `zero`, the block
/// reads as zero (the memset skips memory known to be zero: a small span's
/// fresh objects, a large block's released or fresh pages).
#[inline(always)]
pub fn alloc(size: usize, zero: bool) -> *mut u8 {
    if size <= MAX_SMALL_SIZE {
        alloc_class(size_to_class(size), size, zero)
    } else {
        alloc_large(size, PAGE_SIZE, zero)
    }
}

#[inline(always)]
fn alloc_class(class: usize, size: usize, zero: bool) -> *mut u8 {
    // The fast path marks the cache as the leaf it is (`enter_leaf`): a
    // refill can reach malloc again, so only it counts nesting.
    let fast = || {
        let v = cache::word();
        if v > cache::TLS_NO_CACHE {
            // SAFETY: a non-sentinel TLS value is this thread's live cache.
            let c = unsafe { &mut *(v as *mut Cache) };
            return c.leaf(|c| c.alloc_fast_zero(class));
        }
        None
    };
    let (p, needzero) = fast().unwrap_or_else(|| with_cache(|c| c.alloc(class)));
    if zero && needzero && p != 0 {
        // SAFETY: p is a fresh object of at least `size` bytes.
        unsafe { ptr::write_bytes(p as *mut u8, 0, size) };
    }
    p as *mut u8
}

/// Before the heap grows for a large block: the empty spans thread caches
/// and mcentral keep go back to it first, as before a small span's refill
/// grows it (`Cache::refill`), so that memory one size freed serves the
/// next. Call holding no goheap lock.
fn give_back_kept() {
    if cache::kept_empty_bytes() != 0 || central::kept_empty_bytes() != 0 {
        cache::reclaim_empties(None);
        central::drain_all();
        central::release_empties(u32::MAX);
    }
}

#[inline(never)]
fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    // Without growing the heap first; a size it can never have fails at
    // once, without making every cache give back its spans for nothing.
    let r = heap::alloc_large(size, align, false).or_else(|| {
        if size > heap::MAX_ALLOC || align > heap::MAX_ALLOC {
            return None;
        }
        give_back_kept();
        heap::alloc_large(size, align, true)
    });
    match r {
        Some((p, dirty)) => {
            SHARED_MALLOCS.fetch_add(1, Ordering::Relaxed);
            if zero {
                // Only what may hold old data: released and fresh pages
                // read as zero, and stay untouched (not resident).
                for &(a, n) in dirty.runs() {
                    let end = (a + n).min(p + size);
                    if a < end {
                        // SAFETY: [a, end) lies inside the fresh object [p, p + size).
                        unsafe { ptr::write_bytes(a as *mut u8, 0, end - a) };
                    }
                }
            }
            p as *mut u8
        }
        None => ptr::null_mut(),
    }
}

/// Allocate `size` bytes aligned to `align` (a power of two).
pub fn alloc_aligned(align: usize, size: usize) -> *mut u8 {
    if align <= 8 || (align <= 16 && size > 8) {
        return alloc(size, false);
    }
    match aligned_class(size, align) {
        Some(c) => alloc_class(c, size, false),
        None => alloc_large(size, align.max(PAGE_SIZE), false),
    }
}

/// Resolve `addr` to its live span and, for small spans, the object index.
/// If it is not a live object's start, report it naming `func` (which
/// aborts unless GOHEAP_ON_ERROR=warn) and return None: the caller must
/// then leave the heap alone.
#[inline(always)]
fn lookup(addr: usize, func: &[u8]) -> Option<(*mut Span, usize)> {
    lookup_in(arena::span_of(addr), addr, func)
}

/// `lookup` with the page map already read: `s` is `arena::span_of(addr)`.
#[inline(always)]
fn lookup_in(s: *mut Span, addr: usize, func: &[u8]) -> Option<(*mut Span, usize)> {
    match resolve(s, addr) {
        Ok(r) => Some(r),
        Err(None) => {
            bad_lookup(addr, s, func);
            None
        }
        Err(Some(what)) => {
            bad_pointer(func, what, addr);
            None
        }
    }
}

/// `lookup_in` without the report: the live span and object index of
/// `addr` (page map entry `s`), or what is wrong with it (None: its page
/// holds no live span, which `bad_lookup` tells apart).
#[inline(always)]
fn resolve(s: *mut Span, addr: usize) -> Result<(*mut Span, usize), Option<&'static [u8]>> {
    if s.is_null() || s == FREED_SPAN {
        return Err(None);
    }
    // SAFETY: span records in the page map are never unmapped.
    let sp = unsafe { &*s };
    match sp.state.load(Ordering::Acquire) {
        STATE_SMALL => sp.slot_of(addr).map(|idx| (s, idx)).ok_or(Some(b"invalid pointer")),
        STATE_LARGE if addr == sp.base => Ok((s, 0)),
        STATE_LARGE => Err(Some(b"invalid pointer")),
        _ => Err(Some(b"double free")),
    }
}

#[cold]
fn bad_lookup(addr: usize, s: *mut Span, func: &[u8]) {
    // The first page of a freed span keeps a marker: freeing its start
    // again is a double free, unless a large object has taken the page
    // since (its interior pages are not in the map, see heap/mod.rs
    // `map_pages`); anything else is simply not ours.
    if s == FREED_SPAN && addr & (PAGE_SIZE - 1) == 0 && arena::large_covering(addr).is_null() {
        bad_pointer(func, b"double free", addr)
    } else {
        bad_pointer(func, b"invalid pointer", addr)
    }
}

/// Free `p`, reporting misuse as `func`; NULL is ignored (it is no heap
/// address, so it takes the slow path, which checks for it: one test less
/// on every other free). errno is preserved.
///
/// The common case — a small object of a span this thread's cache owns —
/// is a leaf: map lookup, slot check, clear the alloc bit. Everything else
/// (other owners, large objects, misuse) goes to `free_slow`.
///
/// # Safety
/// `p` must not be used after this call.
#[inline(always)]
pub unsafe fn free(p: *mut u8, func: &'static [u8]) {
    let (s, class) = arena::span_and_class_in_window(p as usize);
    // SAFETY: forwarded contract; the raw word fails while a hook is on.
    if !unsafe { free_fast(p as usize, s, class, cache::raw_word(), 0) } {
        // SAFETY: forwarded contract.
        unsafe { free_slow(p, s, func) }
    }
}

/// `free` for the sized frees (free_sized, C++'s sized delete): the same
/// leaf, which also checks that `size` fits the block and that `p` is
/// aligned to `align` (a power of two; 1 for the unaligned forms), and
/// everything else to `slow` with the page map's entry (`sized_misuse`
/// then tells a wrong size or alignment; the raw word fails the leaf while a
/// hook is on, so the common case tests nothing more).
///
/// # Safety
/// As `free`.
#[inline(always)]
pub unsafe fn free_sized_or(p: *mut u8, size: usize, align: usize, slow: impl FnOnce(*mut Span)) {
    let (s, class) = arena::span_and_class_in_window(p as usize);
    // SAFETY: forwarded contract; the raw word fails while a hook is on.
    if p as usize & align.wrapping_sub(1) != 0 || !unsafe { free_fast(p as usize, s, class, cache::raw_word(), size) } {
        slow(s)
    }
}

/// What is wrong with a sized free of `p` (page map entry `s`) with `size`
/// and `align` (0: not an aligned form), if the block is one goheap handed
/// out: a size larger than the block (it cannot be the size it was
/// allocated with), or a pointer not aligned to a power-of-two `align`.
/// Then: the message's text (written into `buf`) and the block's size.
/// A size smaller than the block's passes: the block may be a larger
/// class's (a realloc that shrank in place, an aligned class), and only
/// debug mode (`GOHEAP_DEBUG=1`) records the size asked for.
pub fn sized_misuse(p: *mut u8, s: *mut Span, size: usize, align: usize, buf: &mut [u8; 64]) -> Option<(&[u8], usize)> {
    let addr = p as usize;
    let (s, _) = resolve(if s.is_null() { arena::span_of(addr) } else { s }, addr).ok()?;
    // SAFETY: a live span (resolve).
    let sp = unsafe { &*s };
    let bytes = if sp.class == 0 { sp.bytes() } else { sp.elemsize as usize };
    let (label, v) = if size > bytes {
        (&b"size "[..], size)
    } else if align.is_power_of_two() && addr & (align - 1) != 0 {
        (&b"alignment "[..], align)
    } else {
        return None;
    };
    Some((crate::error::given(buf, label, v), bytes))
}

/// `free` below the hooks: for the hooks' own blocks.
///
/// # Safety
/// As `free`.
pub unsafe fn free_unhooked(p: *mut u8, func: &'static [u8]) {
    let (s, class) = arena::span_and_class_in_window(p as usize);
    // SAFETY: forwarded contract; the untagged word, as the hooks are past.
    if !unsafe { free_fast(p as usize, s, class, cache::word(), 0) } {
        // SAFETY: forwarded contract.
        unsafe { free_slow_unhooked(p, s, func) }
    }
}

/// The leaf: free `addr` (whose page maps to `s`) if it is a small object of
/// a span owned by this thread's cache, whose word is `v`, and of at least
/// `size` bytes (0 for `free`, and the test folds away); false if anything
/// else is needed.
#[inline(always)]
unsafe fn free_fast(addr: usize, s: *mut Span, class: usize, v: usize, size: usize) -> bool {
    if s > FREED_SPAN {
        // SAFETY: span records in the page map are never unmapped.
        let sp = unsafe { &mut *s };
        // Unowned spans have owner UNOWNED, never equal to the cache word of
        // a thread without a cache (0 or 1), nor to a hook-tagged word, so
        // one compare suffices.
        if sp.owner.load(Ordering::Relaxed) as usize == v && size <= sp.elemsize as usize {
            // Owned by this thread's cache, so a live small span.
            if let Some(idx) = sp.slot_of(addr) {
                // SAFETY: v is this thread's live cache, which owns s (checked
                // above), and `class` is the page map's class of s's page
                // (written with the entry, before s was ours); free_local
                // marks the cache busy itself.
                return unsafe { (*(v as *mut Cache)).free_local(s, idx, addr, class) };
            }
        }
    }
    false
}

/// Everything but the leaf, `s` being the page map's entry for `p`. A hook
/// (debug mode, profiler) sees the block first: its blocks all come here.
#[cold]
#[inline(never)]
pub unsafe fn free_slow(p: *mut u8, s: *mut Span, func: &'static [u8]) {
    if p.is_null() {
        return;
    }
    let hook = FREE_HOOK.load(Ordering::Relaxed);
    if !hook.is_null() {
        // SAFETY: FREE_HOOK only holds an `unsafe fn(*mut u8)` stored by
        // `set_free_hook`.
        let hook = unsafe { core::mem::transmute::<*mut (), unsafe fn(*mut u8)>(hook) };
        // SAFETY: forwarded contract.
        return unsafe { hook(p) };
    }
    // SAFETY: forwarded contract.
    unsafe { free_slow_unhooked(p, s, func) }
}

#[inline(never)]
unsafe fn free_slow_unhooked(p: *mut u8, s: *mut Span, func: &'static [u8]) {
    if p.is_null() {
        return;
    }
    let addr = p as usize;
    // The fast path looked in the window of arenas only.
    let s = if s.is_null() { arena::span_of(addr) } else { s };
    // A bad pointer in warn mode: reported, nothing to free.
    let Some((s, idx)) = lookup_in(s, addr, func) else { return };
    // SAFETY: lookup returned a live span.
    let sp = unsafe { &mut *s };
    if sp.class == 0 {
        // free must preserve errno; only this path can make system calls
        // (futex waits, starting the scavenger), so only it saves errno.
        let e = os::errno();
        // SAFETY: the caller frees this large object.
        if !unsafe { heap::free_large(s) } {
            // Lost a race with another free of it: nothing left to free.
            bad_pointer(func, b"double free", addr);
            os::set_errno(e);
            return;
        }
        SHARED_FREES.fetch_add(1, Ordering::Relaxed);
        scavenge::poll();
        os::set_errno(e);
        return;
    }
    let v = cache::word();
    if v > cache::TLS_NO_CACHE {
        // SAFETY: this thread's live cache.
        let c = unsafe { &mut *(v as *mut Cache) };
        if c.owns(sp) {
            // Here when the fast path found the slot not allocated (then
            // this reports it), or was skipped (a hook is on).
            // SAFETY: c owns s.
            let done = unsafe { c.free_local(s, idx, addr, sp.class as usize) };
            if !done {
                // A slot the cursor never reached was never a block.
                let what: &[u8] = if sp.never_allocated(idx) { b"invalid pointer" } else { b"double free" };
                bad_pointer(func, what, addr);
            }
            return;
        }
        if c.gave_up(sp) {
            // Taking the span back locks mcentral (errno is kept).
            let e = os::errno();
            // SAFETY: s and idx come from the lookup of addr.
            let r = c.changing(|c| unsafe { c.free_adopting(s, idx, addr) });
            os::set_errno(e);
            match r {
                Some(true) => return,
                Some(false) => return bad_pointer(func, b"double free", addr),
                None => {}
            }
        }
    }
    let class = sp.class as usize;
    // SAFETY: s was live and of this class at lookup.
    if let FreeResult::DoubleFree = unsafe { central::free_foreign(s, class, idx) } {
        bad_pointer(func, b"double free", addr);
        return;
    }
    if v > cache::TLS_NO_CACHE {
        // SAFETY: this thread's live cache (free_foreign does not touch it).
        unsafe { (*(v as *mut Cache)).nfree += 1 };
    } else {
        SHARED_FREES.fetch_add(1, Ordering::Relaxed);
    }
    if heap::under_pressure() {
        // Address space ran out: an emptied span goes back now.
        central::drain_class(class);
    }
    // The queueing may have asked for the scavenger; no lock is held here.
    scavenge::poll_keep_errno();
}

/// Usable size of live object `p` (non-null); 0 for a bad pointer in warn
/// mode.
pub fn usable_size(p: *mut u8, func: &[u8]) -> usize {
    let addr = p as usize;
    let Some((s, idx)) = lookup(addr, func) else { return 0 };
    // SAFETY: lookup returned a live span.
    let sp = unsafe { &*s };
    if sp.class == 0 {
        return sp.bytes();
    }
    if !sp.is_allocated(idx) || sp.is_freed_remotely(idx) {
        bad_pointer(func, b"invalid pointer", addr);
        return 0;
    }
    sp.elemsize as usize
}

/// realloc for a non-null `p` and non-zero `size`. Err(errno) on failure,
/// with `p` untouched: ENOMEM when out of memory, EINVAL when `p` is a bad
/// pointer (reported; warn mode only, otherwise the report aborts).
///
/// # Safety
/// On success `p` must not be used any more (unless it was returned).
pub unsafe fn realloc(p: *mut u8, size: usize) -> Result<*mut u8, i32> {
    let addr = p as usize;
    let Some((s, idx)) = lookup(addr, b"realloc") else { return Err(libc::EINVAL) };
    // SAFETY: lookup returned a live span.
    let sp = unsafe { &*s };
    let old = if sp.class == 0 {
        let npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
        if size > MAX_SMALL_SIZE && size <= heap::MAX_ALLOC {
            // Large to large: shrink in place, or grow into free pages after it.
            // SAFETY: the caller owns the object.
            if npages == sp.cold().npages || unsafe { heap::resize_large_in_place(s, npages) } {
                return Ok(p);
            }
        }
        sp.bytes()
    } else {
        if !sp.is_allocated(idx) || sp.is_freed_remotely(idx) {
            bad_pointer(b"realloc", b"invalid pointer", addr);
            return Err(libc::EINVAL);
        }
        let old = sp.elemsize as usize;
        // Stay in place when the request maps to the same class, or the
        // block would stay at least half used.
        if size <= old && (size >= old / 2 || size_to_class(size) == sp.class as usize) {
            return Ok(p);
        }
        old
    };
    if sp.class == 0 && size > old && size <= heap::MAX_ALLOC {
        // A large object that must move (its old pages may be released at
        // once: see realloc_large).
        // First without growing the heap (see `give_back_kept`).
        // SAFETY: the caller owns the object, which grows.
        let r = match unsafe { heap::realloc_large(s, addr, size, false) } {
            Err(heap::WOULD_GROW) => {
                give_back_kept();
                // SAFETY: as above.
                unsafe { heap::realloc_large(s, addr, size, true) }
            }
            r => r,
        };
        let (q, freed) = r?;
        SHARED_MALLOCS.fetch_add(1, Ordering::Relaxed);
        if freed {
            SHARED_FREES.fetch_add(1, Ordering::Relaxed);
        } else {
            // SAFETY: the caller's block, copied into q.
            unsafe { free_unhooked(p, b"realloc") };
        }
        return Ok(q as *mut u8);
    }
    let want = moved_size(sp.class, old, size);
    let mut q = alloc(want, false);
    if q.is_null() && want != size {
        // The extra room is a bet on more growth, not worth failing for.
        q = alloc(size, false);
    }
    if q.is_null() {
        return Err(libc::ENOMEM);
    }
    // SAFETY: both blocks are live and at least min(old, size) bytes long.
    unsafe {
        ptr::copy_nonoverlapping(p, q, old.min(size));
        free_unhooked(p, b"realloc");
    }
    Ok(q)
}

/// The size to allocate for a small block of `class` (`old` bytes) that
/// realloc moves to hold `size` bytes: when it grows, at least a quarter
/// more than it had (up to the largest small class), as tcmalloc does. A
/// block grown by a few bytes at a time (a string builder that reallocs to
/// the exact length) then moves once per 25% of growth, not at every size
/// class (16 bytes to 12.5% apart): about half the copies, and less garbage
/// between them. A block that shrinks or turns large gets `size`.
fn moved_size(class: u8, old: usize, size: usize) -> usize {
    if class != 0 && size > old && size <= MAX_SMALL_SIZE {
        size.max((old + old / 4).min(MAX_SMALL_SIZE))
    } else {
        size
    }
}

/// Release everything free now except `keep` bytes (malloc_trim): the
/// empty spans thread caches keep (the calling thread's first), mcentral's
/// queued and kept spans, then the heap's free pages.
/// Returns the bytes released.
pub fn trim(keep: usize) -> usize {
    if let Some(c) = cache::current() {
        // SAFETY: this thread's live cache.
        let c = unsafe { &mut *c };
        c.changing(|c| c.release_empty());
    }
    cache::reclaim_empties(None);
    central::drain_all();
    central::release_empties(u32::MAX);
    let target = heap::lock().free_unscavenged_bytes().saturating_sub(keep);
    scavenge::release(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_size_adds_a_quarter_to_small_growth_only() {
        // Growth within the small classes: a quarter more than the old
        // class size, or the request if that is more.
        assert_eq!(moved_size(5, 64, 65), 80);
        assert_eq!(moved_size(5, 64, 200), 200);
        // Capped at the largest small size; never turns a small request large.
        assert_eq!(moved_size(60, 30000, 30001), MAX_SMALL_SIZE);
        assert_eq!(moved_size(60, 30000, MAX_SMALL_SIZE), MAX_SMALL_SIZE);
        // Shrinking, a large request, and a large block: exactly what was asked.
        assert_eq!(moved_size(5, 64, 10), 10);
        assert_eq!(moved_size(60, 30000, MAX_SMALL_SIZE + 1), MAX_SMALL_SIZE + 1);
        assert_eq!(moved_size(0, 65536, 70000), 70000);
    }
}
