//! Go's per-P page cache (mpagecache.go), one per thread cache: a 64-page
//! aligned block of free pages taken from the page allocator under one
//! heap lock, from which small spans are then carved without it, and a few
//! spare span records per record size (Go's mspancache) so that carving a
//! span needs no lock either.
//!
//! * A span of fewer than 16 pages (every small size class) comes from the
//!   cache when the cache has a run of its length and a record of its
//!   size; otherwise the heap lock is taken once to refill what is missing
//!   (the lowest free page's block, as Go's `allocToCache`; 8 records).
//! * Pages in a cache are allocated as far as the page allocator is
//!   concerned, and count in the heap's span bytes: the scavenger cannot
//!   release them (at most 512 KiB per thread), and the peak of span bytes
//!   includes them.
//! * A cache goes back whole when its thread exits (`flush`): the pages it
//!   still has are freed, scavenged ones staying scavenged.
//!
//! Spans carved from a cache are freed like any other: under the heap lock.

use super::{lock, record_bucket, Heap, RECORD_BUCKETS, RESIDENT_FREE};
use crate::arena;
use crate::pagealloc::{find_ones_run, PAGE_SHIFT, PAGE_SIZE};
use crate::platform::Os;
use crate::span::Span;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

/// Spans of this many pages or more bypass the cache (Go: a quarter of it).
const MAX_CACHED_PAGES: usize = 16;
/// Spare span records kept per record size.
const RECORDS: usize = 8;

pub struct PageCache {
    /// The block's first page; meaningless while `free` is 0.
    base: usize,
    /// Bit i: page i of the block is free in this cache.
    free: u64,
    /// Bit i: page i is free here and scavenged (zero; never handed out).
    scav: u64,
    /// The block was taken for a resident free page of it: its other
    /// pages serve too, even where a caller asks for resident ones
    /// (`alloc_span_cached`), so that a heap whose resident free pages are
    /// scattered one by one is not searched again for every span.
    resident_block: bool,
    records: [[usize; RECORDS]; RECORD_BUCKETS.len()],
    nrecords: [usize; RECORD_BUCKETS.len()],
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PageCache {
    pub const fn new() -> Self {
        PageCache {
            base: 0,
            free: 0,
            scav: 0,
            resident_block: false,
            records: [[0; RECORDS]; RECORD_BUCKETS.len()],
            nrecords: [0; RECORD_BUCKETS.len()],
        }
    }

    /// Whether the cache holds nothing to give back.
    pub fn is_empty(&self) -> bool {
        self.free == 0 && self.nrecords.iter().all(|&n| n == 0)
    }

    /// `npages` (< 64) contiguous pages of the cache: (base, known zero).
    /// With `resident`, only pages that are not scavenged.
    fn take(&mut self, npages: usize, resident: bool) -> Option<(usize, bool)> {
        let avail = if resident { self.free & !self.scav } else { self.free };
        let i = find_ones_run(avail, npages);
        if i == 64 {
            return None;
        }
        let mask = ((1u64 << npages) - 1) << i;
        self.free &= !mask;
        let zeroed = self.scav & mask == mask;
        self.scav &= !mask;
        Some((self.base + i * PAGE_SIZE, zeroed))
    }
}

impl<O: Os> Heap<O> {
    /// Give the cache the free pages of a block: the one holding the lowest
    /// free page that is still resident if there is one, else the one
    /// holding the lowest free page (growing the heap if there is none and
    /// `grow` allows); false when there is none. Pages still in the cache
    /// go back first.
    ///
    /// Go takes the lowest free page, which keeps the heap dense. Here,
    /// where realloc releases the old pages of a moved block
    /// (`realloc_large`) and a freed block's untouched pages count as
    /// released, the lowest free pages are often released ones: carving
    /// spans there while resident free pages sit unused above would fault
    /// in new memory, and grow the resident set by as much, until the
    /// scavenger's delay passes. The lowest resident page keeps the heap as
    /// dense as Go's choice otherwise does. (Taking the highest resident
    /// page instead scattered page-cache blocks over the heap: the soak
    /// test's heap grew from 116 to 388 MiB, large blocks finding no run.)
    fn refill_pages(&mut self, pc: &mut PageCache, grow: bool) -> bool {
        self.flush_pages(pc);
        let resident = self.pages.lowest_resident_free();
        let (base, zeroed) = match resident {
            Some(base) => {
                self.pages.alloc_range(base, 1);
                self.low_water = self.low_water.min(self.free_unscavenged_bytes());
                (base, false)
            }
            None => match self.alloc_pages_or_grow(1, grow) {
                Some(r) => r,
                None => return false,
            },
        };
        let (block, free, scav) = self.pages.alloc_rest_of_block(base);
        // The rest of the block may have taken resident free pages too.
        self.low_water = self.low_water.min(self.free_unscavenged_bytes());
        let bit = 1u64 << ((base - block) >> PAGE_SHIFT);
        pc.base = block;
        pc.resident_block = resident.is_some();
        pc.free = free | bit;
        pc.scav = scav | if zeroed { bit } else { 0 };
        self.add_span_bytes((pc.free.count_ones() as usize) << PAGE_SHIFT);
        true
    }

