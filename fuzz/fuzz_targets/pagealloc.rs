//! Fuzz target `pagealloc`: the page allocator (goheap::pagealloc) alone,
//! on synthetic addresses, against a model that is a plain list of pages
//! (allocated?, scavenged?) in address order. The input is a program of
//! operations: alloc n pages (first fit: the model's lowest run), free a
//! live range or part of one, alloc_range at a chosen address, is_free,
//! scavenge_candidate (highest free unscavenged run, cut at chunk
//! boundaries) + mark_scavenged; every result and counter is compared, and
//! check() (summaries at every level re-derived from the bitmaps) must pass
//! periodically and at the end.
//!
//! The allocator has no way to give its metadata back, so one instance
//! lives for the whole process over fixed regions (plain, across an L1
//! boundary of the chunk array, across a level-0 boundary, the top of the
//! address space); each input ends by freeing everything and marking it
//! scavenged, which is exactly the state `grow` leaves, and checks that.
#![no_main]

use goheap::platform::SYS;
use goheap::pagealloc::{PageAlloc, CHUNK_BYTES, CHUNK_PAGES, HEAP_ADDR_LIMIT, PAGE_SIZE};
use std::sync::Mutex;

const REGIONS: [(usize, usize); 4] = [
    (1 << 40, 6),
    ((1 << 35) - 2 * CHUNK_BYTES, 4),
    (3 * (1 << 34) - CHUNK_BYTES, 3),
    (HEAP_ADDR_LIMIT - 3 * CHUNK_BYTES, 3),
];

#[derive(Clone, Copy, PartialEq, Debug)]
struct Page {
    addr: usize,
    alloc: bool,
    scav: bool,
}

struct Model {
    /// Every page of every region, in address order.
    pages: Vec<Page>,
}

impl Model {
    fn new() -> Model {
        let mut r = REGIONS.to_vec();
        r.sort();
        let mut pages = Vec::new();
        for (base, chunks) in r {
            for i in 0..chunks * CHUNK_PAGES {
                pages.push(Page { addr: base + i * PAGE_SIZE, alloc: false, scav: true });
            }
        }
        Model { pages }
    }
    fn index(&self, addr: usize) -> Option<usize> {
        self.pages.binary_search_by_key(&addr, |p| p.addr).ok()
    }
    /// Index of the first page of the lowest run of n free pages.
    fn first_fit(&self, n: usize) -> Option<usize> {
        let mut run = 0;
        for i in 0..self.pages.len() {
            let contiguous = i > 0 && self.pages[i - 1].addr + PAGE_SIZE == self.pages[i].addr;
            if self.pages[i].alloc {
                run = 0;
            } else {
                run = if contiguous { run + 1 } else { 1 };
                if run == n {
                    return Some(i + 1 - n);
                }
            }
        }
        None
    }
    fn range(&self, base: usize, n: usize) -> Option<usize> {
        let i = self.index(base)?;
        if i + n > self.pages.len() || self.pages[i + n - 1].addr != base + (n - 1) * PAGE_SIZE {
            return None;
        }
        Some(i)
    }
    fn is_free(&self, base: usize, n: usize) -> bool {
        match self.range(base, n) {
            Some(i) => self.pages[i..i + n].iter().all(|p| !p.alloc),
            None => false,
        }
    }
    fn alloc_at(&mut self, i: usize, n: usize) -> usize {
        let mut scav = 0;
        for p in &mut self.pages[i..i + n] {
            assert!(!p.alloc);
            scav += p.scav as usize;
            p.alloc = true;
            p.scav = false;
        }
        scav * PAGE_SIZE
    }
    fn free_at(&mut self, i: usize, n: usize) {
        for p in &mut self.pages[i..i + n] {
            assert!(p.alloc);
            p.alloc = false;
        }
    }
    fn scavenge_candidate(&self, max: usize) -> Option<(usize, usize)> {
        let top = self.pages.iter().rposition(|p| !p.alloc && !p.scav)?;
        let chunk = self.pages[top].addr / CHUNK_BYTES;
        let mut n = 0;
        let mut i = top;
        loop {
            let p = self.pages[i];
            if p.alloc || p.scav || p.addr / CHUNK_BYTES != chunk || n == max {
                break;
            }
            if n > 0 && self.pages[i + 1].addr != p.addr + PAGE_SIZE {
                break;
            }
            n += 1;
            if i == 0 {
                break;
            }
            i -= 1;
        }
        Some((self.pages[top].addr + PAGE_SIZE - n * PAGE_SIZE, n))
    }
    fn mark_scavenged(&mut self, i: usize, n: usize) {
        for p in &mut self.pages[i..i + n] {
            if !p.alloc {
                p.scav = true;
            }
        }
    }
    fn counts(&self) -> (usize, usize, usize) {
        let free = self.pages.iter().filter(|p| !p.alloc).count();
        let scav = self.pages.iter().filter(|p| !p.alloc && p.scav).count();
        (self.pages.len(), free, scav)
    }
}

