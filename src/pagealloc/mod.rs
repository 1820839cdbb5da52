//! The page allocator: address-ordered first fit over 8 KiB pages, after
//! the Go runtime's mpagealloc.go and mpallocbits.go.
//!
//! # Pages, chunks and bitmaps
//!
//! The heap is managed in pages of 8 KiB (PAGE_SIZE). Pages are grouped in
//! chunks of 512 pages (4 MiB, CHUNK_BYTES), aligned to their size. Each
//! chunk that is part of the heap has two 512-bit bitmaps:
//!
//! * the alloc bitmap: bit set = page allocated;
//! * the scavenged bitmap: bit set = page is free, has been returned to the
//!   OS, and reads as zero. Fresh memory from `grow` is scavenged; `alloc`
//!   clears the bits of what it hands out (telling the caller how many of
//!   the pages were scavenged, so it knows whether the memory is known
//!   zero, and, through `alloc_noting_dirty`, which pages were not, so a
//!   large calloc zeroes only those: `DirtyRuns`); `free` leaves them
//!   clear; the scavenger sets them again with `mark_scavenged` after
//!   releasing the memory. Setting a bit on a page that may hold data
//!   would make calloc return that data.
//!
//! The bitmaps live in a sparse two-level array indexed by chunk number
//! (address >> 22): 2^14 L1 slots, inline here, each pointing to a 256 KiB
//! L2 block of 2^11 chunks obtained from the OS the first time `grow`
//! touches it (see chunks.rs). Addresses are plain `usize` below 2^48.
//!
//! # The summary radix tree
//!
//! Searching bitmaps linearly would be O(heap). Instead a radix tree of
//! summaries sits on top. A summary (summary.rs) describes an aligned range
//! of pages by three counts: free pages at its start, the longest free run
//! in it (max), and free pages at its end. Summaries of adjacent ranges
//! merge into the summary of their union without looking at bitmaps.
//!
//! The tree has 5 levels over the 48-bit address space. Level 4 (the
//! leaves) has one entry per chunk. Each level above has one entry per 8
//! entries of the level below (8 children of 8 bytes = one cache line),
//! and level 0 has 2^14 entries of 16 GiB each:
//!
//! ```text
//!   level  bits  shift  pages per entry  entries
//!     0     14    34        2^21          2^14   (128 KiB)
//!     1      3    31        2^18          2^17
//!     2      3    28        2^15          2^20
//!     3      3    25        2^12          2^23
//!     4      3    22        2^9 = chunk   2^26   (512 MiB)
//! ```
//!
//! Entry i of level l covers addresses [i << shift, (i+1) << shift). Each
//! level is an array indexed by that number, stored sparsely in 64 KiB
//! blocks that `grow` obtains for the entries of grown memory (level 0 is
//! one block, obtained whole on the first grow, as every search scans it),
//! so the metadata's address space is in proportion to the heap's, not to
//! the address space's (level.rs). Entries of address space that is not
//! heap are zero, which reads as "nothing free", so no search ever descends
//! into them.
//!
//! # Finding pages
//!
//! `find(n)` walks down from level 0. At each level it scans the entries of
//! the current block (all of level 0, or the 8 children of the entry chosen
//! above) in address order, carrying the length of the free run that ends
//! at the current entry (made of the `end` of one entry and the whole of any
//! entirely free ones after it). For each entry:
//!
//! * if that carried run plus the entry's `start` reaches n, the run is the
//!   answer (nothing inside this entry can start lower);
//! * else if the entry's `max` >= n, descend into it: the lowest fit lies
//!   inside (a fit inside starts no later than the entry's end run);
//! * else carry on with the entry's `end` (or add the whole entry if free).
//!
//! At level 4 the chunk's bitmap is searched directly (bits.rs). This gives
//! address-ordered first fit in O(levels * 8 + 2^14) summary reads, and the
//! level-0 part is shortened by `search_addr`.
//!
//! # searchAddr
//!
//! `search_addr` is an address below which no page is free. Searches start
//! there: in level 0 from its entry, and in lower levels from its entry if
//! the block being scanned contains it. `alloc` first tries the chunk
//! holding `search_addr` alone (the common case for small requests) before
//! walking the tree. After a search, the new `search_addr` is the lowest
//! free address the search saw: while walking, `find` keeps a window that
//! starts as the whole address space and is narrowed to each non-empty
//! entry it meets that lies inside the current window (the first free
//! region it saw, at the finest level it looked at), and finally to the
//! first free page of the chunk it searched. `alloc` only ever moves
//! `search_addr` up; `free` and `grow` move it down to what they release.
//!
//! # Updating
//!
//! After changing bitmaps, `update` recomputes the leaf summaries of the
//! chunks touched (chunks wholly inside a contiguous range are set
//! directly to all-free or zero), then recomputes each parent level for
//! the range by merging its 8 children, and stops at the first level where
//! nothing changed.
//!
//! # Scavenging support
//!
//! The scavenger looks for free pages that are not scavenged, from the
//! highest address down (`scavenge_candidate`). Each L2 block keeps a
//! per-chunk hint bit, set by `free` for every chunk it touches and cleared
//! lazily when the search finds the chunk has nothing left to scavenge;
//! the counters make "nothing to scavenge anywhere" an O(1) answer.
//!
//! # Memory and locking
//!
//! Everything here runs inside malloc: no heap allocation, no panics, no
//! formatting. All metadata comes from `crate::platform::os`. The structure is not
//! thread-safe; the heap wraps it in its own lock. `PageAlloc::new` is
//! `const` and makes no OS call, so a `PageAlloc` can live in a `static`.

