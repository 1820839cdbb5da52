//! Tests of the page allocator against simple models. Addresses are
//! synthetic: only the metadata is real memory.
#![allow(clippy::needless_range_loop)]

use super::bits::{find_ones_run, NONE, WORDS};
use super::*;
use crate::platform::SYS;
use std::vec::Vec;

/// xorshift64* — small, deterministic, good enough for test inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi].
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ---------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------

/// (start, max, end) of the free (false) entries of `alloc`.
fn model_summary(alloc: &[bool]) -> (usize, usize, usize) {
    let n = alloc.len();
    let start = alloc.iter().position(|&a| a).unwrap_or(n);
    let end = alloc.iter().rev().position(|&a| a).unwrap_or(n);
    let (mut max, mut run) = (0, 0);
    for &a in alloc {
        run = if a { 0 } else { run + 1 };
        max = max.max(run);
    }
    (start, max, end)
}

/// First index >= from starting `n` free entries, or NONE.
fn model_first_fit(alloc: &[bool], n: usize, from: usize) -> usize {
    let mut run = 0;
    for i in from..alloc.len() {
        run = if alloc[i] { 0 } else { run + 1 };
        if run == n {
            return i + 1 - n;
        }
    }
    NONE
}

fn bits_to_bools(b: &PallocBits) -> Vec<bool> {
    (0..CHUNK_PAGES).map(|i| b.get(i)).collect()
}

/// A random bitmap of alternating runs; `scale` sets typical run length,
/// so both fragmented maps and maps with long free runs come up.
fn random_bits(rng: &mut Rng) -> PallocBits {
    let mut b = PallocBits::EMPTY;
    match rng.range(0, 9) {
        0 => return PallocBits::EMPTY,
        1 => return PallocBits::FULL,
        2 => {
            for w in 0..WORDS {
                b.0[w] = rng.next();
            }
            return b;
        }
        _ => {}
    }
    let scale = [1usize, 4, 16, 64, 200, 512][rng.range(0, 5)];
    let mut i = 0;
    let mut alloc = rng.chance(50);
    while i < CHUNK_PAGES {
        let len = rng.range(1, scale).min(CHUNK_PAGES - i);
        if alloc {
            b.set_range(i, len);
        }
        i += len;
        alloc = !alloc;
    }
    b
}

// ---------------------------------------------------------------------
// Summaries
// ---------------------------------------------------------------------

#[test]
fn summary_pack_roundtrip() {
    let mut rng = Rng::new(1);
    for _ in 0..100_000 {
        let max = rng.range(0, MAX_PACKED - 1);
        let start = rng.range(0, max);
        let end = rng.range(0, max);
        let s = PallocSum::pack(start, max, end);
        assert_eq!(s.unpack(), (start, max, end));
        assert_eq!(s == PallocSum::ZERO, start == 0 && max == 0 && end == 0);
    }
    // The all-free level-0 entry is the single bit 63.
    let full = PallocSum::pack(MAX_PACKED, MAX_PACKED, MAX_PACKED);
    assert_eq!(full.0, 1 << 63);
    assert_eq!(full.unpack(), (MAX_PACKED, MAX_PACKED, MAX_PACKED));
    let edge = PallocSum::pack(MAX_PACKED - 1, MAX_PACKED - 1, MAX_PACKED - 1);
    assert_eq!(edge.unpack(), (MAX_PACKED - 1, MAX_PACKED - 1, MAX_PACKED - 1));
    assert_ne!(edge.0 & (1 << 63), 1 << 63);
}

#[test]
fn merge_summaries_matches_bruteforce() {
    let mut rng = Rng::new(2);
    for round in 0..3000 {
        // Children of 2^log pages each, 1..=8 of them (8 in the tree).
        let log = rng.range(0, 6);
        let per = 1usize << log;
        let nchildren = if round % 4 == 0 { rng.range(1, 8) } else { 8 };
        let mut all = Vec::new();
        let mut sums = Vec::new();
        for _ in 0..nchildren {
            let mode = rng.range(0, 3);
            let child: Vec<bool> = (0..per)
                .map(|_| match mode {
                    0 => false,
                    1 => true,
                    _ => rng.chance(30),
                })
                .collect();
            let (s, m, e) = model_summary(&child);
            sums.push(PallocSum::pack(s, m, e));
            all.extend(child);
        }
        let (s, m, e) = model_summary(&all);
        assert_eq!(merge_summaries(&sums, log).unpack(), (s, m, e), "round {round}");
    }
    // Chunk-sized children from real bitmaps.
    for _ in 0..300 {
        let mut all = Vec::new();
        let mut sums = Vec::new();
        for _ in 0..8 {
            let b = random_bits(&mut rng);
            sums.push(b.summarize());
            all.extend(bits_to_bools(&b));
        }
        let (s, m, e) = model_summary(&all);
        assert_eq!(merge_summaries(&sums, LOG_CHUNK_PAGES).unpack(), (s, m, e));
    }
    // Eight all-free level-1 entries make an all-free level-0 entry.
    let l1_free = PallocSum::pack(1 << LEVEL_LOG_PAGES[1], 1 << LEVEL_LOG_PAGES[1], 1 << LEVEL_LOG_PAGES[1]);
    assert_eq!(merge_summaries(&[l1_free; 8], LEVEL_LOG_PAGES[1]).0, 1 << 63);
}

// ---------------------------------------------------------------------
// Chunk bitmaps
// ---------------------------------------------------------------------

