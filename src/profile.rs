//! The sampled heap profiler (`GOHEAP_PROFILE=FILE`), after Go's
//! MemProfileRate: on average one allocation per `GOHEAP_PROFILE_RATE` bytes
//! (default 512 KiB) is recorded with its call stack, and the profile is
//! written in the gperftools heap-profile text format (`heap_v2/<rate>`)
//! that `pprof` reads and unsamples.
//!
//! # Cost when off
//!
//! `ffi` calls in here only after one relaxed load of `ON` at the top of each
//! allocation entry point and of `free`; nothing else is touched.
//!
//! # Sampling
//!
//! As Go's mcache.nextSample: each thread counts down the bytes until its
//! next sample, a draw from an exponential distribution with mean `rate`.
//! An allocation of `size` bytes is sampled when it takes the count to zero
//! or below; by memorylessness it is sampled with probability
//! 1 - exp(-size/rate), the probability pprof's heap_v2 unsampling assumes.
//! The count and the thread's PRNG state live in initial-exec TLS words of
//! their own (like the cache word in `cache.rs`): no `thread_local!`, no
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
//! starts after the last frame whose function is one of the exported entry
//! points (`ffi::entry_points`) or the hooks below (compilers turn some
//! entry points into tail calls, leaving no frame of their own).
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
//! At exit (`.fini_array`, like the statistics summary; only in the process
//! that read the setting, not in a fork child) and on
//! `goheap_profile_dump()`: raw syscalls and a stack buffer. `%p` in the path
//! is replaced by the process id.

use crate::lock::Locked;
use crate::os;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU16, AtomicUsize, Ordering};

/// Profiling is on (the only thing the entry points look at).
pub static ON: AtomicBool = AtomicBool::new(false);
/// Mean bytes between samples (Go's MemProfileRate; 1 = every allocation).
pub static RATE: AtomicUsize = AtomicUsize::new(512 * 1024);
/// The process that enabled profiling writes the profile at exit.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

const PATH_MAX: usize = 4096;
/// `GOHEAP_PROFILE`, NUL-terminated; written once while settings are read.
static mut PATH: [u8; PATH_MAX] = [0; PATH_MAX];

/// Frames kept per stack.
pub const MAX_DEPTH: usize = 64;
/// Frames looked at for goheap's own entry points before the kept ones.
const SKIP_WINDOW: usize = 16;

#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// `GOHEAP_PROFILE=path`: remember the path and switch sampling on.
/// False if the path is empty or too long.
pub fn enable(path: &[u8]) -> bool {
    if path.is_empty() || path.len() >= PATH_MAX {
        return false;
    }
    // SAFETY: settings are read once, before profiling is on, so nothing
    // reads PATH concurrently; the copy fits (checked above).
    unsafe {
        let dst = &mut *core::ptr::addr_of_mut!(PATH);
        dst[..path.len()].copy_from_slice(path);
        dst[path.len()] = 0;
    }
    // SAFETY: getpid has no preconditions.
    OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    ON.store(true, Ordering::Release);
    true
}

// ---------------------------------------------------------------------------
// Per-thread state: three initial-exec TLS words (see the module comment).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
macro_rules! tls_word {
    ($m:ident, $sym:literal) => {
        mod $m {
            core::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".p2align 3",
                concat!(".globl ", $sym),
                concat!(".hidden ", $sym),
                concat!(".type ", $sym, ",@object"),
                concat!(".size ", $sym, ",8"),
                concat!($sym, ":"),
                ".zero 8",
                ".popsection",
            );
            #[inline(always)]
            pub fn get() -> u64 {
                let v: u64;
                // SAFETY: reads this thread's slot through its initial-exec TP offset.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v}]",
                        v = out(reg) v,
                        options(nostack, readonly, preserves_flags)
                    );
                }
                v
            }
            #[inline(always)]
            pub fn set(val: u64) {
                // SAFETY: writes this thread's slot through its initial-exec TP offset.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {t}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t}], {v}",
                        t = out(reg) _,
                        v = in(reg) val,
                        options(nostack, preserves_flags)
                    );
                }
            }
        }
    };
}

