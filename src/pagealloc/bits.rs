//! 512-bit page bitmaps of one chunk (Go's `pallocBits` / `pageBits`).
//!
//! Bit i describes page i of the chunk; word i/64 holds it at bit i%64, so
//! the low bits of word 0 are the lowest addresses. For the alloc bitmap a
//! set bit means "allocated"; for the scavenged bitmap it means "returned to
//! the OS and known to read as zero".

use super::summary::PallocSum;
use super::CHUNK_PAGES;

/// Words in one chunk bitmap.
pub const WORDS: usize = CHUNK_PAGES / 64;

/// Returned by the searches when no run of the requested length exists.
pub const NONE: usize = usize::MAX;

/// One chunk's worth of page bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct PallocBits(pub [u64; WORDS]);

/// Mask of bits [lo, hi) of one word, 0 <= lo < hi <= 64.
#[inline(always)]
fn word_mask(lo: usize, hi: usize) -> u64 {
    debug_assert!(lo < hi && hi <= 64);
    // hi - lo ones at the bottom, without a branch for the whole word.
    (!0u64 >> (64 - (hi - lo))) << lo
}

/// Index of the first bit of `x` that starts `n` consecutive set bits
/// (1 <= n <= 64), or 64 if there is none. After `x &= x >> s` every set
/// bit i certifies bits i..=i+s; doubling s covers n in O(log n) steps.
#[inline]
pub fn find_ones_run(mut x: u64, n: usize) -> usize {
    let mut covered = 1; // every set bit certifies a run of `covered` bits
    while covered < n && x != 0 {
        let step = if n - covered < covered { n - covered } else { covered };
        x &= x >> step;
        covered += step;
    }
    x.trailing_zeros() as usize
}

/// Length of the longest run of set bits in `x`, a step per run.
#[inline]
fn longest_ones(mut x: u64) -> usize {
    let mut best = 0;
    while x != 0 {
        x >>= x.trailing_zeros();
        let run = (!x).trailing_zeros();
        best = best.max(run as usize);
        x = x.checked_shr(run).unwrap_or(0);
    }
    best
}

impl PallocBits {
    pub const EMPTY: PallocBits = PallocBits([0; WORDS]);
    pub const FULL: PallocBits = PallocBits([!0; WORDS]);

