//! The C ABI: thin wrappers that add C's conventions (errno, NULL, size
//! overflow, alignment rules) to `malloc.rs`.
//!
//! The `goheap_`-prefixed functions are always exported and are what
//! `include/goheap.h` declares. The unprefixed malloc family, and glibc's
//! internal aliases, are exported only with the `export` feature (on for
//! the shipped libraries, off for `cargo test`).

use crate::hooks;
use crate::malloc;
use crate::os;
use crate::profile;
use core::ffi::c_void;
use core::ptr::null_mut;

const EINVAL: core::ffi::c_int = libc::EINVAL;
const ENOMEM: core::ffi::c_int = libc::ENOMEM;
/// Sizes above PTRDIFF_MAX cannot be represented as pointer differences:
/// glibc refuses them, and so do we.
pub(crate) const MAX_SIZE: usize = isize::MAX as usize;
const OS_PAGE: usize = os::OS_PAGE;

#[inline(always)]
fn enomem() -> *mut c_void {
    os::set_errno(ENOMEM);
    null_mut()
}

/// Allocate `size` bytes. Returns NULL and sets errno to ENOMEM on failure;
/// `malloc(0)` returns a unique pointer that can be freed.
#[no_mangle]
pub extern "C" fn goheap_malloc(size: usize) -> *mut c_void {
    malloc::alloc_fast_or(size, malloc_slow) as *mut c_void
}

/// Everything malloc's fast path does not do, hooks (hooks.rs) first.
#[cold]
#[inline(never)]
pub(crate) fn malloc_slow(size: usize) -> *mut u8 {
    if hooks::any() {
        return hooks::malloc(size) as *mut u8;
    }
    malloc_impl(size) as *mut u8
}

// Each entry point's body below the hooks is its `_impl` function: the
// hooks (hooks.rs, debug.rs, profile.rs) call these, and they call only
// each other, so an allocation passes a hook once.

pub(crate) fn malloc_impl(size: usize) -> *mut c_void {
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

/// Free a block from any goheap allocation function. `free(NULL)` does
/// nothing; errno is preserved. An invalid pointer or a double free is
/// reported on stderr and aborts the process.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_inline(p) }
}

/// goheap_free's body, inlined into each exported free so none of them
/// costs an extra jump. Hooks see the block in malloc's free slow path.
#[inline(always)]
unsafe fn free_inline(p: *mut c_void) {
    // SAFETY: forwarded contract (malloc::free preserves errno and ignores NULL).
    unsafe { malloc::free(p as *mut u8, b"free") };
}

/// free below the hooks.
///
/// # Safety
/// As `goheap_free`.
pub(crate) unsafe fn free_impl(p: *mut c_void) {
    // SAFETY: forwarded contract (NULL is ignored, errno preserved).
    unsafe { malloc::free_unhooked(p as *mut u8, b"free") };
}

/// Allocate `n * size` zeroed bytes; NULL with ENOMEM on overflow or failure.
#[no_mangle]
pub extern "C" fn goheap_calloc(n: usize, size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::calloc(n, size);
    }
    calloc_impl(n, size)
}

pub(crate) fn calloc_impl(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => alloc_or_enomem(total, true),
        None => enomem(),
    }
}

/// Resize a block, preserving its contents up to the smaller size.
/// `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns
/// NULL (glibc's behaviour). On failure returns NULL with ENOMEM and leaves
/// `p` untouched.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if hooks::any() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::realloc(p, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { realloc_impl(p, size) }
}

/// # Safety
/// As `goheap_realloc`.
pub(crate) unsafe fn realloc_impl(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc_impl(size);
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free_impl(p) };
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

/// `realloc(p, n * size)` with overflow checking (ENOMEM, `p` untouched).
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    if hooks::any() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::reallocarray(p, n, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { reallocarray_impl(p, n, size) }
}

/// # Safety
/// As `goheap_reallocarray`.
pub(crate) unsafe fn reallocarray_impl(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc_impl(p, total) },
        None => enomem(),
    }
}

/// The aligned family's common part (posix_memalign, aligned_alloc,
/// memalign, valloc, pvalloc): the debug hook for all five is here, after
/// their own argument checks.
fn aligned(align: usize, size: usize) -> *mut c_void {
    if crate::debug::on() {
        return crate::debug::aligned(align, size);
    }
    if size > MAX_SIZE || align > MAX_SIZE / 2 + 1 {
        return null_mut();
    }
    malloc::alloc_aligned(align, size) as *mut c_void
}