/// Elsewhere: a const-initialised `thread_local!` without Drop, which
/// registers no destructor (as `cache::tls`).
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
macro_rules! tls_word {
    ($m:ident, $sym:literal) => {
        mod $m {
            use core::cell::Cell;
            std::thread_local! { static SLOT: Cell<u64> = const { Cell::new(0) }; }
            #[inline(always)]
            pub fn get() -> u64 {
                SLOT.with(|s| s.get())
            }
            #[inline(always)]
            pub fn set(v: u64) {
                SLOT.with(|s| s.set(v))
            }
        }
    };
}

// Bytes left until this thread's next sample (signed, stored as u64).
tls_word!(next_sample, "__goheap_tls_prof_next");
// xorshift64* state; 0 = this thread has not drawn a countdown yet.
tls_word!(rng, "__goheap_tls_prof_rng");
// Non-zero while this thread is sampling (the re-entrancy guard).
tls_word!(busy, "__goheap_tls_prof_busy");

fn next_random() -> u64 {
    let mut x = rng::get();
    if x == 0 {
        // Seed from the clock and this thread's stack address.
        let local = 0u8;
        x = os::nanotime() ^ ((&local as *const u8 as u64).rotate_left(32)) ^ 0x9e37_79b9_7f4a_7c15;
        if x == 0 {
            x = 1;
        }
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng::set(x);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

const LN2: f64 = core::f64::consts::LN_2;
const RANDOM_BITS: u32 = 26;

/// -ln(q / 2^26) for q in 1..=2^26, without libm: ln(q) = e·ln2 + ln(m) with
/// m = q / 2^e in [1, 2), and ln(m) = 2·atanh(t), t = (m-1)/(m+1) <= 1/3,
/// from its series to t^9 (error below 2e-5).
fn neg_ln_unit(q: u64) -> f64 {
    let e = 63 - q.leading_zeros();
    let m = q as f64 / (1u64 << e) as f64;
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    (RANDOM_BITS - e) as f64 * LN2 - ln_m
}

/// An exponentially distributed byte count with mean `rate` (Go's fastexprand).
fn draw_countdown(rate: usize) -> i64 {
    let q = (next_random() >> (64 - RANDOM_BITS)) + 1;
    let rate = rate.min(1 << 40) as f64;
    (neg_ln_unit(q) * rate) as i64 + 1
}

/// Count `size` bytes against this thread's countdown: true if this
/// allocation is to be sampled.
#[inline(always)]
fn should_sample(size: usize) -> bool {
    let left = next_sample::get() as i64;
    let size = size.min(i64::MAX as usize / 2) as i64;
    if left > size {
        next_sample::set((left - size) as u64);
        return false;
    }
    sample_due(size)
}

#[cold]
fn sample_due(size: i64) -> bool {
    let rate = RATE.load(Ordering::Relaxed);
    if rate <= 1 {
        return true;
    }
    if rng::get() == 0 {
        // This thread's first allocation: draw its countdown and apply it.
        let left = draw_countdown(rate);
        if left > size {
            next_sample::set((left - size) as u64);
            return false;
        }
    }
    next_sample::set(draw_countdown(rate) as u64);
    true
}

// ---------------------------------------------------------------------------
// The hooks `ffi` calls when profiling is on.

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
    if p.is_null() || FILTER[filter_slot(addr)].load(Ordering::Relaxed) == 0 {
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
    let p = crate::ffi::malloc_impl(size);
    note_alloc(p, size);
    p
}

#[inline(never)]
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    let p = crate::ffi::calloc_impl(n, size);
    note_alloc(p, n.wrapping_mul(size));
    p
}

/// # Safety
/// As `goheap_free`.
pub unsafe fn free(p: *mut c_void) {
    note_free(p);
    // SAFETY: forwarded contract.
    unsafe { crate::ffi::free_impl(p) }
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
    let q = unsafe { crate::ffi::realloc_impl(p, size) };
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
        None => unsafe { crate::ffi::reallocarray_impl(p, n, size) },
    }
}

/// # Safety
/// As `goheap_posix_memalign`.
#[inline(never)]
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: forwarded contract.
    let rc = unsafe { crate::ffi::posix_memalign_impl(out, align, size) };
    if rc == 0 {
        // SAFETY: on success *out holds the block.
        note_alloc(unsafe { *out }, size);
    }
    rc
}

/// The aligned allocators (`aligned_alloc`, `memalign`, `valloc`, `pvalloc`):
/// `f(align, size)` allocates `size` bytes.
#[inline(never)]
pub fn aligned(align: usize, size: usize, f: fn(usize, usize) -> *mut c_void) -> *mut c_void {
    let p = f(align, size);
    note_alloc(p, size);
    p
}