mod bits;
mod chunks;
mod dirty;
mod level;
mod summary;
#[cfg(test)]
mod tests;

pub use bits::PallocBits;
pub use dirty::{DirtyRuns, DIRTY_RUNS};
pub use summary::{merge_summaries, PallocSum, MAX_PACKED};

use crate::platform::Os;
use bits::NONE;
use chunks::{scav_hint_bits, ChunkMap, L2_BITS, L2_ENTRIES};
use level::SummaryLevel;

pub const PAGE_SHIFT: usize = 13;
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// goheap pages per OS page, at least 1: the scavenger releases whole OS
/// pages only. 1 where OS pages are 4 KiB (Linux, Intel Macs); 2 on Apple
/// Silicon, whose 16 KiB pages hold two of goheap's 8 KiB pages.
pub const SCAV_GROUP: usize = if crate::platform::os::OS_PAGE > PAGE_SIZE { crate::platform::os::OS_PAGE / PAGE_SIZE } else { 1 };
pub const LOG_CHUNK_PAGES: usize = 9;
pub const CHUNK_PAGES: usize = 1 << LOG_CHUNK_PAGES;
pub const LOG_CHUNK_BYTES: usize = LOG_CHUNK_PAGES + PAGE_SHIFT;
pub const CHUNK_BYTES: usize = CHUNK_PAGES * PAGE_SIZE;
/// Bits of address the heap can live in. Linux on x86-64 hands user space
/// only addresses below 2^47 (above needs an explicit high mmap hint, which
/// goheap never gives), so the block indexes of the summary levels and the
/// chunk and arena maps need cover only that. Other 64-bit targets keep
/// Go's 48.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub const HEAP_ADDR_BITS: usize = 47;
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub const HEAP_ADDR_BITS: usize = 48;
/// One past the highest address the page allocator can manage.
pub const HEAP_ADDR_LIMIT: usize = 1 << HEAP_ADDR_BITS;
pub const SUMMARY_LEVELS: usize = 5;
pub const SUMMARY_LEVEL_BITS: usize = 3;
pub const SUMMARY_L0_BITS: usize = HEAP_ADDR_BITS - LOG_CHUNK_BYTES - (SUMMARY_LEVELS - 1) * SUMMARY_LEVEL_BITS;

/// Index bits of each level.
pub const LEVEL_BITS: [usize; SUMMARY_LEVELS] = level_bits();
/// Address shift giving a level's entry index.
pub const LEVEL_SHIFT: [usize; SUMMARY_LEVELS] = level_shift();
/// log2 of the pages one entry of each level covers.
pub const LEVEL_LOG_PAGES: [usize; SUMMARY_LEVELS] = level_log_pages();

const fn level_bits() -> [usize; SUMMARY_LEVELS] {
    let mut b = [SUMMARY_LEVEL_BITS; SUMMARY_LEVELS];
    b[0] = SUMMARY_L0_BITS;
    b
}

const fn level_shift() -> [usize; SUMMARY_LEVELS] {
    let bits = level_bits();
    let mut s = [0; SUMMARY_LEVELS];
    let mut used = 0;
    let mut l = 0;
    while l < SUMMARY_LEVELS {
        used += bits[l];
        s[l] = HEAP_ADDR_BITS - used;
        l += 1;
    }
    s
}

const fn level_log_pages() -> [usize; SUMMARY_LEVELS] {
    let sh = level_shift();
    let mut p = [0; SUMMARY_LEVELS];
    let mut l = 0;
    while l < SUMMARY_LEVELS {
        p[l] = sh[l] - PAGE_SHIFT;
        l += 1;
    }
    p
}

const LEAF: usize = SUMMARY_LEVELS - 1;

// The layout assumptions, checked at compile time.
const _: () = {
    assert!(usize::BITS == 64);
    assert!(SUMMARY_L0_BITS == HEAP_ADDR_BITS - 34);
    assert!(LEVEL_SHIFT[LEAF] == LOG_CHUNK_BYTES);
    assert!(LEVEL_LOG_PAGES[0] == summary::LOG_MAX_PACKED);
    assert!(chunks::L1_BITS + L2_BITS == HEAP_ADDR_BITS - LOG_CHUNK_BYTES);
};

