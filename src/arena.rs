//! Heap arenas and the arena map (mheap.go's `arenas`).
//!
//! The heap is made of 64 MiB arenas aligned to 64 MiB. A map, indexed by
//! the arena number of an address, leads to each arena's metadata; that
//! metadata holds, for every 8 KiB page of the arena, the span the page
//! belongs to (for a large object's span, its first page only: see
//! heap/mod.rs, `map_pages`). So `span_of(p)` is one to four dependent
//! loads (see below), and a pointer that no arena owns is, by
//! construction, not goheap's. The map
//! has two levels, as Go's does where its address space is large: a static
//! first level of 2^11 entries (16 KiB), each leading to a second level of
//! 2^10 arenas (64 GiB of address space, 8 KiB) made when an arena there is
//! registered.
//! First-level entries start null and lookups test for it: null is all
//! zero bytes, so the level costs no load-time relocations (pointing 2,048
//! entries at a shared empty level did: 48 KiB of relocation records read
//! and 16 KiB of data written by every process at start-up). Only lookups
//! outside the window below take this path. (A flat map over 47-bit
//! addresses would be 16 MiB of address space up front, which `ulimit -v`
//! counts.)
//!
//! The heap reserves its address space at Go's first hint and upwards
//! (heap/mod.rs), so nearly every arena lies in the 64 GiB from `WINDOW_BASE`:
//! their page → span tables are also recorded in `WINDOW`, a flat table of
//! 1024 entries (8 KiB of zeroed data, no relocations), read with one
//! subtraction and one load, without the range check, the first level and
//! the arena's record: a page's span is two dependent loads. Addresses
//! outside the window take the two-level map and the record (four).
//!
//! The window's first 32 arenas (2 GiB of heap, which is all of nearly
//! every program's) keep their page → span entries in one static table,
//! `FIRST_SPANS`, indexed by page number from `WINDOW_BASE`: free's fast
//! path reads a page's span with one load and no test for an unregistered
//! arena (its entries are null, as a free page's are). That drops a
//! dependent load and about five instructions from every free (3% on
//! glibc-simple, free-sized, larson and small-heap). The table is zero
//! bytes, .bss: 2 MiB of address space (which `ulimit -v` counts),
//! resident only where the heap has spans, the pages the arenas' own
//! tables would have used. A program that locks all its memory
//! (`mlockall`) makes all of it resident, which is why it is not larger.
//! Other arenas get their table with their record.
//!
//! The same arenas' pages also have their span's size class, a byte each
//! in `FIRST_CLASSES` (256 KiB of .bss, resident a 4 KiB page per 32 MiB of
//! heap with spans). Free reads it beside the span (`span_and_class_in_window`):
//! the free-stack entry it writes is indexed by the class, and the next
//! malloc reads that stack, so the sooner the entry's address is known the
//! sooner that malloc may go on; read from the span record it was two
//! dependent loads after the pointer, here one.
//!
//! Arenas are registered once and never unregistered (their memory may be
//! returned to the OS, but the metadata stays), so readers need no lock:
//! entries only go from null (or the shared empty level) to a value.
//! Page→span entries are written under the heap lock and read by `free` on
//! any thread; they are atomics so those reads are well defined.

use crate::fixalloc::persistent_alloc;
use crate::pagealloc::{HEAP_ADDR_BITS, PAGE_SHIFT, PAGE_SIZE};
use crate::span::Span;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

pub const ARENA_SHIFT: usize = 26;
pub const ARENA_BYTES: usize = 1 << ARENA_SHIFT;
pub const PAGES_PER_ARENA: usize = ARENA_BYTES >> PAGE_SHIFT;

const ARENA_BITS: usize = HEAP_ADDR_BITS - ARENA_SHIFT;

/// A marker stored in the page map at the first page of a span that was
/// freed, so a second free of that address reads as a double free rather
/// than an unknown pointer. A large object laid over that page later
/// leaves it there (only a large span's first page is mapped):
/// `large_covering` tells the two apart. Never dereferenced.
pub const FREED_SPAN: *mut Span = core::ptr::without_provenance_mut(1);

/// One arena's page → span entries.
pub type ArenaSpans = [AtomicPtr<Span>; PAGES_PER_ARENA];