/// POSIX aligned allocation: EINVAL unless `align` is a power of two and a
/// multiple of `sizeof(void *)`, ENOMEM on failure; errno is never changed
/// and `*out` is only written on success.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn goheap_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> core::ffi::c_int {
    // SAFETY: forwarded contract.
    if profile::on() { return unsafe { profile::posix_memalign(out, align, size) }; }
    // SAFETY: forwarded contract.
    unsafe { posix_memalign_impl(out, align, size) }
}

/// # Safety
/// As `goheap_posix_memalign`.
pub(crate) unsafe fn posix_memalign_impl(out: *mut *mut c_void, align: usize, size: usize) -> core::ffi::c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return EINVAL;
    }
    let e = os::errno();
    let p = aligned(align, size);
    os::set_errno(e);
    if p.is_null() {
        return ENOMEM;
    }
    // SAFETY: the caller provides a writable out-pointer.
    unsafe { *out = p };
    0
}

/// C11 aligned allocation: NULL with EINVAL unless `align` is a power of two.
#[no_mangle]
pub extern "C" fn goheap_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if profile::on() { return profile::aligned(align, size, aligned_alloc_impl); }
    aligned_alloc_impl(align, size)
}

fn aligned_alloc_impl(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(EINVAL);
        return null_mut();
    }
    let p = aligned(align, size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// Obsolete aligned allocation: a non-power-of-two alignment is rounded up
/// to the next power of two (as glibc does).
#[no_mangle]
pub extern "C" fn goheap_memalign(align: usize, size: usize) -> *mut c_void {
    if profile::on() { return profile::aligned(align, size, memalign_impl); }
    memalign_impl(align, size)
}

fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    if align > MAX_SIZE / 2 + 1 {
        os::set_errno(EINVAL);
        return null_mut();
    }
    let p = aligned(align.max(1).next_power_of_two(), size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// Page-aligned (4096) allocation.
#[no_mangle]
pub extern "C" fn goheap_valloc(size: usize) -> *mut c_void {
    if profile::on() { return profile::aligned(OS_PAGE, size, memalign_impl); }
    memalign_impl(OS_PAGE, size)
}

/// Page-aligned allocation of `size` rounded up to whole pages (at least one).
#[no_mangle]
pub extern "C" fn goheap_pvalloc(size: usize) -> *mut c_void {
    if profile::on() { return profile::aligned(0, size, |_, size| pvalloc_impl(size)); }
    pvalloc_impl(size)
}

fn pvalloc_impl(size: usize) -> *mut c_void {
    let Some(rounded) = size.checked_add(OS_PAGE - 1) else { return enomem() };
    memalign_impl(OS_PAGE, (rounded & !(OS_PAGE - 1)).max(OS_PAGE))
}

/// Bytes usable in the block (at least what was asked for); 0 for NULL.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_malloc_usable_size(p: *mut c_void) -> usize {
    if hooks::any() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::usable_size(p) };
    }
    // SAFETY: forwarded contract.
    unsafe { usable_size_impl(p) }
}

/// # Safety
/// As `goheap_malloc_usable_size`.
pub(crate) unsafe fn usable_size_impl(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    malloc::usable_size(p as *mut u8, b"malloc_usable_size")
}

/// Return free memory to the OS now, keeping `pad` bytes of it; 1 if any
/// memory was released, 0 otherwise (glibc's malloc_trim).
#[no_mangle]
pub extern "C" fn goheap_malloc_trim(pad: usize) -> core::ffi::c_int {
    (crate::scavenge::trim(pad) > 0) as core::ffi::c_int
}

/// Return all free memory to the OS now. Returns the number of bytes released.
#[no_mangle]
pub extern "C" fn goheap_release() -> usize {
    crate::scavenge::trim(0)
}

/// Walk the heap and verify its invariants: 0 if they hold; otherwise
/// prints what broke on stderr and returns -1.
#[no_mangle]
pub extern "C" fn goheap_check() -> core::ffi::c_int {
    match crate::check::check() {
        Ok(()) => 0,
        Err(msg) => {
            os::write_stderr(b"goheap: check failed: ");
            os::write_stderr(msg.as_bytes());
            os::write_stderr(b"\n");
            -1
        }
    }
}

/// Fill `*out` with a snapshot of the heap's statistics (see README,
/// "Statistics"): exact when no other thread allocates meanwhile, otherwise
/// the object counts and malloc/free counts are approximate. Allocates
/// nothing. Does nothing if `out` is NULL.
///
/// # Safety
/// `out` is NULL or points to writable storage for a `goheap_stats`.
#[no_mangle]
pub unsafe extern "C" fn goheap_get_stats(out: *mut crate::stats::goheap_stats) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller provides a writable goheap_stats.
    crate::stats::collect(unsafe { &mut *out });
}

