//! The per-chunk bitmaps, in a sparse two-level array indexed by chunk
//! number (address >> 22), as Go's `pageAlloc.chunks`.
//!
//! L1 is an inline array of 2^14 pointers (47-bit addresses; 128 KiB); each
//! non-null one points to an L2 block for 2^11 consecutive chunks (8 GiB of
//! address space; 256 KiB, only the pages written become resident), obtained
//! from `Os::alloc_metadata` the first time a grow touches it. Besides the 128-byte
//! bitmaps of each chunk, an L2 block holds two bitmaps with one bit per
//! chunk: `grown` (the chunk belongs to the heap) and `scav_hint` (the chunk
//! may have free pages that are not scavenged; set by free, cleared lazily
//! by the scavenger's search).
//!
//! Memory of a fresh L2 block reads as zero; bitmaps of chunks that were
//! never grown are never consulted (everything checks `grown` first, or
//! reaches a chunk only through a non-zero summary).

use super::bits::PallocBits;
use crate::platform::Os;

pub const L2_BITS: usize = 11;
pub const L1_BITS: usize = super::HEAP_ADDR_BITS - super::LOG_CHUNK_BYTES - L2_BITS;
pub const L1_ENTRIES: usize = 1 << L1_BITS;
pub const L2_ENTRIES: usize = 1 << L2_BITS;
const L2_WORDS: usize = L2_ENTRIES / 64;

/// The bitmaps of one chunk.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct ChunkData {
    /// 1 = page allocated.
    pub alloc: PallocBits,
    /// 1 = page free, returned to the OS and known zero. Always a subset
    /// of the free pages.
    pub scav: PallocBits,
}

impl ChunkData {
    /// Marks pages [i, i+n) allocated and clears their scavenged bits.
    /// Returns how many of them were scavenged. Fatal if one was already
    /// allocated (the caller's accounting would be wrong).
    #[inline]
    pub fn alloc_pages(&mut self, i: usize, n: usize) -> usize {
        // One pass over the words; most ranges have no scavenged page, so
        // the count is skipped for a word without one.
        let (mut scav, mut taken) = (0, 0);
        PallocBits::for_range(i, n, |w, m| {
            taken |= self.alloc.0[w] & m;
            self.alloc.0[w] |= m;
            let s = self.scav.0[w] & m;
            if s != 0 {
                scav += s.count_ones() as usize;
                self.scav.0[w] &= !m;
            }
        });
        if taken != 0 {
            super::fatal("page allocator: allocating a page that is not free");
        }
        scav
    }

    /// Marks pages [i, i+n) free; their scavenged bits stay clear. Fatal if
    /// one was already free (a double free).
    #[inline]
    pub fn free_pages(&mut self, i: usize, n: usize) {
        let mut free = 0;
        PallocBits::for_range(i, n, |w, m| {
            free |= !self.alloc.0[w] & m;
            self.alloc.0[w] &= !m;
        });
        if free != 0 {
            super::fatal("page allocator: freeing a page that is not allocated");
        }
    }

    /// Sets the scavenged bit of every free page in [i, i+n); returns how
    /// many bits changed.
    #[inline]
    pub fn mark_scavenged(&mut self, i: usize, n: usize) -> usize {
        let mut range = PallocBits::EMPTY;
        range.set_range(i, n);
        let mut changed = 0;
        for w in 0..super::bits::WORDS {
            let new = range.0[w] & !self.alloc.0[w] & !self.scav.0[w];
            changed += new.count_ones() as usize;
            self.scav.0[w] |= new;
        }
        changed
    }

    /// Whether some page is free and not scavenged.
    #[inline]
    pub fn has_free_unscavenged(&self) -> bool {
        (0..super::bits::WORDS).any(|w| !self.alloc.0[w] & !self.scav.0[w] != 0)
    }

    /// The index of the lowest free, unscavenged page, if any.
    pub fn lowest_free_unscavenged(&self) -> Option<usize> {
        (0..super::bits::WORDS).find_map(|w| {
            let m = !self.alloc.0[w] & !self.scav.0[w];
            (m != 0).then(|| w * 64 + m.trailing_zeros() as usize)
        })
    }

    /// The highest run of free, unscavenged pages, cut to its top
    /// `max_pages` pages: (first page index, length). None if there is none.
    ///
    /// With `G` > 1 (OS pages of `G` goheap pages, `super::SCAV_GROUP`) the
    /// unit is an aligned group of `G` pages that are all free, at least
    /// one of them unscavenged: the run is whole groups (its length cut to
    /// a multiple of `G`, at least `G`), and may include scavenged pages,
    /// which releasing again leaves zero. A group with a page in use cannot
    /// be released without it. `G` = 1 is the plain search.
    pub fn highest_free_unscavenged<const G: usize>(&self, max_pages: usize) -> Option<(usize, usize)> {
        const { assert!(G.is_power_of_two() && G <= 32) };
        let unscav = |w: usize| {
            if G == 1 {
                !self.alloc.0[w] & !self.scav.0[w]
            } else {
                !fill_groups(self.alloc.0[w], G) & fill_groups(!self.alloc.0[w] & !self.scav.0[w], G)
            }
        };
        let max_pages = if G == 1 { max_pages } else { (max_pages / G).max(1) * G };
        let mut w = super::bits::WORDS;
        while w > 0 {
            w -= 1;
            let m = unscav(w);
            if m == 0 {
                continue;
            }
            let top = w * 64 + 63 - m.leading_zeros() as usize;
            // Walk down from `top` a word at a time, counting the run.
            let mut n = 0;
            let mut ww = w;
            let mut b = 63 - m.leading_zeros() as usize;
            loop {
                let ones = (unscav(ww) << (63 - b)).leading_ones() as usize;
                n += ones;
                if n >= max_pages {
                    n = max_pages;
                    break;
                }
                if ones < b + 1 || ww == 0 {
                    break;
                }
                ww -= 1;
                b = 63;
            }
            return Some((top + 1 - n, n));
        }
        None
    }
}