/// Per-arena metadata (Go's heapArena): the page → span index.
pub struct HeapArena {
    /// In `FIRST_SPANS` for the window's first arenas, else allocated with
    /// the record.
    pub spans: &'static ArenaSpans,
    /// This arena's base address.
    base: usize,
    /// The arena registered before this one (see `ALL`).
    prev: *mut HeapArena,
}

const L2_BITS: usize = 10;
const L1_BITS: usize = ARENA_BITS - L2_BITS;
const L2_ENTRIES: usize = 1 << L2_BITS;

type Level2 = [AtomicPtr<HeapArena>; L2_ENTRIES];

/// The first level: null until an arena in its 64 GiB is registered.
static MAP: [AtomicPtr<Level2>; 1 << L1_BITS] = [const { AtomicPtr::new(null_mut()) }; 1 << L1_BITS];

/// Where the window of directly indexed arenas starts: Go's first arena
/// hint on 64-bit systems, where the heap reserves first.
pub const WINDOW_BASE: usize = 0x00c0 << 32;
const WINDOW_ARENAS: usize = 1024;

/// The page → span tables of the window's arenas (see the module
/// comment), null until registered.
static WINDOW: [AtomicPtr<ArenaSpans>; WINDOW_ARENAS] = [const { AtomicPtr::new(null_mut()) }; WINDOW_ARENAS];

/// Arenas at the start of the window whose page → span entries live in
/// `FIRST_SPANS` (2 GiB of heap).
const FIRST_ARENAS: usize = 32;

/// The page → span entries of the window's first `FIRST_ARENAS` arenas, one
/// flat table: free's fast path finds a page's entry with one subtraction,
/// one compare and one load, without reading the arena's record first
/// (`span_and_class_in_window`). Zero bytes, so .bss: 2 MiB of address space
/// whose pages become resident only where the heap has spans (the same
/// pages the arenas' own tables would have used).
static FIRST_SPANS: [ArenaSpans; FIRST_ARENAS] = [const { [const { AtomicPtr::new(null_mut()) }; PAGES_PER_ARENA] }; FIRST_ARENAS];

/// The size class of the span of each page of `FIRST_SPANS` (0 where it
/// names no small span), written with it by `set_spans`. Readers use it
/// only with an entry naming a span their thread owns, which was mapped
/// before the thread took it, so both are current.
static FIRST_CLASSES: [core::sync::atomic::AtomicU8; FIRST_ARENAS * PAGES_PER_ARENA] =
    [const { core::sync::atomic::AtomicU8::new(0) }; FIRST_ARENAS * PAGES_PER_ARENA];

/// The most recently registered arena; each links to the one before, so
/// walks visit only registered arenas.
static ALL: AtomicPtr<HeapArena> = AtomicPtr::new(null_mut());

/// The map's entry for `addr` (below 2^HEAP_ADDR_BITS), if its second
/// level exists.
#[inline(always)]
fn entry(addr: usize) -> Option<&'static AtomicPtr<HeapArena>> {
    let l2 = MAP[addr >> (ARENA_SHIFT + L2_BITS)].load(Ordering::Acquire);
    if l2.is_null() {
        return None;
    }
    // SAFETY: a non-null first-level entry points to a second level that
    // is never freed.
    Some(unsafe { &(*l2)[(addr >> ARENA_SHIFT) & (L2_ENTRIES - 1)] })
}

/// The page → span table of the arena holding `addr`, if one does.
#[inline(always)]
fn spans_of(addr: usize) -> Option<&'static ArenaSpans> {
    let i = addr.wrapping_sub(WINDOW_BASE) >> ARENA_SHIFT;
    let t = if i < WINDOW_ARENAS { WINDOW[i].load(Ordering::Acquire) } else { spans_outside_window(addr) };
    // SAFETY: a published table is never freed (FIRST_SPANS is static).
    unsafe { t.as_ref() }
}

/// `spans_of` for an address outside the window: the two-level map and
/// the arena's record.
#[inline(never)]
fn spans_outside_window(addr: usize) -> *mut ArenaSpans {
    if addr >> HEAP_ADDR_BITS != 0 {
        return null_mut();
    }
    let a = entry(addr).map_or(null_mut(), |e| e.load(Ordering::Acquire));
    if a.is_null() {
        return null_mut();
    }
    // SAFETY: arena records are never freed once published.
    unsafe { (*a).spans as *const ArenaSpans as *mut ArenaSpans }
}

/// Whether an arena of goheap's holds `addr`.
#[inline(always)]
pub fn registered(addr: usize) -> bool {
    spans_of(addr).is_some()
}

