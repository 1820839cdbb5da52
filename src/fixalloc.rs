//! Off-heap metadata allocation: never malloc.
//!
//! * `persistent_alloc` hands out memory that is never freed (arena
//!   metadata, lookup tables), carved from large blocks obtained straight
//!   from the OS, as the Go runtime's persistentalloc.
//! * `FixAlloc` is Go's fixalloc: a free list of fixed-size records (spans,
//!   thread caches) whose backing comes from `persistent_alloc`. Freed records
//!   are reused, never returned to the OS; the caller provides the locking.

use crate::platform::lock::Locked;
use crate::platform::{align_up, os};
use core::sync::atomic::{AtomicUsize, Ordering};

const PERSISTENT_BLOCK: usize = 256 << 10;

struct Persistent {
    next: usize,
    end: usize,
}

static PERSISTENT: Locked<Persistent> = Locked::new(Persistent { next: 0, end: 0 });

/// Bytes of metadata obtained from the OS (persistent blocks and large
/// direct requests), for statistics.
pub static METADATA_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Zeroed, never-freed memory of `size` bytes aligned to `align` (a power of
/// two no larger than an OS page). Returns 0 when the OS refuses.
pub fn persistent_alloc(size: usize, align: usize) -> usize {
    if size >= PERSISTENT_BLOCK / 4 {
        // Big requests get their own mapping so blocks are not wasted.
        let n = align_up(size, os::OS_PAGE);
        return match os::alloc(n) {
            Some(p) => {
                METADATA_BYTES.fetch_add(n, Ordering::Relaxed);
                p
            }
            None => 0,
        };
    }
    let mut p = PERSISTENT.lock();
    let mut at = align_up(p.next, align);
    if p.next == 0 || at + size > p.end {
        match os::alloc(PERSISTENT_BLOCK) {
            Some(b) => {
                METADATA_BYTES.fetch_add(PERSISTENT_BLOCK, Ordering::Relaxed);
                p.next = b;
                p.end = b + PERSISTENT_BLOCK;
                at = b;
            }
            None => return 0,
        }
    }
    p.next = at + size;
    at
}

pub fn persistent_lock() -> &'static crate::platform::lock::Mutex {
    &PERSISTENT.mutex
}

/// A free list of fixed-size records. Not locked: it lives inside a
/// structure whose lock its caller holds.
pub struct FixAlloc {
    size: usize,
    free: usize,
    chunk: usize,
    chunk_end: usize,
    /// Records currently handed out.
    pub inuse: usize,
    /// Whether a reused record is zeroed before it is handed out (fresh
    /// ones always are: they come straight from the OS).
    zero: bool,
}

const FIX_CHUNK: usize = 16 << 10;

impl FixAlloc {
    /// Records of `size` bytes, handed out zeroed.
    pub const fn new(size: usize) -> Self {
        FixAlloc { size: align_up(size, 64), free: 0, chunk: 0, chunk_end: 0, inuse: 0, zero: true }
    }

    /// Records of `size` bytes that the caller initialises itself: a reused
    /// one keeps its old contents (fresh ones are still zero), so handing
    /// out a large record touches only what its user writes.
    pub const fn new_uninit(size: usize) -> Self {
        FixAlloc { size: align_up(size, 64), free: 0, chunk: 0, chunk_end: 0, inuse: 0, zero: false }
    }

    /// A record (zeroed unless made by `new_uninit`), or 0 when the OS
    /// refuses memory.
    pub fn alloc(&mut self) -> usize {
        let p = if self.free != 0 {
            let p = self.free;
            // SAFETY: a free record's first word holds the next free record.
            self.free = unsafe { *(p as *const usize) };
            if self.zero {
                // SAFETY: the record is ours and `size` bytes long.
                unsafe { core::ptr::write_bytes(p as *mut u8, 0, self.size) };
            }
            p
        } else {
            if self.chunk == 0 || self.chunk + self.size > self.chunk_end {
                let c = persistent_alloc(FIX_CHUNK.max(self.size), 64);
                if c == 0 {
                    return 0;
                }
                self.chunk = c;
                self.chunk_end = c + FIX_CHUNK.max(self.size);
            }
            let p = self.chunk;
            self.chunk += self.size;
            p
        };
        self.inuse += 1;
        p
    }

    /// A record off `other`'s free list, counted as this allocator's from
    /// now on, or 0 if `other` has none free: for when this allocator's
    /// own records and memory ran out. `other`'s records must be at least
    /// as large as this one's; the record stays with this allocator when
    /// freed.
    pub fn take_free_from(&mut self, other: &mut FixAlloc) -> usize {
        debug_assert!(other.size >= self.size);
        let p = other.free;
        if p == 0 {
            return 0;
        }
        // SAFETY: a free record's first word holds the next free record.
        other.free = unsafe { *(p as *const usize) };
        if self.zero {
            // SAFETY: the record is ours now and at least `size` bytes long.
            unsafe { core::ptr::write_bytes(p as *mut u8, 0, self.size) };
        }
        self.inuse += 1;
        p
    }

    pub fn free(&mut self, p: usize) {
        // SAFETY: p is a record this allocator handed out and nobody uses any more.
        unsafe { *(p as *mut usize) = self.free };
        self.free = p;
        self.inuse -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::FixAlloc;

    #[test]
    fn a_smaller_allocator_takes_a_larger_ones_free_records() {
        let mut small = FixAlloc::new(128);
        let mut large = FixAlloc::new(512);
        assert_eq!(small.take_free_from(&mut large), 0, "nothing free yet");
        let (a, b) = (large.alloc(), large.alloc());
        assert!(a != 0 && b != 0);
        // SAFETY: `a` is a 512-byte record of `large`'s.
        unsafe { core::ptr::write_bytes(a as *mut u8, 0xa5, 512) };
        large.free(a);
        assert_eq!(large.inuse, 1);
        let r = small.take_free_from(&mut large);
        assert_eq!(r, a, "the freed record");
        assert_eq!((small.inuse, large.inuse), (1, 1));
        // SAFETY: `r` is now one of `small`'s records, 128 bytes at least.
        let bytes = unsafe { core::slice::from_raw_parts(r as *const u8, 128) };
        assert!(bytes.iter().all(|&x| x == 0), "handed out zeroed");
        assert_eq!(small.take_free_from(&mut large), 0, "large's list is empty again");
        // Freed, it stays with `small` and is its next record.
        small.free(r);
        assert_eq!(small.alloc(), a);
        assert_ne!(large.alloc(), a);
    }
}
