//! Heap statistics: `goheap_get_stats()`, glibc's `mallinfo`/`mallinfo2`/
//! `malloc_stats` (in `ffi`), and the `GOHEAP_STATS=1` summary at exit.
//!
//! # How the figures are gathered
//!
//! Nothing here allocates: the record is filled in place, and printing
//! formats into a stack buffer written with write(2). Locks are taken one
//! at a time, in the global order (cache list → fallback → heap):
//!
//! * malloc/free counts: under the cache-list lock, the totals of destroyed
//!   caches plus every live cache's counters; then the fallback cache's under
//!   its lock; plus the global atomics for large objects and for frees by
//!   threads without a cache.
//! * everything else under the heap lock: the page allocator's counters and
//!   one walk of the arena page map, where each span is counted once, at its
//!   first page. Spans stay live while the heap lock is held, but their
//!   object counts are written by their owners without it.
//!
//! # Exact and approximate
//!
//! Exact whenever no other thread allocates or frees during the call (as in
//! a single-threaded program, or at exit): every figure. While other threads
//! run, the page figures (`bytes_mapped`, `bytes_retained_free`,
//! `bytes_released`, `bytes_in_spans`, large objects) are still a consistent
//! snapshot taken under the heap lock, but objects in use, and so
//! `bytes_in_use`, are read from each span's `alloc_count` without its owner's
//! cooperation (the owning thread updates it without a lock), and the
//! per-thread malloc/free counters likewise: approximate, possibly a few
//! operations stale. An object freed by another thread counts as free as
//! soon as its bit is set in the span's freed bitmap, before the owner folds
//! it in.

use crate::arena::{self, FREED_SPAN};
use crate::cache;
use crate::fixalloc;
use crate::heap;
use crate::malloc::{SHARED_FREES, SHARED_MALLOCS};
use crate::pagealloc::PAGE_SHIFT;
use crate::platform::out::Out;
use crate::sizeclass::{CLASSES, NUM_CLASSES};
use crate::span::{STATE_LARGE, STATE_SMALL};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Number of size classes, class 0 standing for large objects: the length
/// of the per-class arrays of `goheap_stats`.
pub const GOHEAP_NUM_CLASSES: usize = 67;
const _: () = assert!(GOHEAP_NUM_CLASSES == NUM_CLASSES, "goheap_stats arrays must match the size-class table");

/// A snapshot of the heap, filled by `goheap_get_stats()`. Byte figures are
/// `size_t`, counts `uint64_t`. Per-class arrays are indexed by size class;
/// class 0 stands for large objects (over 32 KiB, each its own span).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct goheap_stats {
    /// Bytes in allocated objects: small objects at their size-class size,
    /// large objects at their size in whole 8 KiB pages.
    pub bytes_in_use: usize,
    /// Pages held by small-object spans, plus large objects.
    pub bytes_in_spans: usize,
    /// Free pages still backed by memory (not yet returned to the OS).
    pub bytes_retained_free: usize,
    /// Free pages returned to the OS, or never touched.
    pub bytes_released: usize,
    /// Heap memory obtained from the OS for objects (page allocator's total).
    pub bytes_mapped: usize,
    /// Memory for goheap's own metadata (spans, arena maps, caches).
    pub metadata_bytes: usize,
    /// Live large objects, and their bytes (included in bytes_in_use).
    pub large_objects: u64,
    pub large_bytes: usize,
    /// Successful allocations and frees so far (realloc that moves counts as
    /// one of each; one that stays in place as neither).
    pub malloc_count: u64,
    pub free_count: u64,
    /// Object size of each class (0 for class 0).
    pub class_size: [usize; GOHEAP_NUM_CLASSES],
    /// Objects allocated in each class.
    pub class_objects_in_use: [u64; GOHEAP_NUM_CLASSES],
    /// Spans of each class (class 0: large objects).
    pub class_spans: [u64; GOHEAP_NUM_CLASSES],
    /// The highest `bytes_in_spans` the heap has had.
    pub peak_bytes_in_spans: usize,
}

impl goheap_stats {
    pub const fn zeroed() -> Self {
        goheap_stats {
            bytes_in_use: 0,
            bytes_in_spans: 0,
            bytes_retained_free: 0,
            bytes_released: 0,
            bytes_mapped: 0,
            metadata_bytes: 0,
            large_objects: 0,
            large_bytes: 0,
            malloc_count: 0,
            free_count: 0,
            class_size: [0; GOHEAP_NUM_CLASSES],
            class_objects_in_use: [0; GOHEAP_NUM_CLASSES],
            class_spans: [0; GOHEAP_NUM_CLASSES],
            peak_bytes_in_spans: 0,
        }
    }
}

