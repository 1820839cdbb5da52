//! The sampled heap profiler (`GOHEAP_PROFILE=FILE`), after Go's
//! MemProfileRate: on average one allocation per `GOHEAP_PROFILE_RATE` bytes
//! (default 512 KiB) is recorded with its call stack, and the profile is
//! written in the gperftools heap-profile text format (`heap_v2/<rate>`)
//! that `pprof` reads and unsamples.
//!
//! # Cost when off
//!
//! The hooks (hooks.rs) call in here only while `ON` is set; nothing else
//! is touched.
//!
//! # Sampling
//!
//! As Go's mcache.nextSample: each thread counts down the bytes until its
//! next sample, a draw from an exponential distribution with mean `rate`.
//! An allocation of `size` bytes is sampled when it takes the count to zero
//! or below; by memorylessness it is sampled with probability
//! 1 - exp(-size/rate), the probability pprof's heap_v2 unsampling assumes.
//! The count and the thread's PRNG state live in initial-exec TLS words of
//! their own (platform/tls.rs, like the cache word): no `thread_local!`, no
//! destructor, no dependency on the thread having a cache (threads on the
//! fallback cache are sampled too), and nothing added to `Cache`.
//!
//! # Stacks without malloc
//!
//! Stacks come from libgcc's `_Unwind_Backtrace` (DWARF CFI, so C programs
//! built without frame pointers unwind; libgcc_s is linked by Rust's std and
//! by every glibc program). It is called directly, not through glibc's
//! `backtrace()`, which dlopens libgcc_s (and mallocs) on first use. A TLS
//! busy flag is set while a thread samples: any malloc made meanwhile (by
//! the unwinder or the dynamic linker) is served but never sampled, so
//! nothing recurses. The frames of goheap itself are cut off: the stack
//! starts after the last frame whose function is one of goheap's entry
//! points, which the C face and the hooks register at start-up
//! (`add_entry_points`; compilers turn some entry points into tail calls,
//! leaving no frame of their own, so the hooks and the functions here count
//! too).
//!
//! # Tables
//!
//! Under one lock (`PROF`, a leaf: nothing under it allocates from the heap
//! or takes another goheap lock), in memory from the OS layer:
//! * buckets: one per distinct stack, with allocated and freed objects and
//!   bytes, variable-length, bump-allocated from 1 MiB chunks, found through
//!   an open-addressing index keyed by the stack's hash;
//! * blocks: sampled block address → (bucket, size), open addressing with
//!   linear probing and backward-shift deletion, so `free` can credit it.
//!
//! `free` first looks at a counting filter of 64 Ki atomic counters indexed
//! by the address hash: a block that was never sampled (nearly all of them)
//! costs one atomic load and no lock.
//!
//! # Output
//!
//! At exit (from init's exit hook; only in the process that read the
//! setting, not in a fork child) and on
//! `goheap_profile_dump()`: raw syscalls and a stack buffer. `%p` in the path
//! is replaced by the process id.
//!
//! # Files
//!
//! `sample.rs` decides which allocations are sampled, `stack.rs` captures
//! their stacks, `tables.rs` keeps the counts, `write.rs` writes the
//! profile; this file has the switch and the hooks.

mod sample;
mod stack;
mod tables;
mod write;

pub use stack::add_entry_points;
pub use tables::mutex;
pub use write::{at_exit, dump};

use crate::platform::os;
use crate::platform::tls::prof_busy as busy;
use crate::semantics::{self, AlignedCore};
use crate::settings;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use sample::should_sample;
use tables::{filter_says_maybe, PROF};

/// Profiling is on (the only thing the hooks look at).
static ON: AtomicBool = AtomicBool::new(false);
/// The process that enabled profiling writes the profile at exit.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

/// Frames kept per stack.
pub const MAX_DEPTH: usize = 64;

#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Switch sampling on if `GOHEAP_PROFILE` names a file (start-up).
pub fn enable() {
    if settings::PROFILE_PATH.get().is_some() {
        if !stack::load_unwinder() {
            os::write_stderr(b"goheap: GOHEAP_PROFILE: no stack unwinder (libgcc_s.so.1) could be loaded; profiling is off\n");
            return;
        }
        OWNER_PID.store(os::getpid(), Ordering::Relaxed);
        stack::add_entry_points(&[
            malloc as *const () as usize,
            calloc as *const () as usize,
            realloc as *const () as usize,
            reallocarray as *const () as usize,
            posix_memalign as *const () as usize,
            aligned as *const () as usize,
        ]);
        ON.store(true, Ordering::Release);
    }
}

