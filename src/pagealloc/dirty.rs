//! Which pages of an allocation may still hold old data.
//!
//! A page the scavenger released (or one fresh from the OS) reads as zero;
//! a page that was freed and not released yet keeps whatever was written to
//! it. A large `calloc` that takes a run of both kinds zeroes only the
//! second: the released part stays untouched, so it is neither written nor
//! made resident. That is what a program that callocs a large, sparsely used
//! table (a hash table, `numpy.zeros`) expects, and what glibc gives it by
//! mapping fresh memory for every large block. Zeroing the whole run would
//! make all of it resident at once, on top of what the program had freed.

use super::PAGE_SIZE;

/// Runs a `DirtyRuns` keeps exactly; see `DirtyRuns::add`.
pub const DIRTY_RUNS: usize = 8;

/// Byte ranges `[addr, addr + len)`, ascending and disjoint, that may hold
/// old data; at most `DIRTY_RUNS` of them, so it lives on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyRuns {
    runs: [(usize, usize); DIRTY_RUNS],
    len: usize,
}

impl Default for DirtyRuns {
    fn default() -> Self {
        Self::new()
    }
}

impl DirtyRuns {
    /// No dirty page: the whole allocation reads as zero.
    pub const fn new() -> Self {
        DirtyRuns { runs: [(0, 0); DIRTY_RUNS], len: 0 }
    }

    /// Note `[addr, addr + len)` as dirty. Calls come in ascending address
    /// order. A run that touches the last one extends it; past
    /// `DIRTY_RUNS` runs, the last one grows to cover the new one and the
    /// clean pages between (zeroing those is wasted work, never wrong).
    pub fn add(&mut self, addr: usize, len: usize) {
        if len == 0 {
            return;
        }
        if self.len > 0 {
            let last = &mut self.runs[self.len - 1];
            if last.0 + last.1 == addr || self.len == DIRTY_RUNS {
                last.1 = addr + len - last.0;
                return;
            }
        }
        self.runs[self.len] = (addr, len);
        self.len += 1;
    }

    /// Keep only what lies inside `[lo, hi)`.
    pub fn clip(&mut self, lo: usize, hi: usize) {
        let mut kept = 0;
        for i in 0..self.len {
            let (a, n) = self.runs[i];
            let (s, e) = (a.max(lo), (a + n).min(hi));
            if s < e {
                self.runs[kept] = (s, e - s);
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// True if no page may hold old data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runs, ascending.
    pub fn runs(&self) -> &[(usize, usize)] {
        &self.runs[..self.len]
    }

    /// Note the set bits of `bits` as dirty pages, bit `b` being the page
    /// at `base + b * PAGE_SIZE`.
    pub(super) fn add_bits(&mut self, base: usize, mut bits: u64) {
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            let n = (!(bits >> s)).trailing_zeros() as usize;
            self.add(base + s * PAGE_SIZE, n * PAGE_SIZE);
            bits &= if s + n == 64 { 0 } else { u64::MAX << (s + n) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_runs_merge_and_overflow_covers_the_rest() {
        let mut d = DirtyRuns::new();
        d.add(0x1000, 0x1000);
        d.add(0x2000, 0x1000);
        assert_eq!(d.runs(), &[(0x1000, 0x2000)]);
        for i in 0..DIRTY_RUNS + 3 {
            d.add(0x10000 * (i + 1), 0x100);
        }
        assert_eq!(d.runs().len(), DIRTY_RUNS);
        let last = *d.runs().last().unwrap();
        assert_eq!(last.0 + last.1, 0x10000 * (DIRTY_RUNS + 3) + 0x100, "the last run covers every later one");
        // Every byte noted is still covered.
        for i in 0..DIRTY_RUNS + 3 {
            let a = 0x10000 * (i + 1);
            assert!(d.runs().iter().any(|&(s, n)| s <= a && a + 0x100 <= s + n));
        }
    }

    #[test]
    fn bits_become_runs_and_clip_trims_them() {
        let mut d = DirtyRuns::new();
        // Pages 0-1 and 4 dirty.
        d.add_bits(0, 0b1_0011);
        assert_eq!(d.runs(), &[(0, 2 * PAGE_SIZE), (4 * PAGE_SIZE, PAGE_SIZE)]);
        let mut all = DirtyRuns::new();
        all.add_bits(0, u64::MAX);
        assert_eq!(all.runs(), &[(0, 64 * PAGE_SIZE)]);
        d.clip(PAGE_SIZE, 5 * PAGE_SIZE);
        assert_eq!(d.runs(), &[(PAGE_SIZE, PAGE_SIZE), (4 * PAGE_SIZE, PAGE_SIZE)]);
        d.clip(2 * PAGE_SIZE, 4 * PAGE_SIZE);
        assert!(d.is_empty());
    }
}
