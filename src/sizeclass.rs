//! Size classes, derived at compile time with the rule of the Go runtime's
//! `mksizeclasses.go`, with one departure for C.
//!
//! Go's rule: walk sizes upward with an alignment step that grows with the
//! size (8, then 16, then size/8 from 128 B, then 256 from 2 KiB). For each
//! size choose the smallest span (a whole number of 8 KiB pages) whose tail
//! waste is at most 1/8 of the span. A size that needs the same span size and
//! fits the same number of objects as the previous class replaces it (there
//! is no point in two classes that behave identically). Finally each class is
//! grown to the largest size that still fits the same number of objects.
//!
//! The departure: C code assumes that any block of 16 bytes or more is aligned
//! for `max_align_t` (16 bytes on x86-64). tcmalloc's 8-aligned 24- and
//! 56-byte classes broke real programs, so here the alignment step is 16 from
//! 16 bytes on and every class of 16 bytes or more is a multiple of 16. Go's
//! 24-byte class disappears; 1–8 byte requests still get an 8-byte class.
//!
//! The object index inside a span is computed without a division: for a class
//! of size `s`, `(offset * div_mul) >> 32` with `div_mul = u32::MAX / s + 1`
//! equals `offset / s` for every offset inside the span (the tests check every
//! offset of every class).

use crate::pagealloc::PAGE_SIZE;

/// The largest request served from size classes; anything bigger is a large
/// object with its own span.
pub const MAX_SMALL_SIZE: usize = 32 << 10;
const SMALL_SIZE_DIV: usize = 8;
const LARGE_SIZE_DIV: usize = 128;
/// Room for the derivation; the real count is `NUM_CLASSES`.
const MAX_CLASSES: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// Object size in bytes (0 for class 0, which stands for "large").
    pub size: u32,
    /// Pages per span of this class.
    pub npages: u32,
    /// Objects per span.
    pub nelems: u32,
    /// `u32::MAX / size + 1`: object index = (offset * div_mul) >> 32.
    pub div_mul: u32,
}

const fn is_pow2(x: usize) -> bool {
    x & (x.wrapping_sub(1)) == 0
}

/// Go's alignment rule, with 16 from 16 bytes on (see the module comment).
const fn next_align(size: usize, align: usize) -> usize {
    if !is_pow2(size) {
        align
    } else if size >= 2048 {
        256
    } else if size >= 128 {
        size / 8
    } else if size >= 16 {
        16
    } else {
        align
    }
}

const fn derive() -> ([Class; MAX_CLASSES], usize) {
    let empty = Class { size: 0, npages: 0, nelems: 0, div_mul: 0 };
    let mut classes = [empty; MAX_CLASSES];
    let mut n = 1; // class 0 is the large-object class
    let mut align = 8;
    let mut size = align;
    while size <= MAX_SMALL_SIZE {
        align = next_align(size, align);
        let mut allocsize = PAGE_SIZE;
        while allocsize % size > allocsize / 8 {
            allocsize += PAGE_SIZE;
        }
        let npages = allocsize / PAGE_SIZE;
        let prev = classes[n - 1];
        if n > 1 && npages == prev.npages as usize && allocsize / size == allocsize / prev.size as usize {
            classes[n - 1].size = size as u32;
        } else {
            classes[n] = Class { size: size as u32, npages: npages as u32, nelems: 0, div_mul: 0 };
            n += 1;
        }
        size += align;
    }
    // Grow each class to the largest size that fits the same number of
    // objects, in steps of LARGE_SIZE_DIV so that size_to_class's 128-byte
    // table stays exact (and the 16-byte promise holds).
    let mut i = 1;
    while i < n {
        let c = &mut classes[i];
        let psize = c.npages as usize * PAGE_SIZE;
        let new_size = (psize / (psize / c.size as usize)) & !(LARGE_SIZE_DIV - 1);
        if new_size > c.size as usize {
            c.size = new_size as u32;
        }
        c.nelems = (psize / c.size as usize) as u32;
        c.div_mul = (u32::MAX / c.size) + 1;
        i += 1;
    }
    (classes, n)
}

const DERIVED: ([Class; MAX_CLASSES], usize) = derive();

/// Number of size classes, class 0 (large) included.
pub const NUM_CLASSES: usize = DERIVED.1;

/// The class table, indexed by class number.
pub static CLASSES: [Class; NUM_CLASSES] = {
    let mut t = [Class { size: 0, npages: 0, nelems: 0, div_mul: 0 }; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        t[i] = DERIVED.0[i];
        i += 1;
    }
    t
};

const fn class_of_linear(size: usize) -> u8 {
    let mut c = 1;
    while c < NUM_CLASSES {
        if DERIVED.0[c].size as usize >= size {
            return c as u8;
        }
        c += 1;
    }
    0
}

/// The class of every request size up to 32 KiB in 8-byte steps: one
/// 4 KiB table, so the lookup is an add, a shift and a load (Go splits it
/// into size_to_class8 and size_to_class128 to save memory, at the cost of
/// a branch or a computed shift on every malloc).
static SIZE_TO_CLASS: [u8; MAX_SMALL_SIZE / SMALL_SIZE_DIV + 1] = {
    let mut t = [0u8; MAX_SMALL_SIZE / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_of_linear(i * SMALL_SIZE_DIV);
        i += 1;
    }
    t
};

