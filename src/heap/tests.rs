//! The heap on a fake OS that counts calls and refuses the ones a test
//! picks: growth that fails at any step must leave a consistent heap that
//! can grow later, a refused release must keep the memory counted as
//! resident, and the memory limit must hold.

use super::*;
use crate::platform::SYS;
use std::cell::Cell;

/// The OS calls the heap and page allocator make, in `FakeOs::calls` order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Reserve,
    Map,
    Unused,
    Metadata,
}

/// The real OS underneath, with a count of every memory call and a call
/// number (counting all kinds) from which `refuse` kinds fail.
struct FakeOs {
    calls: Cell<[usize; 4]>,
    seq: Cell<usize>,
    fail_from: Cell<usize>,
    refuse: Cell<[bool; 4]>,
}

impl FakeOs {
    fn new() -> Self {
        FakeOs { calls: Cell::new([0; 4]), seq: Cell::new(0), fail_from: Cell::new(usize::MAX), refuse: Cell::new([false; 4]) }
    }

    /// Refuse calls of the kinds in `kinds` from the `n`th call on (0-based,
    /// all kinds counted).
    fn refuse_from(&self, n: usize, kinds: &[Call]) {
        let mut r = [false; 4];
        for &k in kinds {
            r[k as usize] = true;
        }
        self.refuse.set(r);
        self.fail_from.set(self.seq.get() + n);
    }

    fn allow_all(&self) {
        self.fail_from.set(usize::MAX);
    }

    fn count(&self, c: Call) -> usize {
        self.calls.get()[c as usize]
    }

    /// Count a call; false if it is to be refused.
    fn admit(&self, c: Call) -> bool {
        let mut calls = self.calls.get();
        calls[c as usize] += 1;
        self.calls.set(calls);
        let n = self.seq.get();
        self.seq.set(n + 1);
        !(n >= self.fail_from.get() && self.refuse.get()[c as usize])
    }
}

impl Os for FakeOs {
    fn reserve(&self, hint: usize, size: usize) -> Option<usize> {
        if self.admit(Call::Reserve) {
            SYS.reserve(hint, size)
        } else {
            None
        }
    }
    fn map(&self, addr: usize, size: usize) -> bool {
        self.admit(Call::Map) && SYS.map(addr, size)
    }
    fn used(&self, addr: usize, size: usize) {
        SYS.used(addr, size)
    }
    fn unused(&self, addr: usize, size: usize) -> bool {
        self.admit(Call::Unused) && SYS.unused(addr, size)
    }
    fn free(&self, addr: usize, size: usize) {
        SYS.free(addr, size)
    }
    fn nonresident(&self, addr: usize, size: usize, f: &mut dyn FnMut(usize, usize) -> bool) {
        SYS.nonresident(addr, size, f)
    }
    fn alloc_metadata(&self, size: usize) -> Option<usize> {
        if self.admit(Call::Metadata) {
            SYS.alloc_metadata(size)
        } else {
            None
        }
    }
    fn write(&self, fd: i32, bytes: &[u8]) -> Result<(), i32> {
        SYS.write(fd, bytes)
    }
    fn sleep_ms(&self, ms: u64) {
        SYS.sleep_ms(ms)
    }
    fn spawn_thread(&self, f: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void, name: &core::ffi::CStr) -> bool {
        SYS.spawn_thread(f, name)
    }
    fn for_each_env(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        SYS.for_each_env(f)
    }
}

const MIB: usize = 1 << 20;

/// Write to every page of a block: it must be real, writable memory.
fn touch(p: usize, size: usize) {
    for off in (0..size).step_by(PAGE_SIZE) {
        // SAFETY: the heap just handed out [p, p+size).
        unsafe { ((p + off) as *mut u8).write_volatile(0x5a) };
    }
}