#[test]
fn find_ones_run_matches_model() {
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let x = match rng.range(0, 2) {
            0 => rng.next(),
            1 => rng.next() | rng.next() | rng.next(),
            _ => !(1u64 << rng.range(0, 63)),
        };
        let n = rng.range(1, 64);
        let bools: Vec<bool> = (0..64).map(|i| x & (1 << i) == 0).collect(); // set bit = "free"
        let want = model_first_fit(&bools, n, 0);
        let got = find_ones_run(x, n);
        assert_eq!(if want == NONE { 64 } else { want }, got, "x={x:#x} n={n}");
    }
    assert_eq!(find_ones_run(!0, 64), 0);
    assert_eq!(find_ones_run(!0 << 1, 64), 64);
    assert_eq!(find_ones_run(0, 1), 64);
}

#[test]
fn bits_summarize_matches_model() {
    let mut rng = Rng::new(4);
    for _ in 0..20_000 {
        let b = random_bits(&mut rng);
        let (s, m, e) = model_summary(&bits_to_bools(&b));
        assert_eq!(b.summarize().unpack(), (s, m, e), "{:x?}", b.0);
    }
}

#[test]
fn bits_find_matches_model() {
    let mut rng = Rng::new(5);
    for _ in 0..400 {
        let b = random_bits(&mut rng);
        let bools = bits_to_bools(&b);
        let first_free = bools.iter().position(|&a| !a).unwrap_or(NONE);
        for npages in 1..=CHUNK_PAGES {
            // From 0, and from the first free page (callers' invariant:
            // nothing below the search index is free).
            let (j, sidx) = b.find(npages, 0);
            assert_eq!(j, model_first_fit(&bools, npages, 0), "npages={npages} {:x?}", b.0);
            assert_eq!(sidx, first_free, "npages={npages}");
            if first_free != NONE {
                let (j2, sidx2) = b.find(npages, first_free);
                assert_eq!(j2, j, "npages={npages} from {first_free}");
                assert_eq!(sidx2, first_free);
            }
        }
    }
}

#[test]
fn bits_range_ops() {
    let mut rng = Rng::new(6);
    for _ in 0..5000 {
        let b0 = random_bits(&mut rng);
        let i = rng.range(0, CHUNK_PAGES - 1);
        let n = rng.range(0, CHUNK_PAGES - i);
        let model = bits_to_bools(&b0);
        assert_eq!(b0.count_range(i, n), model[i..i + n].iter().filter(|&&a| a).count());
        let mut s = b0;
        s.set_range(i, n);
        let mut c = b0;
        c.clear_range(i, n);
        for p in 0..CHUNK_PAGES {
            let inside = p >= i && p < i + n;
            assert_eq!(s.get(p), inside || model[p]);
            assert_eq!(c.get(p), !inside && model[p]);
        }
    }
}

// ---------------------------------------------------------------------
// The whole allocator against a page model
// ---------------------------------------------------------------------

const A: usize = 0x00c0_0000_0000;

/// `dirty`, noted by an allocation of [addr, n pages), must hold exactly
/// the model's unscavenged pages there, as maximal runs; past `DIRTY_RUNS`
/// runs the last one may also cover scavenged pages, but no unscavenged
/// page may be left out.
fn check_dirty(m: &Model, addr: usize, n: usize, dirty: &DirtyRuns, op: usize) {
    let mut want: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        let a = addr + i * PAGE_SIZE;
        if m.page(a).unwrap().1 {
            continue;
        }
        match want.last_mut() {
            Some(r) if r.0 + r.1 == a => r.1 += PAGE_SIZE,
            _ => want.push((a, PAGE_SIZE)),
        }
    }
    let got = dirty.runs();
    if want.len() <= DIRTY_RUNS {
        assert_eq!(got, &want[..], "op {op}: dirty runs of alloc({n}) at {addr:#x}");
    } else {
        assert_eq!(got.len(), DIRTY_RUNS, "op {op}: dirty run count");
        assert_eq!(got[..DIRTY_RUNS - 1], want[..DIRTY_RUNS - 1], "op {op}: leading dirty runs");
        let last = got[DIRTY_RUNS - 1];
        let tail = want[want.len() - 1];
        assert_eq!((last.0, last.0 + last.1), (want[DIRTY_RUNS - 1].0, tail.0 + tail.1), "op {op}: merged last run");
    }
}

/// The heap as the tests see it: regions of pages, each page allocated
/// and/or scavenged.
struct Model {
    /// (base, alloc, scav), sorted by base.
    regions: Vec<(usize, Vec<bool>, Vec<bool>)>,
}

impl Model {
    fn new() -> Model {
        Model { regions: Vec::new() }
    }

    fn grow(&mut self, base: usize, size: usize) {
        let n = size / PAGE_SIZE;
        self.regions.push((base, vec![false; n], vec![true; n]));
        self.regions.sort_by_key(|r| r.0);
    }

    /// Every page in address order: (addr, alloc, scav), with a `None`
    /// wherever the heap is not contiguous.
    fn pages(&self) -> Vec<Option<(usize, bool, bool)>> {
        let mut v = Vec::new();
        let mut prev_end = usize::MAX;
        for (base, a, s) in &self.regions {
            if *base != prev_end {
                v.push(None);
            }
            for i in 0..a.len() {
                v.push(Some((base + i * PAGE_SIZE, a[i], s[i])));
            }
            prev_end = base + a.len() * PAGE_SIZE;
        }
        v
    }

    fn locate(&self, addr: usize) -> Option<(usize, usize)> {
        for (ri, (base, a, _)) in self.regions.iter().enumerate() {
            if addr >= *base && addr < base + a.len() * PAGE_SIZE {
                return Some((ri, (addr - base) / PAGE_SIZE));
            }
        }
        None
    }

    fn page(&self, addr: usize) -> Option<(bool, bool)> {
        self.locate(addr).map(|(r, i)| (self.regions[r].1[i], self.regions[r].2[i]))
    }