/// Write the heap profile (see README, "Profiling") to `path`, or to the
/// `GOHEAP_PROFILE` path if `path` is NULL (`%p` is replaced by the process
/// id). Returns 0, or -1 with errno set: EINVAL if profiling is off (no
/// `GOHEAP_PROFILE`), or the error of open/write. Allocates nothing.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn goheap_profile_dump(path: *const core::ffi::c_char) -> core::ffi::c_int {
    // SAFETY: the caller passes NULL or a C string.
    let p = if path.is_null() { None } else { Some(unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes()) };
    match profile::dump(p) {
        Ok(()) => 0,
        Err(e) => {
            os::set_errno(e);
            -1
        }
    }
}

/// How many functions `entry_points` lists.
pub(crate) const NUM_ENTRY_POINTS: usize = 23;

/// The allocation entry points, so the profiler can cut goheap's own frames
/// off a stack (0 for the names this build does not export).
pub(crate) fn entry_points() -> [usize; NUM_ENTRY_POINTS] {
    let mut e = [0usize; NUM_ENTRY_POINTS];
    let own: [usize; 9] = [
        goheap_malloc as *const () as usize,
        goheap_calloc as *const () as usize,
        goheap_realloc as *const () as usize,
        goheap_reallocarray as *const () as usize,
        goheap_posix_memalign as *const () as usize,
        goheap_aligned_alloc as *const () as usize,
        goheap_memalign as *const () as usize,
        goheap_valloc as *const () as usize,
        goheap_pvalloc as *const () as usize,
    ];
    e[..9].copy_from_slice(&own);
    #[cfg(feature = "export")]
    {
        use export::*;
        let exported: [usize; 14] = [
            malloc as *const () as usize,
            calloc as *const () as usize,
            realloc as *const () as usize,
            reallocarray as *const () as usize,
            posix_memalign as *const () as usize,
            aligned_alloc as *const () as usize,
            memalign as *const () as usize,
            valloc as *const () as usize,
            pvalloc as *const () as usize,
            __libc_malloc as *const () as usize,
            __libc_calloc as *const () as usize,
            __libc_realloc as *const () as usize,
            __libc_memalign as *const () as usize,
            __posix_memalign as *const () as usize,
        ];
        e[9..].copy_from_slice(&exported);
    }
    e
}

/// glibc's mallinfo/mallinfo2, mapped onto goheap's statistics:
///
/// | field    | goheap figure                                              |
/// |----------|------------------------------------------------------------|
/// | arena    | bytes_mapped: heap memory from the OS (large objects included, unlike glibc) |
/// | ordblks  | 0 (free page runs are not counted)                         |
/// | smblks   | 0                                                          |
/// | hblks    | live large objects (each is its own span, like glibc's mmapped chunks) |
/// | hblkhd   | their bytes (also inside arena and uordblks)               |
/// | usmblks  | 0 (as in glibc)                                            |
/// | fsmblks  | free slots in small-object spans (bytes_in_spans - bytes_in_use) |
/// | uordblks | bytes_in_use                                               |
/// | fordblks | arena - uordblks: free slots and free pages, released ones included |
/// | keepcost | bytes_retained_free: what malloc_trim(0) could release now |
#[cfg(all(feature = "export", target_env = "gnu"))]
fn mallinfo_figures() -> [usize; 10] {
    let mut st = crate::stats::goheap_stats::zeroed();
    crate::stats::collect(&mut st);
    [
        st.bytes_mapped,
        0,
        0,
        st.large_objects as usize,
        st.large_bytes,
        0,
        st.bytes_in_spans.saturating_sub(st.bytes_in_use),
        st.bytes_in_use,
        st.bytes_mapped.saturating_sub(st.bytes_in_use),
        st.bytes_retained_free,
    ]
}

/// glibc's `mallopt` parameters (malloc.h), all accepted and ignored:
/// goheap has no fastbins, arenas, mmap threshold, or trim threshold (free
/// memory is returned by the scavenger's timing, see GOHEAP_RELEASE_DELAY_MS).
#[cfg(feature = "export")]
const MALLOPT_PARAMS: [core::ffi::c_int; 12] = [1, 2, 3, 4, -1, -2, -3, -4, -5, -6, -7, -8];

/// The unprefixed C names, for LD_PRELOAD and static linking.
#[cfg(feature = "export")]
mod export {
    use super::*;