#[test]
fn growth_refused_at_any_step_fails_cleanly_and_recovers() {
    // How many calls a first allocation makes, with nothing refused.
    let probe = Heap::new(FakeOs::new());
    let mut probe = probe;
    assert!(probe.alloc_large(5 * MIB, PAGE_SIZE).is_some());
    let steps = probe.os.seq.get();
    assert!(steps >= 3, "a first growth reserves, maps and allocates metadata ({steps} calls)");
    for k in 0..steps {
        let mut h = Heap::new(FakeOs::new());
        h.os.refuse_from(k, &[Call::Reserve, Call::Map, Call::Metadata]);
        assert!(h.alloc_large(5 * MIB, PAGE_SIZE).is_none(), "call {k} refused, yet the allocation succeeded");
        assert!(h.alloc_span(1, 1, true).is_null(), "call {k} refused, yet a span was made");
        assert_eq!(h.check(), Ok(()), "inconsistent after refusing call {k}");
        assert_eq!((h.large_count, h.large_bytes, h.span_bytes), (0, 0, 0));
        assert_eq!(h.in_use_bytes(), 0);
        // The OS gives again: the same heap grows and serves.
        h.os.allow_all();
        let (p, dirty) = h.alloc_large(5 * MIB, PAGE_SIZE).expect("allocation after the OS recovered");
        assert!(dirty.is_empty(), "fresh pages are known zero");
        // Nothing was lost to the failure: the block starts its arena, and
        // the heap made usable only what it needed once.
        assert_eq!(p % ARENA_BYTES, 0, "address space lost after refusing call {k}");
        assert_eq!(h.mapped_bytes, 8 * MIB);
        touch(p, 5 * MIB);
        assert_eq!(h.check(), Ok(()));
        assert_eq!(h.large_bytes, 5 * MIB);
        let s = arena::span_of(p);
        // SAFETY: the live large span just allocated.
        assert!(unsafe { h.free_large(s) });
        assert_eq!(h.check(), Ok(()));
        assert_eq!(h.in_use_bytes(), 0);
    }
}

