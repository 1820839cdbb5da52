//! Storage of one level of the summary radix tree.
//!
//! A level is one contiguous PROT_NONE reservation holding an array of
//! `u64` summaries indexed by address, committed one OS page at a time as
//! the heap grows. Ahead of the entries sits a bitmap with one bit per OS
//! page of entries saying whether that page is committed: `os::map` uses
//! MAP_FIXED, so mapping a page twice would wipe its summaries.
//!
//! Layout of the reservation: [ mapped bitmap | entries ], both OS-page
//! aligned; the bitmap part is made read-write at once (it is only touched
//! where used, so its cost is page-table entries, not memory).
//!
//! Keeping this behind a small type lets the storage later become sparse
//! (the dense reservation is ~600 MiB of address space in total).

use super::summary::PallocSum;
use crate::platform::{os, Os};

const ENTRY_BYTES: usize = 8;
const ENTRIES_PER_OS_PAGE: usize = os::OS_PAGE / ENTRY_BYTES;

#[inline]
const fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// One level of summaries; `base == 0` until `init` succeeds.
pub struct SummaryLevel {
    /// Address of entry 0.
    base: usize,
    /// Address of the committed-page bitmap.
    mapped: usize,
    /// Number of entries.
    len: usize,
}

impl SummaryLevel {
    pub const fn new(len: usize) -> SummaryLevel {
        SummaryLevel { base: 0, mapped: 0, len }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    fn os_pages(&self) -> usize {
        round_up(self.len, ENTRIES_PER_OS_PAGE) / ENTRIES_PER_OS_PAGE
    }

    fn bitmap_bytes(&self) -> usize {
        round_up(round_up(self.os_pages(), 64) / 8, os::OS_PAGE)
    }

    /// Reserves the address space; idempotent. False if the OS refuses.
    pub fn init<O: Os>(&mut self, os: &O) -> bool {
        if self.base != 0 {
            return true;
        }
        let bm = self.bitmap_bytes();
        let total = bm + round_up(self.len * ENTRY_BYTES, os::OS_PAGE);
        let r = match os.reserve(0, total) {
            Some(r) => r,
            None => return false,
        };
        if !os.map(r, bm) {
            os.free(r, total);
            return false;
        }
        self.mapped = r;
        self.base = r + bm;
        true
    }

    #[inline]
    fn page_mapped(&self, page: usize) -> bool {
        // SAFETY: `page < os_pages()`, so the word lies in the bitmap mapped by `init`.
        let w = unsafe { *((self.mapped as *const u64).add(page / 64)) };
        w & (1 << (page % 64)) != 0
    }

    #[inline]
    fn set_page_mapped(&mut self, page: usize) {
        // SAFETY: as in `page_mapped`; `&mut self` gives exclusive access.
        unsafe { *((self.mapped as *mut u64).add(page / 64)) |= 1 << (page % 64) };
    }

    /// Whether entry `i` is committed (readable).
    #[inline]
    pub fn is_mapped(&self, i: usize) -> bool {
        self.base != 0 && i < self.len && self.page_mapped(i / ENTRIES_PER_OS_PAGE)
    }

    /// Entry `i`; it must be committed.
    #[inline]
    pub fn get(&self, i: usize) -> PallocSum {
        debug_assert!(self.is_mapped(i));
        // SAFETY: callers only read committed entries (debug-checked above).
        unsafe { *((self.base as *const PallocSum).add(i)) }
    }

    /// Entry `i` if committed, else 0 ("no free pages").
    #[inline]
    pub fn get_or_zero(&self, i: usize) -> PallocSum {
        if self.is_mapped(i) {
            self.get(i)
        } else {
            PallocSum::ZERO
        }
    }

    /// The committed entries [i, i+n) as a slice.
    #[inline]
    pub fn slice(&self, i: usize, n: usize) -> &[PallocSum] {
        debug_assert!(n == 0 || (self.is_mapped(i) && self.is_mapped(i + n - 1)));
        // SAFETY: callers pass ranges inside committed pages (debug-checked above).
        unsafe { core::slice::from_raw_parts((self.base as *const PallocSum).add(i), n) }
    }

    /// Sets entry `i`; it must be committed.
    #[inline]
    pub fn set(&mut self, i: usize, v: PallocSum) {
        debug_assert!(self.is_mapped(i));
        // SAFETY: callers only write committed entries (debug-checked above).
        unsafe { *((self.base as *mut PallocSum).add(i)) = v };
    }

    /// Commits every OS page holding entries [lo, hi). Pages already
    /// committed are left alone. False if the OS refuses; pages committed
    /// before the failure stay committed (and read as zero summaries).
    pub fn ensure_mapped<O: Os>(&mut self, os: &O, lo: usize, hi: usize) -> bool {
        if lo >= hi {
            return true;
        }
        if self.base == 0 || hi > self.len {
            return false;
        }
        let p_end = (hi - 1) / ENTRIES_PER_OS_PAGE + 1;
        let mut p = lo / ENTRIES_PER_OS_PAGE;
        while p < p_end {
            if self.page_mapped(p) {
                p += 1;
                continue;
            }
            // Map the maximal run of unmapped pages at once.
            let mut q = p + 1;
            while q < p_end && !self.page_mapped(q) {
                q += 1;
            }
            if !os.map(self.base + p * os::OS_PAGE, (q - p) * os::OS_PAGE) {
                return false;
            }
            while p < q {
                self.set_page_mapped(p);
                p += 1;
            }
        }
        true
    }

    /// Calls `f(lo, hi)` for each maximal committed run of entries.
    pub fn for_each_mapped(&self, mut f: impl FnMut(usize, usize)) {
        if self.base == 0 {
            return;
        }
        let pages = self.os_pages();
        let mut p = 0;
        while p < pages {
            if !self.page_mapped(p) {
                p += 1;
                continue;
            }
            let mut q = p + 1;
            while q < pages && self.page_mapped(q) {
                q += 1;
            }
            let hi = core::cmp::min(q * ENTRIES_PER_OS_PAGE, self.len);
            f(p * ENTRIES_PER_OS_PAGE, hi);
            p = q;
        }
    }
}