    /// glibc's mallinfo2 (see `mallinfo_figures` for the mapping).
    #[cfg(target_env = "gnu")]
    #[no_mangle]
    pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
        let f = mallinfo_figures();
        libc::mallinfo2 {
            arena: f[0],
            ordblks: f[1],
            smblks: f[2],
            hblks: f[3],
            hblkhd: f[4],
            usmblks: f[5],
            fsmblks: f[6],
            uordblks: f[7],
            fordblks: f[8],
            keepcost: f[9],
        }
    }

    /// glibc's old mallinfo: the same figures, saturated at INT_MAX rather
    /// than wrapped as glibc does.
    #[cfg(target_env = "gnu")]
    #[no_mangle]
    pub extern "C" fn mallinfo() -> libc::mallinfo {
        let f = mallinfo_figures().map(|v| v.min(core::ffi::c_int::MAX as usize) as core::ffi::c_int);
        libc::mallinfo {
            arena: f[0],
            ordblks: f[1],
            smblks: f[2],
            hblks: f[3],
            hblkhd: f[4],
            usmblks: f[5],
            fsmblks: f[6],
            uordblks: f[7],
            fordblks: f[8],
            keepcost: f[9],
        }
    }

    /// glibc's malloc_stats: a short summary on stderr (write(2), no stdio).
    #[no_mangle]
    pub extern "C" fn malloc_stats() {
        crate::stats::report(false);
    }

    /// glibc's mallopt: 1 for every parameter glibc knows (accepted and
    /// ignored, see MALLOPT_PARAMS), 0 for anything else.
    #[no_mangle]
    pub extern "C" fn mallopt(param: core::ffi::c_int, _value: core::ffi::c_int) -> core::ffi::c_int {
        MALLOPT_PARAMS.contains(&param) as core::ffi::c_int
    }

    #[no_mangle]
    pub extern "C" fn malloc(size: usize) -> *mut c_void {
        goheap_malloc(size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { free_inline(p) }
    }
    #[no_mangle]
    pub unsafe extern "C" fn cfree(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { goheap_free(p) }
    }
    #[no_mangle]
    pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        goheap_calloc(n, size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { goheap_realloc(p, size) }
    }
    #[no_mangle]
    pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { goheap_reallocarray(p, n, size) }
    }
    #[no_mangle]
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> core::ffi::c_int {
        // SAFETY: forwarded contract.
        unsafe { goheap_posix_memalign(out, align, size) }
    }
    #[no_mangle]
    pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        goheap_aligned_alloc(align, size)
    }
    #[no_mangle]
    pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
        goheap_memalign(align, size)
    }
    #[no_mangle]
    pub extern "C" fn valloc(size: usize) -> *mut c_void {
        goheap_valloc(size)
    }
    #[no_mangle]
    pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
        goheap_pvalloc(size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
        // SAFETY: forwarded contract.
        unsafe { goheap_malloc_usable_size(p) }
    }

    #[no_mangle]
    pub extern "C" fn malloc_trim(pad: usize) -> core::ffi::c_int {
        goheap_malloc_trim(pad)
    }

    // glibc routes some of its own allocations through these names.
    #[no_mangle]
    pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
        goheap_malloc(size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { goheap_free(p) }
    }
    #[no_mangle]
    pub extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
        goheap_calloc(n, size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { goheap_realloc(p, size) }
    }
    #[no_mangle]
    pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
        goheap_memalign(align, size)
    }
    #[no_mangle]
    pub unsafe extern "C" fn __posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> core::ffi::c_int {
        // SAFETY: forwarded contract.
        unsafe { goheap_posix_memalign(out, align, size) }
    }

    // C23's sized frees.
    #[no_mangle]
    pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { goheap_free_sized(p, size) }
    }
    #[no_mangle]
    pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { goheap_free_aligned_sized(p, align, size) }
    }
}

/// C23's `free_sized`: free `p`, a block allocated with `size` bytes (the
/// size passed to malloc or realloc, `n * size` for calloc). C++'s sized
/// `operator delete` calls it too (src/cxx/operators.cc). goheap's free does
/// not need the size: it finds the block's span from the address either
/// way, and needs the span to free. With `GOHEAP_DEBUG=1` a size other than
/// the block's is reported (`goheap: free_sized(): size N given for block
/// 0x... (size M)`) as misuse. `free_sized(NULL, n)` does nothing.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_free_sized(p: *mut c_void, size: usize) {
    if crate::debug::on() && !p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { crate::debug::free_sized(p, size, 0, b"free_sized") };
    }
    // SAFETY: forwarded contract.
    unsafe { free_inline(p) }
}

/// C23's `free_aligned_sized`: free `p`, a block from `aligned_alloc(align,
/// size)`; C++'s sized aligned `operator delete` calls it too. As
/// `goheap_free_sized`, and debug mode also reports a `p` that is not
/// aligned to `align`.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if crate::debug::on() && !p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { crate::debug::free_sized(p, size, align, b"free_aligned_sized") };
    }
    // SAFETY: forwarded contract.
    unsafe { free_inline(p) }
}
