//! Heap arenas and the arena map (mheap.go's `arenas`).
//!
//! The heap is made of 64 MiB arenas aligned to 64 MiB. A flat map, indexed
//! by the arena number of an address, leads to each arena's metadata; that
//! metadata holds, for every 8 KiB page of the arena, the span the page
//! belongs to. So `span_of(p)` is two dependent loads, and a pointer that no
//! arena owns is, by construction, not goheap's. (Go's map has two levels
//! too, with a first level of one entry on 64-bit Linux. Here the flat map
//! is a zero-initialised static: 16 MiB of address space for 47-bit heap
//! addresses, of which only the pages holding used entries are ever touched.)
//!
//! Arenas are registered once and never unregistered (their memory may be
//! returned to the OS, but the address space stays goheap's), so readers need
//! no lock: entries only go from null to a value. Page→span entries are
//! written under the heap lock and read by `free` on any thread; they are
//! atomics so those reads are well defined.

use crate::fixalloc::persistent_alloc;
use crate::pagealloc::{HEAP_ADDR_BITS, PAGE_SHIFT};
use crate::span::Span;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

pub const ARENA_SHIFT: usize = 26;
pub const ARENA_BYTES: usize = 1 << ARENA_SHIFT;
pub const PAGES_PER_ARENA: usize = ARENA_BYTES >> PAGE_SHIFT;

const ARENA_BITS: usize = HEAP_ADDR_BITS - ARENA_SHIFT;

/// A marker stored in the page map at the first page of a span that was
/// freed, so a second free of that address reads as a double free rather
/// than an unknown pointer. Never dereferenced.
pub const FREED_SPAN: *mut Span = core::ptr::without_provenance_mut(1);

/// Per-arena metadata (Go's heapArena): the page → span index.
pub struct HeapArena {
    pub spans: [AtomicPtr<Span>; PAGES_PER_ARENA],
    /// This arena's base address.
    base: usize,
    /// The arena registered before this one (see `ALL`).
    prev: *mut HeapArena,
}

static MAP: [AtomicPtr<HeapArena>; 1 << ARENA_BITS] = [const { AtomicPtr::new(null_mut()) }; 1 << ARENA_BITS];

/// The most recently registered arena; each links to the one before, so
/// walks visit only registered arenas.
static ALL: AtomicPtr<HeapArena> = AtomicPtr::new(null_mut());

#[inline(always)]
fn arena_index(addr: usize) -> usize {
    addr >> ARENA_SHIFT
}

/// The arena metadata for `addr`, or null if no arena holds it.
#[inline(always)]
pub fn arena_of(addr: usize) -> *mut HeapArena {
    if addr >> HEAP_ADDR_BITS != 0 {
        return null_mut();
    }
    MAP[arena_index(addr)].load(Ordering::Acquire)
}

/// The span holding `addr`: null if the page is not in use by a span (or not
/// goheap's at all); `FREED_SPAN` if it is the first page of a freed span.
#[inline(always)]
pub fn span_of(addr: usize) -> *mut Span {
    let a = arena_of(addr);
    if a.is_null() {
        return null_mut();
    }
    // SAFETY: arena metadata is never freed once published.
    unsafe { (*a).spans[(addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)].load(Ordering::Acquire) }
}

/// Record the arenas covering `[base, base+size)` (64 MiB aligned).
/// Called under the heap lock. Returns false if metadata memory ran out.
pub fn register(base: usize, size: usize) -> bool {
    let mut a = base;
    while a < base + size {
        let entry = &MAP[arena_index(a)];
        if entry.load(Ordering::Acquire).is_null() {
            let m = persistent_alloc(core::mem::size_of::<HeapArena>(), 64) as *mut HeapArena;
            if m.is_null() {
                return false;
            }
            // SAFETY: fresh zeroed metadata nobody sees until published below.
            unsafe {
                (*m).base = a;
                (*m).prev = ALL.load(Ordering::Relaxed);
            }
            entry.store(m, Ordering::Release);
            ALL.store(m, Ordering::Release);
        }
        a += ARENA_BYTES;
    }
    true
}

/// Point every page of `[base, base + npages pages)` at `s` (heap lock held;
/// the range lies in registered arenas).
pub fn set_spans(base: usize, npages: usize, s: *mut Span) {
    let mut p = base;
    let end = base + (npages << PAGE_SHIFT);
    while p < end {
        let a = arena_of(p);
        // SAFETY: the caller guarantees the range is in registered arenas.
        let spans = unsafe { &(*a).spans };
        let stop = end.min((p & !(ARENA_BYTES - 1)) + ARENA_BYTES);
        let first = (p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        for e in &spans[first..first + ((stop - p) >> PAGE_SHIFT)] {
            e.store(s, Ordering::Release);
        }
        p = stop;
    }
}

/// Visit every registered arena's base address (for consistency checks).
pub fn for_each_arena(mut f: impl FnMut(usize, &HeapArena)) {
    let mut a = ALL.load(Ordering::Acquire);
    while !a.is_null() {
        // SAFETY: arena metadata is never freed once published, and its
        // base and link are written before it is.
        let ha = unsafe { &*a };
        f(ha.base, ha);
        a = ha.prev;
    }
}