    /// Calls `f(word, mask)` for each word touched by pages [i, i+n).
    #[inline(always)]
    pub(super) fn for_range(i: usize, n: usize, mut f: impl FnMut(usize, u64)) {
        if n == 0 {
            return;
        }
        let end = i + n;
        let mut w = i / 64;
        let last = (end - 1) / 64;
        while w <= last {
            let lo = i.saturating_sub(w * 64);
            let hi = if end < w * 64 + 64 { end - w * 64 } else { 64 };
            f(w, word_mask(lo, hi));
            w += 1;
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Sets bits [i, i+n).
    #[inline]
    pub fn set_range(&mut self, i: usize, n: usize) {
        Self::for_range(i, n, |w, m| self.0[w] |= m);
    }

    /// Clears bits [i, i+n).
    #[inline]
    pub fn clear_range(&mut self, i: usize, n: usize) {
        Self::for_range(i, n, |w, m| self.0[w] &= !m);
    }

    /// Number of set bits in [i, i+n).
    #[inline]
    pub fn count_range(&self, i: usize, n: usize) -> usize {
        let mut c = 0;
        Self::for_range(i, n, |w, m| c += (self.0[w] & m).count_ones() as usize);
        c
    }

    /// Number of set bits in total.
    #[inline]
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Summarizes the free (clear) bits as (start, max, end).
    pub fn summarize(&self) -> PallocSum {
        let b = &self.0;
        // The first and last words with an allocated page.
        let Some(lo) = b.iter().position(|&x| x != 0) else {
            return PallocSum::pack(CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES);
        };
        let hi = WORDS - 1 - b.iter().rev().position(|&x| x != 0).unwrap_or(0);
        let start = lo * 64 + b[lo].trailing_zeros() as usize;
        let end = (WORDS - 1 - hi) * 64 + b[hi].leading_zeros() as usize;
        let mut max = start.max(end);
        // A longer run must lie strictly between the first and the last
        // allocated page: look only if there is room for one.
        if CHUNK_PAGES - start - end > max + 2 {
            let mut run = 0; // the free run ending at the current word
            for &x in &b[lo..=hi] {
                if x == 0 {
                    run += 64;
                    continue;
                }
                if x == !0 {
                    // A full word (a full chunk has only these) ends the run.
                    max = max.max(run);
                    run = 0;
                    continue;
                }
                let tz = x.trailing_zeros() as usize;
                max = max.max(run + tz);
                let lz = x.leading_zeros() as usize;
                // Runs between the word's lowest and highest allocated
                // pages are at most 62 - tz - lz long.
                if 64 - tz - lz > max + 2 {
                    max = max.max(longest_ones(!x & word_mask(tz, 64 - lz)));
                }
                run = lz;
            }
        }
        PallocSum::pack(start, max, end)
    }

    /// Finds the first run of `npages` free pages at or after page
    /// `search_idx`'s word, assuming every page before `search_idx` is
    /// allocated. Returns (index or NONE, index of the first free page seen
    /// or NONE), the latter being the new search index for callers.
    #[inline]
    pub fn find(&self, npages: usize, search_idx: usize) -> (usize, usize) {
        if npages == 1 {
            let i = self.find1(search_idx);
            (i, i)
        } else if npages <= 64 {
            self.find_small_n(npages, search_idx)
        } else {
            self.find_large_n(npages, search_idx)
        }
    }

    /// First free page at or after `search_idx`'s word, or NONE.
    #[inline]
    pub fn find1(&self, search_idx: usize) -> usize {
        let mut w = search_idx / 64;
        while w < WORDS {
            let x = self.0[w];
            if x != !0 {
                return w * 64 + (!x).trailing_zeros() as usize;
            }
            w += 1;
        }
        NONE
    }

    /// `find` for 2 <= npages <= 64. The first such run either is the free
    /// top of one word plus the free bottom of the next (this includes a
    /// wholly free word, whose "bottom" is 64 pages), or lies inside one
    /// word, found with `find_ones_run`; the cross-word case is checked
    /// first because it starts lower.
    pub fn find_small_n(&self, npages: usize, search_idx: usize) -> (usize, usize) {
        let mut end = 0; // free pages at the top of the previous word
        let mut first_free = NONE;
        let mut w = search_idx / 64;
        while w < WORDS {
            let x = self.0[w];
            if x == !0 {
                end = 0;
                w += 1;
                continue;
            }
            if first_free == NONE {
                first_free = w * 64 + (!x).trailing_zeros() as usize;
            }
            let start = x.trailing_zeros() as usize;
            if end + start >= npages {
                return (w * 64 - end, first_free);
            }
            let j = find_ones_run(!x, npages);
            if j < 64 {
                return (w * 64 + j, first_free);
            }
            end = x.leading_zeros() as usize;
            w += 1;
        }
        (NONE, first_free)
    }

    /// `find` for npages > 64: such a run always contains at least one
    /// whole free word, so track runs at word granularity plus the partial
    /// words at either end.
    pub fn find_large_n(&self, npages: usize, search_idx: usize) -> (usize, usize) {
        let mut start = NONE;
        let mut size = 0;
        let mut first_free = NONE;
        let mut w = search_idx / 64;
        while w < WORDS {
            let x = self.0[w];
            if x == !0 {
                size = 0;
                w += 1;
                continue;
            }
            if first_free == NONE {
                first_free = w * 64 + (!x).trailing_zeros() as usize;
            }
            if size == 0 {
                // Start a candidate run with this word's free top.
                size = x.leading_zeros() as usize;
                start = w * 64 + 64 - size;
                w += 1;
                continue;
            }
            let s = x.trailing_zeros() as usize;
            if size + s >= npages {
                return (start, first_free);
            }
            if s < 64 {
                size = x.leading_zeros() as usize;
                start = w * 64 + 64 - size;
            } else {
                size += 64;
            }
            w += 1;
        }
        if size >= npages {
            (start, first_free)
        } else {
            (NONE, first_free)
        }
    }
}
