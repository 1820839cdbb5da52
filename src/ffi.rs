//! The C symbols, and nothing else: each is one call into the layer that
//! does the work. The fast paths of malloc and free are inlined here (the
//! malloc layer's `alloc_fast_or` and `free`); every other entry point asks
//! the hooks first (`hooks::any`), then calls its C semantics (`semantics`).
//!
//! The `goheap_`-prefixed functions are always exported and are what
//! `include/goheap.h` declares. The unprefixed malloc family, and glibc's
//! internal aliases, are exported only with the `export` feature (on for
//! the shipped libraries, off for `cargo test`), and only on Linux: on
//! macOS libSystem's malloc family is replaced through the malloc zone and
//! dyld's interposing (`zone.rs`), which need goheap's functions under
//! names of their own.

use crate::platform::os;
use crate::semantics::{self, aligned};
use crate::{hooks, malloc, profile, stats};
use core::ffi::{c_char, c_int, c_void};

/// Allocate `size` bytes. Returns NULL and sets errno to ENOMEM on failure;
/// `malloc(0)` returns a unique pointer that can be freed.
#[no_mangle]
pub extern "C" fn goheap_malloc(size: usize) -> *mut c_void {
    malloc::alloc_fast_or(size, hooks::malloc_slow) as *mut c_void
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

/// Allocate `n * size` zeroed bytes; NULL with ENOMEM on overflow or failure.
#[no_mangle]
pub extern "C" fn goheap_calloc(n: usize, size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::calloc(n, size);
    }
    semantics::calloc(n, size)
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
    unsafe { semantics::realloc(p, size) }
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
    unsafe { semantics::reallocarray(p, n, size) }
}

/// POSIX aligned allocation: EINVAL unless `align` is a power of two and a
/// multiple of `sizeof(void *)`, ENOMEM on failure; errno is never changed
/// and `*out` is only written on success.
///
/// # Safety
/// `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn goheap_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if hooks::any() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::posix_memalign(out, align, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { semantics::posix_memalign(out, align, size, aligned) }
}

/// C11 aligned allocation: NULL with EINVAL unless `align` is a power of two.
#[no_mangle]
pub extern "C" fn goheap_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::aligned_alloc(align, size);
    }
    semantics::aligned_alloc(align, size, aligned)
}

/// Obsolete aligned allocation: a non-power-of-two alignment is rounded up
/// to the next power of two (as glibc does). EINVAL only for an alignment
/// above SIZE_MAX / 2 + 1, which no power of two can round up; any other
/// that cannot be met (2^63 included) is ENOMEM, as in glibc.
#[no_mangle]
pub extern "C" fn goheap_memalign(align: usize, size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::memalign(align, size);
    }
    semantics::memalign(align, size, aligned)
}

/// Page-aligned (4096) allocation.
#[no_mangle]
pub extern "C" fn goheap_valloc(size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::valloc(size);
    }
    semantics::valloc(size, aligned)
}

/// Page-aligned allocation of `size` rounded up to whole pages (at least one).
#[no_mangle]
pub extern "C" fn goheap_pvalloc(size: usize) -> *mut c_void {
    if hooks::any() {
        return hooks::pvalloc(size);
    }
    semantics::pvalloc(size, aligned)
}

/// Bytes usable in the block (at least what was asked for); 0 for NULL.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { usable_size_inline(p) }
}

/// goheap_malloc_usable_size's body, for malloc_usable_size too.
#[inline(always)]
unsafe fn usable_size_inline(p: *mut c_void) -> usize {
    if hooks::any() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::usable_size(p) };
    }
    // SAFETY: forwarded contract.
    unsafe { semantics::usable_size(p) }
}

/// Return free memory to the OS now, keeping `pad` bytes of it; 1 if any
/// memory was released, 0 otherwise (glibc's malloc_trim).
#[no_mangle]
pub extern "C" fn goheap_malloc_trim(pad: usize) -> c_int {
    (hooks::trim(pad) > 0) as c_int
}