/// Fill `out` with a snapshot of the heap (see the module comment).
pub fn collect(out: &mut goheap_stats) {
    *out = goheap_stats::zeroed();
    let (m, f) = cache::counts();
    out.malloc_count = m + SHARED_MALLOCS.load(Ordering::Relaxed);
    out.free_count = f + SHARED_FREES.load(Ordering::Relaxed);
    for (c, class) in CLASSES.iter().enumerate() {
        out.class_size[c] = class.size as usize;
    }

    let h = heap::lock();
    let free = h.pages.free_pages();
    let scav = h.pages.free_scavenged_pages();
    out.bytes_retained_free = (free - scav) << PAGE_SHIFT;
    out.bytes_released = scav << PAGE_SHIFT;
    out.bytes_mapped = h.mapped_bytes;
    out.peak_bytes_in_spans = h.peak_span_bytes;
    out.metadata_bytes = fixalloc::METADATA_BYTES.load(Ordering::Relaxed);
    arena::for_each_arena(|abase, a| {
        for (i, e) in a.spans.iter().enumerate() {
            let s = e.load(Ordering::Acquire);
            if s.is_null() || s == FREED_SPAN {
                continue;
            }
            // SAFETY: spans in the page map are live while the heap lock is held.
            let sp = unsafe { &*s };
            if sp.base != abase + (i << PAGE_SHIFT) || !h.pages.owns(sp.base) {
                continue; // not the span's first page (counted there), or another heap's
            }
            match sp.state.load(Ordering::Acquire) {
                STATE_LARGE => {
                    out.class_spans[0] += 1;
                    out.class_objects_in_use[0] += 1;
                    out.large_objects += 1;
                    out.large_bytes += sp.bytes();
                    out.bytes_in_spans += sp.bytes();
                }
                STATE_SMALL => {
                    let class = (sp.class as usize).min(NUM_CLASSES - 1);
                    // SAFETY: a live span's field; its owner may be writing
                    // it without a lock, hence the volatile read and the
                    // documented inaccuracy.
                    let count = unsafe { core::ptr::read_volatile(&sp.alloc_count) };
                    let n = count.saturating_sub(sp.count_freed_bits()) as u64;
                    out.class_spans[class] += 1;
                    out.class_objects_in_use[class] += n;
                    out.bytes_in_spans += sp.bytes();
                    out.bytes_in_use += n as usize * CLASSES[class].size as usize;
                }
                _ => {}
            }
        }
    });
    drop(h);
    // Blocks on the thread caches' free stacks still count in their spans
    // (cache/mod.rs) but are free: take them out (read racily, like the rest).
    let mut stacked = [0u64; NUM_CLASSES];
    cache::stacked_counts(&mut stacked);
    for (c, &n) in stacked.iter().enumerate().skip(1) {
        let n = n.min(out.class_objects_in_use[c]);
        out.class_objects_in_use[c] -= n;
        out.bytes_in_use -= n as usize * CLASSES[c].size as usize;
    }
    out.bytes_in_use += out.large_bytes;
    out.peak_bytes_in_spans = out.peak_bytes_in_spans.max(out.bytes_in_spans);
}

/// The number after `key` in `text` (e.g. `VmRSS:` in /proc/self/status).
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &text[at..];
    let start = rest.iter().position(|c| c.is_ascii_digit())?;
    let mut v = 0u64;
    for &c in rest[start..].iter().take_while(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((c - b'0') as u64);
    }
    Some(v)
}

/// Resident memory now and its peak (VmRSS, VmHWM of /proc/self/status), in bytes.
pub fn rss_and_peak() -> (usize, usize) {
    let mut buf = [0u8; 4096];
    let n = crate::platform::os::read_file(c"/proc/self/status", &mut buf);
    let kb = |k: &[u8]| field(&buf[..n], k).unwrap_or(0) as usize * 1024;
    (kb(b"VmRSS:"), kb(b"VmHWM:"))
}

/// Resident memory now, in bytes (/proc/self/statm, cheaper than status).
pub fn rss_bytes() -> usize {
    let mut buf = [0u8; 128];
    let n = crate::platform::os::read_file(c"/proc/self/statm", &mut buf);
    let text = &buf[..n];
    // Second field: resident pages.
    let Some(sp) = text.iter().position(|&c| c == b' ') else { return 0 };
    field(&text[sp..], b" ").unwrap_or(0) as usize * crate::platform::os::OS_PAGE
}

/// The statistics writer: a 512-byte buffer.
type Report = Out<512>;

/// Where reports go: stderr, or at exit the descriptor kept for it.
fn report_fd() -> i32 {
    let fd = EXIT_FD.load(Ordering::Relaxed);
    if AT_EXIT.load(Ordering::Relaxed) && fd >= 0 {
        fd
    } else {
        2
    }
}

