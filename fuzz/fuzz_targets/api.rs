//! Fuzz target `api`: the input is a program of operations on goheap's C
//! API (the `goheap_*` names; the rlib is built without `export`, so the
//! fuzzer's own malloc stays glibc's). A model keeps every live block's
//! size and identity; each block holds a pattern derived from its id,
//! checked on realloc and free. A second thread frees blocks handed to it
//! through a channel (cross-thread frees); the main thread waits for it
//! at check points, so the set of operations is deterministic even if
//! their interleaving is not. goheap_check() must return 0 periodically
//! and at the end of every input, after everything was freed.
#![no_main]

use core::ffi::c_void;
use goheap::ffi::*;
use goheap::sizeclass::{CLASSES, NUM_CLASSES};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

struct Block {
    p: usize,
    size: usize,
    id: u64,
}

/// Byte `i` of block `id`'s pattern.
#[inline]
fn pat(id: u64, i: usize) -> u8 {
    let x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 >> 3).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x >> ((i & 7) * 8)) as u8 ^ (x >> 56) as u8
}

/// The offsets a check looks at: all of a small block; the head, the tail
/// and a sparse stride of a big one (fuzzing speed).
fn offsets(size: usize, mut f: impl FnMut(usize)) {
    if size <= 16384 {
        (0..size).for_each(f);
        return;
    }
    (0..4096).for_each(&mut f);
    (size - 4096..size).for_each(&mut f);
    let mut i = 4096;
    while i < size - 4096 {
        f(i);
        i += 4093;
    }
}

fn fill(b: &Block) {
    let p = b.p as *mut u8;
    // SAFETY: p is a live block of at least b.size bytes.
    offsets(b.size, |i| unsafe { *p.add(i) = pat(b.id, i) });
}

/// Check the bytes `fill` wrote for a block of `filled` bytes, below `upto`.
fn verify_filled(b: &Block, filled: usize, upto: usize) {
    let p = b.p as *const u8;
    offsets(filled, |i| {
        if i >= upto {
            return;
        }
        // SAFETY: as in fill.
        let got = unsafe { *p.add(i) };
        assert_eq!(got, pat(b.id, i), "block {:#x} (size {}, id {}) corrupt at offset {}", b.p, b.size, b.id, i);
    });
}

fn verify(b: &Block, upto: usize) {
    verify_filled(b, b.size, upto);
}

enum Msg {
    Free(usize),
    Sync(Sender<()>),
}

/// The second thread: frees what it is sent.
fn worker() -> &'static Mutex<Sender<Msg>> {
    static W: OnceLock<Mutex<Sender<Msg>>> = OnceLock::new();
    W.get_or_init(|| {
        let (tx, rx): (Sender<Msg>, Receiver<Msg>) = channel();
        std::thread::spawn(move || {
            for m in rx {
                match m {
                    // SAFETY: the main thread gave this block up.
                    Msg::Free(p) => unsafe { goheap_free(p as *mut c_void) },
                    Msg::Sync(ack) => {
                        let _ = ack.send(());
                    }
                }
            }
        });
        Mutex::new(tx)
    })
}

fn sync_worker() {
    let (tx, rx) = channel();
    worker().lock().unwrap().send(Msg::Sync(tx)).unwrap();
    rx.recv().unwrap();
}

struct Input<'a> {
    d: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.d.split_first()?;
        self.d = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<usize> {
        Some((self.byte()? as usize) << 8 | self.byte()? as usize)
    }
    /// A size from an interesting distribution.
    fn size(&mut self) -> Option<usize> {
        let sel = self.byte()?;
        Some(match sel % 8 {
            0 => [0, 1, 7, 8, 9, 15, 16, 17][(sel / 8 % 8) as usize],
            1 | 2 => {
                // a class boundary, -1 / 0 / +1
                let c = 1 + self.byte()? as usize % (NUM_CLASSES - 1);
                (CLASSES[c].size as usize + (sel as usize / 8) % 3).saturating_sub(1)
            }
            3 => 32768 - 2 + (sel as usize / 8) % 5,
            4 => self.u16()? % 4096,
            5 => (self.byte()? as usize + 1) * 8192 + (sel as usize / 8) % 3 - 1,
            6 => self.u16()? * 64, // up to 4 MiB
            _ => self.u16()? % 40000,
        })
    }
    fn align(&mut self) -> Option<usize> {
        Some(1 << (self.byte()? % 22)) // 1 B .. 2 MiB
    }
}

fn pick(live: &[Block], sel: u8) -> Option<usize> {
    if live.is_empty() {
        None
    } else {
        Some(sel as usize * 257 % live.len())
    }
}

