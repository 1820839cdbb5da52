//! mcache: the per-thread cache of spans, one active span per size class.
//!
//! Allocation from the active span needs no lock and no atomic
//! read-modify-write: the thread owns the span's alloc bits. When the span's
//! pass is over, the cache sweeps it (folding other threads' frees in) and
//! keeps using it if that made room; otherwise it takes another.
//!
//! # Held spans
//!
//! Go's mcache gives a used-up span back to mcentral; its objects are freed
//! by the garbage collector. With explicit free, most objects are freed by
//! the thread that allocated them, so a span this cache filled stays *held*
//! by it: frees into it by this thread are local (no atomic, no lock, the
//! same fast path as the active span), and only other threads' frees take
//! the remote path. Per class the cache keeps three lists of held spans:
//!
//! * `full`: used-up spans, oldest first. A local free that makes one worth
//!   reusing (see `Span::notify`) moves it to `ready`; refill also sweeps a
//!   few of the oldest for other threads' frees, but only when another
//!   thread freed into this cache's spans since a whole pass over the list
//!   last found nothing (`scan_full`): a thread nobody frees into never
//!   sweeps its full spans in vain.
//! * `ready`: worth reusing; refill takes these first.
//! * `empty`: no objects left, kept to be reused without any lock, up to
//!   `EMPTY_CAP` bytes per cache (see `empty_caps`); beyond that an emptied
//!   span goes back to mcentral (and the heap) at once. A program that
//!   frees its live set and builds it again (a round of requests, a
//!   compiler pass) gets its spans back from here rather than through
//!   mcentral's lock and the page heap, which costs several hundred
//!   instructions and a few shared cache lines per span. Empty spans of a
//!   cache that has not pushed or popped one for a whole scavenger tick
//!   are taken back by the background thread (`reclaim_empties`), so a
//!   thread that freed its data and went to sleep does not keep the
//!   memory; a thread about to grow the heap takes every cache's first.
//!
//! # Free stacks
//!
//! A bitmap finds free slots in address order, so a block freed behind the
//! allocation cursor waits for a later pass over its span, by then cold in
//! the CPU cache, while the cursor moves on to memory never touched (a
//! small heap then touches every page of every span it uses). A block this
//! thread frees into one of its spans behind the span's cursor (every slot
//! of a held span, whose pass is over) goes on its class's free stack
//! instead (up to `STACK_LEN` blocks and `STACK_BYTES` bytes per class, but
//! at least 2 blocks), and malloc takes the newest one first, as tcmalloc's
//! and jemalloc's thread caches do. A stacked block has its alloc bit clear, so a second
//! free of it is still caught as a double free, but it still counts in its
//! span's `alloc_count`, which keeps the span held. Before a held span is
//! given back (thread exit), its blocks come off the stack (`unstack`).
//! The cursor cannot meet a stacked block: it only moves forward until a
//! rewind, and rewinds run in a refill, which runs only when its class's
//! stack is empty (malloc pops first); `take_held` unstacks anyway, as a
//! guard. Blocks freed ahead of the active span's cursor skip the stack:
//! the cursor may reach them.
//!
//! Holding is bounded: beyond `HELD_CAP` bytes of full spans per cache, the
//! oldest full span of the class goes back to mcentral, so a thread that
//! stops allocating strands at most that much memory that other threads
//! free into (their frees land in its freed bits until it sweeps, exits,
//! or the span is handed back).
//!
//! The cache pointer lives in one thread-local word with no destructor (a
//! `thread_local!` with a destructor would make glibc call calloc). On
//! x86-64 Linux that word is accessed with the initial-exec TLS model, a
//! single %fs-relative load, instead of a `__tls_get_addr` call. Thread exit
//! is caught by a pthread key destructor, which hands the spans back.
//!
//! The word's values: 0 = this thread has no cache yet; 1 = this thread must
//! not create one (it is creating one right now, or its cache was already
//! torn down at exit): it allocates through the shared fallback cache under a
//! lock; anything else is the thread's cache.

mod empty;
mod registry;

use empty::EmptyStack;

pub use registry::{
    counts, create_thread_cache, current, fallback_mutex, list_mutex, reclaim_after_fork, reclaim_empties, stacked_counts, FALLBACK,
};

use crate::central;
use crate::heap::pagecache::PageCache;
use crate::heap::{self, scavenge};
use crate::platform::tls;
use crate::sizeclass::NUM_CLASSES;
use crate::span::{Owner, Span, SpanList, LIST_HELD_EMPTY, LIST_HELD_FULL, LIST_HELD_READY};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Bytes of used-up spans a cache holds before handing the oldest back.
const HELD_CAP: usize = 4 << 20;
/// Bytes of empty spans a cache keeps for reuse (`empty_caps`): enough for
/// a working set of a few hundred thousand small objects to be rebuilt
/// without mcentral, while the background thread takes them back from a
/// cache that stops using them.
const EMPTY_CAP: usize = 16 << 20;
/// Bytes of empty spans all caches keep together: what threads busy at
/// different times (a pool) can hold that others cannot reuse.
const EMPTY_TOTAL_CAP: usize = 32 << 20;
/// The bound per cache while no background thread can run (it alone gives
/// back the empty spans of an idle cache).
const EMPTY_CAP_NO_BACKGROUND: usize = 1 << 20;

/// Bytes on every cache's empty stacks (`empty_bytes` summed).
static KEPT_EMPTY: AtomicUsize = AtomicUsize::new(0);

/// Bytes of empty spans all thread caches keep (a hint).
pub fn kept_empty_bytes() -> usize {
    KEPT_EMPTY.load(Ordering::Relaxed)
}

/// The owner of empty spans another thread took from a cache and has not
/// given back yet (`Transit`): a real `Owner`, so that a misdirected free
/// into one counts there harmlessly, and neither a cache nor `UNOWNED`, so
/// that a fork child finds such spans in the page map and reclaims them
/// (`reclaim_after_fork`).
static TRANSIT: Owner = Owner::new();

/// Spans owned by `TRANSIT` right now.
static IN_TRANSIT: AtomicUsize = AtomicUsize::new(0);

/// `TRANSIT`'s address, the `owner` of spans in transit.
fn transit_owner() -> *mut u8 {
    &TRANSIT as *const Owner as *mut u8
}

/// Are spans in transit (for the fork child)?
fn in_transit() -> bool {
    IN_TRANSIT.load(Ordering::Relaxed) != 0
}

/// The fork child reclaimed every span in transit from the page map.
fn transit_reclaimed() {
    IN_TRANSIT.store(0, Ordering::Relaxed);
}

