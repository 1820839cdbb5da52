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

    #[inline]
    pub const fn start(self) -> usize {
        if self.0 & ALL_FREE_BIT != 0 {
            return MAX_PACKED;
        }
        (self.0 & FIELD_MASK) as usize
    }

    #[inline]
    pub const fn max(self) -> usize {
        if self.0 & ALL_FREE_BIT != 0 {
            return MAX_PACKED;
        }
        ((self.0 >> LOG_MAX_PACKED) & FIELD_MASK) as usize
    }

    #[inline]
    pub const fn end(self) -> usize {
        if self.0 & ALL_FREE_BIT != 0 {
            return MAX_PACKED;
        }
        ((self.0 >> (2 * LOG_MAX_PACKED)) & FIELD_MASK) as usize
    }

    #[inline]
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
    let (mut start, mut max, mut end) = match children.first() {
        Some(s) => s.unpack(),
        None => return PallocSum::ZERO,
    };
    let mut i = 1;
    while i < children.len() {
        let (cs, cm, ce) = children[i].unpack();
        if start == i * child_pages {
            start += cs;
        }
        let straddle = end + cs;
        if straddle > max {
            max = straddle;
        }
        if cm > max {
            max = cm;
        }
        end = if ce == child_pages { end + child_pages } else { ce };
        i += 1;
    }
    PallocSum::pack(start, max, end)
}