/// The class serving a request of `size` bytes (`size <= MAX_SMALL_SIZE`).
/// A request of 0 bytes gets the smallest class, so it is a unique pointer.
#[inline(always)]
// The add-and-shift form is what the fast paths were measured with.
#[allow(clippy::manual_div_ceil)]
pub fn size_to_class(size: usize) -> usize {
    // Callers have checked size <= MAX_SMALL_SIZE, so the bounds check folds away.
    SIZE_TO_CLASS[(size + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV] as usize
}

/// Object index of byte `offset` inside a span, and whether `offset` is
/// exactly the start of that object. With `div_mul = ceil(2^32 / size)`,
/// `offset * div_mul` is `index * 2^32 + index * e + rem * div_mul` where
/// `e = size * div_mul - 2^32 < size`: its low half is below `div_mul`
/// exactly when `rem` is 0, as long as `index * e < div_mul`, which
/// `div_magic_exact_for_every_offset` checks for every class. This saves
/// the multiply back that `index * size == offset` would cost on free.
#[inline(always)]
pub fn object_slot(div_mul: u32, offset: usize) -> (usize, bool) {
    let m = offset as u64 * div_mul as u64;
    ((m >> 32) as usize, (m as u32) < div_mul)
}

/// Object index of byte `offset` inside a span of class `c`.
#[inline(always)]
pub fn object_index(div_mul: u32, offset: usize) -> usize {
    ((offset as u64 * div_mul as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_obeys_go_rules_and_c_alignment() {
        const { assert!(NUM_CLASSES > 60 && NUM_CLASSES < 80) };
        assert_eq!(CLASSES[1].size, 8);
        assert_eq!(CLASSES[NUM_CLASSES - 1].size as usize, MAX_SMALL_SIZE);
        // Go's table with its 24-byte class removed, spot-checked.
        let sizes: std::vec::Vec<u32> = CLASSES.iter().map(|c| c.size).collect();
        for s in [8, 16, 32, 48, 640, 768, 896, 1152, 3200, 6528, 9472, 19072, 27264] {
            assert!(sizes.contains(&s), "missing class {s}");
        }
        assert!(!sizes.contains(&24));
        for (c, &k) in CLASSES.iter().enumerate().skip(1) {
            let span = k.npages as usize * PAGE_SIZE;
            // Tail waste at most 12.5% of the span.
            assert!(span % k.size as usize <= span / 8, "class {c} {k:?}");
            assert_eq!(k.nelems as usize, span / k.size as usize);
            if k.size >= 16 {
                assert_eq!(k.size % 16, 0, "class {c} not 16-aligned");
            }
            if c > 1 {
                assert!(k.size > CLASSES[c - 1].size);
            }
            // The span size is minimal for this object size (Go's search
            // starts at one page and takes the first that fits).
            let mut a = PAGE_SIZE;
            while a % k.size as usize > a / 8 {
                a += PAGE_SIZE;
            }
            assert!(a <= span);
        }
    }

    #[test]
    fn independent_rederivation_matches() {
        // A plain, non-const re-derivation of Go's rule with a Vec.
        let mut classes: std::vec::Vec<(usize, usize)> = std::vec::Vec::new();
        let mut align = 8usize;
        let mut size = 8usize;
        while size <= MAX_SMALL_SIZE {
            if size.is_power_of_two() {
                align = match size {
                    s if s >= 2048 => 256,
                    s if s >= 128 => s / 8,
                    s if s >= 16 => 16,
                    _ => align,
                };
            }
            let mut alloc = PAGE_SIZE;
            while alloc % size > alloc / 8 {
                alloc += PAGE_SIZE;
            }
            let np = alloc / PAGE_SIZE;
            match classes.last_mut() {
                Some(last) if last.1 == np && alloc / size == alloc / last.0 => last.0 = size,
                _ => classes.push((size, np)),
            }
            size += align;
        }
        for (s, np) in classes.iter_mut() {
            let ps = *np * PAGE_SIZE;
            let ns = (ps / (ps / *s)) & !127;
            if ns > *s {
                *s = ns;
            }
        }
        assert_eq!(classes.len(), NUM_CLASSES - 1);
        for (i, (s, np)) in classes.iter().enumerate() {
            assert_eq!(CLASSES[i + 1].size as usize, *s);
            assert_eq!(CLASSES[i + 1].npages as usize, *np);
        }
    }

    #[test]
    fn size_to_class_is_smallest_fit() {
        for size in 0..=MAX_SMALL_SIZE {
            let c = size_to_class(size);
            assert!((1..NUM_CLASSES).contains(&c), "size {size}");
            assert!(CLASSES[c].size as usize >= size.max(1));
            assert!(c == 1 || (CLASSES[c - 1].size as usize) < size, "size {size} class {c}");
        }
    }

    #[test]
    fn div_magic_exact_for_every_offset() {
        for (c, &k) in CLASSES.iter().enumerate().skip(1) {
            let span = k.npages as usize * PAGE_SIZE;
            for off in 0..span {
                assert_eq!(object_index(k.div_mul, off), off / k.size as usize, "class {c} off {off}");
                let (idx, exact) = object_slot(k.div_mul, off);
                assert_eq!(idx, off / k.size as usize, "class {c} off {off}");
                assert_eq!(exact, off % k.size as usize == 0, "class {c} off {off}");
            }
        }
    }
}