/// Return all free memory to the OS now. Returns the number of bytes released.
#[no_mangle]
pub extern "C" fn goheap_release() -> usize {
    hooks::trim(0)
}

/// Walk the heap and verify its invariants: 0 if they hold; otherwise
/// prints what broke on stderr and returns -1.
#[no_mangle]
pub extern "C" fn goheap_check() -> c_int {
    crate::check::check_and_report()
}

/// Fill `*out` with a snapshot of the heap's statistics (see README,
/// "Statistics"): exact when no other thread allocates meanwhile, otherwise
/// the object counts and malloc/free counts are approximate. Allocates
/// nothing. Does nothing if `out` is NULL.
///
/// # Safety
/// `out` is NULL or points to writable storage for a `goheap_stats`.
#[no_mangle]
pub unsafe extern "C" fn goheap_get_stats(out: *mut stats::goheap_stats) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller provides a writable goheap_stats.
    hooks::collect_stats(unsafe { &mut *out });
}

/// Write the heap profile (see README, "Profiling") to `path`, or to the
/// `GOHEAP_PROFILE` path if `path` is NULL (`%p` is replaced by the process
/// id). Returns 0, or -1 with errno set: EINVAL if profiling is off (no
/// `GOHEAP_PROFILE`), or the error of open/write. Allocates nothing.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn goheap_profile_dump(path: *const c_char) -> c_int {
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
const NUM_ENTRY_POINTS: usize = 23;

/// The allocation entry points, so the profiler can cut goheap's own frames
/// off a stack (0 for the names this build does not export; init registers
/// them).
pub fn entry_points() -> [usize; NUM_ENTRY_POINTS] {
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
    #[cfg(all(feature = "export", target_os = "linux"))]
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

/// The unprefixed C names, for LD_PRELOAD and static linking.
#[cfg(all(feature = "export", target_os = "linux"))]
mod export {
    use super::*;

    /// glibc's mallinfo2 (see `mallinfo_figures` for the mapping).
    #[cfg(target_env = "gnu")]
    #[no_mangle]
    pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
        let f = hooks::mallinfo_figures();
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
        let f = hooks::mallinfo_figures().map(|v| v.min(c_int::MAX as usize) as c_int);
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

    /// glibc's malloc_info: goheap's heap in glibc's XML on `fp`
    /// (`stats::malloc_info`). Unless `options` is 0, returns EINVAL, as
    /// glibc's code does (its manual says -1 and errno); -1 if a write
    /// failed. Written with fwrite, so it lands in order with the FILE's
    /// other output (and works on memory streams); no goheap lock is held
    /// meanwhile, as stdio may allocate.
    #[cfg(target_env = "gnu")]
    #[no_mangle]
    pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
        if options != 0 {
            return libc::EINVAL;
        }
        let mut failed = false;
        hooks::malloc_info(|line| {
            // SAFETY: the caller passes an open FILE; `line` is readable.
            failed |= unsafe { libc::fwrite(line.as_ptr().cast(), 1, line.len(), fp) } != line.len();
        });
        -(failed as c_int)
    }

    /// glibc's malloc_stats: a short summary on stderr (write(2), no stdio).
    #[no_mangle]
    pub extern "C" fn malloc_stats() {
        hooks::report_stats();
    }

    /// glibc's mallopt: accepted and ignored (see `semantics::mallopt`).
    #[no_mangle]
    pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
        semantics::mallopt(param, value)
    }

    #[no_mangle]
    pub extern "C" fn malloc(size: usize) -> *mut c_void {
        // goheap_malloc's body, not a call: an exported function's call
        // to another goes through the GOT (one indirect jump per malloc).
        malloc::alloc_fast_or(size, hooks::malloc_slow) as *mut c_void
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
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
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
        unsafe { usable_size_inline(p) }
    }

    #[no_mangle]
    pub extern "C" fn malloc_trim(pad: usize) -> c_int {
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
    pub unsafe extern "C" fn __posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
        // SAFETY: forwarded contract.
        unsafe { goheap_posix_memalign(out, align, size) }
    }

    // C23's sized frees.
    #[no_mangle]
    pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
        // The body, not a call to goheap_free_sized: see malloc.
        // SAFETY: forwarded contract.
        unsafe { free_sized_inline(p, size) }
    }
    #[no_mangle]
    pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { free_aligned_sized_inline(p, align, size) }
    }
}

