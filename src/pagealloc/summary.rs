//! Packed summaries of runs of free pages (Go's `pallocSum`).
//!
//! A summary describes a power-of-two aligned range of pages by three
//! numbers: `start` (free pages at the low end), `max` (longest free run
//! anywhere) and `end` (free pages at the high end). Each fits in 21 bits
//! because the largest range a summary ever covers (one level-0 entry, 16 GiB)
//! is exactly 2^21 pages; that one value, MAX_PACKED, does not fit in 21
//! bits, but it only occurs when the range is entirely free, so then all
//! three numbers are equal and the whole summary is encoded as bit 63 alone.
//!
//! The zero summary means "no free page", which is also what unmapped or
//! never-grown address space looks like, so searches never descend there.

/// log2 of the largest value a summary field can hold.
pub const LOG_MAX_PACKED: usize = 21;
/// The largest value a summary field can hold (pages in one level-0 entry).
pub const MAX_PACKED: usize = 1 << LOG_MAX_PACKED;

const FIELD_MASK: u64 = (MAX_PACKED as u64) - 1;
const ALL_FREE_BIT: u64 = 1 << 63;

/// A packed (start, max, end) summary; see the module comment.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(transparent)]
pub struct PallocSum(pub u64);

impl PallocSum {
    /// The summary of a range with no free page.
    pub const ZERO: PallocSum = PallocSum(0);

    /// Packs the three fields. Each must be <= MAX_PACKED, and
    /// `max == MAX_PACKED` implies start == end == MAX_PACKED (an all-free
    /// level-0 entry).
    #[inline]
    pub const fn pack(start: usize, max: usize, end: usize) -> PallocSum {
        if max == MAX_PACKED {
            return PallocSum(ALL_FREE_BIT);
        }
        PallocSum(
            (start as u64 & FIELD_MASK)
                | ((max as u64 & FIELD_MASK) << LOG_MAX_PACKED)
                | ((end as u64 & FIELD_MASK) << (2 * LOG_MAX_PACKED)),
        )
    }

    #[inline(always)]
    pub const fn start(self) -> usize {
        (self.0 & FIELD_MASK) as usize | self.all_free_bits()
    }

    #[inline(always)]
    pub const fn max(self) -> usize {
        ((self.0 >> LOG_MAX_PACKED) & FIELD_MASK) as usize | self.all_free_bits()
    }

    #[inline(always)]
    pub const fn end(self) -> usize {
        ((self.0 >> (2 * LOG_MAX_PACKED)) & FIELD_MASK) as usize | self.all_free_bits()
    }

    /// MAX_PACKED for an all-free summary, else 0, without a branch: an
    /// all-free summary is bit 63 alone, so its field bits are zero and
    /// OR-ing this in gives MAX_PACKED in each field (the merge up the
    /// levels reads eight summaries per level on every page allocation and
    /// free).
    #[inline(always)]
    const fn all_free_bits(self) -> usize {
        ((self.0 >> 63) << LOG_MAX_PACKED) as usize
    }

    #[inline(always)]
    pub const fn unpack(self) -> (usize, usize, usize) {
        (self.start(), self.max(), self.end())
    }
}

/// Combines the summaries of consecutive, equally sized ranges (each of
/// 2^`log_pages_per_child` pages) into the summary of their concatenation.
///
/// `start` keeps growing only while every child so far was entirely free;
/// `end` is reset by any child that is not entirely free; `max` also
/// considers the run formed by the previous `end` and the next `start`.
#[inline]
pub fn merge_summaries(children: &[PallocSum], log_pages_per_child: usize) -> PallocSum {
    let child_pages = 1usize << log_pages_per_child;
    let Some((first, rest)) = children.split_first() else {
        return PallocSum::ZERO;
    };
    let (mut start, mut max, mut end) = first.unpack();
    // `start` still equals the pages seen so far while every child was free.
    let mut seen = child_pages;
    for c in rest {
        // Address space not grown (most siblings at the upper levels):
        // it ends any run.
        if *c == PallocSum::ZERO {
            max = max.max(end);
            end = 0;
            seen += child_pages;
            continue;
        }
        let (cs, cm, ce) = c.unpack();
        if start == seen {
            start += cs;
        }
        max = max.max(end + cs).max(cm);
        end = if ce == child_pages { end + child_pages } else { ce };
        seen += child_pages;
    }
    PallocSum::pack(start, max, end)
}