    fn set(&mut self, addr: usize, alloc: bool, scav: bool) {
        let (r, i) = self.locate(addr).expect("page in heap");
        self.regions[r].1[i] = alloc;
        self.regions[r].2[i] = scav;
    }

    fn first_fit(&self, n: usize) -> Option<usize> {
        let mut run = 0;
        let mut start = 0;
        for p in self.pages() {
            match p {
                Some((addr, false, _)) => {
                    if run == 0 {
                        start = addr;
                    }
                    run += 1;
                    if run == n {
                        return Some(start);
                    }
                }
                _ => run = 0,
            }
        }
        None
    }

    fn is_free(&self, base: usize, n: usize) -> bool {
        (0..n).all(|i| matches!(self.page(base + i * PAGE_SIZE), Some((false, _))))
    }

    /// Marks [base, n) allocated; returns how many were scavenged.
    fn alloc(&mut self, base: usize, n: usize) -> usize {
        let mut scav = 0;
        for i in 0..n {
            let a = base + i * PAGE_SIZE;
            let (al, sc) = self.page(a).unwrap();
            assert!(!al);
            scav += sc as usize;
            self.set(a, true, false);
        }
        scav
    }

    fn free(&mut self, base: usize, n: usize) {
        for i in 0..n {
            self.set(base + i * PAGE_SIZE, false, false);
        }
    }

    fn mark_scavenged(&mut self, base: usize, n: usize) {
        for i in 0..n {
            let a = base + i * PAGE_SIZE;
            if let Some((false, _)) = self.page(a) {
                self.set(a, false, true);
            }
        }
    }