/// The span holding `addr`: null if the page is not in use by a span (or not
/// goheap's at all); `FREED_SPAN` if it is the first page of a freed span.
/// Past a large span's first page, null or `FREED_SPAN` too (see
/// `large_covering`). One load for the first 2 GiB of the window, as on
/// free's fast path.
#[inline(always)]
pub fn span_of(addr: usize) -> *mut Span {
    let page = addr.wrapping_sub(WINDOW_BASE) >> PAGE_SHIFT;
    if page < FIRST_ARENAS * PAGES_PER_ARENA {
        return FIRST_SPANS.as_flattened()[page].load(Ordering::Acquire);
    }
    match spans_of(addr) {
        Some(t) => t[(addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)].load(Ordering::Acquire),
        None => null_mut(),
    }
}

/// Pages `large_covering` looks back over (8 GiB): past that, an interior
/// pointer of a larger object is not found.
const LARGE_LOOKBACK: usize = 1 << 20;

/// The live large object's span covering `addr` past its first page, or
/// null. The page map names only a large span's first page, so its other
/// pages read as empty, or hold the marker of a span freed there before
/// (`FREED_SPAN`): this walks back to the nearest page the map names. For
/// the paths that take interior pointers (debug mode's headers, telling an
/// interior pointer from a double free in an error message), where
/// `addr`'s own page reads null or `FREED_SPAN`; the reads are racy, as any
/// lookup of a pointer the caller does not own is. Stops at an arena that
/// is not registered (no span crosses one).
pub fn large_covering(addr: usize) -> *mut Span {
    let mut p = addr & !(PAGE_SIZE - 1);
    for _ in 0..LARGE_LOOKBACK {
        if p < PAGE_SIZE {
            break;
        }
        p -= PAGE_SIZE;
        if !registered(p) {
            break;
        }
        let s = span_of(p);
        if s.is_null() || s == FREED_SPAN {
            continue;
        }
        // SAFETY: span records in the page map are never unmapped.
        let sp = unsafe { &*s };
        if sp.state.load(Ordering::Acquire) == crate::span::STATE_LARGE && sp.base == p && addr < sp.base + sp.bytes() {
            return s;
        }
        break;
    }
    null_mut()
}

/// `span_of` for free's fast path, with the page's size class: only for
/// addresses in the window (see the module comment), null (class 0) for
/// any other, which the slow path then looks up with `span_of`. For the
/// flat table's arenas the class comes from `FIRST_CLASSES`, one load
/// beside the span's rather than after it; past them, from the record.
#[inline(always)]
pub fn span_and_class_in_window(addr: usize) -> (*mut Span, usize) {
    let page = addr.wrapping_sub(WINDOW_BASE) >> PAGE_SHIFT;
    if page < FIRST_ARENAS * PAGES_PER_ARENA {
        return (FIRST_SPANS.as_flattened()[page].load(Ordering::Acquire), FIRST_CLASSES[page].load(Ordering::Relaxed) as usize);
    }
    let s = span_above_first_arenas(addr);
    // SAFETY: a real span record, never unmapped.
    (s, if s > FREED_SPAN { unsafe { (*s).class as usize } } else { 0 })
}

/// `span_and_class_in_window`'s span past the static table. Cold, so that the compiler
/// lays the table's path out straight (inlined all the same: a heap past
/// 2 GiB pays no call).
#[cold]
#[inline(always)]
fn span_above_first_arenas(addr: usize) -> *mut Span {
    let i = addr.wrapping_sub(WINDOW_BASE) >> ARENA_SHIFT;
    if i >= WINDOW_ARENAS {
        return null_mut();
    }
    let t = WINDOW[i].load(Ordering::Acquire);
    if t.is_null() {
        return null_mut();
    }
    // SAFETY: a published table is never freed.
    unsafe { (*t)[(addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)].load(Ordering::Acquire) }
}