/// C23's `free_sized`: free `p`, a block allocated with `size` bytes (the
/// size passed to malloc or realloc, `n * size` for calloc). C++'s sized
/// `operator delete` calls it too (src/cxx/operators.cc). goheap's free does
/// not need the size: it finds the block's span from the address either
/// way, and needs the span to free. It checks it: a size larger than the
/// block is reported as misuse (`goheap: free_sized(): size N given for
/// block 0x... (size M)`, M the block's usable size), and with
/// `GOHEAP_DEBUG=1` any size other than the one asked for is (M that
/// size). `free_sized(NULL, n)` does nothing.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_free_sized(p: *mut c_void, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_sized_inline(p, size) }
}

/// goheap_free_sized's body, inlined into C++'s sized delete too.
#[inline(always)]
unsafe fn free_sized_inline(p: *mut c_void, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { malloc::free_sized_or(p as *mut u8, size, 1, |s| free_sized_slow(p, s, size, 0, b"free_sized")) }
}

/// goheap_malloc's, goheap_free's and goheap_free_sized's bodies again,
/// under names the library does not export, for C++'s `operator new`,
/// `operator delete(void*)` and `operator delete(void*, size_t)` (src/cxx.rs):
/// their stubs reach these with a direct call or jump, where calling the
/// exported names goes through the PLT (an indirect jump) and a C++ body.
#[cfg(all(feature = "export", target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod for_cxx {
    use super::*;

    /// One attempt of `operator new(size_t)`: null if it failed (the stub
    /// then runs the C++ new_handler loop).
    pub(crate) extern "C" fn new_attempt(size: usize) -> *mut c_void {
        malloc::alloc_fast_or(size, hooks::malloc_slow) as *mut c_void
    }

    /// # Safety
    /// As `goheap_free`.
    pub(crate) unsafe extern "C" fn delete(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { free_inline(p) }
    }

    /// # Safety
    /// As `goheap_free_sized`.
    pub(crate) unsafe extern "C" fn delete_sized(p: *mut c_void, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { free_sized_inline(p, size) }
    }
}

/// The sized frees past free's leaf: a hook sees the size (debug mode
/// checks it against the size asked for); else a size larger than the
/// block or a misaligned pointer (`align` non-zero) is reported as misuse
/// (in warn mode the block is left alone), and anything else goes to free's
/// slow path. `s` is the page map's entry for `p`.
///
/// # Safety
/// As `goheap_free_sized`.
#[cold]
#[inline(never)]
unsafe fn free_sized_slow(p: *mut c_void, s: *mut crate::span::Span, size: usize, align: usize, func: &'static [u8]) {
    if hooks::any() && !p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { hooks::free_sized(p, size, align, func) };
    }
    let mut buf = [0u8; 64];
    if let Some((what, bytes)) = malloc::sized_misuse(p as *mut u8, s, size, align, &mut buf) {
        return crate::error::report(func, what, p as usize, Some(bytes));
    }
    // SAFETY: forwarded contract.
    unsafe { malloc::free_slow(p as *mut u8, s, b"free") }
}

/// C23's `free_aligned_sized`: free `p`, a block from `aligned_alloc(align,
/// size)`; C++'s sized aligned `operator delete` calls it too. As
/// `goheap_free_sized`, and a `p` not aligned to `align` (a power of two) is
/// reported too.
///
/// # Safety
/// `p` is NULL or a live block from goheap.
#[no_mangle]
pub unsafe extern "C" fn goheap_free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_aligned_sized_inline(p, align, size) }
}

/// goheap_free_aligned_sized's body, for free_aligned_sized too.
#[inline(always)]
unsafe fn free_aligned_sized_inline(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { malloc::free_sized_or(p as *mut u8, size, align, |s| free_sized_slow(p, s, size, align, b"free_aligned_sized")) }
}