/// Summary of an entirely free chunk.
const FREE_CHUNK_SUM: PallocSum = PallocSum::pack(CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES);

/// A per-thread page cache's block: 64 pages, one word of a chunk's bitmaps.
pub const CACHE_BLOCK_BYTES: usize = 64 * PAGE_SIZE;

/// Index of the first of `n` consecutive set bits of `x` (1 <= n <= 64),
/// or 64 if there are none.
pub use bits::find_ones_run;

/// Most pages any request can name (the whole address space).
const MAX_REQUEST_PAGES: usize = HEAP_ADDR_LIMIT >> PAGE_SHIFT;

/// Reports a broken internal invariant and aborts. Never returns.
#[cold]
pub(crate) fn fatal(msg: &'static str) -> ! {
    crate::platform::out::Line::stderr().s(b"goheap: fatal: ").s(msg.as_bytes()).s(b"\n").flush();
    crate::platform::os::abort()
}

#[inline]
const fn chunk_index(addr: usize) -> usize {
    addr >> LOG_CHUNK_BYTES
}

#[inline]
const fn chunk_base(ci: usize) -> usize {
    ci << LOG_CHUNK_BYTES
}

#[inline]
const fn chunk_page_index(addr: usize) -> usize {
    (addr >> PAGE_SHIFT) & (CHUNK_PAGES - 1)
}

/// The page allocator. See the module comment.
pub struct PageAlloc {
    chunks: ChunkMap,
    levels: [SummaryLevel; SUMMARY_LEVELS],
    /// No page below this address is free; HEAP_ADDR_LIMIT = none free.
    search_addr: usize,
    /// The end of the highest range ever grown: a failed search stops
    /// there, not at the end of the address space (16,384 level-0 entries).
    grown_end: usize,
    total_pages: usize,
    free_pages: usize,
    free_scav_pages: usize,
}

// SAFETY: a PageAlloc exclusively owns the metadata its pointers refer to
// and has no thread affinity; moving it between threads is fine. It is not
// Sync: callers serialise access with their own lock.
unsafe impl Send for PageAlloc {}