#[test]
fn refused_release_keeps_memory_resident_and_counted() {
    let mut h = Heap::new(FakeOs::new());
    let (p, _) = h.alloc_large(8 * MIB, PAGE_SIZE).unwrap();
    touch(p, 8 * MIB);
    // SAFETY: the live large span just allocated.
    assert!(unsafe { h.free_large(arena::span_of(p)) });
    let free = h.free_unscavenged_bytes();
    assert!(free >= 8 * MIB);
    h.os.refuse_from(0, &[Call::Unused]);
    assert_eq!(h.release_locked(free), 0);
    assert_eq!(h.os.count(Call::Unused), 1, "one refusal ends the release");
    assert_eq!((h.free_unscavenged_bytes(), h.released_bytes), (free, 0));
    assert_eq!(h.check(), Ok(()));
    h.os.allow_all();
    assert_eq!(h.release_locked(free), free);
    assert_eq!((h.free_unscavenged_bytes(), h.released_bytes), (0, free));
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn memory_limit_releases_before_growing() {
    let mut h = Heap::new(FakeOs::new());
    h.memory_limit = 16 * MIB;
    let (p, _) = h.alloc_large(12 * MIB, PAGE_SIZE).unwrap();
    touch(p, 12 * MIB);
    // SAFETY: the live large span just allocated.
    assert!(unsafe { h.free_large(arena::span_of(p)) });
    assert_eq!(h.retained_bytes(), 12 * MIB);
    // 12 MiB retained + 8 MiB asked > 16 MiB: 4 MiB go back first.
    let (q, _) = h.alloc_large(8 * MIB, PAGE_SIZE).unwrap();
    touch(q, 8 * MIB);
    assert!(h.os.count(Call::Unused) >= 1);
    assert!(h.released_bytes >= 4 * MIB, "released {}", h.released_bytes);
    assert!(h.retained_bytes() <= h.memory_limit, "retained {}", h.retained_bytes());
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn page_cache_spans_need_no_lock_and_go_back_whole() {
    use super::pagecache::PageCache;
    // The process's heap: page caches serve it (alloc_span_cached).
    let mut pc = PageCache::new();
    let class = 5;
    let npages = crate::sizeclass::CLASSES[class].npages as usize;
    let locks = LOCKS.load(Ordering::Relaxed);
    let spans: std::vec::Vec<_> = (0..16).map(|_| super::pagecache::alloc_span_cached(&mut pc, class, npages, true, false)).collect();
    assert!(spans.iter().all(|s| !s.is_null()));
    // One lock for the pages and the first records, one per further 8 records.
    assert!(LOCKS.load(Ordering::Relaxed) - locks <= 3, "{} heap locks", LOCKS.load(Ordering::Relaxed) - locks);
    for &s in &spans {
        // SAFETY: spans just made, owned by nobody, unused.
        unsafe {
            assert_eq!(arena::span_of((*s).base), s);
            touch((*s).base, npages * PAGE_SIZE);
            free_span(s);
        }
    }
    assert!(!pc.is_empty());
    lock().flush_page_cache(&mut pc);
    assert!(pc.is_empty());
    assert_eq!(check(), Ok(()));
}

#[test]
fn free_fast_path_reads_each_page_class_beside_its_span() {
    // The process's heap lies in the page map's flat table, whose pages
    // also carry their span's class (arena.rs, `FIRST_CLASSES`): the page
    // cache's spans and the heap's must set it on every page, a large
    // object's page reads class 0, and a freed span's pages read 0 again.
    // (Other tests running meanwhile may push the heap past the window:
    // spans there are looked up by free's slow path and skipped here.)
    let mut pc = super::pagecache::PageCache::new();
    for class in [1, 5, 30, crate::sizeclass::NUM_CLASSES - 1] {
        let npages = crate::sizeclass::CLASSES[class].npages as usize;
        let spans = [super::pagecache::alloc_span_cached(&mut pc, class, npages, true, false), alloc_span(class, npages)];
        for s in spans {
            assert!(!s.is_null());
            // SAFETY: a span just made, owned by nobody.
            let base = unsafe { (*s).base };
            if arena::span_and_class_in_window(base).0.is_null() {
                // SAFETY: as below.
                unsafe { free_span(s) };
                continue;
            }
            for page in 0..npages {
                let a = base + page * PAGE_SIZE + 8;
                assert_eq!(arena::span_and_class_in_window(a), (s, class), "class {class}, page {page}");
            }
            // SAFETY: as above; nothing else refers to it.
            unsafe { free_span(s) };
            assert_eq!(arena::span_and_class_in_window(base + 8).1, 0);
        }
    }
    lock().flush_page_cache(&mut pc);
    let (p, _) = alloc_large(3 * PAGE_SIZE, PAGE_SIZE, true).expect("a large object");
    let s = arena::span_of(p);
    assert!(arena::span_and_class_in_window(p) == (s, 0) || arena::span_and_class_in_window(p).0.is_null());
    // SAFETY: the large object just made.
    assert!(unsafe { free_large(s) });
    assert_eq!(check(), Ok(()));
}

#[test]
fn without_grow_only_resident_free_pages_serve() {
    let mut h = Heap::new(FakeOs::new());
    // An empty heap: no resident free pages, and no OS call is made.
    assert!(h.alloc_span(1, 1, false).is_null());
    assert_eq!(h.os.count(Call::Reserve) + h.os.count(Call::Map), 0);
    // New memory when allowed; once freed, its pages are resident free
    // pages, which serve without growing.
    let s = h.alloc_span(1, 4, true);
    assert!(!s.is_null());
    // SAFETY: a live span's record.
    touch(unsafe { (*s).base }, 4 * PAGE_SIZE);
    // SAFETY: the span just made, which nothing else refers to.
    unsafe { h.free_span(s) };
    let maps = h.os.count(Call::Map);
    let t = h.alloc_span(1, 4, false);
    assert!(!t.is_null(), "resident free pages were not reused");
    assert_eq!(h.os.count(Call::Map), maps);
    // Released pages are not resident: without grow, they do not serve.
    // SAFETY: as above.
    unsafe { h.free_span(t) };
    h.release_locked(usize::MAX);
    assert_eq!(h.free_unscavenged_bytes(), 0);
    assert!(h.alloc_span(1, 4, false).is_null());
    assert!(!h.alloc_span(1, 4, true).is_null());
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn nonresident_runs_are_the_untouched_pages() {
    let size = 64 * PAGE_SIZE;
    let base = SYS.alloc_metadata(size).unwrap();
    // Touch pages 0..8 and 40..48 (every OS page of them); the rest was
    // never touched.
    for off in (0..8 * PAGE_SIZE).chain(40 * PAGE_SIZE..48 * PAGE_SIZE).step_by(4096) {
        // SAFETY: inside the mapping just made.
        unsafe { ((base + off) as *mut u8).write_volatile(1) };
    }
    let mut runs = std::vec::Vec::new();
    SYS.nonresident(base, size, &mut |a, n| {
        runs.push((a - base, n));
        true
    });
    if cfg!(target_os = "linux") {
        assert_eq!(runs, [(48 * PAGE_SIZE, 16 * PAGE_SIZE), (8 * PAGE_SIZE, 32 * PAGE_SIZE)]);
    }
    // Stopped by `f`, and rounded inward to whole OS pages.
    let mut first = std::vec::Vec::new();
    SYS.nonresident(base + 1, size - 2, &mut |a, n| {
        first.push((a - base, n));
        false
    });
    if cfg!(target_os = "linux") {
        assert_eq!(first, [(48 * PAGE_SIZE, 16 * PAGE_SIZE - 4096)]);
    }
    SYS.free(base, size);
}

#[test]
fn large_alloc_reports_the_pages_not_released() {
    let mut h = Heap::new(FakeOs::new());
    let (p, dirty) = h.alloc_large(8 * MIB, PAGE_SIZE).unwrap();
    assert!(dirty.is_empty(), "fresh pages read as zero");
    touch(p, 8 * MIB);
    // SAFETY: the live large span just allocated.
    assert!(unsafe { h.free_large(arena::span_of(p)) });
    // The release takes the highest free pages first: the block's top 3 MiB.
    assert_eq!(h.release_locked(3 * MIB), 3 * MIB);
    let (q, dirty) = h.alloc_large(8 * MIB, PAGE_SIZE).unwrap();
    assert_eq!(q, p, "first fit reuses the freed block");
    assert_eq!(dirty.runs(), &[(p, 5 * MIB)], "exactly the pages not released");
    // SAFETY: the live large span just allocated.
    assert!(unsafe { h.free_large(arena::span_of(q)) });
    // An aligned block reports only what lies inside it, not the run it
    // was cut from.
    let (r, dirty) = h.alloc_large(MIB, 2 * MIB).unwrap();
    assert_eq!(r % (2 * MIB), 0);
    assert!(r + MIB <= p + 5 * MIB, "the aligned block lies in the pages not released");
    assert_eq!(dirty.runs(), &[(r, MIB)], "the aligned block's own pages only");
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn a_large_block_at_the_top_grows_in_place_by_growing_the_heap() {
    let mut h = Heap::new(FakeOs::new());
    let (p, _) = h.alloc_large(5 * MIB, PAGE_SIZE).unwrap();
    touch(p, 5 * MIB);
    let s = arena::span_of(p);
    assert_eq!(h.mapped_bytes, 8 * MIB);
    // Past the heap's end: the heap grows right after the block.
    // SAFETY: the live large span just allocated, ours.
    assert!(unsafe { h.resize_large_in_place(s, (21 * MIB) >> PAGE_SHIFT) });
    assert_eq!(h.check(), Ok(()));
    assert_eq!((h.large_bytes, h.mapped_bytes), (21 * MIB, 24 * MIB));
    touch(p, 21 * MIB);
    // Refused by the OS: no change, and the block is as it was.
    h.os.refuse_from(0, &[Call::Reserve, Call::Map]);
    // SAFETY: as above.
    assert!(!unsafe { h.resize_large_in_place(s, (40 * MIB) >> PAGE_SHIFT) });
    assert_eq!(h.check(), Ok(()));
    assert_eq!((h.large_bytes, h.mapped_bytes), (21 * MIB, 24 * MIB));
    h.os.allow_all();
    // A block above it: its pages are not free, and the heap does not grow
    // for it (it will move).
    let (q, _) = h.alloc_large(3 * MIB, PAGE_SIZE).unwrap();
    assert_eq!(q, p + 21 * MIB);
    let mapped = h.mapped_bytes;
    // SAFETY: as above.
    assert!(!unsafe { h.resize_large_in_place(s, (30 * MIB) >> PAGE_SHIFT) });
    assert_eq!(h.mapped_bytes, mapped);
    // SAFETY: the live large spans allocated above.
    unsafe {
        assert!(h.free_large(arena::span_of(q)));
        assert!(h.free_large(s));
    }
    assert_eq!(h.check(), Ok(()));
    assert_eq!(h.in_use_bytes(), 0);
}