/// Record the arenas covering `[base, base+size)` (64 MiB aligned).
/// Called under the heap lock. Returns false if metadata memory ran out.
pub fn register(base: usize, size: usize) -> bool {
    let mut a = base;
    while a < base + size {
        let top = &MAP[a >> (ARENA_SHIFT + L2_BITS)];
        if top.load(Ordering::Acquire).is_null() {
            let l2 = persistent_alloc(core::mem::size_of::<Level2>(), 64) as *mut Level2;
            if l2.is_null() {
                return false;
            }
            // Zeroed memory: all null; published only now.
            top.store(l2, Ordering::Release);
        }
        let Some(entry) = entry(a) else { return false };
        if entry.load(Ordering::Acquire).is_null() {
            let i = a.wrapping_sub(WINDOW_BASE) >> ARENA_SHIFT;
            let spans: &'static ArenaSpans = if i < FIRST_ARENAS {
                &FIRST_SPANS[i]
            } else {
                let t = persistent_alloc(core::mem::size_of::<ArenaSpans>(), 64) as *const ArenaSpans;
                if t.is_null() {
                    return false;
                }
                // SAFETY: fresh zeroed memory (all null entries), never freed.
                unsafe { &*t }
            };
            let m = persistent_alloc(core::mem::size_of::<HeapArena>(), 64) as *mut HeapArena;
            if m.is_null() {
                return false;
            }
            // SAFETY: fresh metadata nobody sees until published below.
            unsafe { m.write(HeapArena { spans, base: a, prev: ALL.load(Ordering::Relaxed) }) };
            entry.store(m, Ordering::Release);
            if i < WINDOW_ARENAS {
                WINDOW[i].store(spans as *const ArenaSpans as *mut ArenaSpans, Ordering::Release);
            }
            ALL.store(m, Ordering::Release);
        }
        a += ARENA_BYTES;
    }
    true
}

/// Point every page of `[base, base + npages pages)` at `s`, a span of size
/// class `class` (0 for a large object, or when `s` is null or
/// `FREED_SPAN`). Heap lock held, or the pages are the caller's page
/// cache's; the range lies in registered arenas.
pub fn set_spans(base: usize, npages: usize, s: *mut Span, class: usize) {
    let mut p = base;
    let end = base + (npages << PAGE_SHIFT);
    while p < end {
        let Some(spans) = spans_of(p) else { crate::error::fatal(b"page map: a span outside the arenas") };
        let stop = end.min((p & !(ARENA_BYTES - 1)) + ARENA_BYTES);
        let first = (p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        for e in &spans[first..first + ((stop - p) >> PAGE_SHIFT)] {
            e.store(s, Ordering::Release);
        }
        let page = p.wrapping_sub(WINDOW_BASE) >> PAGE_SHIFT;
        if page < FIRST_ARENAS * PAGES_PER_ARENA {
            for c in &FIRST_CLASSES[page..page + ((stop - p) >> PAGE_SHIFT)] {
                c.store(class as u8, Ordering::Relaxed);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The page map's three homes (the flat table of the window's first
    /// arenas, the window's other arenas, the two-level map outside it)
    /// answer alike for the first and last page of each arena. The arenas
    /// used lie far above anything the tests' heap grows into; the entries
    /// hold `FREED_SPAN`, which every walk of the map skips, and are
    /// cleared again. Under the heap lock, as the heap registers arenas.
    #[test]
    fn page_map_lookups_agree_across_the_flat_table_window_and_map() {
        let _heap = crate::heap::lock();
        let arenas = [
            WINDOW_BASE + (FIRST_ARENAS - 1) * ARENA_BYTES,
            WINDOW_BASE + FIRST_ARENAS * ARENA_BYTES,
            WINDOW_BASE + (WINDOW_ARENAS - 1) * ARENA_BYTES,
            WINDOW_BASE + WINDOW_ARENAS * ARENA_BYTES,
        ];
        for &a in &arenas {
            assert!(register(a, ARENA_BYTES));
            assert!(registered(a));
            for page in [a, a + ARENA_BYTES - PAGE_SIZE] {
                assert!(span_of(page).is_null());
                set_spans(page, 1, FREED_SPAN, 0);
                assert_eq!(span_of(page), FREED_SPAN);
                assert_eq!(span_of(page + PAGE_SIZE - 1), FREED_SPAN);
                let in_window = page.wrapping_sub(WINDOW_BASE) >> ARENA_SHIFT < WINDOW_ARENAS;
                let fast = span_and_class_in_window(page + 8).0;
                assert_eq!(fast, if in_window { FREED_SPAN } else { null_mut() }, "{page:#x}");
                set_spans(page, 1, null_mut(), 0);
                assert!(span_of(page).is_null());
                assert!(span_and_class_in_window(page).0.is_null());
            }
            // The neighbouring pages were never set.
            assert!(span_of(a + PAGE_SIZE).is_null());
        }
    }
}