impl Default for PageAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl PageAlloc {
    /// An empty allocator; makes no OS call until the first `grow`.
    pub const fn new() -> PageAlloc {
        PageAlloc {
            chunks: ChunkMap::new(),
            levels: [
                SummaryLevel::new(1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[0])),
                SummaryLevel::new(1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[1])),
                SummaryLevel::new(1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[2])),
                SummaryLevel::new(1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[3])),
                SummaryLevel::new(1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[4])),
            ],
            search_addr: HEAP_ADDR_LIMIT,
            grown_end: 0,
            total_pages: 0,
            free_pages: 0,
            free_scav_pages: 0,
        }
    }

    /// Pages handed to `grow` so far.
    #[inline]
    pub fn total_pages(&self) -> usize {
        self.total_pages
    }

    /// Pages currently free.
    #[inline]
    pub fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Pages currently free and scavenged (released to the OS).
    #[inline]
    pub fn free_scavenged_pages(&self) -> usize {
        self.free_scav_pages
    }

    /// The search hint: no page below it is free.
    #[inline]
    pub fn search_addr(&self) -> usize {
        self.search_addr
    }

    /// The summary stored at entry `i` of `level` (zero where no block is
    /// backed). For tests and diagnostics.
    pub fn level_summary(&self, level: usize, i: usize) -> PallocSum {
        if level >= SUMMARY_LEVELS {
            return PallocSum::ZERO;
        }
        self.levels[level].get_or_zero(i)
    }

    /// Whether `addr` lies in a region handed to `grow`.
    pub fn owns(&self, addr: usize) -> bool {
        addr < HEAP_ADDR_LIMIT && self.chunks.is_grown(chunk_index(addr))
    }

    /// Makes the summary levels' block indexes, all in one region (about
    /// 37 KiB for 47-bit addresses, of which the heap near one address
    /// touches two or three pages), and backs level 0; idempotent.
    fn init<O: Os>(&mut self, os: &O) -> bool {
        if !self.levels[0].has_index() {
            let total: usize = self.levels.iter().map(|l| l.index_bytes()).sum();
            let Some(mut p) = os.alloc_metadata(total.next_multiple_of(crate::platform::os::OS_PAGE)) else {
                return false;
            };
            for l in self.levels.iter_mut() {
                l.set_index(p);
                p += l.index_bytes();
            }
        }
        debug_assert!(self.levels.iter().all(|l| l.has_index()));
        let n0 = self.levels[0].len();
        self.levels[0].ensure_mapped(os, 0, n0)
    }

    /// Adds [base, base+size) to the heap, all pages free and scavenged.
    /// `base` and `size` must be multiples of CHUNK_BYTES, the range below
    /// 2^48 and never grown before (fatal otherwise). Returns false, with
    /// the allocator unchanged, if metadata memory cannot be obtained.
    /// Metadata memory comes from `os`.
    pub fn grow<O: Os>(&mut self, os: &O, base: usize, size: usize) -> bool {
        if size == 0
            || !base.is_multiple_of(CHUNK_BYTES)
            || !size.is_multiple_of(CHUNK_BYTES)
            || base >= HEAP_ADDR_LIMIT
            || size > HEAP_ADDR_LIMIT - base
        {
            fatal("page allocator: grow of a misaligned or out-of-range region");
        }
        let limit = base + size;
        let (sc, ec) = (chunk_index(base), chunk_index(limit - 1));
        if !self.init(os) {
            return false;
        }
        // Obtain all metadata before changing anything.
        for (level, &shift) in self.levels.iter_mut().zip(LEVEL_SHIFT.iter()) {
            let lo = base >> shift;
            let hi = ((limit - 1) >> shift) + 1;
            if !level.ensure_mapped(os, lo, hi) {
                return false;
            }
        }
        if !self.chunks.ensure(os, sc, ec) {
            return false;
        }
        for ci in sc..=ec {
            if self.chunks.is_grown(ci) {
                fatal("page allocator: region grown twice");
            }
        }
        for ci in sc..=ec {
            self.chunks.set_flag(ci, chunks::grown_bits, true);
            let cd = self.chunks.chunk_mut(ci);
            cd.alloc = PallocBits::EMPTY;
            cd.scav = PallocBits::FULL;
        }
        let npages = size >> PAGE_SHIFT;
        self.total_pages += npages;
        self.free_pages += npages;
        self.free_scav_pages += npages;
        if base < self.search_addr {
            self.search_addr = base;
        }
        self.grown_end = self.grown_end.max(limit);
        self.update(base, npages, true, false);
        true
    }

    /// Removes [base, base+size) from the heap, the inverse of `grow`:
    /// `base` and `size` multiples of CHUNK_BYTES, every page grown and
    /// free. Returns false, with the allocator unchanged, otherwise. The
    /// range reads as "nothing free" afterwards and may be grown again.
    pub fn shrink(&mut self, base: usize, size: usize) -> bool {
        if size == 0 || !base.is_multiple_of(CHUNK_BYTES) || !size.is_multiple_of(CHUNK_BYTES) {
            return false;
        }
        let npages = size >> PAGE_SHIFT;
        if !self.is_free(base, npages) {
            return false;
        }
        let mut scav = 0;
        for ci in chunk_index(base)..=chunk_index(base + size - 1) {
            let cd = self.chunks.chunk_mut(ci);
            scav += cd.scav.count();
            // All "allocated": the chunk summarises to zero, as space that
            // is not heap must.
            cd.alloc = PallocBits::FULL;
            cd.scav = PallocBits::EMPTY;
            self.chunks.set_flag(ci, chunks::grown_bits, false);
            self.chunks.set_flag(ci, scav_hint_bits, false);
        }
        self.total_pages -= npages;
        self.free_pages -= npages;
        self.free_scav_pages -= scav;
        self.update(base, npages, true, true);
        true
    }

    /// Allocates `npages` contiguous pages at the lowest address where they
    /// fit. Returns (base, bytes of the range that were scavenged); the
    /// range is known zero iff the second equals npages * PAGE_SIZE.
    pub fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        self.alloc_in(npages, None)
    }

    /// `alloc`, noting in `dirty` which of the pages were not scavenged
    /// (may hold old data), for a caller that must zero them.
    pub fn alloc_noting_dirty(&mut self, npages: usize, dirty: &mut DirtyRuns) -> Option<(usize, usize)> {
        self.alloc_in(npages, Some(dirty))
    }

    #[inline(always)]
    fn alloc_in(&mut self, npages: usize, dirty: Option<&mut DirtyRuns>) -> Option<(usize, usize)> {
        if npages == 0 || npages > MAX_REQUEST_PAGES || self.search_addr >= HEAP_ADDR_LIMIT {
            return None;
        }
        let sa = self.search_addr;
        let (ci, pi) = (chunk_index(sa), chunk_page_index(sa));
        let (addr, new_search);
        if CHUNK_PAGES - pi >= npages && self.levels[LEAF].get_or_zero(ci).max() >= npages {
            // Fast path: the chunk holding search_addr has room, and nothing
            // below search_addr is free, so its first fit is the first fit.
            let (j, sidx) = self.chunks.chunk(ci).alloc.find(npages, pi);
            if j == NONE {
                fatal("page allocator: leaf summary disagrees with bitmap");
            }
            addr = chunk_base(ci) + j * PAGE_SIZE;
            new_search = chunk_base(ci) + sidx * PAGE_SIZE;
        } else {
            match self.find(npages) {
                Some((a, s)) => {
                    addr = a;
                    new_search = s;
                }
                None => {
                    if npages == 1 {
                        // Not one free page: later searches end at once.
                        self.search_addr = HEAP_ADDR_LIMIT;
                    }
                    return None;
                }
            }
        }
        if let Some(d) = dirty {
            self.note_dirty(addr, npages, d);
        }
        let scav = self.alloc_range_unchecked(addr, npages);
        if self.search_addr < new_search {
            self.search_addr = new_search;
        }
        Some((addr, scav))
    }

    /// The first-fit search over the tree: (address of the lowest run of
    /// `npages` free pages, new search address), or None.
    fn find(&self, npages: usize) -> Option<(usize, usize)> {
        if self.search_addr >= HEAP_ADDR_LIMIT {
            return None;
        }
        // The window [ff_base, ff_bound] (inclusive) holding the first free
        // address seen so far; see "searchAddr" in the module comment.
        let mut ff_base = 0usize;
        let mut ff_bound = HEAP_ADDR_LIMIT - 1;
        let mut found_free = |addr: usize, size: usize| {
            let last = addr + size - 1;
            if ff_base <= addr && last <= ff_bound {
                ff_base = addr;
                ff_bound = last;
            } else if !(last < ff_base || ff_bound < addr) {
                fatal("page allocator: free regions overlap in find");
            }
        };
        let mut i = 0; // entry index at the current level
        'levels: for l in 0..SUMMARY_LEVELS {
            let per_block = 1usize << LEVEL_BITS[l];
            let log_pages = LEVEL_LOG_PAGES[l];
            let entry_pages = 1usize << log_pages;
            i <<= LEVEL_BITS[l];
            let entries = self.levels[l].slice(i, per_block);
            let si = self.search_addr >> LEVEL_SHIFT[l];
            let j0 = if si & !(per_block - 1) == i { si & (per_block - 1) } else { 0 };
            // The free run ending at the current entry: `size` pages from
            // page offset `base` within the block.
            let mut base = 0;
            let mut size = 0;
            let mut j = j0;
            // Level 0 covers the whole address space; nothing past the
            // highest grown range is free.
            let stop = if l == 0 { ((self.grown_end - 1) >> LEVEL_SHIFT[0]) + 1 } else { per_block };
            while j < stop {
                let sum = entries[j];
                if sum == PallocSum::ZERO {
                    size = 0;
                    j += 1;
                    continue;
                }
                found_free((i + j) << LEVEL_SHIFT[l], entry_pages * PAGE_SIZE);
                let s = sum.start();
                if size + s >= npages {
                    if size == 0 {
                        base = j << log_pages;
                    }
                    size += s;
                    break;
                }
                if sum.max() >= npages {
                    i += j;
                    continue 'levels;
                }
                if size == 0 || s < entry_pages {
                    size = sum.end();
                    base = ((j + 1) << log_pages) - size;
                } else {
                    size += entry_pages;
                }
                j += 1;
            }
            if size >= npages {
                return Some(((i << LEVEL_SHIFT[l]) + base * PAGE_SIZE, ff_base));
            }
            if l == 0 {
                return None;
            }
            fatal("page allocator: summary promised pages a lower level lacks");
        }
        // `i` is now the chunk whose bitmap holds the first fit.
        let (j, sidx) = self.chunks.chunk(i).alloc.find(npages, 0);
        if j == NONE {
            fatal("page allocator: leaf summary disagrees with bitmap");
        }
        let sa = chunk_base(i) + sidx * PAGE_SIZE;
        found_free(sa, chunk_base(i + 1) - sa);
        Some((chunk_base(i) + j * PAGE_SIZE, ff_base))
    }

    /// Whether [base, base + npages pages) is page-aligned, inside the
    /// address limit, and entirely in grown chunks.
    fn range_grown(&self, base: usize, npages: usize) -> bool {
        if !base.is_multiple_of(PAGE_SIZE) || npages == 0 || base >= HEAP_ADDR_LIMIT || npages > (HEAP_ADDR_LIMIT - base) >> PAGE_SHIFT {
            return false;
        }
        let ec = chunk_index(base + npages * PAGE_SIZE - 1);
        (chunk_index(base)..=ec).all(|ci| self.chunks.is_grown(ci))
    }

    /// Calls `f(chunk, first page, pages)` for each chunk piece of a range.
    #[inline]
    fn for_each_chunk_piece(base: usize, npages: usize, mut f: impl FnMut(usize, usize, usize)) {
        let last = base + (npages - 1) * PAGE_SIZE;
        let (sc, ec) = (chunk_index(base), chunk_index(last));
        let (si, ei) = (chunk_page_index(base), chunk_page_index(last));
        if sc == ec {
            f(sc, si, ei + 1 - si);
            return;
        }
        f(sc, si, CHUNK_PAGES - si);
        for c in sc + 1..ec {
            f(c, 0, CHUNK_PAGES);
        }
        f(ec, 0, ei + 1);
    }

    /// Note the pages of [base, base + npages pages) (grown, npages > 0)
    /// whose scavenged bit is clear in `dirty`, in address order.
    fn note_dirty(&self, base: usize, npages: usize, dirty: &mut DirtyRuns) {
        Self::for_each_chunk_piece(base, npages, |ci, i, n| {
            let scav = &self.chunks.chunk(ci).scav.0;
            PallocBits::for_range(i, n, |w, m| dirty.add_bits(chunk_base(ci) + w * 64 * PAGE_SIZE, !scav[w] & m));
        });
    }

    /// Whether every page of [base, base + npages pages) is in the heap and
    /// free. Vacuously true for npages == 0 at a page-aligned base.
    pub fn is_free(&self, base: usize, npages: usize) -> bool {
        if npages == 0 {
            return base.is_multiple_of(PAGE_SIZE);
        }
        if !self.range_grown(base, npages) {
            return false;
        }
        let mut free = true;
        Self::for_each_chunk_piece(base, npages, |ci, i, n| {
            free = free && self.chunks.chunk(ci).alloc.count_range(i, n) == 0;
        });
        free
    }

    /// Allocates exactly [base, base + npages pages), which the caller knows
    /// is free (fatal otherwise). Returns the bytes of it that were
    /// scavenged.
    pub fn alloc_range(&mut self, base: usize, npages: usize) -> usize {
        if npages == 0 {
            return 0;
        }
        if !self.range_grown(base, npages) {
            fatal("page allocator: alloc_range outside the heap");
        }
        self.alloc_range_unchecked(base, npages)
    }

    /// `alloc_range` for a range known to be page-aligned and grown.
    fn alloc_range_unchecked(&mut self, base: usize, npages: usize) -> usize {
        let mut scav = 0;
        let chunks = &mut self.chunks;
        Self::for_each_chunk_piece(base, npages, |ci, i, n| {
            scav += chunks.chunk_mut(ci).alloc_pages(i, n);
        });
        self.free_pages -= npages;
        self.free_scav_pages -= scav;
        self.update(base, npages, true, true);
        scav * PAGE_SIZE
    }

    /// Frees [base, base + npages pages), which must be allocated (fatal
    /// otherwise). The pages are not scavenged.
    pub fn free(&mut self, base: usize, npages: usize) {
        if npages == 0 {
            return;
        }
        if !self.range_grown(base, npages) {
            fatal("page allocator: free outside the heap");
        }
        let chunks = &mut self.chunks;
        Self::for_each_chunk_piece(base, npages, |ci, i, n| {
            chunks.chunk_mut(ci).free_pages(i, n);
            chunks.set_flag(ci, scav_hint_bits, true);
        });
        self.free_pages += npages;
        if base < self.search_addr {
            self.search_addr = base;
        }
        self.update(base, npages, true, false);
    }

    /// Recomputes the summaries for [base, base + npages pages) after its
    /// bitmaps changed. `contig` says the whole range changed the same way
    /// (`alloc` says which), so chunks strictly inside it can be set
    /// without reading their bitmaps.
    fn update(&mut self, base: usize, npages: usize, contig: bool, alloc: bool) {
        let limit = base + npages * PAGE_SIZE; // exclusive
        let (sc, ec) = (chunk_index(base), chunk_index(limit - 1));
        if sc == ec {
            let new = self.chunks.chunk(sc).alloc.summarize();
            if self.levels[LEAF].get(sc) == new {
                return;
            }
            self.levels[LEAF].set(sc, new);
        } else if contig {
            let first = self.chunks.chunk(sc).alloc.summarize();
            self.levels[LEAF].set(sc, first);
            let mid = if alloc { PallocSum::ZERO } else { FREE_CHUNK_SUM };
            for c in sc + 1..ec {
                self.levels[LEAF].set(c, mid);
            }
            let last = self.chunks.chunk(ec).alloc.summarize();
            self.levels[LEAF].set(ec, last);
        } else {
            for c in sc..=ec {
                let s = self.chunks.chunk(c).alloc.summarize();
                self.levels[LEAF].set(c, s);
            }
        }
        // Walk up, merging children, until a level does not change.
        let mut l = LEAF;
        while l > 0 {
            l -= 1;
            let child_bits = LEVEL_BITS[l + 1];
            let child_log_pages = LEVEL_LOG_PAGES[l + 1];
            let lo = base >> LEVEL_SHIFT[l];
            let hi = ((limit - 1) >> LEVEL_SHIFT[l]) + 1;
            let mut changed = false;
            for i in lo..hi {
                let children = self.levels[l + 1].slice(i << child_bits, 1 << child_bits);
                let sum = merge_summaries(children, child_log_pages);
                if self.levels[l].get(i) != sum {
                    self.levels[l].set(i, sum);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Finds free pages that are not scavenged, highest address first:
    /// (base, npages) with 1 <= npages <= max_pages, the top part of the
    /// highest such run (runs do not cross chunk boundaries here). None if
    /// there are none. Leaves the pages as they are. Where an OS page holds
    /// several goheap pages (`SCAV_GROUP` > 1) the run is whole, free OS
    /// pages instead, at least one OS page long (see
    /// `ChunkData::highest_free_unscavenged`).
    ///
    /// Cost: O(1) when nothing is left to scavenge (counters); otherwise a
    /// scan of the L1 slots in use from the top, 32 words of hint bits per
    /// L2 block visited (one block covers 8 GiB), and 8 words of bitmap
    /// per hinted chunk examined. Hints that turn out stale are cleared, so
    /// each is paid for once per `free` that set it.
    pub fn scavenge_candidate(&mut self, max_pages: usize) -> Option<(usize, usize)> {
        if max_pages == 0 || self.free_pages == self.free_scav_pages {
            return None;
        }
        if self.chunks.l1_lo > self.chunks.l1_hi {
            return None;
        }
        let mut l1 = self.chunks.l1_hi + 1;
        while l1 > self.chunks.l1_lo {
            l1 -= 1;
            let mut w = L2_ENTRIES / 64;
            while w > 0 {
                w -= 1;
                let mut bits = match self.chunks.block(l1) {
                    Some(b) => b.scav_hint[w] & b.grown[w],
                    None => break,
                };
                while bits != 0 {
                    let b = 63 - bits.leading_zeros() as usize;
                    bits &= !(1u64 << b);
                    let ci = (l1 << L2_BITS) | (w * 64 + b);
                    // A fully allocated chunk (summary 0) has nothing free.
                    if self.levels[LEAF].get(ci) != PallocSum::ZERO {
                        if let Some((i, n)) = self.chunks.chunk(ci).highest_free_unscavenged::<SCAV_GROUP>(max_pages) {
                            return Some((chunk_base(ci) + i * PAGE_SIZE, n));
                        }
                    }
                    self.chunks.set_flag(ci, scav_hint_bits, false);
                }
            }
        }
        None
    }

    /// The lowest free page that is not scavenged (still resident), if any:
    /// where a page cache should take its block while such pages exist,
    /// rather than at the lowest free page, which may be a released one.
    /// Cost: O(1) when there is none (counters); otherwise the chunks with
    /// a scavenging hint from the bottom, clearing hints found stale.
    pub fn lowest_resident_free(&mut self) -> Option<usize> {
        if self.free_pages == self.free_scav_pages || self.chunks.l1_lo > self.chunks.l1_hi {
            return None;
        }
        for l1 in self.chunks.l1_lo..=self.chunks.l1_hi {
            for w in 0..L2_ENTRIES / 64 {
                let mut bits = match self.chunks.block(l1) {
                    Some(b) => b.scav_hint[w] & b.grown[w],
                    None => break,
                };
                while bits != 0 {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let ci = (l1 << L2_BITS) | (w * 64 + b);
                    if self.levels[LEAF].get(ci) != PallocSum::ZERO {
                        if let Some(i) = self.chunks.chunk(ci).lowest_free_unscavenged() {
                            return Some(chunk_base(ci) + i * PAGE_SIZE);
                        }
                    }
                    self.chunks.set_flag(ci, scav_hint_bits, false);
                }
            }
        }
        None
    }

    /// Go's allocToCache, after the first page: `base` was just allocated;
    /// allocate every other free page of the 64-page aligned block holding
    /// it as well. Returns (block base, the block's pages taken, those of
    /// them that were scavenged), as bit masks with `base`'s own bit clear.
    /// A 64-page block is one word of its chunk's bitmaps.
    pub fn alloc_rest_of_block(&mut self, base: usize) -> (usize, u64, u64) {
        let block = base & !(CACHE_BLOCK_BYTES - 1);
        if !self.range_grown(block, 64) {
            return (block, 0, 0);
        }
        let (ci, w) = (chunk_index(block), (block - chunk_base(chunk_index(block))) / CACHE_BLOCK_BYTES);
        let cd = self.chunks.chunk_mut(ci);
        let free = !cd.alloc.0[w];
        let scav = cd.scav.0[w] & free;
        cd.alloc.0[w] = !0;
        cd.scav.0[w] &= !free;
        self.free_pages -= free.count_ones() as usize;
        self.free_scav_pages -= scav.count_ones() as usize;
        if free != 0 {
            self.update(block, 64, false, true);
        }
        (block, free, scav)
    }

    /// Go's pageCache.flush: free the pages of `free` in the 64-page block
    /// at `block` (all allocated), those of `scav` (a subset) as
    /// scavenged: they are still zero and were never handed out.
    pub fn free_block(&mut self, block: usize, free: u64, scav: u64) {
        if free == 0 {
            return;
        }
        if !block.is_multiple_of(CACHE_BLOCK_BYTES) || !self.range_grown(block, 64) || scav & !free != 0 {
            fatal("page allocator: free_block of a bad block");
        }
        let ci = chunk_index(block);
        let w = (block - chunk_base(ci)) / CACHE_BLOCK_BYTES;
        let cd = self.chunks.chunk_mut(ci);
        if cd.alloc.0[w] & free != free {
            fatal("page allocator: freeing a page that is not allocated");
        }
        cd.alloc.0[w] &= !free;
        cd.scav.0[w] |= scav;
        if free & !scav != 0 {
            self.chunks.set_flag(ci, scav_hint_bits, true);
        }
        self.free_pages += free.count_ones() as usize;
        self.free_scav_pages += scav.count_ones() as usize;
        let first = block + free.trailing_zeros() as usize * PAGE_SIZE;
        if first < self.search_addr {
            self.search_addr = first;
        }
        self.update(block, 64, false, false);
    }

    /// Marks the free pages of [base, base + npages pages) as scavenged
    /// (released to the OS, known zero). Allocated pages are skipped.
    pub fn mark_scavenged(&mut self, base: usize, npages: usize) {
        if npages == 0 {
            return;
        }
        if !self.range_grown(base, npages) {
            fatal("page allocator: mark_scavenged outside the heap");
        }
        let mut changed = 0;
        let chunks = &mut self.chunks;
        Self::for_each_chunk_piece(base, npages, |ci, i, n| {
            changed += chunks.chunk_mut(ci).mark_scavenged(i, n);
        });
        self.free_scav_pages += changed;
    }

    /// Verifies every invariant from scratch: each summary at each level
    /// against the bitmaps, scavenged pages being free, the scavenge hints,
    /// the counters, and that no free page lies below `search_addr`.
    /// Cost: proportional to the backed metadata. For tests and
    /// diagnostics.
    pub fn check(&self) -> Result<(), &'static str> {
        let (mut total, mut free, mut free_scav) = (0, 0, 0);
        let mut lowest_free = HEAP_ADDR_LIMIT;
        if self.chunks.l1_lo <= self.chunks.l1_hi {
            for l1 in self.chunks.l1_lo..=self.chunks.l1_hi {
                let blk = match self.chunks.block(l1) {
                    Some(b) => b,
                    None => continue,
                };
                for j in 0..L2_ENTRIES {
                    let bit = 1u64 << (j % 64);
                    if blk.grown[j / 64] & bit == 0 {
                        continue;
                    }
                    let ci = (l1 << L2_BITS) | j;
                    let cd = &blk.chunks[j];
                    total += CHUNK_PAGES;
                    free += CHUNK_PAGES - cd.alloc.count();
                    free_scav += cd.scav.count();
                    if (0..bits::WORDS).any(|w| cd.alloc.0[w] & cd.scav.0[w] != 0) {
                        return Err("an allocated page is marked scavenged");
                    }
                    if cd.has_free_unscavenged() && blk.scav_hint[j / 64] & bit == 0 {
                        return Err("a chunk with unscavenged free pages has no scavenge hint");
                    }
                    if lowest_free == HEAP_ADDR_LIMIT {
                        let p = cd.alloc.find1(0);
                        if p != NONE {
                            lowest_free = chunk_base(ci) + p * PAGE_SIZE;
                        }
                    }
                    if !self.levels[LEAF].is_mapped(ci) {
                        return Err("leaf summary of a grown chunk is not backed");
                    }
                    if self.levels[LEAF].get(ci) != cd.alloc.summarize() {
                        return Err("leaf summary differs from the chunk bitmap");
                    }
                }
            }
        }
        if total != self.total_pages {
            return Err("total_pages counter is wrong");
        }
        if free != self.free_pages {
            return Err("free_pages counter is wrong");
        }
        if free_scav != self.free_scav_pages {
            return Err("free_scavenged_pages counter is wrong");
        }
        if self.search_addr > lowest_free {
            return Err("search_addr is above a free page");
        }
        // Backed leaves of chunks outside the heap must read "no pages".
        let mut err = None;
        self.levels[LEAF].for_each_mapped(|lo, hi| {
            for ci in lo..hi {
                if !self.chunks.is_grown(ci) && self.levels[LEAF].get(ci) != PallocSum::ZERO {
                    err = Some("leaf summary outside the heap is not zero");
                }
            }
        });
        // Each inner entry must be the merge of its children.
        for l in 0..LEAF {
            let child_bits = LEVEL_BITS[l + 1];
            self.levels[l].for_each_mapped(|lo, hi| {
                for i in lo..hi {
                    let c0 = i << child_bits;
                    let expect = if self.levels[l + 1].is_mapped(c0) {
                        merge_summaries(self.levels[l + 1].slice(c0, 1 << child_bits), LEVEL_LOG_PAGES[l + 1])
                    } else {
                        PallocSum::ZERO
                    };
                    if self.levels[l].get(i) != expect {
                        err = Some("inner summary differs from the merge of its children");
                    }
                }
            });
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