/// `x` with every bit of each aligned group of `g` bits (a power of two
/// below 64) set if any bit of the group is (Go's fillAligned).
#[inline(always)]
pub const fn fill_groups(x: u64, g: usize) -> u64 {
    // One bit at the bottom of each group, then spread over the group
    // (the product never carries: the groups do not overlap).
    let lows = u64::MAX / ((1u64 << g) - 1);
    let mut any = 0;
    let mut i = 0;
    while i < g {
        any |= (x >> i) & lows;
        i += 1;
    }
    any * ((1u64 << g) - 1)
}

#[repr(C)]
pub struct L2Block {
    pub chunks: [ChunkData; L2_ENTRIES],
    pub grown: [u64; L2_WORDS],
    pub scav_hint: [u64; L2_WORDS],
}

/// The sparse chunk array.
pub struct ChunkMap {
    /// The first level, obtained from the OS with the first L2 block (null
    /// until then): kept out of the heap's static record, whose other
    /// fields are not all zero, so that its 128 KiB are not in the
    /// library's data section, where a read of any field maps file pages
    /// around it into every process (fault-around).
    l1: *mut [*mut L2Block; L1_ENTRIES],
    /// Lowest and highest L1 index with a block (lo > hi when none).
    pub l1_lo: usize,
    pub l1_hi: usize,
}

impl ChunkMap {
    pub const fn new() -> ChunkMap {
        ChunkMap { l1: core::ptr::null_mut(), l1_lo: L1_ENTRIES, l1_hi: 0 }
    }

    /// The L1 entry `i` (null without a first level).
    #[inline]
    fn l1_entry(&self, i: usize) -> *mut L2Block {
        if self.l1.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: a non-null `l1` points to a live, zero-initialised first level we own.
        unsafe { (*self.l1)[i] }
    }

    /// Makes sure chunks [lo, hi] have an L2 block. False if the OS refuses.
    pub fn ensure<O: Os>(&mut self, os: &O, lo_chunk: usize, hi_chunk: usize) -> bool {
        if self.l1.is_null() {
            match os.alloc_metadata(core::mem::size_of::<[*mut L2Block; L1_ENTRIES]>()) {
                Some(p) => self.l1 = p as *mut [*mut L2Block; L1_ENTRIES],
                None => return false,
            }
        }
        let mut i = lo_chunk >> L2_BITS;
        while i <= hi_chunk >> L2_BITS {
            if self.l1_entry(i).is_null() {
                let p = match os.alloc_metadata(core::mem::size_of::<L2Block>()) {
                    Some(p) => p,
                    None => return false,
                };
                // SAFETY: the first level exists (above) and is ours.
                unsafe { (*self.l1)[i] = p as *mut L2Block };
                if i < self.l1_lo {
                    self.l1_lo = i;
                }
                if i > self.l1_hi {
                    self.l1_hi = i;
                }
            }
            i += 1;
        }
        true
    }

    /// The L2 block with L1 index `i`, if any.
    #[inline]
    pub fn block(&self, i: usize) -> Option<&L2Block> {
        let p = self.l1_entry(i);
        // SAFETY: non-null L1 entries point to live, zero-initialised L2 blocks we own.
        unsafe { p.as_ref() }
    }

    #[inline]
    pub fn block_mut(&mut self, i: usize) -> Option<&mut L2Block> {
        let p = self.l1_entry(i);
        // SAFETY: as in `block`; `&mut self` gives exclusive access.
        unsafe { p.as_mut() }
    }

    /// Whether chunk `ci` is part of the heap.
    #[inline]
    pub fn is_grown(&self, ci: usize) -> bool {
        match self.block(ci >> L2_BITS) {
            Some(b) => {
                let j = ci & (L2_ENTRIES - 1);
                b.grown[j / 64] & (1 << (j % 64)) != 0
            }
            None => false,
        }
    }

    /// The bitmaps of chunk `ci`, which must have an L2 block.
    #[inline]
    pub fn chunk(&self, ci: usize) -> &ChunkData {
        match self.block(ci >> L2_BITS) {
            Some(b) => &b.chunks[ci & (L2_ENTRIES - 1)],
            None => super::fatal("page allocator: chunk without metadata"),
        }
    }

    #[inline]
    pub fn chunk_mut(&mut self, ci: usize) -> &mut ChunkData {
        match self.block_mut(ci >> L2_BITS) {
            Some(b) => &mut b.chunks[ci & (L2_ENTRIES - 1)],
            None => super::fatal("page allocator: chunk without metadata"),
        }
    }

    /// Sets bit `ci` of the per-chunk bitmap selected by `pick`.
    #[inline]
    pub fn set_flag(&mut self, ci: usize, pick: fn(&mut L2Block) -> &mut [u64; L2_WORDS], on: bool) {
        if let Some(b) = self.block_mut(ci >> L2_BITS) {
            let j = ci & (L2_ENTRIES - 1);
            let w = &mut pick(b)[j / 64];
            if on {
                *w |= 1 << (j % 64);
            } else {
                *w &= !(1 << (j % 64));
            }
        }
    }
}

pub fn grown_bits(b: &mut L2Block) -> &mut [u64; L2_WORDS] {
    &mut b.grown
}

pub fn scav_hint_bits(b: &mut L2Block) -> &mut [u64; L2_WORDS] {
    &mut b.scav_hint
}
