//! The malloc family's C semantics on top of `malloc`: errno, NULL, the
//! overflow of `n * size`, the PTRDIFF_MAX limit, and the argument rules
//! of POSIX, C11 and glibc for the aligned allocators. These are the
//! bodies of the entry points below the hooks: debug mode and the profiler
//! call them, and they call only each other, so an allocation passes a
//! hook once. The C symbols themselves are in `ffi`.

use crate::malloc;
use crate::platform::os;
use core::ffi::{c_int, c_void};
use core::ptr::null_mut;

/// Sizes above PTRDIFF_MAX cannot be represented as pointer differences:
/// glibc refuses them, and so do we.
pub const MAX_SIZE: usize = isize::MAX as usize;
/// valloc's and pvalloc's page.
const OS_PAGE: usize = os::OS_PAGE;

/// The part of the aligned allocators that allocates: `align` (a power of
/// two) and `size` are checked already; null on failure, errno untouched.
/// `aligned` is the plain one; debug mode passes its own.
pub type AlignedCore = fn(usize, usize) -> *mut c_void;

#[inline(always)]
fn enomem() -> *mut c_void {
    os::set_errno(libc::ENOMEM);
    null_mut()
}

pub fn malloc(size: usize) -> *mut c_void {
    alloc_or_enomem(size, false)
}

/// malloc and calloc's common part: C's size limit and errno.
#[inline(always)]
fn alloc_or_enomem(size: usize, zero: bool) -> *mut c_void {
    if size > MAX_SIZE {
        return enomem();
    }
    let p = malloc::alloc(size, zero);
    if p.is_null() {
        return enomem();
    }
    p as *mut c_void
}

/// # Safety
/// `p` is NULL or a live block from goheap.
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: forwarded contract (NULL is ignored, errno preserved).
    unsafe { malloc::free_unhooked(p as *mut u8, b"free") };
}

pub fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => alloc_or_enomem(total, true),
        None => enomem(),
    }
}

/// # Safety
/// `p` is NULL or a live block from goheap.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return null_mut();
    }
    if size > MAX_SIZE {
        return enomem();
    }
    // SAFETY: forwarded contract.
    match unsafe { malloc::realloc(p as *mut u8, size) } {
        Ok(q) => q as *mut c_void,
        Err(e) => {
            os::set_errno(e);
            null_mut()
        }
    }
}

/// # Safety
/// `p` is NULL or a live block from goheap.
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(),
    }
}

/// The plain `AlignedCore`.
pub fn aligned(align: usize, size: usize) -> *mut c_void {
    if size > MAX_SIZE || align > MAX_SIZE / 2 + 1 {
        return null_mut();
    }
    malloc::alloc_aligned(align, size) as *mut c_void
}

/// POSIX: EINVAL unless `align` is a power of two and a multiple of
/// `sizeof(void *)`, ENOMEM on failure; errno is never changed and `*out`
/// is only written on success.
///
/// # Safety
/// `out` points to writable storage for a pointer.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize, core: AlignedCore) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let e = os::errno();
    let p = core(align, size);
    os::set_errno(e);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller provides a writable out-pointer.
    unsafe { *out = p };
    0
}

/// C11: NULL with EINVAL unless `align` is a power of two.
pub fn aligned_alloc(align: usize, size: usize, core: AlignedCore) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return null_mut();
    }
    let p = core(align, size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// glibc's memalign: a non-power-of-two alignment is rounded up to the
/// next power of two. EINVAL only for an alignment above SIZE_MAX / 2 + 1,
/// which no power of two can round up to (glibc's _mid_memalign); any
/// other that cannot be met (2^63 included) fails in `core`: ENOMEM.
pub fn memalign(align: usize, size: usize, core: AlignedCore) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        os::set_errno(libc::EINVAL);
        return null_mut();
    }
    let p = core(align.max(1).next_power_of_two(), size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// Page-aligned (4096) allocation.
pub fn valloc(size: usize, core: AlignedCore) -> *mut c_void {
    memalign(OS_PAGE, size, core)
}

/// Page-aligned allocation of `size` rounded up to whole pages (at least one).
pub fn pvalloc(size: usize, core: AlignedCore) -> *mut c_void {
    let Some(rounded) = size.checked_add(OS_PAGE - 1) else { return enomem() };
    memalign(OS_PAGE, (rounded & !(OS_PAGE - 1)).max(OS_PAGE), core)
}

/// # Safety
/// `p` is NULL or a live block from goheap.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    malloc::usable_size(p as *mut u8, b"malloc_usable_size")
}

/// glibc's `M_MXFAST` and the largest value it accepts (`MAX_FAST_SIZE`,
/// 80 * sizeof(size_t) / 4).
const M_MXFAST: c_int = 1;
const MAX_FAST_SIZE: c_int = (80 * core::mem::size_of::<usize>() / 4) as c_int;

/// glibc's mallopt, whose parameters goheap all ignores: it has no
/// fastbins, arenas, mmap threshold or trim threshold (free memory is
/// returned on the scavenger's timing, see GOHEAP_RELEASE_DELAY_MS).
/// Returns what glibc returns: 1, also for parameters it does not know,
/// except 0 for an `M_MXFAST` value outside 0..=`MAX_FAST_SIZE`.
pub fn mallopt(param: c_int, value: c_int) -> c_int {
    (param != M_MXFAST || (0..=MAX_FAST_SIZE).contains(&value)) as c_int
}