    /// Top part (<= max pages) of the highest free, unscavenged run,
    /// cut at chunk boundaries.
    fn scavenge_candidate(&self, max: usize) -> Option<(usize, usize)> {
        let pages = self.pages();
        let top = pages.iter().rposition(|p| matches!(p, Some((_, false, false))))?;
        let top_addr = pages[top].unwrap().0;
        let mut n = 0;
        let mut i = top;
        loop {
            match pages[i] {
                Some((addr, false, false)) if chunk_index(addr) == chunk_index(top_addr) && n < max => n += 1,
                _ => break,
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
        Some((top_addr + PAGE_SIZE - n * PAGE_SIZE, n))
    }

    fn counts(&self) -> (usize, usize, usize) {
        let (mut t, mut f, mut s) = (0, 0, 0);
        for (_, a, sc) in &self.regions {
            t += a.len();
            f += a.iter().filter(|&&x| !x).count();
            s += sc.iter().filter(|&&x| x).count();
        }
        (t, f, s)
    }

    /// Free runs (addr, pages), contiguous across adjacent regions.
    fn free_runs(&self) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut in_run = false;
        for p in self.pages() {
            match p {
                Some((addr, false, _)) => {
                    if in_run {
                        runs.last_mut().unwrap().1 += 1;
                    } else {
                        runs.push((addr, 1));
                        in_run = true;
                    }
                }
                _ => in_run = false,
            }
        }
        runs
    }
}

/// Summary of the pages [lo, hi) computed from the free runs.
fn summary_from_runs(runs: &[(usize, usize)], lo: usize, hi: usize) -> (usize, usize, usize) {
    let (mut start, mut max, mut end) = (0, 0, 0);
    for &(a, n) in runs {
        let b = a + n * PAGE_SIZE;
        let (ca, cb) = (a.max(lo), b.min(hi));
        if ca >= cb {
            continue;
        }
        let len = (cb - ca) / PAGE_SIZE;
        if ca == lo {
            start = len;
        }
        if cb == hi {
            end = len;
        }
        max = max.max(len);
    }
    (start, max, end)
}

/// Every summary covering the heap, at every level, equals the one
/// computed from the model.
fn assert_tree_matches(pa: &PageAlloc, m: &Model) {
    let runs = m.free_runs();
    for l in 0..SUMMARY_LEVELS {
        let mut idxs: Vec<usize> = Vec::new();
        for (base, a, _) in &m.regions {
            let end = base + a.len() * PAGE_SIZE;
            idxs.extend((base >> LEVEL_SHIFT[l])..=((end - 1) >> LEVEL_SHIFT[l]));
        }
        idxs.sort();
        idxs.dedup();
        for i in idxs {
            let lo = i << LEVEL_SHIFT[l];
            let hi = (i + 1) << LEVEL_SHIFT[l];
            let want = summary_from_runs(&runs, lo, hi);
            assert_eq!(pa.level_summary(l, i).unpack(), want, "level {l} entry {i:#x}");
        }
    }
}

fn assert_counts(pa: &PageAlloc, m: &Model) {
    assert_eq!((pa.total_pages(), pa.free_pages(), pa.free_scavenged_pages()), m.counts());
}

fn new_pa() -> Box<PageAlloc> {
    Box::new(PageAlloc::new())
}

fn grow_both(pa: &mut PageAlloc, m: &mut Model, base: usize, chunks: usize) {
    assert!(pa.grow(&SYS, base, chunks * CHUNK_BYTES));
    m.grow(base, chunks * CHUNK_BYTES);
}

/// Regions used by the property test: plain, across an L1 boundary of the
/// chunk array (2^35, also a level-0 boundary), across a level-0 boundary
/// only (3 * 2^34), at the very top of the address space.
const REGIONS: [(usize, usize); 4] =
    [(A, 8), ((1 << 35) - 2 * CHUNK_BYTES, 4), (3 * (1 << 34) - CHUNK_BYTES, 3), (HEAP_ADDR_LIMIT - 3 * CHUNK_BYTES, 3)];
/// Grown halfway through: adjacent to the first region, and a lone one.
const LATE_REGIONS: [(usize, usize); 2] = [(A + 8 * CHUNK_BYTES, 4), (0x7f00_0000_0000, 2)];

fn run_property(seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut pa = new_pa();
    let mut m = Model::new();
    for &(b, c) in &REGIONS {
        grow_both(&mut pa, &mut m, b, c);
    }
    pa.check().unwrap();
    assert_tree_matches(&pa, &m);
    let mut live: Vec<(usize, usize)> = Vec::new();
    for op in 0..ops {
        if op == ops / 2 {
            for &(b, c) in &LATE_REGIONS {
                grow_both(&mut pa, &mut m, b, c);
            }
        }
        match rng.range(0, 99) {
            0..=44 => {
                let n = match rng.range(0, 9) {
                    0..=4 => rng.range(1, 8),
                    5 | 6 => rng.range(9, 64),
                    7 => rng.range(65, 512),
                    _ => rng.range(513, 2000),
                };
                let want = m.first_fit(n);
                // Half the time through `alloc_noting_dirty` (large callocs).
                let noting = rng.range(0, 1) == 0;
                let mut dirty = DirtyRuns::new();
                let got = if noting { pa.alloc_noting_dirty(n, &mut dirty) } else { pa.alloc(n) };
                match (want, got) {
                    (None, None) => {}
                    (Some(w), Some((addr, scav))) => {
                        assert_eq!(addr, w, "op {op}: alloc({n}) not first fit");
                        if noting {
                            check_dirty(&m, addr, n, &dirty, op);
                        }
                        let ms = m.alloc(addr, n);
                        assert_eq!(scav, ms * PAGE_SIZE, "op {op}: scav bytes of alloc({n})");
                        live.push((addr, n));
                    }
                    _ => panic!("op {op}: alloc({n}): model {want:?}, got {got:?}"),
                }
            }
            45..=79 => {
                if live.is_empty() {
                    continue;
                }
                let k = rng.range(0, live.len() - 1);
                let (b, n) = live.swap_remove(k);
                // Free all of it, or a piece, keeping the rest live.
                let (off, len) = if n == 1 || rng.chance(50) {
                    (0, n)
                } else {
                    let off = rng.range(0, n - 1);
                    (off, rng.range(1, n - off))
                };
                if off > 0 {
                    live.push((b, off));
                }
                if off + len < n {
                    live.push((b + (off + len) * PAGE_SIZE, n - off - len));
                }
                let fb = b + off * PAGE_SIZE;
                pa.free(fb, len);
                m.free(fb, len);
            }
            80..=86 => {
                // alloc_range of a free range found in the model.
                let runs = m.free_runs();
                if runs.is_empty() {
                    continue;
                }
                let (a, n) = runs[rng.range(0, runs.len() - 1)];
                let off = rng.range(0, n - 1);
                let len = rng.range(1, (n - off).min(1500));
                let base = a + off * PAGE_SIZE;
                assert!(pa.is_free(base, len));
                let scav = pa.alloc_range(base, len);
                assert_eq!(scav, m.alloc(base, len) * PAGE_SIZE, "op {op}: alloc_range scav");
                live.push((base, len));
            }
            87..=92 => {
                // is_free on ranges inside, around and outside the heap.
                let (rb, rc) = REGIONS[rng.range(0, REGIONS.len() - 1)];
                let pages = rc * CHUNK_PAGES;
                let start = rb as isize + (rng.range(0, pages + 20) as isize - 10) * PAGE_SIZE as isize;
                let n = rng.range(1, 600);
                let base = start as usize;
                assert_eq!(pa.is_free(base, n), m.is_free(base, n), "op {op}: is_free({base:#x}, {n})");
            }
            _ => {
                // One round of the scavenger protocol.
                let max = [1usize, 7, 64, 600][rng.range(0, 3)];
                let want = m.scavenge_candidate(max);
                let got = pa.scavenge_candidate(max);
                assert_eq!(got, want, "op {op}: scavenge_candidate({max})");
                if let Some((b, n)) = got {
                    assert_eq!(pa.alloc_range(b, n), 0, "candidate pages were scavenged");
                    m.alloc(b, n);
                    pa.free(b, n);
                    m.free(b, n);
                    pa.mark_scavenged(b, n);
                    m.mark_scavenged(b, n);
                }
                // Sometimes mark a random stretch of a region scavenged, or
                // every other few pages of one (striped: a later large
                // allocation over it has more dirty runs than `DirtyRuns`
                // keeps exactly).
                if rng.chance(30) {
                    let (rb, rc) = REGIONS[rng.range(0, REGIONS.len() - 1)];
                    let off = rng.range(0, rc * CHUNK_PAGES - 1);
                    let n = rng.range(1, rc * CHUNK_PAGES - off);
                    if rng.chance(50) {
                        let step = rng.range(2, 9);
                        for p in (off..off + n).step_by(step) {
                            pa.mark_scavenged(rb + p * PAGE_SIZE, 1);
                            m.mark_scavenged(rb + p * PAGE_SIZE, 1);
                        }
                    } else {
                        pa.mark_scavenged(rb + off * PAGE_SIZE, n);
                        m.mark_scavenged(rb + off * PAGE_SIZE, n);
                    }
                }
            }
        }
        assert_counts(&pa, &m);
        if op % 64 == 0 {
            if let Err(e) = pa.check() {
                panic!("op {op}: check: {e}");
            }
            assert_tree_matches(&pa, &m);
        }
    }
    pa.check().unwrap();
    assert_tree_matches(&pa, &m);
    // Free everything: the heap is one free run per contiguous region again.
    for (b, n) in live.drain(..) {
        pa.free(b, n);
        m.free(b, n);
    }
    pa.check().unwrap();
    assert_tree_matches(&pa, &m);
    assert_eq!(pa.free_pages(), pa.total_pages());
}

#[test]
fn property_seed_1() {
    run_property(1, 3000);
}

#[test]
fn property_seed_2() {
    run_property(2, 3000);
}

#[test]
fn property_seed_3() {
    run_property(3, 3000);
}

#[test]
fn property_seed_4() {
    run_property(0xdead_beef, 3000);
}

/// Many small allocations (the fast path) interleaved with frees.
#[test]
fn property_small_allocs() {
    let mut rng = Rng::new(99);
    let mut pa = new_pa();
    let mut m = Model::new();
    grow_both(&mut pa, &mut m, A, 3);
    let mut live: Vec<(usize, usize)> = Vec::new();
    for op in 0..6000 {
        if rng.chance(60) || live.is_empty() {
            let n = rng.range(1, 4);
            let want = m.first_fit(n);
            match (want, pa.alloc(n)) {
                (None, None) => {}
                (Some(w), Some((a, scav))) => {
                    assert_eq!(a, w, "op {op}");
                    assert_eq!(scav, m.alloc(a, n) * PAGE_SIZE);
                    live.push((a, n));
                }
                (w, g) => panic!("op {op}: model {w:?} got {g:?}"),
            }
        } else {
            let (b, n) = live.swap_remove(rng.range(0, live.len() - 1));
            pa.free(b, n);
            m.free(b, n);
        }
        assert!(pa.search_addr() <= m.first_fit(1).unwrap_or(HEAP_ADDR_LIMIT));
    }
    pa.check().unwrap();
    assert_tree_matches(&pa, &m);
}

// ---------------------------------------------------------------------
// Edge cases
// ---------------------------------------------------------------------

#[test]
fn empty_allocator() {
    let mut pa = new_pa();
    assert_eq!(pa.alloc(1), None);
    assert_eq!(pa.alloc(100), None);
    assert_eq!(pa.scavenge_candidate(10), None);
    assert!(!pa.is_free(A, 1));
    assert_eq!(pa.check(), Ok(()));
    assert_eq!((pa.total_pages(), pa.free_pages(), pa.free_scavenged_pages()), (0, 0, 0));
}

#[test]
fn exhaustion_and_regrowth() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 2 * CHUNK_BYTES));
    assert_eq!(pa.alloc(0), None);
    // More than all free memory.
    assert_eq!(pa.alloc(2 * CHUNK_PAGES + 1), None);
    pa.check().unwrap();
    // Exactly a chunk, twice; fresh memory is all scavenged.
    assert_eq!(pa.alloc(CHUNK_PAGES), Some((A, CHUNK_BYTES)));
    assert_eq!(pa.alloc(CHUNK_PAGES), Some((A + CHUNK_BYTES, CHUNK_BYTES)));
    assert_eq!(pa.alloc(1), None);
    assert_eq!(pa.search_addr(), HEAP_ADDR_LIMIT);
    assert_eq!(pa.alloc(1), None);
    pa.check().unwrap();
    // A free brings the search back; the page is not scavenged any more.
    pa.free(A + 3 * PAGE_SIZE, 1);
    assert_eq!(pa.alloc(1), Some((A + 3 * PAGE_SIZE, 0)));
    // Growth after exhaustion, below and above the old region.
    let low = A - 4 * CHUNK_BYTES;
    assert!(pa.grow(&SYS, low, CHUNK_BYTES));
    assert_eq!(pa.alloc(2), Some((low, 2 * PAGE_SIZE)));
    let high = A + 2 * CHUNK_BYTES; // adjacent: runs may continue into it
    pa.free(A + 2 * CHUNK_BYTES - 10 * PAGE_SIZE, 10);
    assert!(pa.grow(&SYS, high, CHUNK_BYTES));
    // 10 + 512 free pages in a row now, across the growth boundary.
    assert_eq!(pa.alloc(523), None);
    // The first fit for 511 pages (the low chunk has 510) starts in the
    // old region's free tail.
    assert_eq!(pa.alloc(511), Some((A + 2 * CHUNK_BYTES - 10 * PAGE_SIZE, 501 * PAGE_SIZE)));
    pa.check().unwrap();
    assert_eq!(pa.free_pages(), 510 + 522 - 511);
    assert_eq!(pa.alloc(510), Some((low + 2 * PAGE_SIZE, 510 * PAGE_SIZE)));
}