// ---------------------------------------------------------------------------
// Stack capture.

type UnwindContext = c_void;
type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;
const URC_NO_REASON: c_int = 0;
const URC_NORMAL_STOP: c_int = 4;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetRegionStart(ctx: *mut UnwindContext) -> usize;
}

struct Trace {
    pcs: [usize; SKIP_WINDOW + MAX_DEPTH],
    n: usize,
    /// Index of the last frame (in the skip window) that is a goheap entry point.
    last_entry: Option<usize>,
    entries: [usize; crate::ffi::NUM_ENTRY_POINTS + NUM_HOOKS],
}

const NUM_HOOKS: usize = 11;

/// goheap's entry points and the allocation hooks above.
fn entry_points() -> [usize; crate::ffi::NUM_ENTRY_POINTS + NUM_HOOKS] {
    let mut e = [0usize; crate::ffi::NUM_ENTRY_POINTS + NUM_HOOKS];
    e[..crate::ffi::NUM_ENTRY_POINTS].copy_from_slice(&crate::ffi::entry_points());
    e[crate::ffi::NUM_ENTRY_POINTS..].copy_from_slice(&[
        malloc as *const () as usize,
        calloc as *const () as usize,
        realloc as *const () as usize,
        reallocarray as *const () as usize,
        posix_memalign as *const () as usize,
        aligned as *const () as usize,
        crate::hooks::malloc as *const () as usize,
        crate::hooks::calloc as *const () as usize,
        crate::hooks::realloc as *const () as usize,
        crate::hooks::reallocarray as *const () as usize,
        crate::ffi::malloc_slow as *const () as usize,
    ]);
    e
}

extern "C" fn trace_frame(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Trace that `capture` passed, live for the whole walk.
    let t = unsafe { &mut *(arg as *mut Trace) };
    // SAFETY: ctx is the unwinder's context for the current frame.
    let (pc, start) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetRegionStart(ctx)) };
    if pc == 0 {
        return URC_NORMAL_STOP;
    }
    if t.n < SKIP_WINDOW && start != 0 && t.entries.contains(&start) {
        t.last_entry = Some(t.n);
    }
    t.pcs[t.n] = pc;
    t.n += 1;
    // Stop once MAX_DEPTH frames past the skip window's last entry are in.
    let keep_from = t.last_entry.map_or(0, |i| i + 1);
    if t.n == t.pcs.len() || (t.n >= SKIP_WINDOW && t.n - keep_from >= MAX_DEPTH) {
        return URC_NORMAL_STOP;
    }
    URC_NO_REASON
}

/// The caller's stack into `out`, goheap's own frames cut off: its depth.
#[inline(never)]
fn capture(out: &mut [usize; MAX_DEPTH]) -> usize {
    let mut t = Trace {
        pcs: [0; SKIP_WINDOW + MAX_DEPTH],
        n: 0,
        last_entry: None,
        entries: entry_points(),
    };
    // SAFETY: trace_frame matches the unwinder's callback type and t
    // outlives the call.
    unsafe { _Unwind_Backtrace(trace_frame, &mut t as *mut Trace as *mut c_void) };
    // Without a recognised entry point (never expected), keep everything
    // but this function's own frames.
    let from = t.last_entry.map_or(2.min(t.n), |i| i + 1);
    let depth = (t.n - from).min(MAX_DEPTH);
    out[..depth].copy_from_slice(&t.pcs[from..from + depth]);
    depth
}