struct State {
    pa: Box<PageAlloc>,
    m: Model,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn counts(pa: &PageAlloc) -> (usize, usize, usize) {
    (pa.total_pages(), pa.free_pages(), pa.free_scavenged_pages())
}

fn run(data: &[u8]) {
    let mut guard = STATE.lock().unwrap();
    let st = guard.get_or_insert_with(|| {
        let mut pa = Box::new(PageAlloc::new());
        for (base, chunks) in REGIONS {
            assert!(pa.grow(&SYS, base, chunks * CHUNK_BYTES));
        }
        State { pa, m: Model::new() }
    });
    let (pa, m) = (&mut st.pa, &mut st.m);
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut it = data.iter().copied();
    let mut next = || it.next();
    let mut ops = 0;
    while let Some(op) = next() {
        ops += 1;
        if ops > 300 {
            break;
        }
        let Some(a) = next() else { break };
        let Some(b) = next() else { break };
        let arg = (a as usize) << 8 | b as usize;
        match op % 8 {
            0 | 1 => {
                // alloc: mostly small, sometimes past a chunk, sometimes huge
                let n = match op / 8 % 4 {
                    0 | 1 => 1 + arg % 16,
                    2 => 1 + arg % (2 * CHUNK_PAGES),
                    _ => 1 + arg % (5 * CHUNK_PAGES),
                };
                let want = m.first_fit(n);
                let got = pa.alloc(n);
                match (want, got) {
                    (None, None) => {}
                    (Some(i), Some((base, scav))) => {
                        assert_eq!(base, m.pages[i].addr, "alloc({n}): address differs from first fit");
                        assert_eq!(scav, m.alloc_at(i, n), "alloc({n}): scavenged bytes differ");
                        live.push((base, n));
                    }
                    _ => panic!("alloc({n}): model {want:?}, allocator {got:?}"),
                }
            }
            2 | 3 => {
                if live.is_empty() {
                    continue;
                }
                let k = arg % live.len();
                let (base, n) = live[k];
                if op & 0x40 != 0 && n > 1 {
                    // free the tail only (large objects shrink this way)
                    let keep = 1 + arg % (n - 1);
                    let tail = base + keep * PAGE_SIZE;
                    pa.free(tail, n - keep);
                    m.free_at(m.index(tail).unwrap(), n - keep);
                    live[k].1 = keep;
                } else {
                    live.swap_remove(k);
                    pa.free(base, n);
                    m.free_at(m.index(base).unwrap(), n);
                }
            }
            4 => {
                // is_free / alloc_range at an address from the input
                let i = (arg * 7) % m.pages.len();
                let n = 1 + (op as usize / 8) % 24;
                let base = m.pages[i].addr;
                let free = m.is_free(base, n);
                assert_eq!(pa.is_free(base, n), free, "is_free({base:#x}, {n})");
                if free && op & 0x80 != 0 {
                    let scav = pa.alloc_range(base, n);
                    assert_eq!(scav, m.alloc_at(i, n), "alloc_range scavenged bytes");
                    live.push((base, n));
                }
            }
            5 => {
                let max = 1 + arg % 700;
                let want = m.scavenge_candidate(max);
                let got = pa.scavenge_candidate(max);
                assert_eq!(got, want, "scavenge_candidate({max})");
                if let Some((base, n)) = got {
                    pa.mark_scavenged(base, n);
                    m.mark_scavenged(m.index(base).unwrap(), n);
                }
            }
            6 => {
                // mark a range scavenged (allocated pages are skipped)
                let i = arg % m.pages.len();
                let n = (1 + a as usize % 64).min(m.pages.len() - i);
                let base = m.pages[i].addr;
                if m.range(base, n).is_some() {
                    pa.mark_scavenged(base, n);
                    m.mark_scavenged(i, n);
                }
            }
            _ => {
                assert_eq!(pa.check(), Ok(()));
            }
        }
        assert_eq!(counts(pa), m.counts(), "counters (total, free, free scavenged)");
    }
    assert_eq!(pa.check(), Ok(()));
    // Back to the state grow leaves: everything free and scavenged.
    for (base, n) in live {
        pa.free(base, n);
        m.free_at(m.index(base).unwrap(), n);
    }
    for (base, chunks) in REGIONS {
        pa.mark_scavenged(base, chunks * CHUNK_PAGES);
    }
    for p in &mut m.pages {
        p.scav = true;
    }
    assert_eq!(counts(pa), m.counts());
    assert_eq!(pa.free_pages(), pa.total_pages());
    assert_eq!(pa.check(), Ok(()));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