#[test]
fn alloc_of_full_chunk_fast_path_boundary() {
    // search_addr inside a chunk with max >= n but too few pages left
    // after it must fall back to the tree search.
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 2 * CHUNK_BYTES));
    assert_eq!(pa.alloc(10).unwrap().0, A);
    assert_eq!(pa.alloc(CHUNK_PAGES - 10).unwrap().0, A + 10 * PAGE_SIZE);
    pa.free(A, 10);
    // 20 pages: the first chunk has only 10 free at its start.
    assert_eq!(pa.alloc(20).unwrap().0, A + CHUNK_BYTES);
    assert_eq!(pa.alloc(10).unwrap().0, A);
    pa.check().unwrap();
}

/// Runs longer than a level-0 entry (2^21 pages = 16 GiB): the all-free
/// level-0 encoding and the straddling search at level 0.
#[test]
fn huge_runs_across_level0_entries() {
    let mut pa = new_pa();
    let base = (1usize << 34) - CHUNK_BYTES;
    let size = (1usize << 34) + 2 * CHUNK_BYTES;
    assert!(pa.grow(&SYS, base, size));
    assert_eq!(pa.level_summary(0, 1).0, 1 << 63);
    assert_eq!(pa.alloc(1), Some((base, PAGE_SIZE)));
    let n = MAX_PACKED + 100;
    let (a, scav) = pa.alloc(n).unwrap();
    assert_eq!((a, scav), (base + PAGE_SIZE, n * PAGE_SIZE));
    // Entry 1 keeps 2^21 - (n - 511) = 411 free pages at its end.
    assert_eq!(pa.level_summary(0, 1).unpack(), (0, 411, 411));
    pa.check().unwrap();
    // Free now: 411 + the last two chunks, contiguous.
    assert_eq!(pa.alloc(411 + 2 * CHUNK_PAGES + 1), None);
    pa.free(a, n);
    assert_eq!(pa.level_summary(0, 1).0, 1 << 63);
    pa.check().unwrap();
    assert_eq!(pa.free_pages(), size / PAGE_SIZE - 1);
    assert_eq!(pa.free_scavenged_pages(), size / PAGE_SIZE - 1 - n);
    // All but the first page, as one run.
    assert_eq!(pa.alloc(size / PAGE_SIZE - 1), Some((base + PAGE_SIZE, (size / PAGE_SIZE - 1 - n) * PAGE_SIZE)));
    assert_eq!(pa.free_pages(), 0);
    pa.check().unwrap();
}