#[cold]
#[inline(never)]
fn record(addr: usize, size: usize) {
    if busy::get() != 0 {
        return;
    }
    busy::set(1);
    let mut stack = [0usize; MAX_DEPTH];
    let depth = capture(&mut stack);
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

// ---------------------------------------------------------------------------
// The tables.

const FILTER_BITS: u32 = 16;
/// How many live sampled blocks hash to each slot (see the module comment).
static FILTER: [AtomicU16; 1 << FILTER_BITS] = [const { AtomicU16::new(0) }; 1 << FILTER_BITS];

#[inline(always)]
fn addr_hash(addr: usize) -> u64 {
    ((addr as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn filter_slot(addr: usize) -> usize {
    (addr_hash(addr) >> (64 - FILTER_BITS)) as usize
}

/// A distinct stack and its counts (raw, sampled).
#[repr(C)]
struct Bucket {
    hash: u64,
    depth: usize,
    alloc_objs: u64,
    alloc_bytes: u64,
    free_objs: u64,
    free_bytes: u64,
    // followed by `depth` frames
}

impl Bucket {
    fn frames(&self) -> &[usize] {
        // SAFETY: every bucket is allocated with room for `depth` frames
        // right after the header (see Tables::new_bucket).
        unsafe { core::slice::from_raw_parts((self as *const Bucket).add(1) as *const usize, self.depth) }
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Block {
    addr: usize,
    bucket: u32,
    size: usize,
}

const CHUNK: usize = 1 << 20;

struct Tables {
    /// Bucket addresses by id (ids start at 1), an OS-allocated array.
    buckets: *mut usize,
    nbuckets: usize,
    bucket_cap: usize,
    /// Open-addressing index: bucket ids, 0 = empty.
    index: *mut u32,
    index_cap: usize,
    /// Bump allocation of buckets.
    chunk_next: usize,
    chunk_end: usize,
    /// Sampled live blocks; addr 0 = empty.
    blocks: *mut Block,
    blocks_cap: usize,
    nblocks: usize,
    /// Set when the OS refused memory: sampling stops growing the tables.
    full: bool,
}

// SAFETY: the raw pointers are only used under the PROF lock.
unsafe impl Send for Tables {}

static PROF: Locked<Tables> = Locked::new(Tables {
    buckets: core::ptr::null_mut(),
    nbuckets: 0,
    bucket_cap: 0,
    index: core::ptr::null_mut(),
    index_cap: 0,
    chunk_next: 0,
    chunk_end: 0,
    blocks: core::ptr::null_mut(),
    blocks_cap: 0,
    nblocks: 0,
    full: false,
});

/// Zeroed memory for `n` values of T from the OS layer, or null.
fn os_array<T>(n: usize) -> *mut T {
    let bytes = (n * core::mem::size_of::<T>()).next_multiple_of(os::OS_PAGE);
    os::alloc(bytes).unwrap_or(0) as *mut T
}

fn os_array_free<T>(p: *mut T, n: usize) {
    if !p.is_null() {
        os::free(p as usize, (n * core::mem::size_of::<T>()).next_multiple_of(os::OS_PAGE));
    }
}

fn stack_hash(frames: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h | 1
}

impl Tables {
    fn bucket(&self, id: u32) -> *mut Bucket {
        // SAFETY: ids handed out are 1..=nbuckets, all stored in the array.
        unsafe { *self.buckets.add(id as usize) as *mut Bucket }
    }

    /// The id of the bucket for `frames`, created if new; 0 if out of memory.
    fn find_bucket(&mut self, frames: &[usize]) -> u32 {
        let h = stack_hash(frames);
        if self.index_cap != 0 {
            let mask = self.index_cap - 1;
            let mut i = h as usize & mask;
            loop {
                // SAFETY: i < index_cap, the index array's length.
                let id = unsafe { *self.index.add(i) };
                if id == 0 {
                    break;
                }
                // SAFETY: ids in the index are live buckets.
                let b = unsafe { &*self.bucket(id) };
                if b.hash == h && b.frames() == frames {
                    return id;
                }
                i = (i + 1) & mask;
            }
        }
        self.new_bucket(h, frames)
    }

    fn new_bucket(&mut self, h: u64, frames: &[usize]) -> u32 {
        if self.full {
            return 0;
        }
        // Room in the id array and in the index (kept at most half full).
        if self.nbuckets + 1 >= self.bucket_cap {
            let cap = (self.bucket_cap * 2).max(1024);
            let a = os_array::<usize>(cap);
            if a.is_null() {
                self.full = true;
                return 0;
            }
            if !self.buckets.is_null() {
                // SAFETY: both arrays hold at least nbuckets + 1 entries.
                unsafe { core::ptr::copy_nonoverlapping(self.buckets, a, self.nbuckets + 1) };
            }
            os_array_free(self.buckets, self.bucket_cap);
            self.buckets = a;
            self.bucket_cap = cap;
        }
        if (self.nbuckets + 1) * 2 > self.index_cap && !self.grow_index() {
            self.full = true;
            return 0;
        }
        let bytes = core::mem::size_of::<Bucket>() + core::mem::size_of_val(frames);
        if self.chunk_next + bytes > self.chunk_end {
            match os::alloc(CHUNK) {
                Some(c) => {
                    self.chunk_next = c;
                    self.chunk_end = c + CHUNK;
                }
                None => {
                    self.full = true;
                    return 0;
                }
            }
        }
        let b = self.chunk_next as *mut Bucket;
        self.chunk_next += bytes;
        // SAFETY: b is fresh, zeroed chunk memory with room for the header and the frames.
        unsafe {
            b.write(Bucket { hash: h, depth: frames.len(), alloc_objs: 0, alloc_bytes: 0, free_objs: 0, free_bytes: 0 });
            core::ptr::copy_nonoverlapping(frames.as_ptr(), b.add(1) as *mut usize, frames.len());
        }
        self.nbuckets += 1;
        let id = self.nbuckets as u32;
        // SAFETY: id < bucket_cap (grown above).
        unsafe { *self.buckets.add(id as usize) = b as usize };
        self.index_put(h, id);
        id
    }

    fn index_put(&mut self, h: u64, id: u32) {
        let mask = self.index_cap - 1;
        let mut i = h as usize & mask;
        // SAFETY: i < index_cap; the index is at most half full, so a free slot exists.
        unsafe {
            while *self.index.add(i) != 0 {
                i = (i + 1) & mask;
            }
            *self.index.add(i) = id;
        }
    }

    fn grow_index(&mut self) -> bool {
        let cap = (self.index_cap * 2).max(2048);
        let a = os_array::<u32>(cap);
        if a.is_null() {
            return false;
        }
        let (old, old_cap) = (self.index, self.index_cap);
        self.index = a;
        self.index_cap = cap;
        for id in 1..=self.nbuckets as u32 {
            // SAFETY: live bucket.
            let h = unsafe { (*self.bucket(id)).hash };
            self.index_put(h, id);
        }
        os_array_free(old, old_cap);
        true
    }

    fn add_sample(&mut self, addr: usize, size: usize, frames: &[usize]) {
        let id = self.find_bucket(frames);
        if id == 0 {
            return;
        }
        if !self.insert_block(addr, id, size) {
            return;
        }
        // SAFETY: a live bucket.
        let b = unsafe { &mut *self.bucket(id) };
        b.alloc_objs += 1;
        b.alloc_bytes += size as u64;
    }

    /// Record a live sampled block; false if out of memory.
    fn insert_block(&mut self, addr: usize, bucket: u32, size: usize) -> bool {
        if (self.nblocks + 1) * 2 > self.blocks_cap && !self.grow_blocks() {
            return false;
        }
        let mask = self.blocks_cap - 1;
        let mut i = addr_hash(addr) as usize & mask;
        // SAFETY: i < blocks_cap; the table is at most half full.
        unsafe {
            loop {
                let e = &mut *self.blocks.add(i);
                if e.addr == 0 || e.addr == addr {
                    if e.addr == 0 {
                        self.nblocks += 1;
                        FILTER[filter_slot(addr)].fetch_add(1, Ordering::Relaxed);
                    }
                    *e = Block { addr, bucket, size };
                    return true;
                }
                i = (i + 1) & mask;
            }
        }
    }

    fn grow_blocks(&mut self) -> bool {
        let cap = (self.blocks_cap * 2).max(4096);
        let a = os_array::<Block>(cap);
        if a.is_null() {
            return false;
        }
        let (old, old_cap) = (self.blocks, self.blocks_cap);
        self.blocks = a;
        self.blocks_cap = cap;
        let mask = cap - 1;
        for j in 0..old_cap {
            // SAFETY: j < old_cap, the old table's length.
            let e = unsafe { *old.add(j) };
            if e.addr != 0 {
                let mut i = addr_hash(e.addr) as usize & mask;
                // SAFETY: i < cap; the new table has room.
                unsafe {
                    while (*a.add(i)).addr != 0 {
                        i = (i + 1) & mask;
                    }
                    *a.add(i) = e;
                }
            }
        }
        os_array_free(old, old_cap);
        true
    }

    /// Remove `addr`'s record, keeping every probe chain intact
    /// (backward-shift deletion).
    fn remove_block(&mut self, addr: usize) -> Option<(u32, usize)> {
        if self.blocks_cap == 0 {
            return None;
        }
        let mask = self.blocks_cap - 1;
        let mut i = addr_hash(addr) as usize & mask;
        // SAFETY: all indices are masked to the table's length.
        unsafe {
            loop {
                let e = *self.blocks.add(i);
                if e.addr == 0 {
                    return None;
                }
                if e.addr == addr {
                    break;
                }
                i = (i + 1) & mask;
            }
            let found = *self.blocks.add(i);
            let mut hole = i;
            let mut j = i;
            loop {
                j = (j + 1) & mask;
                let e = *self.blocks.add(j);
                if e.addr == 0 {
                    break;
                }
                let home = addr_hash(e.addr) as usize & mask;
                // e may move into the hole if its home is not in (hole, j].
                let between = if hole <= j { home > hole && home <= j } else { home > hole || home <= j };
                if !between {
                    *self.blocks.add(hole) = e;
                    hole = j;
                }
            }
            (*self.blocks.add(hole)).addr = 0;
            self.nblocks -= 1;
            FILTER[filter_slot(addr)].fetch_sub(1, Ordering::Relaxed);
            Some((found.bucket, found.size))
        }
    }
}

/// Fork: the table lock is taken around fork like the heap's.
pub fn mutex() -> &'static crate::lock::Mutex {
    &PROF.mutex
}

// ---------------------------------------------------------------------------
// Writing the profile.

struct Writer {
    fd: c_int,
    buf: [u8; 4096],
    len: usize,
    failed: bool,
}

impl Writer {
    fn flush(&mut self) {
        let mut off = 0;
        while off < self.len && !self.failed {
            // SAFETY: the pointer and length describe live bytes of buf.
            let n = unsafe { libc::write(self.fd, self.buf[off..].as_ptr() as *const c_void, self.len - off) };
            if n < 0 && os::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                self.failed = true;
                if n == 0 {
                    os::set_errno(libc::EIO);
                }
                break;
            }
            off += n as usize;
        }
        self.len = 0;
    }

    fn s(&mut self, b: &[u8]) -> &mut Self {
        for &c in b {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = c;
            self.len += 1;
        }
        self
    }

    /// `v` in decimal, right-aligned in `width` columns.
    fn n(&mut self, v: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let len = crate::stats::fmt_u64(v, &mut digits);
        for _ in len..width {
            self.s(b" ");
        }
        self.s(&digits[..len])
    }

    fn hex(&mut self, v: usize) -> &mut Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        let mut x = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[x & 15];
            x >>= 4;
            if x == 0 {
                break;
            }
        }
        self.s(b"0x").s(&d[i..])
    }
}

/// One line in gperftools' format: in-use, then allocated, objects: bytes.
fn counts_line(w: &mut Writer, inuse: (u64, u64), alloc: (u64, u64)) {
    w.n(inuse.0, 6).s(b": ").n(inuse.1, 8).s(b" [").n(alloc.0, 6).s(b": ").n(alloc.1, 8).s(b"] @");
}

fn write_profile(w: &mut Writer) {
    let t = PROF.lock();
    let (mut ao, mut ab, mut fo, mut fb) = (0u64, 0u64, 0u64, 0u64);
    for id in 1..=t.nbuckets as u32 {
        // SAFETY: live bucket.
        let b = unsafe { &*t.bucket(id) };
        ao += b.alloc_objs;
        ab += b.alloc_bytes;
        fo += b.free_objs;
        fb += b.free_bytes;
    }
    w.s(b"heap profile: ");
    counts_line(w, (ao - fo, ab - fb), (ao, ab));
    w.s(b" heap_v2/").n(RATE.load(Ordering::Relaxed) as u64, 0).s(b"\n");
    for id in 1..=t.nbuckets as u32 {
        // SAFETY: live bucket.
        let b = unsafe { &*t.bucket(id) };
        if b.alloc_objs == 0 {
            continue;
        }
        counts_line(w, (b.alloc_objs - b.free_objs, b.alloc_bytes - b.free_bytes), (b.alloc_objs, b.alloc_bytes));
        for &pc in b.frames() {
            w.s(b" ").hex(pc);
        }
        w.s(b"\n");
    }
    drop(t);
    w.s(b"\nMAPPED_LIBRARIES:\n");
    w.flush();
    // SAFETY: a NUL-terminated path; open has no other preconditions.
    let maps = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if maps < 0 {
        return;
    }
    loop {
        // SAFETY: reading into our own buffer, within its length.
        let n = unsafe { libc::read(maps, w.buf.as_mut_ptr() as *mut c_void, w.buf.len()) };
        if n < 0 && os::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        w.len = n as usize;
        w.flush();
        if w.failed {
            break;
        }
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(maps) };
}

/// Write the profile to `path` (None: the `GOHEAP_PROFILE` path).
/// Ok, or Err(errno).
pub fn dump(path: Option<&[u8]>) -> Result<(), c_int> {
    if !on() {
        return Err(libc::EINVAL);
    }
    let mut full = [0u8; PATH_MAX];
    let ok = match path {
        Some(p) => os::expand_pid(p, &mut full),
        None => {
            // SAFETY: PATH is written only before profiling is switched on.
            let p = unsafe { &*core::ptr::addr_of!(PATH) };
            let len = p.iter().position(|&c| c == 0).unwrap_or(0);
            os::expand_pid(&p[..len], &mut full)
        }
    };
    if !ok || full[0] == 0 {
        return Err(libc::ENAMETOOLONG);
    }
    // Whatever this thread allocates while writing (nothing, normally) is
    // not sampled: the table lock is held.
    let was_busy = busy::get();
    busy::set(1);
    // SAFETY: full is NUL-terminated.
    let fd = unsafe {
        libc::open(full.as_ptr() as *const libc::c_char, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644)
    };
    let r = if fd < 0 {
        Err(os::errno())
    } else {
        let mut w = Writer { fd, buf: [0; 4096], len: 0, failed: false };
        write_profile(&mut w);
        w.flush();
        let e = os::errno();
        // SAFETY: closing the descriptor opened above.
        let closed = unsafe { libc::close(fd) } == 0;
        if w.failed {
            Err(e)
        } else if !closed {
            Err(os::errno())
        } else {
            Ok(())
        }
    };
    busy::set(was_busy);
    r
}

/// At exit: write the profile, in the process that enabled it only (a fork
/// child that exits must not overwrite its parent's profile).
extern "C" fn at_exit() {
    // SAFETY: getpid has no preconditions.
    if on() && OWNER_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() } {
        let e = os::errno();
        if let Err(err) = dump(None) {
            os::set_errno(err);
            os::write_stderr(b"goheap: could not write the heap profile (GOHEAP_PROFILE)\n");
        }
        os::set_errno(e);
    }
}

#[used]
#[link_section = ".fini_array"]
static FINI_ARRAY: extern "C" fn() = at_exit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neg_ln_matches_std() {
        for q in [1u64, 2, 3, 7, 1000, 12345, 1 << 20, (1 << 26) - 1, 1 << 26] {
            let want = -((q as f64) / (1u64 << 26) as f64).ln();
            let got = neg_ln_unit(q);
            assert!((got - want).abs() < 1e-4, "q={q}: {got} vs {want}");
        }
    }

    #[test]
    fn countdowns_have_the_requested_mean() {
        let n = 200_000;
        let rate = 4096;
        let sum: i64 = (0..n).map(|_| draw_countdown(rate)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean / rate as f64 - 1.0).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn block_table_survives_insert_and_remove_in_any_order() {
        let mut t = Tables {
            buckets: core::ptr::null_mut(),
            nbuckets: 0,
            bucket_cap: 0,
            index: core::ptr::null_mut(),
            index_cap: 0,
            chunk_next: 0,
            chunk_end: 0,
            blocks: core::ptr::null_mut(),
            blocks_cap: 0,
            nblocks: 0,
            full: false,
        };
        let id = t.find_bucket(&[1, 2, 3]);
        assert_eq!(id, t.find_bucket(&[1, 2, 3]));
        assert_ne!(id, t.find_bucket(&[1, 2, 4]));
        // Addresses that collide in the low bits, inserted and removed interleaved.
        let addrs: std::vec::Vec<usize> = (1..20000usize).map(|i| 0x10_0000 + i * 4096 * 16).collect();
        for &a in &addrs {
            assert!(t.insert_block(a, id, a & 0xffff));
        }
        for &a in addrs.iter().step_by(2) {
            assert_eq!(t.remove_block(a), Some((id, a & 0xffff)));
        }
        for (k, &a) in addrs.iter().enumerate() {
            let want = if k % 2 == 0 { None } else { Some((id, a & 0xffff)) };
            assert_eq!(t.remove_block(a), want);
        }
        assert_eq!(t.nblocks, 0);
        assert!(FILTER.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }
}