/// A byte count followed by the same in MiB with one decimal.
fn bytes(o: &mut Report, v: usize) {
    let tenths = (v as u64 * 10 + (1 << 19)) >> 20;
    o.n(v as u64, 14).s(b" bytes  (").n(tenths / 10, 0).s(b".").n(tenths % 10, 0).s(b" MiB)\n");
}

/// Print the summary (and, with `classes`, the per-class table) to stderr.
pub fn print(st: &goheap_stats, classes: bool) {
    let mut o = Report::new(report_fd());
    o.s(b"goheap statistics\n");
    let (rss, hwm) = rss_and_peak();
    for (label, v) in [
        (&b"  in use          "[..], st.bytes_in_use),
        (&b"  in spans        "[..], st.bytes_in_spans),
        (&b"  large objects   "[..], st.large_bytes),
        (&b"  free, retained  "[..], st.bytes_retained_free),
        (&b"  free, released  "[..], st.bytes_released),
        (&b"  mapped          "[..], st.bytes_mapped),
        (&b"  peak in spans   "[..], st.peak_bytes_in_spans),
        (&b"  metadata        "[..], st.metadata_bytes),
        (&b"  RSS             "[..], rss),
        (&b"  peak RSS        "[..], hwm),
    ] {
        o.s(label);
        bytes(&mut o, v);
    }
    o.s(b"  malloc calls    ").n(st.malloc_count, 14).s(b"\n");
    o.s(b"  free calls      ").n(st.free_count, 14).s(b"\n");
    o.s(b"  heap locks      ").n(heap::LOCKS.load(Ordering::Relaxed), 14).s(b"\n");
    // Time in the OS layer: calls, and milliseconds (one decimal) when
    // timed (GOHEAP_STATS=1 at start-up).
    let timed = crate::platform::os::syscalls_timed();
    for (name, sc) in [
        (&b"  mmap          "[..], &crate::platform::os::MMAP),
        (&b"  madvise       "[..], &crate::platform::os::MADVISE),
        (&b"  munmap        "[..], &crate::platform::os::MUNMAP),
    ] {
        let tenths = sc.ns.load(Ordering::Relaxed) / 100_000;
        o.s(name).n(sc.calls.load(Ordering::Relaxed), 16).s(b" calls");
        if timed {
            o.s(b", ").n(tenths / 10, 0).s(b".").n(tenths % 10, 0).s(b" ms");
        }
        o.s(b"\n");
    }
    if classes {
        o.s(b"  class      size     spans       objects      bytes in use\n");
        for c in 0..GOHEAP_NUM_CLASSES {
            let (spans, objs) = (st.class_spans[c], st.class_objects_in_use[c]);
            if spans == 0 && objs == 0 {
                continue;
            }
            let bytes = if c == 0 { st.large_bytes as u64 } else { objs * st.class_size[c] as u64 };
            o.n(c as u64, 7).s(b" ");
            if c == 0 {
                o.s(b"    large");
            } else {
                o.n(st.class_size[c] as u64, 9);
            }
            o.s(b" ").n(spans, 9).s(b" ").n(objs, 13).s(b" ").n(bytes, 17).s(b"\n");
        }
    }
    o.flush();
}

/// glibc's mallinfo/mallinfo2, mapped onto goheap's statistics:
///
/// | field    | goheap figure                                              |
/// |----------|------------------------------------------------------------|
/// | arena    | bytes_mapped: heap memory from the OS (large objects included, unlike glibc) |
/// | ordblks  | 0 (free page runs are not counted)                         |
/// | smblks   | 0                                                          |
/// | hblks    | live large objects (each is its own span, like glibc's mmapped chunks) |
/// | hblkhd   | their bytes (also inside arena and uordblks)               |
/// | usmblks  | 0 (as in glibc)                                            |
/// | fsmblks  | free slots in small-object spans (bytes_in_spans - bytes_in_use) |
/// | uordblks | bytes_in_use                                               |
/// | fordblks | arena - uordblks: free slots and free pages, released ones included |
/// | keepcost | bytes_retained_free: what malloc_trim(0) could release now |
pub fn mallinfo_figures() -> [usize; 10] {
    let mut st = goheap_stats::zeroed();
    collect(&mut st);
    [
        st.bytes_mapped,
        0,
        0,
        st.large_objects as usize,
        st.large_bytes,
        0,
        st.bytes_in_spans.saturating_sub(st.bytes_in_use),
        st.bytes_in_use,
        st.bytes_mapped.saturating_sub(st.bytes_in_use),
        st.bytes_retained_free,
    ]
}