#[test]
fn is_free_edges() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, CHUNK_BYTES));
    assert!(pa.is_free(A, CHUNK_PAGES));
    assert!(!pa.is_free(A, CHUNK_PAGES + 1)); // runs off the heap
    assert!(!pa.is_free(A - PAGE_SIZE, 2)); // starts before it
    assert!(!pa.is_free(A + 1, 1)); // misaligned
    assert!(!pa.is_free(HEAP_ADDR_LIMIT - PAGE_SIZE, 2)); // past 2^48
    assert!(!pa.is_free(usize::MAX & !(PAGE_SIZE - 1), 1));
    assert_eq!(pa.alloc_range(A + 5 * PAGE_SIZE, 3), 3 * PAGE_SIZE);
    assert!(!pa.is_free(A + 7 * PAGE_SIZE, 1));
    assert!(pa.is_free(A + 8 * PAGE_SIZE, 1));
    assert!(pa.is_free(A, 5));
    assert!(!pa.is_free(A, 6));
    // alloc_range below search_addr keeps first fit intact.
    assert_eq!(pa.alloc(5), Some((A, 5 * PAGE_SIZE)));
    assert_eq!(pa.alloc(1), Some((A + 8 * PAGE_SIZE, PAGE_SIZE)));
    pa.check().unwrap();
}

// ---------------------------------------------------------------------
// Scavenger support
// ---------------------------------------------------------------------

#[test]
fn scavenge_candidates_highest_first() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 3 * CHUNK_BYTES));
    let far = A + 64 * CHUNK_BYTES;
    assert!(pa.grow(&SYS, far, CHUNK_BYTES));
    // Fresh memory is scavenged: nothing to do.
    assert_eq!(pa.scavenge_candidate(usize::MAX), None);
    let (a, scav) = pa.alloc(1000).unwrap();
    assert_eq!((a, scav), (A, 1000 * PAGE_SIZE));
    let (b, _) = pa.alloc(10).unwrap();
    assert_eq!(b, A + 1000 * PAGE_SIZE);
    pa.free(a, 1000);
    assert_eq!(pa.alloc_range(far + 100 * PAGE_SIZE, 4), 4 * PAGE_SIZE);
    pa.free(far + 100 * PAGE_SIZE, 4);
    pa.check().unwrap();
    // Highest first: the far region's 4 pages, then [512, 1000) of A's
    // first run (cut at the chunk boundary), top part first when capped.
    assert_eq!(pa.scavenge_candidate(100), Some((far + 100 * PAGE_SIZE, 4)));
    pa.mark_scavenged(far + 100 * PAGE_SIZE, 4);
    assert_eq!(pa.scavenge_candidate(100), Some((A + 900 * PAGE_SIZE, 100)));
    assert_eq!(pa.scavenge_candidate(10_000), Some((A + 512 * PAGE_SIZE, 488)));
    // Drain with the heap's protocol.
    let mut rounds = 0;
    while let Some((c, n)) = pa.scavenge_candidate(64) {
        assert!(pa.is_free(c, n));
        assert_eq!(pa.alloc_range(c, n), 0);
        pa.free(c, n);
        pa.mark_scavenged(c, n);
        rounds += 1;
        assert!(rounds < 100);
    }
    assert_eq!(rounds, 8 + 8); // 488 and 512 pages in steps of <= 64
    assert_eq!(pa.free_scavenged_pages(), pa.free_pages());
    pa.check().unwrap();
    // Everything free is scavenged again: the next alloc is known zero.
    assert_eq!(pa.alloc(1000), Some((A, 1000 * PAGE_SIZE)));
}

#[test]
fn partial_scavenge_reported_exactly() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 2 * CHUNK_BYTES));
    let (a, _) = pa.alloc(700).unwrap();
    pa.free(a, 700);
    assert_eq!(pa.free_scavenged_pages(), 2 * CHUNK_PAGES - 700);
    // Mark every other 50-page stretch scavenged, including allocated
    // pages, which must be skipped.
    let (x, _) = pa.alloc(1).unwrap();
    assert_eq!(x, A);
    for k in (0..700).step_by(100) {
        pa.mark_scavenged(A + k * PAGE_SIZE, 50);
    }
    assert_eq!(pa.free_scavenged_pages(), 2 * CHUNK_PAGES - 700 + 7 * 50 - 1);
    pa.check().unwrap();
    pa.free(A, 1);
    assert_eq!(pa.alloc(700), Some((A, (7 * 50 - 1) * PAGE_SIZE)));
    assert_eq!(pa.free_scavenged_pages(), 2 * CHUNK_PAGES - 700);
    pa.check().unwrap();
}

