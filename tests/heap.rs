//! The whole heap, in-process, through the `goheap_` entry points (the
//! unprefixed malloc is not exported in test builds, so the test harness
//! itself runs on the system allocator).

use goheap::ffi::*;
use std::ffi::c_void;
use std::sync::mpsc;
use std::thread;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn size(&mut self) -> usize {
        // Skewed to small sizes, with some large ones.
        match self.next() % 100 {
            0..=69 => (self.next() % 256) as usize,
            70..=94 => (self.next() % 32768) as usize,
            _ => (self.next() % (1 << 20)) as usize,
        }
    }
}

fn fill(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
    }
}

fn verify(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        assert_eq!(unsafe { *p.add(i) }, seed.wrapping_add(i as u8), "corrupt byte {i} of {n} at {p:?}");
    }
}

#[test]
fn random_alloc_free_keeps_contents_and_invariants() {
    let mut r = Rng(0x9e3779b97f4a7c15);
    let mut live: Vec<(usize, usize, u8)> = Vec::new();
    for step in 0..60_000 {
        if live.len() < 2000 && !r.next().is_multiple_of(3) {
            let n = r.size();
            let p = goheap_malloc(n) as *mut u8;
            assert!(!p.is_null());
            assert!(unsafe { goheap_malloc_usable_size(p as *mut c_void) } >= n);
            if n >= 16 {
                assert_eq!(p as usize % 16, 0);
            }
            let seed = r.next() as u8;
            fill(p, n, seed);
            live.push((p as usize, n, seed));
        } else if !live.is_empty() {
            let i = (r.next() as usize) % live.len();
            let (p, n, seed) = live.swap_remove(i);
            verify(p as *mut u8, n, seed);
            unsafe { goheap_free(p as *mut c_void) };
        }
        if step % 10_000 == 0 {
            assert_eq!(goheap_check(), 0);
        }
    }
    for (p, n, seed) in live {
        verify(p as *mut u8, n, seed);
        unsafe { goheap_free(p as *mut c_void) };
    }
    assert_eq!(goheap_check(), 0);
}

#[test]
fn cross_thread_frees_keep_contents_and_invariants() {
    let (tx, rx) = mpsc::sync_channel::<(usize, usize, u8)>(4096);
    let producers: Vec<_> = (0..3)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut r = Rng(0x1234567 + t);
                for _ in 0..40_000 {
                    let n = r.size() % 4096;
                    let p = goheap_malloc(n) as *mut u8;
                    assert!(!p.is_null());
                    let seed = r.next() as u8;
                    fill(p, n, seed);
                    tx.send((p as usize, n, seed)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut count = 0;
        for (p, n, seed) in rx {
            verify(p as *mut u8, n, seed);
            unsafe { goheap_free(p as *mut c_void) };
            count += 1;
        }
        count
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 120_000);
    assert_eq!(goheap_check(), 0);
}

#[test]
fn calloc_is_zero_on_reused_memory() {
    for size in [8usize, 24, 100, 1000, 5000, 40_000, 300_000] {
        let mut ptrs = Vec::new();
        for _ in 0..200 {
            let p = goheap_malloc(size) as *mut u8;
            unsafe { std::ptr::write_bytes(p, 0xAB, size) };
            ptrs.push(p);
        }
        for p in ptrs {
            unsafe { goheap_free(p as *mut c_void) };
        }
        for _ in 0..200 {
            let p = goheap_calloc(1, size) as *mut u8;
            assert!((0..size).all(|i| unsafe { *p.add(i) } == 0), "calloc({size}) not zero");
            unsafe { goheap_free(p as *mut c_void) };
        }
    }
}

#[test]
fn alignments_from_8_bytes_to_64_mib() {
    let mut a = 8usize;
    while a <= 64 << 20 {
        for size in [1usize, a / 2 + 1, a, 3 * a + 5, 100_000] {
            let mut p: *mut c_void = std::ptr::null_mut();
            assert_eq!(unsafe { goheap_posix_memalign(&mut p, a, size) }, 0);
            assert_eq!(p as usize % a, 0, "align {a} size {size}");
            unsafe { std::ptr::write_bytes(p as *mut u8, 1, size) };
            assert!(unsafe { goheap_malloc_usable_size(p) } >= size);
            unsafe { goheap_free(p) };
        }
        a *= 2;
    }
    assert_eq!(goheap_check(), 0);
}

#[test]
fn realloc_preserves_contents_across_size_classes() {
    let mut p = goheap_malloc(1) as *mut u8;
    let mut n = 1usize;
    fill(p, n, 7);
    for next in [3usize, 17, 100, 4000, 33_000, 70_000, 1 << 20, 5 << 20, 40_000, 500, 9, 2] {
        p = unsafe { goheap_realloc(p as *mut c_void, next) } as *mut u8;
        assert!(!p.is_null());
        verify(p, n.min(next), 7);
        fill(p, next, 7);
        n = next;
    }
    unsafe { goheap_free(p as *mut c_void) };
    assert_eq!(goheap_check(), 0);
}

#[test]
fn overflow_and_huge_requests_fail_cleanly() {
    assert!(goheap_calloc(usize::MAX / 2, 3).is_null());
    assert!(goheap_malloc(usize::MAX).is_null());
    assert!(goheap_malloc(isize::MAX as usize + 1).is_null());
    assert!(goheap_malloc(1 << 47).is_null());
    let p = goheap_malloc(10);
    assert!(unsafe { goheap_reallocarray(p, usize::MAX, 2) }.is_null());
    unsafe { goheap_free(p) };
    let mut out: *mut c_void = std::ptr::null_mut();
    assert_eq!(unsafe { goheap_posix_memalign(&mut out, 24, 10) }, libc::EINVAL);
    assert!(out.is_null());
}