    /// Fill the cache's records of size `bucket`; false if none could be had.
    fn refill_records(&mut self, pc: &mut PageCache, bucket: usize) -> bool {
        while pc.nrecords[bucket] < RECORDS {
            let r = self.alloc_record(bucket);
            if r == 0 {
                break;
            }
            pc.records[bucket][pc.nrecords[bucket]] = r;
            pc.nrecords[bucket] += 1;
        }
        pc.nrecords[bucket] != 0
    }

    fn flush_pages(&mut self, pc: &mut PageCache) {
        if pc.free != 0 {
            self.pages.free_block(pc.base, pc.free, pc.scav);
            self.span_bytes -= (pc.free.count_ones() as usize) << PAGE_SHIFT;
            self.note_freed();
        }
        pc.free = 0;
        pc.scav = 0;
        pc.resident_block = false;
    }

    /// Give everything in `pc` back (its thread is exiting).
    pub fn flush_page_cache(&mut self, pc: &mut PageCache) {
        self.flush_pages(pc);
        for (b, recs) in pc.records.iter().enumerate() {
            for &r in &recs[..pc.nrecords[b]] {
                self.spanalloc[b].free(r);
            }
        }
        pc.nrecords = [0; RECORD_BUCKETS.len()];
    }
}

/// A span of the process's heap for size class `class` of `npages` pages,
/// owned by nobody yet, carved from the thread's page cache `pc` without the
/// heap lock when it can. Null when memory is exhausted, or when it would
/// need new memory and `grow` is false (`Heap::alloc_pages_or_grow`).
///
/// With `resident` (its caller keeps empty spans it would rather give
/// back than touch new memory, see `Cache::refill`), the cache's fresh or
/// released pages serve only with `grow`, and only while the heap has no
/// resident free pages: a span carved from them adds to the resident set
/// while the heap's sit unused (those of the empty spans a program moving
/// from one size to another just gave back). The hint is read without the
/// lock; under it, the heap's counters decide. Once the cache's block is
/// one taken for its resident pages, all of its pages serve (the heap's
/// next resident pages are found at the next refill, not for every span).
/// Without `resident`, any of the cache's pages serve: taking resident
/// pages into the cache would take them from large blocks, which would
/// then touch new memory.
pub fn alloc_span_cached(pc: &mut PageCache, class: usize, npages: usize, grow: bool, resident: bool) -> *mut Span {
    if npages >= MAX_CACHED_PAGES {
        return lock().alloc_span(class, npages, grow);
    }
    let bucket = record_bucket(class);
    let resident = resident && !pc.resident_block;
    let mut got = pc.take(npages, resident);
    if got.is_none() && resident && !RESIDENT_FREE.load(Ordering::Relaxed) {
        if !grow {
            return null_mut();
        }
        got = pc.take(npages, false);
    }
    if got.is_none() || pc.nrecords[bucket] == 0 {
        let mut h = lock();
        if got.is_none() && resident && h.free_unscavenged_bytes() == 0 {
            RESIDENT_FREE.store(false, Ordering::Relaxed);
            if !grow {
                return null_mut();
            }
            got = pc.take(npages, false);
        }
        if got.is_none() {
            if !h.refill_pages(pc, grow) {
                return null_mut();
            }
            // A block whose free pages are scattered may have no run this
            // long: then the span comes from the heap directly.
            let resident = resident && !pc.resident_block;
            got = pc.take(npages, resident).or_else(|| if grow { pc.take(npages, false) } else { None }).or_else(|| {
                let r = h.alloc_pages_or_grow(npages, grow);
                if r.is_some() {
                    h.add_span_bytes(npages << PAGE_SHIFT);
                }
                r
            });
        }
        let Some((base, _)) = got else { return null_mut() };
        if pc.nrecords[bucket] == 0 && !h.refill_records(pc, bucket) {
            h.pages.free(base, npages);
            h.span_bytes -= npages << PAGE_SHIFT;
            return null_mut();
        }
    }
    let Some((base, zeroed)) = got else { return null_mut() };
    pc.nrecords[bucket] -= 1;
    let s = pc.records[bucket][pc.nrecords[bucket]] as *mut Span;
    // SAFETY: a record of the class's size that nobody else can see yet.
    unsafe { Span::init(s, base, npages, class, !zeroed) };
    arena::set_spans(base, npages, s, class);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `take` with `resident` skips scavenged pages; without it, a run of
    /// scavenged pages comes back known zero.
    #[test]
    fn take_resident_skips_scavenged_pages() {
        let mut pc = PageCache::new();
        pc.base = 1 << 30;
        pc.free = 0b1111;
        pc.scav = 0b0011;
        assert_eq!(pc.take(2, true), Some(((1 << 30) + 2 * PAGE_SIZE, false)));
        assert_eq!(pc.take(1, true), None);
        assert_eq!(pc.take(2, false), Some((1 << 30, true)));
        assert_eq!(pc.free, 0);
        assert_eq!(pc.scav, 0);
    }
}