#[test]
fn check_detects_corruption() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 2 * CHUNK_BYTES));
    pa.alloc(3).unwrap();
    pa.check().unwrap();
    // A bitmap change behind update's back.
    pa.chunks.chunk_mut(chunk_index(A)).alloc.set_range(100, 1);
    assert!(pa.check().is_err());
    pa.chunks.chunk_mut(chunk_index(A)).alloc.clear_range(100, 1);
    pa.check().unwrap();
    // An inner summary corrupted.
    let s = pa.levels[2].get(A >> LEVEL_SHIFT[2]);
    pa.levels[2].set(A >> LEVEL_SHIFT[2], PallocSum::ZERO);
    assert!(pa.check().is_err());
    pa.levels[2].set(A >> LEVEL_SHIFT[2], s);
    pa.check().unwrap();
    // search_addr above a free page.
    let sa = pa.search_addr;
    pa.search_addr = A + CHUNK_BYTES;
    assert!(pa.check().is_err());
    pa.search_addr = sa;
    // A counter off by one.
    pa.free_pages += 1;
    assert!(pa.check().is_err());
    pa.free_pages -= 1;
    pa.check().unwrap();
}

#[test]
fn constants() {
    assert_eq!(LEVEL_BITS, [HEAP_ADDR_BITS - 34, 3, 3, 3, 3]);
    assert_eq!(LEVEL_SHIFT, [34, 31, 28, 25, 22]);
    assert_eq!(LEVEL_LOG_PAGES, [21, 18, 15, 12, 9]);
    assert_eq!(CHUNK_BYTES, 4 << 20);
    assert_eq!(core::mem::size_of::<chunks::ChunkData>(), 128);
}

#[test]
fn usable_in_a_static() {
    static mut PA: PageAlloc = PageAlloc::new();
    // SAFETY: only this test touches PA.
    let pa = unsafe { &mut *core::ptr::addr_of_mut!(PA) };
    assert!(pa.grow(&SYS, A + (1 << 40), CHUNK_BYTES));
    assert_eq!(pa.alloc(1), Some((A + (1 << 40), PAGE_SIZE)));
    pa.check().unwrap();
}

#[test]
fn zero_page_operations_are_noops() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, CHUNK_BYTES));
    pa.free(A, 0);
    pa.mark_scavenged(A, 0);
    assert_eq!(pa.alloc_range(A, 0), 0);
    assert!(pa.is_free(A, 0));
    assert_eq!(pa.free_pages(), CHUNK_PAGES);
    pa.check().unwrap();
}

// ---------------------------------------------------------------------
// Running out of metadata memory (in a forked child under RLIMIT_AS)
// ---------------------------------------------------------------------

/// The process's address-space size, read without allocating.
fn vm_bytes() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path and a buffer we own.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY);
        assert!(fd >= 0);
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let mut pages = 0usize;
    for &c in &buf[..n as usize] {
        if !c.is_ascii_digit() {
            break;
        }
        pages = pages * 10 + (c - b'0') as usize;
    }
    pages * crate::platform::os::OS_PAGE
}

fn set_as_limit(soft: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out/in parameters.
    unsafe {
        libc::getrlimit(libc::RLIMIT_AS, &mut r);
        r.rlim_cur = soft;
        libc::setrlimit(libc::RLIMIT_AS, &r);
    }
}

/// The child's checks; returns the number of the first that failed, 0 if
/// all passed. Allocates nothing (the PageAlloc was boxed before fork).
fn grow_failure_child(pa: &mut PageAlloc) -> i32 {
    // 1. Not enough address space for the first summary blocks (the level
    //    indexes, 40 KiB for 47-bit addresses, fit in 64 KiB; level 0's
    //    block does not).
    set_as_limit((vm_bytes() + (64 << 10)) as u64);
    if pa.grow(&SYS, A, CHUNK_BYTES) {
        return 1;
    }
    if pa.check().is_err() || pa.total_pages() != 0 || pa.alloc(1).is_some() {
        return 2;
    }
    set_as_limit(libc::RLIM_INFINITY);
    if !pa.grow(&SYS, A, CHUNK_BYTES) || pa.alloc(1) != Some((A, PAGE_SIZE)) {
        return 3;
    }
    // 2. Too little room for a region 1 TiB away: it needs new summary
    //    blocks (64 KiB each) and a new L2 chunk block.
    let far = A + (1 << 40);
    set_as_limit((vm_bytes() + (256 << 10)) as u64);
    if pa.grow(&SYS, far, CHUNK_BYTES) {
        return 4;
    }
    if pa.check().is_err() || pa.total_pages() != CHUNK_PAGES || pa.is_free(far, 1) {
        return 5;
    }
    if pa.alloc(CHUNK_PAGES).is_some() || pa.alloc(2) != Some((A + PAGE_SIZE, 2 * PAGE_SIZE)) {
        return 6;
    }
    set_as_limit(libc::RLIM_INFINITY);
    if !pa.grow(&SYS, far, CHUNK_BYTES) || pa.alloc(CHUNK_PAGES) != Some((far, CHUNK_BYTES)) {
        return 7;
    }
    if pa.check().is_err() {
        return 8;
    }
    0
}

#[test]
fn grow_fails_cleanly_without_metadata_memory() {
    let mut pa = new_pa();
    // SAFETY: the child only makes system calls and touches `pa`, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = grow_failure_child(&mut pa);
        // SAFETY: leave the child without running the parent's atexit state.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "failed check number in the child");
}