/// Empty spans another thread took from caches under the cache list's lock,
/// to give back to mcentral after dropping it (`Cache::reclaim_empty`).
/// Owned by `TRANSIT` in between.
struct Transit(*mut Span, usize);

impl Transit {
    const fn new() -> Transit {
        Transit(null_mut(), 0)
    }

    /// Put a chain from `take_stack` in transit.
    ///
    /// # Safety
    /// The chain is the caller's.
    unsafe fn add(&mut self, chain: *mut Span) {
        let mut s = chain;
        while !s.is_null() {
            // SAFETY: per the contract; the hand-off protocol (central.rs)
            // has the new owner stored before the sweep that follows in
            // `give_back`.
            unsafe {
                (*s).owner.store(transit_owner(), Ordering::SeqCst);
                let next = empty::link(s);
                if next.is_null() {
                    (*s).cold().evicted_by.store(self.0 as *mut u8, Ordering::Relaxed);
                }
                s = next;
            }
            IN_TRANSIT.fetch_add(1, Ordering::Relaxed);
            self.1 += 1;
        }
        if !chain.is_null() {
            self.0 = chain;
        }
    }

    /// Give every span in transit to mcentral. Call holding no goheap lock.
    fn give_back(self) {
        // SAFETY: spans in transit are ours (see `add`).
        unsafe { Cache::give_back(self.0) };
        IN_TRANSIT.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// How many bytes of empty spans a cache may keep, and all caches
/// together: `EMPTY_CAP` and `EMPTY_TOTAL_CAP` while the background thread
/// runs (a thirty-second and a sixteenth of the memory limit if that is
/// less). Before it has started, a cache keeps up to the amount of free
/// memory that asks for it (`scavenge::START_THRESHOLD`, counted over all
/// caches by `scavenge::note_free_memory`), so a program that rebuilds a
/// live set of a few MiB keeps its spans without a thread, and one that
/// keeps more than that gets the thread that takes them back once idle.
/// `EMPTY_CAP_NO_BACKGROUND` per cache while no thread can run (disabled,
/// a fork child's handler) or once address space ran out.
fn empty_caps() -> (usize, usize) {
    caps_for(
        scavenge::WORKER.load(Ordering::Relaxed),
        crate::settings::BACKGROUND.load(Ordering::Relaxed),
        heap::under_pressure(),
        crate::settings::MEMORY_LIMIT.load(Ordering::Relaxed),
    )
}

/// `empty_caps` for the background thread's state `worker`, the
/// `background` setting, address-space `pressure` and a memory `limit`
/// (0: none).
fn caps_for(worker: u8, background: bool, pressure: bool, limit: usize) -> (usize, usize) {
    if worker == scavenge::SUPPRESSED || !background || pressure {
        return (EMPTY_CAP_NO_BACKGROUND, usize::MAX);
    }
    let (cap, total_cap) = match limit {
        0 => (EMPTY_CAP, EMPTY_TOTAL_CAP),
        limit => ((limit / 32).clamp(EMPTY_CAP_NO_BACKGROUND, EMPTY_CAP), (limit / 16).min(EMPTY_TOTAL_CAP)),
    };
    if worker == scavenge::STARTED {
        (cap, total_cap)
    } else {
        (cap.min(scavenge::START_THRESHOLD), total_cap)
    }
}
/// Used-up spans a refill sweeps for other threads' frees before it asks
/// mcentral.
const FULL_SCAN: usize = 4;

/// Entries of a class's free stack (see "Free stacks").
const STACK_LEN: usize = 16;
/// Bytes a class's free stack may hold: its capacity is this over the
/// object size, between 2 and `STACK_LEN` objects.
const STACK_BYTES: usize = 16 << 10;

/// A block on a free stack: its address, and where its alloc bit is, so
/// reusing it needs no span lookup: `bit` is four times the address of its
/// span's bitmaps plus the slot index. The bitmaps start 16-byte aligned
/// and go in 16-byte pairs of words (alloc, freed) per 64 slots, so
/// `(bit >> 6) << 4` is the slot's alloc word and `bit & 63` its bit; a
/// free builds it with one address computation (`Span::bit_ref`).
#[derive(Clone, Copy)]
struct Stacked {
    ptr: usize,
    bit: usize,
}

/// A class's free stack, as byte offsets into its cache's record: the
/// first entry (`base`), the next free one (`top`; the stack is empty when
/// it equals `base`) and the end of its capacity (`limit`). Offsets rather
/// than a length, so a push or a pop reaches its entry with one add to the
/// record's address instead of scaling a class and a length; `u16`, so the
/// three fit the eight bytes a length and a capacity took (a free reads
/// `top` and `limit` from one line; the entries live apart, so malloc
/// indexes these with a plain scaled load).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Stack {
    top: u16,
    base: u16,
    limit: u16,
}

/// Bytes of a free stack entry, the step of `Stack::top`.
const ENTRY: u16 = core::mem::size_of::<Stacked>() as u16;

impl Stack {
    /// The empty stack of `class` holding up to `cap` entries (at most
    /// `STACK_LEN`: `limit` must not reach the next class's entries).
    const fn new(class: usize, cap: usize) -> Stack {
        assert!(cap <= STACK_LEN);
        let base = (core::mem::offset_of!(Cache, stacked) + class * STACK_LEN * ENTRY as usize) as u16;
        Stack { top: base, base, limit: base + (cap as u16) * ENTRY }
    }

