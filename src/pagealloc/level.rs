//! Storage of one level of the summary radix tree.
//!
//! A level is an array of `u64` summaries indexed by address, stored
//! sparsely: in blocks of 2^`BLOCK_LOG` entries (64 KiB, one block of
//! level 4 covers 32 GiB of address space), each obtained from the OS
//! (`Os::alloc_metadata`, zero-filled) the first time `ensure_mapped` needs it, and
//! found through a small index of block pointers (`set_index`: the page
//! allocator makes the indexes of all levels in one region). A level
//! short enough (level 0: 2^13 or 2^14 entries) is a single block, so it is
//! contiguous, as `find` scans it whole.
//!
//! Only what the heap touches takes address space: a dense reservation of
//! every level (Go's layout) is ~290 MiB of PROT_NONE mappings for 47-bit
//! addresses, which RLIMIT_AS (`ulimit -v`) counts like any other. Here a
//! heap in one region costs the index (40 KiB) plus one block per level
//! (5 x 64 KiB), and only the OS pages written are ever resident.
//!
//! An entry in a block not yet obtained reads as zero ("no free pages").
//! A block holds whole groups of 8 siblings (2^BLOCK_LOG is a multiple of
//! 8), so `slice` of a group of children never crosses blocks.

use super::summary::PallocSum;
use crate::platform::{os, Os};

const ENTRY_BYTES: usize = 8;
/// log2 of the entries per block (64 KiB of entries; a multiple of the 8
/// siblings of a group).
const BLOCK_LOG: usize = 13;
/// Levels of up to this many entries are one block.
const WHOLE_MAX: usize = 1 << 14;

#[inline]
const fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// One level of summaries; `index == 0` until `set_index`.
pub struct SummaryLevel {
    /// Address of the array of block pointers (0 = block not obtained).
    index: usize,
    /// Number of entries.
    len: usize,
    /// log2 of the entries per block.
    shift: usize,
}

impl SummaryLevel {
    pub const fn new(len: usize) -> SummaryLevel {
        let shift = if len <= WHOLE_MAX { len.trailing_zeros() as usize } else { BLOCK_LOG };
        SummaryLevel { index: 0, len, shift }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    fn nblocks(&self) -> usize {
        self.len.div_ceil(1 << self.shift)
    }

    fn block_bytes(&self) -> usize {
        round_up((1 << self.shift) * ENTRY_BYTES, os::OS_PAGE)
    }

    /// Bytes of this level's block index.
    pub fn index_bytes(&self) -> usize {
        self.nblocks() * 8
    }

    /// Whether the block index is made.
    pub fn has_index(&self) -> bool {
        self.index != 0
    }

    /// Uses `index` (zero-filled, `index_bytes()` long, 8-aligned, never
    /// freed) as the block index. The page allocator makes one region for
    /// the indexes of all its levels (`PageAlloc::init`): levels 0 to 2 have
    /// 1 to 64 slots and level 3 has 512, so with a page apiece a small
    /// heap wrote five pages of indexes in every process; together, two.
    pub fn set_index(&mut self, index: usize) {
        debug_assert!(self.index == 0 && index != 0 && index.is_multiple_of(8));
        self.index = index;
    }

    /// The block holding entry `i`, or 0.
    #[inline]
    fn block(&self, i: usize) -> usize {
        if self.index == 0 || i >= self.len {
            return 0;
        }
        // SAFETY: i < len, so the slot lies in the index given to `set_index`.
        unsafe { *((self.index as *const usize).add(i >> self.shift)) }
    }

    #[inline]
    fn entry(&self, i: usize) -> *mut PallocSum {
        let b = self.block(i);
        debug_assert!(b != 0);
        (b as *mut PallocSum).wrapping_add(i & ((1 << self.shift) - 1))
    }

    /// Whether entry `i` is backed (readable).
    #[inline]
    pub fn is_mapped(&self, i: usize) -> bool {
        self.block(i) != 0
    }

    /// Entry `i`; it must be backed.
    #[inline]
    pub fn get(&self, i: usize) -> PallocSum {
        debug_assert!(self.is_mapped(i));
        // SAFETY: callers only read backed entries (debug-checked above).
        unsafe { *self.entry(i) }
    }

    /// Entry `i` if backed, else 0 ("no free pages").
    #[inline]
    pub fn get_or_zero(&self, i: usize) -> PallocSum {
        let b = self.block(i);
        if b == 0 {
            return PallocSum::ZERO;
        }
        // SAFETY: a backed entry of a live block.
        unsafe { *((b as *const PallocSum).add(i & ((1 << self.shift) - 1))) }
    }

    /// The backed entries [i, i+n), all in one block, as a slice.
    #[inline]
    pub fn slice(&self, i: usize, n: usize) -> &[PallocSum] {
        debug_assert!(n == 0 || (self.is_mapped(i) && (i >> self.shift) == ((i + n - 1) >> self.shift)));
        // SAFETY: callers pass aligned runs of siblings inside one backed block (debug-checked above).
        unsafe { core::slice::from_raw_parts(self.entry(i), n) }
    }

    /// Sets entry `i`; it must be backed.
    #[inline]
    pub fn set(&mut self, i: usize, v: PallocSum) {
        debug_assert!(self.is_mapped(i));
        // SAFETY: callers only write backed entries (debug-checked above).
        unsafe { *self.entry(i) = v };
    }

    /// Obtains every block holding entries [lo, hi). Blocks already there
    /// are left alone. False if the OS refuses; blocks obtained before the
    /// failure stay (and read as zero summaries).
    pub fn ensure_mapped<O: Os>(&mut self, os: &O, lo: usize, hi: usize) -> bool {
        if lo >= hi {
            return true;
        }
        if self.index == 0 || hi > self.len {
            return false;
        }
        for b in lo >> self.shift..=(hi - 1) >> self.shift {
            // SAFETY: b < nblocks, a slot of the index.
            let slot = unsafe { &mut *((self.index as *mut usize).add(b)) };
            if *slot == 0 {
                match os.alloc_metadata(self.block_bytes()) {
                    Some(p) => *slot = p,
                    None => return false,
                }
            }
        }
        true
    }

    /// Calls `f(lo, hi)` for each maximal backed run of entries.
    pub fn for_each_mapped(&self, mut f: impl FnMut(usize, usize)) {
        if self.index == 0 {
            return;
        }
        let n = self.nblocks();
        let mut b = 0;
        while b < n {
            if self.block(b << self.shift) == 0 {
                b += 1;
                continue;
            }
            let mut e = b + 1;
            while e < n && self.block(e << self.shift) != 0 {
                e += 1;
            }
            f(b << self.shift, core::cmp::min(e << self.shift, self.len));
            b = e;
        }
    }
}
