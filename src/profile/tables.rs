//! The profile's tables, under one lock (`PROF`, a leaf: nothing under it
//! allocates from the heap or takes another goheap lock), in memory from
//! the OS layer: buckets (one per distinct stack, with its counts) found
//! through an open-addressing index, and the sampled blocks (address →
//! bucket, size), with a counting filter in front so that freeing a block
//! that was never sampled costs one atomic load.

use crate::platform::lock::Locked;
use crate::platform::os;
use core::sync::atomic::{AtomicU16, Ordering};

const FILTER_BITS: u32 = 16;
/// How many live sampled blocks hash to each slot (see the module comment).
static FILTER: [AtomicU16; 1 << FILTER_BITS] = [const { AtomicU16::new(0) }; 1 << FILTER_BITS];

#[inline(always)]
fn addr_hash(addr: usize) -> u64 {
    ((addr as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn filter_slot(addr: usize) -> usize {
    (addr_hash(addr) >> (64 - FILTER_BITS)) as usize
}

/// False if `addr` is certainly not a sampled block (no lock taken).
#[inline(always)]
pub(super) fn filter_says_maybe(addr: usize) -> bool {
    FILTER[filter_slot(addr)].load(Ordering::Relaxed) != 0
}

/// A distinct stack and its counts (raw, sampled).
#[repr(C)]
pub(super) struct Bucket {
    hash: u64,
    depth: usize,
    pub(super) alloc_objs: u64,
    pub(super) alloc_bytes: u64,
    pub(super) free_objs: u64,
    pub(super) free_bytes: u64,
    // followed by `depth` frames
}

impl Bucket {
    pub(super) fn frames(&self) -> &[usize] {
        // SAFETY: every bucket is allocated with room for `depth` frames
        // right after the header (see Tables::new_bucket).
        unsafe { core::slice::from_raw_parts((self as *const Bucket).add(1) as *const usize, self.depth) }
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Block {
    addr: usize,
    bucket: u32,
    size: usize,
}

const CHUNK: usize = 1 << 20;

pub(super) struct Tables {
    /// Bucket addresses by id (ids start at 1), an OS-allocated array.
    buckets: *mut usize,
    pub(super) nbuckets: usize,
    bucket_cap: usize,
    /// Open-addressing index: bucket ids, 0 = empty.
    index: *mut u32,
    index_cap: usize,
    /// Bump allocation of buckets.
    chunk_next: usize,
    chunk_end: usize,
    /// Sampled live blocks; addr 0 = empty.
    blocks: *mut Block,
    blocks_cap: usize,
    nblocks: usize,
    /// Set when the OS refused memory: sampling stops growing the tables.
    full: bool,
}

// SAFETY: the raw pointers are only used under the PROF lock.
unsafe impl Send for Tables {}

pub(super) static PROF: Locked<Tables> = Locked::new(Tables {
    buckets: core::ptr::null_mut(),
    nbuckets: 0,
    bucket_cap: 0,
    index: core::ptr::null_mut(),
    index_cap: 0,
    chunk_next: 0,
    chunk_end: 0,
    blocks: core::ptr::null_mut(),
    blocks_cap: 0,
    nblocks: 0,
    full: false,
});

/// Zeroed memory for `n` values of T from the OS layer, or null.
fn os_array<T>(n: usize) -> *mut T {
    let bytes = (n * core::mem::size_of::<T>()).next_multiple_of(os::OS_PAGE);
    os::alloc(bytes).unwrap_or(0) as *mut T
}

fn os_array_free<T>(p: *mut T, n: usize) {
    if !p.is_null() {
        os::free(p as usize, (n * core::mem::size_of::<T>()).next_multiple_of(os::OS_PAGE));
    }
}

fn stack_hash(frames: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h | 1
}

impl Tables {
    pub(super) fn bucket(&self, id: u32) -> *mut Bucket {
        // SAFETY: ids handed out are 1..=nbuckets, all stored in the array.
        unsafe { *self.buckets.add(id as usize) as *mut Bucket }
    }

    /// The id of the bucket for `frames`, created if new; 0 if out of memory.
    pub(super) fn find_bucket(&mut self, frames: &[usize]) -> u32 {
        let h = stack_hash(frames);
        if self.index_cap != 0 {
            let mask = self.index_cap - 1;
            let mut i = h as usize & mask;
            loop {
                // SAFETY: i < index_cap, the index array's length.
                let id = unsafe { *self.index.add(i) };
                if id == 0 {
                    break;
                }
                // SAFETY: ids in the index are live buckets.
                let b = unsafe { &*self.bucket(id) };
                if b.hash == h && b.frames() == frames {
                    return id;
                }
                i = (i + 1) & mask;
            }
        }
        self.new_bucket(h, frames)
    }

    fn new_bucket(&mut self, h: u64, frames: &[usize]) -> u32 {
        if self.full {
            return 0;
        }
        // Room in the id array and in the index (kept at most half full).
        if self.nbuckets + 1 >= self.bucket_cap {
            let cap = (self.bucket_cap * 2).max(1024);
            let a = os_array::<usize>(cap);
            if a.is_null() {
                self.full = true;
                return 0;
            }
            if !self.buckets.is_null() {
                // SAFETY: both arrays hold at least nbuckets + 1 entries.
                unsafe { core::ptr::copy_nonoverlapping(self.buckets, a, self.nbuckets + 1) };
            }
            os_array_free(self.buckets, self.bucket_cap);
            self.buckets = a;
            self.bucket_cap = cap;
        }
        if (self.nbuckets + 1) * 2 > self.index_cap && !self.grow_index() {
            self.full = true;
            return 0;
        }
        let bytes = core::mem::size_of::<Bucket>() + core::mem::size_of_val(frames);
        if self.chunk_next + bytes > self.chunk_end {
            match os::alloc(CHUNK) {
                Some(c) => {
                    self.chunk_next = c;
                    self.chunk_end = c + CHUNK;
                }
                None => {
                    self.full = true;
                    return 0;
                }
            }
        }
        let b = self.chunk_next as *mut Bucket;
        self.chunk_next += bytes;
        // SAFETY: b is fresh, zeroed chunk memory with room for the header and the frames.
        unsafe {
            b.write(Bucket { hash: h, depth: frames.len(), alloc_objs: 0, alloc_bytes: 0, free_objs: 0, free_bytes: 0 });
            core::ptr::copy_nonoverlapping(frames.as_ptr(), b.add(1) as *mut usize, frames.len());
        }
        self.nbuckets += 1;
        let id = self.nbuckets as u32;
        // SAFETY: id < bucket_cap (grown above).
        unsafe { *self.buckets.add(id as usize) = b as usize };
        self.index_put(h, id);
        id
    }

    fn index_put(&mut self, h: u64, id: u32) {
        let mask = self.index_cap - 1;
        let mut i = h as usize & mask;
        // SAFETY: i < index_cap; the index is at most half full, so a free slot exists.
        unsafe {
            while *self.index.add(i) != 0 {
                i = (i + 1) & mask;
            }
            *self.index.add(i) = id;
        }
    }

    fn grow_index(&mut self) -> bool {
        let cap = (self.index_cap * 2).max(2048);
        let a = os_array::<u32>(cap);
        if a.is_null() {
            return false;
        }
        let (old, old_cap) = (self.index, self.index_cap);
        self.index = a;
        self.index_cap = cap;
        for id in 1..=self.nbuckets as u32 {
            // SAFETY: live bucket.
            let h = unsafe { (*self.bucket(id)).hash };
            self.index_put(h, id);
        }
        os_array_free(old, old_cap);
        true
    }

    pub(super) fn add_sample(&mut self, addr: usize, size: usize, frames: &[usize]) {
        let id = self.find_bucket(frames);
        if id == 0 {
            return;
        }
        if !self.insert_block(addr, id, size) {
            return;
        }
        // SAFETY: a live bucket.
        let b = unsafe { &mut *self.bucket(id) };
        b.alloc_objs += 1;
        b.alloc_bytes += size as u64;
    }

    /// Record a live sampled block; false if out of memory.
    pub(super) fn insert_block(&mut self, addr: usize, bucket: u32, size: usize) -> bool {
        if (self.nblocks + 1) * 2 > self.blocks_cap && !self.grow_blocks() {
            return false;
        }
        let mask = self.blocks_cap - 1;
        let mut i = addr_hash(addr) as usize & mask;
        // SAFETY: i < blocks_cap; the table is at most half full.
        unsafe {
            loop {
                let e = &mut *self.blocks.add(i);
                if e.addr == 0 || e.addr == addr {
                    if e.addr == 0 {
                        self.nblocks += 1;
                        FILTER[filter_slot(addr)].fetch_add(1, Ordering::Relaxed);
                    }
                    *e = Block { addr, bucket, size };
                    return true;
                }
                i = (i + 1) & mask;
            }
        }
    }

    fn grow_blocks(&mut self) -> bool {
        let cap = (self.blocks_cap * 2).max(4096);
        let a = os_array::<Block>(cap);
        if a.is_null() {
            return false;
        }
        let (old, old_cap) = (self.blocks, self.blocks_cap);
        self.blocks = a;
        self.blocks_cap = cap;
        let mask = cap - 1;
        for j in 0..old_cap {
            // SAFETY: j < old_cap, the old table's length.
            let e = unsafe { *old.add(j) };
            if e.addr != 0 {
                let mut i = addr_hash(e.addr) as usize & mask;
                // SAFETY: i < cap; the new table has room.
                unsafe {
                    while (*a.add(i)).addr != 0 {
                        i = (i + 1) & mask;
                    }
                    *a.add(i) = e;
                }
            }
        }
        os_array_free(old, old_cap);
        true
    }

    /// Remove `addr`'s record, keeping every probe chain intact
    /// (backward-shift deletion).
    pub(super) fn remove_block(&mut self, addr: usize) -> Option<(u32, usize)> {
        if self.blocks_cap == 0 {
            return None;
        }
        let mask = self.blocks_cap - 1;
        let mut i = addr_hash(addr) as usize & mask;
        // SAFETY: all indices are masked to the table's length.
        unsafe {
            loop {
                let e = *self.blocks.add(i);
                if e.addr == 0 {
                    return None;
                }
                if e.addr == addr {
                    break;
                }
                i = (i + 1) & mask;
            }
            let found = *self.blocks.add(i);
            let mut hole = i;
            let mut j = i;
            loop {
                j = (j + 1) & mask;
                let e = *self.blocks.add(j);
                if e.addr == 0 {
                    break;
                }
                let home = addr_hash(e.addr) as usize & mask;
                // e may move into the hole if its home is not in (hole, j].
                let between = if hole <= j { home > hole && home <= j } else { home > hole || home <= j };
                if !between {
                    *self.blocks.add(hole) = e;
                    hole = j;
                }
            }
            (*self.blocks.add(hole)).addr = 0;
            self.nblocks -= 1;
            FILTER[filter_slot(addr)].fetch_sub(1, Ordering::Relaxed);
            Some((found.bucket, found.size))
        }
    }
}

/// Fork: the table lock is taken around fork like the heap's.
pub fn mutex() -> &'static crate::platform::lock::Mutex {
    &PROF.mutex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_table_survives_insert_and_remove_in_any_order() {
        let mut t = Tables {
            buckets: core::ptr::null_mut(),
            nbuckets: 0,
            bucket_cap: 0,
            index: core::ptr::null_mut(),
            index_cap: 0,
            chunk_next: 0,
            chunk_end: 0,
            blocks: core::ptr::null_mut(),
            blocks_cap: 0,
            nblocks: 0,
            full: false,
        };
        let id = t.find_bucket(&[1, 2, 3]);
        assert_eq!(id, t.find_bucket(&[1, 2, 3]));
        assert_ne!(id, t.find_bucket(&[1, 2, 4]));
        // Addresses that collide in the low bits, inserted and removed interleaved.
        let addrs: std::vec::Vec<usize> = (1..20000usize).map(|i| 0x10_0000 + i * 4096 * 16).collect();
        for &a in &addrs {
            assert!(t.insert_block(a, id, a & 0xffff));
        }
        for &a in addrs.iter().step_by(2) {
            assert_eq!(t.remove_block(a), Some((id, a & 0xffff)));
        }
        for (k, &a) in addrs.iter().enumerate() {
            let want = if k % 2 == 0 { None } else { Some((id, a & 0xffff)) };
            assert_eq!(t.remove_block(a), want);
        }
        assert_eq!(t.nblocks, 0);
        assert!(FILTER.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }
}