/// Whether this process is the one that switched profiling on.
fn owner() -> bool {
    OWNER_PID.load(Ordering::Relaxed) == os::getpid()
}

// ---------------------------------------------------------------------------
// The hooks called while profiling is on.

/// After an allocation of `size` bytes returned `p` (maybe null).
#[inline(always)]
pub fn note_alloc(p: *mut c_void, size: usize) {
    if !p.is_null() && should_sample(size) {
        record(p as usize, size);
    }
}

/// Before `p` is freed (or handed to realloc): forget its sample, if any.
/// Returns what was removed (bucket, size) so a failed realloc can put it back.
#[inline]
pub fn note_free(p: *mut c_void) -> Option<(u32, usize)> {
    let addr = p as usize;
    if p.is_null() || !filter_says_maybe(addr) {
        return None;
    }
    remove(addr)
}

/// A failed realloc left `p` live: restore the sample `note_free` removed.
pub fn restore(p: *mut c_void, (bucket, size): (u32, usize)) {
    let mut t = PROF.lock();
    let t = &mut *t;
    if t.insert_block(p as usize, bucket, size) {
        let b = t.bucket(bucket);
        // SAFETY: bucket ids come from the table; buckets are never freed.
        unsafe {
            (*b).free_objs -= 1;
            (*b).free_bytes -= size as u64;
        }
    }
}

// The hooks are never inlined, so each has a frame of its own that
// `capture` recognises even when an entry point reached it by a tail call.

#[inline(never)]
pub fn malloc(size: usize) -> *mut c_void {
    let p = semantics::malloc(size);
    note_alloc(p, size);
    p
}

#[inline(never)]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    let p = semantics::calloc(n, size);
    note_alloc(p, n.wrapping_mul(size));
    p
}

/// # Safety
/// As `goheap_free`.
pub unsafe fn free(p: *mut c_void) {
    note_free(p);
    // SAFETY: forwarded contract.
    unsafe { semantics::free(p) }
}

/// realloc is a free of the old block and an allocation of the new one.
///
/// # Safety
/// As `goheap_realloc`.
#[inline(never)]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // Forget the old block before it can be freed (and its address reused
    // and sampled by another thread).
    let old = note_free(p);
    // SAFETY: forwarded contract.
    let q = unsafe { semantics::realloc(p, size) };
    if q.is_null() {
        if let Some(o) = old {
            if size != 0 {
                // Failed: p is untouched and still live.
                restore(p, o);
            }
        }
        return q;
    }
    note_alloc(q, size);
    q
}

/// # Safety
/// As `goheap_reallocarray`.
#[inline(never)]
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        // SAFETY: forwarded contract (fails with ENOMEM, p untouched).
        None => unsafe { semantics::reallocarray(p, n, size) },
    }
}

/// # Safety
/// As `goheap_posix_memalign`.
#[inline(never)]
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: forwarded contract.
    let rc = unsafe { semantics::posix_memalign(out, align, size, semantics::aligned) };
    if rc == 0 {
        // SAFETY: on success *out holds the block.
        note_alloc(unsafe { *out }, size);
    }
    rc
}

/// The aligned allocators (`aligned_alloc`, `memalign`, `valloc`, `pvalloc`):
/// `f(align, size, core)` allocates `size` bytes.
#[inline(never)]
pub fn aligned(align: usize, size: usize, f: fn(usize, usize, AlignedCore) -> *mut c_void) -> *mut c_void {
    let p = f(align, size, semantics::aligned);
    note_alloc(p, size);
    p
}

#[cold]
#[inline(never)]
fn record(addr: usize, size: usize) {
    if busy::get() != 0 {
        return;
    }
    busy::set(1);
    let mut stack = [0usize; MAX_DEPTH];
    let depth = stack::capture(&mut stack);
    {
        let mut t = PROF.lock();
        t.add_sample(addr, size, &stack[..depth]);
    }
    busy::set(0);
}

fn remove(addr: usize) -> Option<(u32, usize)> {
    let mut t = PROF.lock();
    let t = &mut *t;
    let (bucket, size) = t.remove_block(addr)?;
    let b = t.bucket(bucket);
    // SAFETY: bucket ids come from the table; buckets are never freed.
    unsafe {
        (*b).free_objs += 1;
        (*b).free_bytes += size as u64;
    }
    Some((bucket, size))
}