/// glibc's malloc_info: the heap as glibc's XML, one `<heap>` for the whole
/// of goheap, handed to `sink` a line at a time. glibc's `<sizes>` lists
/// free chunks by size; here each size class with free slots in its spans
/// is one `<size>` (from the class below's size + 1 to its own; count =
/// free slots, total = their bytes). "rest" is free memory: those slots
/// and the free pages not yet released; "mmap" is the large objects (each
/// its own span, as glibc's mmapped chunks); "system current" and "max"
/// are the bytes mapped for the heap (which shrink only under an
/// address-space limit, so the peak is the current figure).
pub fn malloc_info(sink: impl FnMut(&[u8])) {
    let mut st = goheap_stats::zeroed();
    collect(&mut st);
    let mut o = Out::<160, _>::lines(sink);
    let (mut slots, mut slot_bytes) = (0u64, 0u64);
    o.s(b"<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (c, class) in CLASSES.iter().enumerate().skip(1) {
        let capacity = st.class_spans[c] * class.nelems as u64;
        let free = capacity.saturating_sub(st.class_objects_in_use[c]);
        if free == 0 {
            continue;
        }
        let size = st.class_size[c] as u64;
        slots += free;
        slot_bytes += free * size;
        o.s(b"  <size from=\"").n(st.class_size[c - 1] as u64 + 1, 0).s(b"\" to=\"").n(size, 0);
        o.s(b"\" total=\"").n(free * size, 0).s(b"\" count=\"").n(free, 0).s(b"\"/>\n");
    }
    o.s(b"</sizes>\n");
    let rest_count = slots + (st.bytes_retained_free != 0) as u64;
    let rest_bytes = slot_bytes + st.bytes_retained_free as u64;
    let mapped = st.bytes_mapped as u64;
    for top in [false, true] {
        if top {
            o.s(b"</heap>\n");
        }
        o.s(b"<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
        o.s(b"<total type=\"rest\" count=\"").n(rest_count, 0).s(b"\" size=\"").n(rest_bytes, 0).s(b"\"/>\n");
        if top {
            o.s(b"<total type=\"mmap\" count=\"").n(st.large_objects, 0).s(b"\" size=\"").n(st.large_bytes as u64, 0).s(b"\"/>\n");
        }
        o.s(b"<system type=\"current\" size=\"").n(mapped, 0).s(b"\"/>\n");
        o.s(b"<system type=\"max\" size=\"").n(mapped, 0).s(b"\"/>\n");
        o.s(b"<aspace type=\"total\" size=\"").n(mapped, 0).s(b"\"/>\n");
        o.s(b"<aspace type=\"mprotect\" size=\"").n(mapped, 0).s(b"\"/>\n");
    }
    o.s(b"</malloc>\n");
    o.flush();
}

/// Collect and print (malloc_stats, the exit summary).
pub fn report(classes: bool) {
    let mut st = goheap_stats::zeroed();
    collect(&mut st);
    print(&st, classes);
}

/// A duplicate of stderr taken when `GOHEAP_STATS` is switched on: many
/// programs (coreutils among them) close fd 2 in their own exit handlers,
/// which run before `.fini_array`.
static EXIT_FD: AtomicI32 = AtomicI32::new(-1);
static AT_EXIT: AtomicBool = AtomicBool::new(false);

/// Keep a descriptor for the exit summary (init calls this at start-up when
/// `GOHEAP_STATS` is on).
pub fn keep_exit_output() {
    if EXIT_FD.load(Ordering::Relaxed) < 0 {
        EXIT_FD.store(crate::platform::os::dup_stderr(), Ordering::Relaxed);
    }
}

/// At exit, with `GOHEAP_STATS=1`: the summary and the per-class table
/// (called by init's exit hook).
pub fn at_exit() {
    if crate::settings::STATS.load(Ordering::Relaxed) {
        AT_EXIT.store(true, Ordering::Relaxed);
        report(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_defines_the_class_count() {
        // cbindgen.toml defines GOHEAP_NUM_CLASSES by hand (see there).
        let header = include_str!("../include/goheap.h");
        let want = std::format!("#define GOHEAP_NUM_CLASSES {GOHEAP_NUM_CLASSES}\n");
        assert!(header.contains(&want), "include/goheap.h lacks {want}");
    }

    #[test]
    fn collect_sees_an_allocation() {
        let mut a = goheap_stats::zeroed();
        collect(&mut a);
        let p = crate::malloc::alloc(100, false);
        assert!(!p.is_null());
        let mut b = goheap_stats::zeroed();
        collect(&mut b);
        let c = crate::sizeclass::size_to_class(100);
        assert_eq!(b.class_size[c], 112);
        assert!(b.class_objects_in_use[c] >= 1);
        assert!(b.malloc_count > a.malloc_count);
        assert!(b.bytes_in_use >= 112);
        assert!(b.bytes_mapped >= b.bytes_in_spans);
        // SAFETY: p is a live block from alloc.
        unsafe { crate::malloc::free(p, b"free") };
        let mut d = goheap_stats::zeroed();
        collect(&mut d);
        assert!(d.free_count > b.free_count);
    }
}