fn run(data: &[u8]) {
    let mut inp = Input { d: data };
    let mut live: Vec<Block> = Vec::new();
    let mut next_id = 1u64;
    let mut ops = 0;
    let mut new_block = |p: *mut c_void, size: usize, live: &mut Vec<Block>| {
        let b = Block { p: p as usize, size, id: next_id };
        next_id += 1;
        fill(&b);
        live.push(b);
    };
    while let Some(op) = inp.byte() {
        ops += 1;
        if ops > 400 || live.len() > 200 {
            break;
        }
        match op % 12 {
            0 | 1 => {
                let Some(n) = inp.size() else { break };
                let p = goheap_malloc(n);
                assert!(!p.is_null(), "malloc({n}) failed");
                assert!(n < 16 || p as usize % 16 == 0, "malloc({n}) = {p:?} not 16-aligned");
                // SAFETY: live block.
                assert!(unsafe { goheap_malloc_usable_size(p) } >= n);
                new_block(p, n, &mut live);
            }
            2 => {
                let (Some(a), Some(b)) = (inp.byte(), inp.size()) else { break };
                let (a, b) = (a as usize % 64, b / 64);
                let p = goheap_calloc(a, b);
                assert!(!p.is_null(), "calloc({a}, {b}) failed");
                let z = p as *const u8;
                // SAFETY: a live block of a * b bytes.
                offsets(a * b, |i| assert_eq!(unsafe { *z.add(i) }, 0, "calloc({a}, {b}) byte {i} not zero"));
                new_block(p, a * b, &mut live);
            }
            3 | 4 => {
                let (Some(sel), Some(n)) = (inp.byte(), inp.size()) else { break };
                let Some(i) = pick(&live, sel) else { continue };
                let old = live.swap_remove(i);
                verify(&old, old.size);
                // SAFETY: a live block, given up to realloc.
                let q = unsafe { goheap_realloc(old.p as *mut c_void, n) };
                if n == 0 {
                    assert!(q.is_null(), "realloc(p, 0) must free and return NULL");
                    continue;
                }
                assert!(!q.is_null(), "realloc to {n} failed");
                let moved = Block { p: q as usize, size: n, id: old.id };
                verify_filled(&moved, old.size, old.size.min(n));
                fill(&moved);
                live.push(moved);
            }
            5 => {
                let (Some(al), Some(n)) = (inp.align(), inp.size()) else { break };
                let p = goheap_aligned_alloc(al, n);
                assert!(!p.is_null(), "aligned_alloc({al}, {n}) failed");
                assert_eq!(p as usize % al, 0, "aligned_alloc({al}, {n}) misaligned");
                new_block(p, n, &mut live);
            }
            6 => {
                let (Some(al), Some(n)) = (inp.align(), inp.size()) else { break };
                let bad = op & 0x80 != 0;
                let al = if bad { al * 3 } else { al.max(8) };
                let mut out: *mut c_void = 0x5a5a as *mut c_void;
                // SAFETY: out is writable.
                let rc = unsafe { goheap_posix_memalign(&mut out, al, n) };
                if bad && al > 3 {
                    assert_eq!(rc, 22 /* EINVAL */, "posix_memalign({al}) must fail");
                    assert_eq!(out as usize, 0x5a5a, "posix_memalign wrote *out on failure");
                    continue;
                }
                if rc != 0 {
                    assert!(bad, "posix_memalign({al}, {n}) = {rc}");
                    continue;
                }
                assert_eq!(out as usize % al, 0);
                new_block(out, n, &mut live);
            }
            7 | 8 => {
                let Some(sel) = inp.byte() else { break };
                let Some(i) = pick(&live, sel) else { continue };
                let b = live.swap_remove(i);
                verify(&b, b.size);
                // SAFETY: a live block, given up.
                unsafe { goheap_free(b.p as *mut c_void) };
            }
            9 => {
                // hand a block to the other thread, which frees it
                let Some(sel) = inp.byte() else { break };
                let Some(i) = pick(&live, sel) else { continue };
                let b = live.swap_remove(i);
                verify(&b, b.size);
                worker().lock().unwrap().send(Msg::Free(b.p)).unwrap();
            }
            10 => {
                let Some(sel) = inp.byte() else { break };
                let Some(i) = pick(&live, sel) else { continue };
                // SAFETY: a live block.
                let u = unsafe { goheap_malloc_usable_size(live[i].p as *mut c_void) };
                assert!(u >= live[i].size, "usable size {u} < {}", live[i].size);
            }
            _ => {
                sync_worker();
                assert_eq!(goheap_check(), 0, "goheap_check failed mid-input");
            }
        }
    }
    for b in live.drain(..) {
        verify(&b, b.size);
        // SAFETY: a live block, given up.
        unsafe { goheap_free(b.p as *mut c_void) };
    }
    sync_worker();
    assert_eq!(goheap_check(), 0, "goheap_check failed at the end of the input");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