    /// Blocks on the stack.
    fn len(&self) -> usize {
        ((self.top - self.base) / ENTRY) as usize
    }
}

// A `Stack` is eight bytes (one scaled load), and every offset into the
// record fits its fields.
const _: () = assert!(core::mem::size_of::<Stack>() == 8);
const _: () =
    assert!(core::mem::offset_of!(Cache, stacked) + core::mem::size_of::<[[Stacked; STACK_LEN]; NUM_CLASSES]>() <= u16::MAX as usize);

/// What `free_local_marked` did: freed the block, freed it and the span
/// must move lists (`held_span_freed`), or found it not allocated.
#[derive(PartialEq, Eq, Clone, Copy)]
enum LocalFree {
    Done,
    Notify,
    NotAllocated,
}

/// One class's held spans (see the module comment).
struct Held {
    ready: SpanList,
    empty: EmptyStack,
    full: SpanList,
    /// `scan_full`'s state: the owner's remote-free count when the last
    /// whole pass over `full` began that found nothing (no scan while the
    /// count still reads so), the count when the current pass began, and
    /// the spans this pass swept so far.
    dry_at: u64,
    pass_from: u64,
    pass_len: u32,
}

impl Held {
    const fn new() -> Held {
        Held { ready: SpanList::new(), empty: EmptyStack::new(), full: SpanList::new(), dry_at: 0, pass_from: 0, pass_len: 0 }
    }
}

// `Cache::used` has a bit per class.
const _: () = assert!(NUM_CLASSES <= 128);

/// `Owner` comes first: a span's `owner` is the address of its cache, and
/// other threads count their frees into the cache's spans there, on a line
/// of its own.
#[repr(C)]
pub struct Cache {
    owner: Owner,
    pub alloc: [*mut Span; NUM_CLASSES],
    /// Per class, blocks this thread freed into its held spans, newest last.
    stack: [Stack; NUM_CLASSES],
    stacked: [[Stacked; STACK_LEN]; NUM_CLASSES],
    held: [Held; NUM_CLASSES],
    held_bytes: usize,
    /// Bytes on the `empty` stacks, and the scavenger tick (`central::tick`)
    /// of this cache's last push or pop there. Atomic: the background
    /// thread reads both and may take the stacks (`reclaim_empty`).
    empty_bytes: AtomicUsize,
    empty_tick: AtomicU32,
    /// Bit `c` set: class `c` had an active span at some point (`used_classes`).
    used: u128,
    /// Pages and span records to make new spans from without the heap lock.
    pages: PageCache,
    /// Small-object mallocs and frees done through this cache (statistics,
    /// see `counts`). Plain counters, written only by the cache's thread
    /// (the fallback cache's under its lock), so counting costs one add on
    /// the fast paths; other threads read them racily (see stats.rs).
    /// A free onto a free stack counts nothing then: the block counts as
    /// freed while it is on the stack, and when it leaves it, a pop counts
    /// the malloc and the free together (`npop`), `unstack` the free.
    npop: u64,
    nmalloc: u64,
    pub nfree: u64,
    /// Nonzero while this cache's thread is changing it (`enter`/`leave`): a
    /// fork from a signal handler that interrupted such a change finds it
    /// here, as it finds a held lock, and the child keeps off the heap
    /// until the change is done (sigfork's side mode). Beside the counters
    /// the fast paths write anyway: no other cache line (checked below).
    /// A word of its own: a fast path stores it and then reads `nest`,
    /// and with both in one word the load waited for the store
    /// (`bench/tools/churn_ns random`: 12.6 ns a pair with a byte mark,
    /// 11.3 with a word).
    busy: u64,
    /// How many `enter`s are not yet left (see `enter`).
    nest: u64,
    /// False for the shared fallback cache, which gives spans back instead.
    holds: bool,
    next: *mut Cache,
    prev: *mut Cache,
}

// The fast paths' counters and busy mark share one cache line.
const _: () = assert!(core::mem::offset_of!(Cache, npop) / 64 == core::mem::offset_of!(Cache, busy) / 64);

// SAFETY: a cache is used by one thread at a time; the fallback one by whoever holds its lock.
unsafe impl Send for Cache {}

/// A span with no slots, standing in for "no span" so the fast path needs no
/// null check (Go's emptymspan). Never written.
static EMPTY_SPAN: Span = Span::empty();

#[inline(always)]
fn empty_span() -> *mut Span {
    &EMPTY_SPAN as *const Span as *mut Span
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

impl Cache {
    /// Stacks of no capacity, for a cache that holds no spans (`new`).
    const fn no_stacks() -> [Stack; NUM_CLASSES] {
        let mut st = [Stack { top: 0, base: 0, limit: 0 }; NUM_CLASSES];
        let mut class = 0;
        while class < NUM_CLASSES {
            st[class] = Stack::new(class, 0);
            class += 1;
        }
        st
    }

    pub const fn new() -> Cache {
        let mut c = Cache::zeroed();
        c.alloc = [&EMPTY_SPAN as *const Span as *mut Span; NUM_CLASSES];
        c.stack = Cache::no_stacks();
        c
    }

    /// A cache whose every byte is zero: the shared fallback cache's
    /// initial value (cache/registry.rs), so that its 24 KiB sit in `.bss`
    /// rather than `.data`, where the pointers to `EMPTY_SPAN` needed
    /// load-time relocations that dirtied a page of every process, and the
    /// rest was mapped in by fault-around. `make_usable` sets the active
    /// spans before its first allocation; its stacks of no capacity may
    /// stay zero (`top == base == limit`: nothing is pushed or popped).
    pub const fn zeroed() -> Cache {
        Cache {
            owner: Owner::new(),
            alloc: [null_mut(); NUM_CLASSES],
            stack: [Stack { top: 0, base: 0, limit: 0 }; NUM_CLASSES],
            stacked: [[Stacked { ptr: 0, bit: 0 }; STACK_LEN]; NUM_CLASSES],
            held: [const { Held::new() }; NUM_CLASSES],
            held_bytes: 0,
            empty_bytes: AtomicUsize::new(0),
            empty_tick: AtomicU32::new(0),
            used: 0,
            pages: PageCache::new(),
            holds: false,
            next: null_mut(),
            prev: null_mut(),
            nmalloc: 0,
            nfree: 0,
            npop: 0,
            busy: 0,
            nest: 0,
        }
    }

    /// Set the active spans of a `zeroed` cache to `EMPTY_SPAN` (the
    /// allocation paths read them without a null test); idempotent.
    #[inline]
    pub fn make_usable(&mut self) {
        if self.alloc[0].is_null() {
            self.alloc = [empty_span(); NUM_CLASSES];
        }
    }

    /// Make the record at `c` a thread's empty cache, writing each field in
    /// place: building a `Cache` (about 24 KiB) on the stack and copying it
    /// would touch five or six stack pages and the whole record on every
    /// thread's first malloc. The free stacks' entries are left as they are
    /// (every stack starts empty), so only a quarter of the record is written.
    ///
    /// # Safety
    /// `c` is valid for writes of a `Cache` and nobody else uses it.
    pub unsafe fn init_in_place(c: *mut Cache) {
        // SAFETY: per the contract; every field but `stacked` is written
        // before the record is used, and `stacked` entries are read only
        // below their stack's top, which starts at its base.
        unsafe {
            let empty = &EMPTY_SPAN as *const Span as *mut Span;
            for class in 0..NUM_CLASSES {
                core::ptr::addr_of_mut!((*c).alloc[class]).write(empty);
                let cap = if class == 0 { 0 } else { (STACK_BYTES / crate::sizeclass::CLASSES[class].size as usize).clamp(2, STACK_LEN) };
                core::ptr::addr_of_mut!((*c).stack[class]).write(Stack::new(class, cap));
                core::ptr::addr_of_mut!((*c).held[class]).write(Held::new());
            }
            core::ptr::addr_of_mut!((*c).owner).write(Owner::new());
            core::ptr::addr_of_mut!((*c).held_bytes).write(0);
            core::ptr::addr_of_mut!((*c).empty_bytes).write(AtomicUsize::new(0));
            core::ptr::addr_of_mut!((*c).empty_tick).write(AtomicU32::new(0));
            core::ptr::addr_of_mut!((*c).used).write(0);
            core::ptr::addr_of_mut!((*c).pages).write(PageCache::new());
            core::ptr::addr_of_mut!((*c).holds).write(true);
            core::ptr::addr_of_mut!((*c).next).write(null_mut());
            core::ptr::addr_of_mut!((*c).prev).write(null_mut());
            core::ptr::addr_of_mut!((*c).nmalloc).write(0);
            core::ptr::addr_of_mut!((*c).nfree).write(0);
            core::ptr::addr_of_mut!((*c).npop).write(0);
            core::ptr::addr_of_mut!((*c).busy).write(0);
            core::ptr::addr_of_mut!((*c).nest).write(0);
        }
    }

    /// Mark the cache as being changed by its thread, until the matching
    /// `leave`. Such a change may nest (a slow path can reach malloc again,
    /// e.g. when starting the scavenger thread), so it counts its depth in
    /// `nest`; `busy` then stays set until the outermost `leave`. The
    /// compiler fences keep the cache's own stores between the marks; a
    /// signal arrives between instructions, so no hardware fence is needed.
    #[inline(always)]
    fn enter(&mut self) {
        self.nest = self.nest.wrapping_add(1);
        self.busy = 1;
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }

    /// End a change begun by `enter`.
    #[inline(always)]
    fn leave(&mut self) {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        self.nest = self.nest.wrapping_sub(1);
        self.busy = self.nest;
    }

    /// `enter` for a change that calls nothing (the fast paths), so that
    /// nothing can nest inside it: it stores the mark without reading it.
    /// A read-modify-write of the mark would chain every malloc and free
    /// through memory, each waiting for the last one's store
    /// (`bench/tools/churn_ns random`: 12.7 ns a pair, 11.3 with these
    /// stores).
    #[inline(always)]
    fn enter_leaf(&mut self) {
        self.busy = 1;
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }

    /// End a change begun by `enter_leaf`: the mark goes back to what the
    /// changes it may sit inside left (`nest` is not written on the fast
    /// paths, so reading it waits for no recent store).
    #[inline(always)]
    fn leave_leaf(&mut self) {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        self.busy = self.nest;
    }

    /// Run `f`, a change of the cache that may call anything (a slow
    /// path), between `enter` and `leave`.
    #[inline(always)]
    pub fn changing<R>(&mut self, f: impl FnOnce(&mut Cache) -> R) -> R {
        self.enter();
        let r = f(self);
        self.leave();
        r
    }

    /// Run `f`, a change of the cache that calls nothing (a fast path),
    /// between `enter_leaf` and `leave_leaf`.
    #[inline(always)]
    pub fn leaf<R>(&mut self, f: impl FnOnce(&mut Cache) -> R) -> R {
        self.enter_leaf();
        let r = f(self);
        self.leave_leaf();
        r
    }

    /// (mallocs, frees) this cache counted (see `nmalloc`), for statistics.
    ///
    /// # Safety
    /// `c` is a live cache record. Its thread may be changing it: the
    /// counters and stack tops are read with volatile loads, and a torn or
    /// stale value is an accepted inaccuracy of the statistics.
    pub unsafe fn counts(c: *const Cache) -> (u64, u64) {
        // SAFETY: per the contract, a live record; plain words read whole.
        unsafe {
            let pops = core::ptr::read_volatile(core::ptr::addr_of!((*c).npop));
            let stacked: u64 = (0..NUM_CLASSES).map(|class| Cache::stacked(c, class)).sum();
            (
                core::ptr::read_volatile(core::ptr::addr_of!((*c).nmalloc)) + pops,
                core::ptr::read_volatile(core::ptr::addr_of!((*c).nfree)) + pops + stacked,
            )
        }
    }

    /// Blocks on `class`'s free stack of cache `c`, read as `counts` reads.
    ///
    /// # Safety
    /// As `counts`.
    pub unsafe fn stacked(c: *const Cache, class: usize) -> u64 {
        // SAFETY: forwarded contract; the stack is plain words read whole.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*c).stack[class])).len() as u64 }
    }

    /// Is the cache in the middle of a change (see `busy`)? For the fork
    /// child, on the forking thread.
    pub fn is_busy(&self) -> bool {
        self.busy != 0
    }

    fn owner_id(&mut self) -> *mut u8 {
        self as *mut Cache as *mut u8
    }

    /// An object of size class `class` from the free stack or the active
    /// span (malloc's fast path), or None if that needs the slow path.
    #[inline(always)]
    pub fn alloc_fast(&mut self, class: usize) -> Option<usize> {
        if let Some(p) = self.pop(class) {
            self.npop += 1;
            return Some(p);
        }
        // SAFETY: class < NUM_CLASSES (it comes from the size-class tables);
        // the active span is owned by this cache (or is EMPTY_SPAN, whose fast
        // path never writes).
        let sp = unsafe { &mut **self.alloc.get_unchecked(class) };
        let p = sp.next_free_fast()?;
        self.nmalloc += 1;
        Some(p)
    }

    /// `alloc_fast` telling also whether the object may hold old data
    /// (calloc's fast path): (address, needzero).
    #[inline(always)]
    pub fn alloc_fast_zero(&mut self, class: usize) -> Option<(usize, bool)> {
        if let Some(p) = self.pop(class) {
            self.npop += 1;
            return Some((p, true));
        }
        // SAFETY: as in `alloc_fast`.
        let sp = unsafe { &mut **self.alloc.get_unchecked(class) };
        let p = sp.next_free_fast()?;
        self.nmalloc += 1;
        Some((p, sp.cold().needzero))
    }

    /// Allocate an object of size class `class`: (address or 0, needzero).
    #[inline(always)]
    pub fn alloc(&mut self, class: usize) -> (usize, bool) {
        match self.alloc_fast_zero(class) {
            Some(r) => r,
            None => self.alloc_slow(class),
        }
    }

    /// The newest block on `class`'s free stack, allocated again.
    #[inline(always)]
    fn pop(&mut self, class: usize) -> Option<usize> {
        // SAFETY: class < NUM_CLASSES, as above.
        let st = unsafe { self.stack.get_unchecked_mut(class) };
        if st.top == st.base {
            return None;
        }
        st.top -= ENTRY;
        let top = st.top as usize;
        // SAFETY: base <= top < limit: the newest entry of this class's
        // stack, inside this record's `stacked` (pushed by `free_local_marked`).
        let e = unsafe { *((self as *const Cache as *const u8).add(top) as *const Stacked) };
        // SAFETY: the word of a span this cache holds (stacked blocks keep
        // their span held, see `unstack`); only the owner writes alloc words.
        let w = unsafe { &*(((e.bit >> 6) << 4) as *const core::sync::atomic::AtomicU64) };
        w.store(w.load(Ordering::Relaxed) | 1 << (e.bit & 63), Ordering::Relaxed);
        Some(e.ptr)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, class: usize) -> (usize, bool) {
        let r = self.refill(class);
        if r.0 != 0 {
            self.nmalloc += 1;
        }
        // The shared fallback cache runs under its lock; its caller polls.
        if !core::ptr::eq(self, FALLBACK.data_ptr()) {
            scavenge::poll();
        }
        r
    }

    fn refill(&mut self, class: usize) -> (usize, bool) {
        let s = self.alloc[class];
        if s != empty_span() {
            // SAFETY: the active span is owned by this cache.
            let sp = unsafe { &mut *s };
            if let Some(p) = sp.next_free() {
                return (p, sp.cold().needzero);
            }
            // End of the pass: take back what other threads (and this one)
            // freed, and go round again if that made room.
            sp.sweep();
            if sp.worth_rewinding() {
                sp.rewind();
                if let Some(p) = sp.next_free() {
                    return (p, sp.cold().needzero);
                }
            }
            self.alloc[class] = empty_span();
            self.retire(class, s);
        }
        let mut s = self.take_held(class);
        if s.is_null() {
            let owner = self.owner_id();
            // While empty spans are kept (here or in mcentral), a span is
            // first asked for without memory that is not resident (this
            // cache's page cache may hold fresh pages: they count as new);
            // if only such memory would do, the empty spans this cache
            // keeps, of other classes, go back first, and mcentral's, so
            // that their pages serve this class (a program moving from one
            // size to another does not grow by the old size's spans).
            let kept = kept_empty_bytes() != 0 || central::kept_empty_bytes() != 0;
            s = central::cache_span(class, owner, &mut self.pages, !kept, kept);
            if s.is_null() && kept {
                // Every cache's, this one's first (no lock needed for it).
                // Not from the fallback cache: its lock comes after the
                // cache list's in the global order.
                self.release_empty();
                if !core::ptr::eq(self, FALLBACK.data_ptr()) {
                    reclaim_empties(None);
                }
                s = central::cache_span(class, owner, &mut self.pages, true, true);
            }
            if s.is_null() {
                return (0, false);
            }
        }
        self.alloc[class] = s;
        self.used |= 1 << class;
        // SAFETY: a span owned by this cache with a free slot.
        let sp = unsafe { &mut *s };
        match sp.next_free() {
            Some(p) => (p, sp.cold().needzero),
            None => crate::error::fatal(b"thread cache activated a span with no free slot"),
        }
    }

    /// The used-up active span `s` of `class` goes on the full list, or
    /// back to mcentral if this cache does not hold spans.
    fn retire(&mut self, class: usize, s: *mut Span) {
        if !self.holds {
            // SAFETY: this cache owns s and drops it here.
            unsafe { central::uncache_span(s) };
            return;
        }
        // SAFETY: this cache owns s; it is on no list.
        unsafe {
            (*s).notify = (*s).rewind_below();
            self.held_bytes += (*s).bytes();
            self.held[class].full.push_back(s, LIST_HELD_FULL);
        }
        while self.held_bytes > HELD_CAP {
            let v = self.held[class].full.pop();
            if v.is_null() {
                break;
            }
            self.unstack(class, v);
            // SAFETY: a held span of this cache, now off its list.
            unsafe {
                self.held_bytes -= (*v).bytes();
                (*v).notify = 0;
                (*v).cold().evicted_by.store(self.owner_id(), Ordering::Relaxed);
                central::uncache_span(v);
            }
        }
    }

    /// A held span of `class` to allocate from next, swept and rewound, or
    /// null: ready spans first, then empty ones, then the oldest few full
    /// ones if other threads' frees made room in one.
    fn take_held(&mut self, class: usize) -> *mut Span {
        let h = &mut self.held[class];
        let mut s = h.ready.pop();
        if s.is_null() {
            s = h.empty.pop();
            if !s.is_null() {
                self.empty_tick.store(central::tick(), Ordering::Relaxed);
                // SAFETY: a held span of this cache.
                let bytes = unsafe { (*s).bytes() };
                self.empty_bytes.fetch_sub(bytes, Ordering::Relaxed);
                KEPT_EMPTY.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
        if s.is_null() {
            s = self.scan_full(class);
            if s.is_null() {
                return s;
            }
        }
        self.unstack(class, s);
        // SAFETY: a span this cache owns, off every list.
        let sp = unsafe { &mut *s };
        sp.notify = 0;
        sp.sweep();
        sp.rewind();
        s
    }

    /// A used-up span of `class` that other threads' frees made worth
    /// reusing, off the full list, or null. Sweeps the oldest few, which go
    /// round to the back; only this cache can sweep them, and only its
    /// remote-free count says whether there can be anything to find: a
    /// whole pass over the list that found nothing is not repeated until
    /// the count moves. (A remote free sets its bit before it counts, so a
    /// pass that began after the count moved sees the bit.)
    fn scan_full(&mut self, class: usize) -> *mut Span {
        let count = self.owner.remote.load(Ordering::Acquire);
        let h = &mut self.held[class];
        if count == h.dry_at {
            return null_mut();
        }
        if h.pass_len == 0 {
            h.pass_from = count;
        }
        for _ in 0..FULL_SCAN.min(h.full.len) {
            let f = h.full.pop();
            // SAFETY: a held span of this cache, off its list.
            let sp = unsafe { &mut *f };
            sp.sweep();
            if sp.worth_rewinding() {
                self.held_bytes -= sp.bytes();
                h.pass_len = 0;
                return f;
            }
            // SAFETY: as above; it goes round to the back.
            unsafe { h.full.push_back(f, LIST_HELD_FULL) };
            h.pass_len += 1;
            if h.pass_len as usize >= h.full.len {
                h.dry_at = h.pass_from;
                h.pass_len = 0;
                break;
            }
        }
        null_mut()
    }

    /// A local free left held span `s` below its `notify` count: move it
    /// from `full` to `ready`, or, now empty, from `ready` to `empty` or
    /// back to mcentral.
    ///
    /// # Safety
    /// `s` is a span this cache owns.
    #[cold]
    #[inline(never)]
    pub unsafe fn held_span_freed(&mut self, s: *mut Span) {
        // SAFETY: per the contract.
        let sp = unsafe { &mut *s };
        let h = &mut self.held[sp.class as usize];
        // SAFETY: the span is on the list its tag names.
        unsafe {
            match sp.cold().list {
                LIST_HELD_FULL => {
                    h.full.remove(s);
                    self.held_bytes -= sp.bytes();
                    sp.notify = 1;
                    h.ready.push(s, LIST_HELD_READY);
                }
                LIST_HELD_READY => {
                    h.ready.remove(s);
                    self.keep_empty(s);
                }
                _ => sp.notify = 0,
            }
        }
    }

    /// Held span `s`, now empty and on no list, goes on the empty list, or
    /// back to mcentral beyond `empty_caps()`.
    ///
    /// # Safety
    /// `s` is a span this cache owns, on none of its lists.
    unsafe fn keep_empty(&mut self, s: *mut Span) {
        // SAFETY: per the contract.
        let sp = unsafe { &mut *s };
        sp.notify = 0;
        let bytes = sp.bytes();
        let (cap, total_cap) = empty_caps();
        let kept = self.empty_bytes.load(Ordering::Relaxed);
        if self.holds && kept + bytes <= cap && KEPT_EMPTY.load(Ordering::Relaxed) + bytes <= total_cap {
            // Counted before it is pushed: a taker subtracts only what it took.
            self.empty_bytes.fetch_add(bytes, Ordering::Relaxed);
            let total = KEPT_EMPTY.fetch_add(bytes, Ordering::Relaxed) + bytes;
            self.empty_tick.store(central::tick(), Ordering::Relaxed);
            sp.cold().list = LIST_HELD_EMPTY;
            // SAFETY: on no list, per the contract.
            unsafe { self.held[sp.class as usize].empty.push(s) };
            // Kept memory is free memory the background thread may have to
            // give back (`reclaim_empties`): ask for it (a free is a
            // lock-free point to start it).
            scavenge::note_free_memory(total);
            if !core::ptr::eq(self, FALLBACK.data_ptr()) {
                scavenge::poll_keep_errno();
            }
        } else {
            // SAFETY: ours, and we drop it here.
            unsafe { central::uncache_span(s) };
            // Pages went back to the heap: a free is a lock-free point to
            // start the scavenger, so that a program that frees and then
            // sleeps gets its memory back.
            if !core::ptr::eq(self, FALLBACK.data_ptr()) {
                scavenge::poll_keep_errno();
            }
        }
    }

    /// Did this cache give `s` up at its cap (so that freeing into it may
    /// take it back: `free_adopting`)? A hint, read without a lock.
    #[inline]
    pub fn gave_up(&mut self, s: &Span) -> bool {
        self.holds && s.cold().evicted_by.load(Ordering::Relaxed) == self.owner_id()
    }

    /// Free the block at `addr`, slot `idx` of span `s`, which this cache
    /// gave up at its cap, by taking the span back from mcentral first: a
    /// thread with more live data than `HELD_CAP` (one freeing a large
    /// live set oldest first, say) then frees locally, one lock per span,
    /// instead of remotely, atomics and a sweep queue per block. The span
    /// goes on the list its free slots call for (full ones count against
    /// the cap again). None if mcentral no longer has the span (the caller
    /// frees remotely); else whether the slot was allocated (false: a
    /// double free).
    ///
    /// # Safety
    /// `s` is a span record, `idx` its slot for `addr`, as found by a lookup.
    #[cold]
    pub unsafe fn free_adopting(&mut self, s: *mut Span, idx: usize, addr: usize) -> Option<bool> {
        // SAFETY: a span record, per the contract.
        let class = unsafe { (*s).class } as usize;
        // SAFETY: per the contract; adopt re-checks the span under its lock.
        if !unsafe { central::adopt(s, class, self.owner_id()) } {
            return None;
        }
        self.used |= 1 << class;
        // SAFETY: now a live small span of this cache, on none of its lists.
        let sp = unsafe { &mut *s };
        sp.notify = 0;
        // SAFETY: as above; with `notify` 0 this does not move it (the
        // block may go on the free stack, and then counts as allocated).
        let ok = unsafe { self.free_local(s, idx, addr, class) };
        // SAFETY: ours, on no list.
        unsafe {
            if sp.alloc_count == 0 {
                self.keep_empty(s);
            } else if sp.worth_rewinding() {
                sp.notify = 1;
                self.held[class].ready.push(s, LIST_HELD_READY);
            } else {
                sp.notify = sp.rewind_below();
                self.held_bytes += sp.bytes();
                self.held[class].full.push_back(s, LIST_HELD_FULL);
            }
        }
        Some(ok)
    }

    /// Free the block at `addr`, slot `idx` of span `s`, which this cache
    /// owns. False if the slot is not allocated (a double free). Marks the
    /// cache busy while it changes it (`enter_leaf`); the rare move of a held
    /// span between lists comes after, marked on its own, so that the
    /// common case calls nothing and free's fast path saves no registers.
    ///
    /// # Safety
    /// `s` is a live small span this cache owns, of size class `class`
    /// (free's fast path reads it from the page map, `arena::FIRST_CLASSES`).
    #[inline(always)]
    pub unsafe fn free_local(&mut self, s: *mut Span, idx: usize, addr: usize, class: usize) -> bool {
        // SAFETY: forwarded.
        let r = self.leaf(|c| unsafe { c.free_local_marked(s, idx, addr, class) });
        if r == LocalFree::Notify {
            // SAFETY: forwarded.
            unsafe { self.held_span_freed_marked(s) };
        }
        r != LocalFree::NotAllocated
    }

    #[cold]
    #[inline(never)]
    unsafe fn held_span_freed_marked(&mut self, s: *mut Span) {
        // SAFETY: forwarded.
        self.changing(|c| unsafe { c.held_span_freed(s) });
    }

    /// `free_local`'s change of the cache, made while it is marked busy.
    #[inline(always)]
    unsafe fn free_local_marked(&mut self, s: *mut Span, idx: usize, addr: usize, class: usize) -> LocalFree {
        // SAFETY: per free_local's contract.
        let sp = unsafe { &mut *s };
        if !sp.unmark(idx) {
            return LocalFree::NotAllocated;
        }
        // A block behind the span's cursor (any block of a held span) goes
        // on the free stack, still counted in the span, so the next malloc
        // of its class reuses it while hot.
        if (idx as u32) < sp.freeindex {
            debug_assert_eq!(class, sp.class as usize);
            // SAFETY: `class` is the live small span's (free_local's
            // contract), so below NUM_CLASSES.
            let Stack { top, limit, .. } = *unsafe { self.stack.get_unchecked(class) };
            if top < limit {
                // SAFETY: base <= top < limit: a free entry of this class's
                // stack, inside this record's `stacked`.
                unsafe {
                    *((self as *mut Cache as *mut u8).add(top as usize) as *mut Stacked) = Stacked { ptr: addr, bit: sp.bit_ref(idx) }
                };
                // SAFETY: as above.
                unsafe { self.stack.get_unchecked_mut(class).top = top + ENTRY };
                return LocalFree::Done;
            }
        }
        self.nfree += 1;
        sp.alloc_count -= 1;
        if sp.alloc_count < sp.notify {
            return LocalFree::Notify;
        }
        LocalFree::Done
    }

    /// Take the blocks of span `s` (every block, if `s` is null) off
    /// `class`'s free stack: they become free slots of their span. Before a
    /// held span is activated (its cursor would find them) or given back.
    fn unstack(&mut self, class: usize, s: *mut Span) {
        let len = self.stack[class].len();
        let mut kept = 0;
        for i in 0..len {
            let e = self.stacked[class][i];
            let owner = if s.is_null() { crate::arena::span_of(e.ptr) } else { s };
            // SAFETY: s, or the span of a stacked block, is a live span this cache holds.
            let sp = unsafe { &mut *owner };
            if e.ptr.wrapping_sub(sp.base) < sp.bytes() {
                sp.alloc_count -= 1;
                sp.cold().needzero = true;
            } else {
                self.stacked[class][kept] = e;
                kept += 1;
            }
        }
        self.nfree += (len - kept) as u64;
        let st = &mut self.stack[class];
        st.top = st.base + kept as u16 * ENTRY;
    }

    /// Does this cache own `s` (so a free may touch its alloc bits directly)?
    #[inline(always)]
    pub fn owns(&mut self, s: &Span) -> bool {
        s.owner.load(core::sync::atomic::Ordering::Relaxed) == self.owner_id()
    }

    /// Give every span back to mcentral (thread exit, malloc_trim).
    pub fn flush(&mut self) {
        for class in self.used_classes() {
            self.unstack(class, null_mut());
            let s = self.alloc[class];
            if s != empty_span() {
                self.alloc[class] = empty_span();
                // SAFETY: this cache owns s and drops it here.
                unsafe { central::uncache_span(s) };
            }
            self.flush_held(class);
        }
        if !self.pages.is_empty() {
            heap::lock().flush_page_cache(&mut self.pages);
        }
    }

    /// Give back the held spans of `class`.
    fn flush_held(&mut self, class: usize) {
        // SAFETY: this cache's own stack.
        unsafe { self.release_stack(class) };
        loop {
            let h = &mut self.held[class];
            let s = [&mut h.ready, &mut h.full].into_iter().map(|l| l.pop()).find(|s| !s.is_null());
            let Some(s) = s else { break };
            // SAFETY: a held span of this cache, now off its list (pop keeps the tag).
            unsafe {
                if (*s).cold().list == LIST_HELD_FULL {
                    self.held_bytes -= (*s).bytes();
                }
                (*s).notify = 0;
                central::uncache_span(s);
            }
        }
    }

    /// Give back the empty spans this cache keeps (malloc_trim, a refill
    /// that would grow the heap, thread exit).
    pub fn release_empty(&mut self) {
        for class in self.used_classes() {
            // SAFETY: this cache's own stack.
            unsafe { self.release_stack(class) };
        }
    }

    /// Take `class`'s empty stack off cache `c`, for its owner or another
    /// thread: the chain of spans (linked as `empty::next_of` reads) and
    /// its bytes, which no longer count as kept.
    ///
    /// # Safety
    /// `c` is a live cache record.
    unsafe fn take_stack(c: *const Cache, class: usize) -> (*mut Span, usize) {
        // SAFETY: a live record; the stack and the counter are atomics.
        let (stack, count) = unsafe { (&(*c).held[class].empty, &(*c).empty_bytes) };
        let chain = stack.take_all();
        let mut bytes = 0;
        let mut s = chain;
        while !s.is_null() {
            // SAFETY: the chain is ours now: empty spans on no list.
            unsafe {
                bytes += (*s).bytes();
                s = empty::link(s);
            }
        }
        count.fetch_sub(bytes, Ordering::Relaxed);
        KEPT_EMPTY.fetch_sub(bytes, Ordering::Relaxed);
        (chain, bytes)
    }

    /// Give the spans of a chain from `take_stack` to mcentral, whose own
    /// aging returns them to the heap. Takes class and heap locks one at a
    /// time: call it holding no goheap lock.
    ///
    /// # Safety
    /// The chain is the caller's (taken with `take_stack`).
    unsafe fn give_back(mut s: *mut Span) {
        while !s.is_null() {
            // SAFETY: per the contract, empty spans on no list, owned by a
            // cache or in transit (`TRANSIT`).
            unsafe {
                let next = empty::next_of(s);
                (*s).notify = 0;
                central::uncache_span(s);
                s = next;
            }
        }
    }

    /// Give back `class`'s empty stack (the owner).
    ///
    /// # Safety
    /// Called by the cache's thread, holding no goheap lock.
    unsafe fn release_stack(&mut self, class: usize) {
        // SAFETY: this cache is live; the chain is ours.
        unsafe { Cache::give_back(Cache::take_stack(self, class).0) };
    }

    /// Another thread's side of the empty stacks (the background thread,
    /// or a thread about to grow the heap), called holding the cache list's
    /// lock: take cache `c`'s empty stacks onto `transit` (see `Transit`);
    /// with `idle_since` set, only if `c` has not pushed or popped an empty
    /// span since before that tick. Stops after the class that takes it
    /// past `budget` bytes. Returns the bytes taken. The caller gives the
    /// spans back once it dropped the lock (`Transit::give_back`): waiting
    /// for a class lock while holding the list's could deadlock a fork from
    /// a signal handler that interrupted that class lock's holder (the fork
    /// handlers take the list's lock first).
    ///
    /// A double free of a block of such a span by its owning thread that
    /// races with this (between its owner check and its bit test) may
    /// touch the span record after it went back: the one misuse a thread
    /// cache's empty span is not guarded against once another thread can
    /// take it.
    ///
    /// # Safety
    /// `c` is a live cache record that stays live during the call (the
    /// cache list's lock is held). Its thread may run meanwhile: this
    /// touches only the atomic stacks and counters, and the taken spans.
    unsafe fn reclaim_empty(c: *const Cache, idle_since: Option<u32>, budget: usize, transit: &mut Transit) -> usize {
        // SAFETY: a live record; only atomics are read.
        let (bytes, tick) = unsafe { (&(*c).empty_bytes, &(*c).empty_tick) };
        if bytes.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        if let Some(t) = idle_since {
            if (t.wrapping_sub(tick.load(Ordering::Relaxed)) as i32) <= 0 {
                return 0;
            }
        }
        let mut taken = 0;
        for class in 1..NUM_CLASSES {
            if taken >= budget {
                break;
            }
            // SAFETY: as above.
            if unsafe { !(*c).held[class].empty.is_empty() } {
                // SAFETY: as above.
                let (chain, n) = unsafe { Cache::take_stack(c, class) };
                // SAFETY: the chain is ours.
                unsafe { transit.add(chain) };
                taken += n;
            }
        }
        taken
    }

    /// The classes this cache ever activated a span of: the only ones that
    /// can have spans or stacked blocks (a held span was active first).
    fn used_classes(&self) -> impl Iterator<Item = usize> {
        let mut m = self.used;
        core::iter::from_fn(move || {
            (m != 0).then(|| {
                let c = m.trailing_zeros() as usize;
                m &= m - 1;
                c
            })
        })
    }

    /// Forget every span without touching them (fork child: the spans of a
    /// vanished thread's cache are reclaimed from the page map instead, as
    /// its lists may be half-updated).
    fn forget_spans(&mut self) {
        self.alloc = [empty_span(); NUM_CLASSES];
        for st in self.stack.iter_mut() {
            // Its blocks were freed, and stay so (counted here).
            self.nfree += st.len() as u64;
            st.top = st.base;
        }
        for h in self.held.iter_mut() {
            *h = Held::new();
        }
        self.held_bytes = 0;
        // Its empty spans are reclaimed from the page map too: they no
        // longer count as kept.
        KEPT_EMPTY.fetch_sub(self.empty_bytes.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        self.used = 0;
    }

    /// Each span this cache owns, active or held (fork child repair).
    pub fn for_each_span(&mut self, mut f: impl FnMut(*mut Span)) {
        for class in self.used_classes() {
            let s = self.alloc[class];
            if s != empty_span() {
                f(s);
            }
            let h = &self.held[class];
            for s in h.ready.iter().chain(h.empty.iter()).chain(h.full.iter()) {
                f(s);
            }
        }
    }
}

/// The cache word's hook tag: set in the word of a thread with a cache
/// while a hook is on (`set_hook_tag`, called by hooks.rs), so the fast
/// paths, which use the raw word, fail their checks without testing
/// anything more (malloc's tests the word as a signed number; free's
/// compares it with a span's owner).
pub const HOOK_TAG: usize = 1 << 63;

/// `HOOK_TAG` while a hook is on, else 0: what `set_word` adds to a cache.
static TAG: AtomicUsize = AtomicUsize::new(0);

/// The raw cache word, hook tag included: for the two fast paths.
#[inline(always)]
pub fn raw_word() -> usize {
    tls::cache::get()
}

/// The cache word without its hook tag: TLS_NONE, TLS_NO_CACHE or the
/// thread's cache. Everything but the two fast paths uses this.
#[inline(always)]
pub fn word() -> usize {
    raw_word() & !HOOK_TAG
}

/// Set the cache word: a sentinel, or a cache (tagged while a hook is on).
#[inline]
pub fn set_word(v: usize) {
    let tag = if v > TLS_NO_CACHE { TAG.load(Ordering::Relaxed) } else { 0 };
    tls::cache::set(v | tag);
}

/// Hooks were switched on or off: tag (or untag) the words of caches
/// created from now on and of the calling thread. Settings are applied at
/// start-up, before other threads exist in all but odd programs.
pub fn set_hook_tag(on: bool) {
    TAG.store(if on { HOOK_TAG } else { 0 }, Ordering::Relaxed);
    set_word(word());
}

pub const TLS_NONE: usize = 0;
pub const TLS_NO_CACHE: usize = 1;

// The free fast path relies on no cache word of a thread without a cache
// being equal to an unowned span's owner (span.rs).
const _: () = assert!(TLS_NONE != crate::span::UNOWNED_WORD && TLS_NO_CACHE != crate::span::UNOWNED_WORD);

#[cfg(test)]
mod tests {
    use super::*;

    /// Before the background thread starts, a cache keeps the free memory
    /// that starts it (so that a live set of a few MiB rebuilt over and
    /// over keeps its spans); while it runs, the full caps; where it cannot
    /// run, 1 MiB.
    #[test]
    fn empty_span_caps_follow_the_background_thread() {
        use scavenge::{NOT_STARTED, STARTED, START_THRESHOLD, SUPPRESSED};
        assert_eq!(caps_for(NOT_STARTED, true, false, 0), (START_THRESHOLD, EMPTY_TOTAL_CAP));
        const { assert!(START_THRESHOLD > EMPTY_CAP_NO_BACKGROUND && START_THRESHOLD < EMPTY_CAP) };
        assert_eq!(caps_for(STARTED, true, false, 0), (EMPTY_CAP, EMPTY_TOTAL_CAP));
        for (worker, background, pressure) in [(SUPPRESSED, true, false), (NOT_STARTED, false, false), (STARTED, true, true)] {
            assert_eq!(caps_for(worker, background, pressure, 0), (EMPTY_CAP_NO_BACKGROUND, usize::MAX));
        }
        // A memory limit of 64 MiB: a thirty-second per cache, a sixteenth in all.
        assert_eq!(caps_for(STARTED, true, false, 64 << 20), (2 << 20, 4 << 20));
        assert_eq!(caps_for(NOT_STARTED, true, false, 64 << 20), (2 << 20, 4 << 20));
        // A large limit: the usual caps, and the threshold before the thread starts.
        assert_eq!(caps_for(NOT_STARTED, true, false, 1 << 40), (START_THRESHOLD, EMPTY_TOTAL_CAP));
    }

    /// Each class's stack offsets name its own entries in the record, and a
    /// full stack ends at or before the next class's first entry.
    #[test]
    fn stack_offsets_match_the_entries() {
        let c = Cache::new();
        let at = |p: *const Stacked| p as usize - &c as *const Cache as usize;
        for class in 0..NUM_CLASSES {
            let st = Stack::new(class, STACK_LEN);
            assert_eq!(st.base as usize, at(&c.stacked[class][0]));
            assert_eq!(st.top, st.base);
            assert_eq!(st.len(), 0);
            if class + 1 < NUM_CLASSES {
                assert!(st.limit as usize <= at(&c.stacked[class + 1][0]));
            } else {
                assert_eq!(st.limit as usize, at(&c.stacked[class][0]) + STACK_LEN * ENTRY as usize);
            }
            let half = Stack { top: st.base + 3 * ENTRY, ..st };
            assert_eq!(half.len(), 3);
        }
    }
}