#[test]
fn a_cache_block_is_taken_and_given_back_whole() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, CHUNK_BYTES));
    // Pages 0..3 in use; the lowest free page is 3, in block 0.
    assert_eq!(pa.alloc(3), Some((A, 3 * PAGE_SIZE)));
    let (base, scav) = pa.alloc(1).unwrap();
    assert_eq!((base, scav), (A + 3 * PAGE_SIZE, PAGE_SIZE));
    let free_before = pa.free_pages();
    let (block, free, sc) = pa.alloc_rest_of_block(base);
    assert_eq!(block, A);
    assert_eq!(free, !0u64 << 4, "pages 4..64 taken");
    assert_eq!(sc, free, "fresh pages are scavenged");
    assert_eq!(pa.free_pages(), free_before - 60);
    assert_eq!(pa.check(), Ok(()));
    // The next allocation comes from the next block.
    assert_eq!(pa.alloc(1).map(|r| r.0), Some(A + 64 * PAGE_SIZE));
    // Give back all but pages 4..6, half of them as no longer scavenged.
    let back = free & !(0b11 << 4);
    let back_scav = back & 0xffff_0000_0000_0000;
    pa.free_block(block, back, back_scav);
    assert_eq!(pa.check(), Ok(()));
    assert_eq!(pa.free_pages(), free_before - 60 - 1 + 58);
    assert!(pa.is_free(A + 6 * PAGE_SIZE, 58));
    assert!(!pa.is_free(A + 4 * PAGE_SIZE, 1));
    // The freed pages are found again, lowest first.
    assert_eq!(pa.alloc(1).map(|r| r.0), Some(A + 6 * PAGE_SIZE));
}

/// `shrink` gives whole free chunks back: the inverse of `grow`.
#[test]
fn shrink_removes_free_chunks() {
    let mut pa = new_pa();
    assert!(pa.grow(&SYS, A, 3 * CHUNK_BYTES));
    assert_eq!(pa.alloc(1), Some((A, PAGE_SIZE)));
    // Not whole chunks, not free, not grown: refused, nothing changed.
    assert!(!pa.shrink(A + PAGE_SIZE, CHUNK_BYTES));
    assert!(!pa.shrink(A, CHUNK_BYTES));
    assert!(!pa.shrink(A + 2 * CHUNK_BYTES, 2 * CHUNK_BYTES));
    pa.check().unwrap();
    // The top two chunks go, after pages of them were used (no longer
    // scavenged) and freed.
    assert_eq!(pa.alloc_range(A + CHUNK_BYTES, CHUNK_PAGES + 3), (CHUNK_PAGES + 3) * PAGE_SIZE);
    pa.free(A + CHUNK_BYTES, CHUNK_PAGES + 3);
    assert_eq!(pa.free_scavenged_pages(), 3 * CHUNK_PAGES - 1 - (CHUNK_PAGES + 3));
    assert!(pa.shrink(A + CHUNK_BYTES, 2 * CHUNK_BYTES));
    pa.check().unwrap();
    assert_eq!(pa.total_pages(), CHUNK_PAGES);
    assert_eq!(pa.free_pages(), CHUNK_PAGES - 1);
    assert!(!pa.is_free(A + CHUNK_BYTES, 1));
    assert_eq!(pa.alloc(CHUNK_PAGES), None);
    assert_eq!(pa.alloc(2), Some((A + PAGE_SIZE, 2 * PAGE_SIZE)));
    // Grown again, as fresh (scavenged) memory.
    assert!(pa.grow(&SYS, A + 2 * CHUNK_BYTES, CHUNK_BYTES));
    assert_eq!(pa.free_scavenged_pages(), CHUNK_PAGES - 3 + CHUNK_PAGES);
    assert_eq!(pa.alloc(CHUNK_PAGES), Some((A + 2 * CHUNK_BYTES, CHUNK_BYTES)));
    pa.check().unwrap();
}

/// Where an OS page holds two goheap pages (Apple Silicon), the scavenger
/// is offered whole, entirely free OS pages only; Linux's search (G = 1)
/// is unchanged.
#[test]
fn scavenge_candidates_in_whole_os_pages() {
    use super::bits::PallocBits;
    use super::chunks::{fill_groups, ChunkData};
    assert_eq!(fill_groups(0b0100_0001, 2), 0b1100_0011);
    assert_eq!(fill_groups(1 << 63, 4), 0xf << 60);
    assert_eq!(fill_groups(0x0100, 8), 0xff00);
    assert_eq!(fill_groups(0, 2), 0);
    let mut c = ChunkData { alloc: PallocBits::FULL, scav: PallocBits::EMPTY };
    // Pages 10..17 free: OS pages (10,11), (12,13), (14,15) wholly; 16's partner is in use.
    c.alloc.clear_range(10, 7);
    assert_eq!(c.highest_free_unscavenged::<1>(100), Some((10, 7)));
    assert_eq!(c.highest_free_unscavenged::<2>(100), Some((10, 6)));
    // The cut is whole OS pages, at least one.
    assert_eq!(c.highest_free_unscavenged::<2>(3), Some((14, 2)));
    assert_eq!(c.highest_free_unscavenged::<2>(1), Some((14, 2)));
    // An OS page already released is skipped; one half released is offered again whole.
    c.scav.set_range(14, 2);
    c.scav.set_range(13, 1);
    assert_eq!(c.highest_free_unscavenged::<2>(100), Some((10, 4)));
    assert_eq!(c.highest_free_unscavenged::<1>(100), Some((16, 1)));
    // A free page whose partner is in use is never offered (it cannot be released).
    let mut d = ChunkData { alloc: PallocBits::FULL, scav: PallocBits::EMPTY };
    d.alloc.clear_range(21, 1);
    assert_eq!(d.highest_free_unscavenged::<2>(100), None);
    assert_eq!(d.highest_free_unscavenged::<1>(100), Some((21, 1)));
    // Across a word boundary.
    let mut e = ChunkData { alloc: PallocBits::FULL, scav: PallocBits::EMPTY };
    e.alloc.clear_range(60, 8);
    assert_eq!(e.highest_free_unscavenged::<2>(100), Some((60, 8)));
    assert_eq!(e.highest_free_unscavenged::<4>(100), Some((60, 8)));
    assert_eq!(e.highest_free_unscavenged::<8>(100), None);
}
