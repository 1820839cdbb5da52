//! `GOHEAP_DEBUG=1`: checked blocks, for finding heap bugs in a program.
//!
//! Every ffi entry point starts with one `if debug::on()` line (the aligned
//! family in ffi's shared `aligned` helper); with the setting off that is
//! one relaxed load and a predicted branch. With it on, every block is
//!
//! ```text
//!   start            user = start + off                 user + size      end
//!   | (pad) | size | tag |  the program's `size` bytes  | canary 0xca ... |
//! ```
//!
//! * `start..end` is the allocator's object (a size-class slot, or a large
//!   object's pages); `off` = max(16, alignment), so `user` keeps the
//!   alignment asked for (16 for plain malloc);
//! * the 16-byte header holds the requested size and a tag: the offset
//!   (`user - start`, so the object start is known again for aligned
//!   blocks) and a 32-bit check derived from (user, size, offset, state),
//!   where the state is live or freed;
//! * the canary fills everything from `user + size` to the usable end, at
//!   least 8 bytes.
//!
//! free and realloc verify the header (a bad one is an invalid pointer, a
//! freed one a double free) and the canary (`heap overflow past block`).
//! A freed block is marked freed, filled with 0xdf from `user` to `end` and
//! put in a FIFO quarantine instead of being returned to the allocator.
//! When it leaves the quarantine (allocations retire the oldest block once
//! more than `Q_SOFT_SLOTS` blocks or `Q_SOFT_BYTES` wait; a free retires
//! one when the quarantine is full) its fill is verified before the
//! allocator gets it back (`write after free in block`).
//!
//! Why a quarantine rather than pattern-filling whole spans and checking
//! on reuse: it needs no hook in the span or cache code (being tuned for
//! speed), it knows exactly which bytes were freed by whom (fresh OS memory
//! is never mistaken for a freed block), and it delays reuse, so a dangling
//! pointer reads 0xdf instead of another block's data. What is caught:
//! writes to a freed block while it is quarantined (while the program
//! allocates: the last 1024 freed blocks or 16 MiB of them, whichever is
//! less; up to 4096 / 64 MiB while it only frees; blocks whose object is
//! over 1 MiB are checked and freed at once, without quarantine), overflows that change a canary byte
//! (found when the block is freed or realloc'd), double frees and invalid
//! pointers as in normal mode. Not caught: writes through a dangling
//! pointer after the block left quarantine, overflows that skip the canary
//! and land in another block (unless they hit its header or canary),
//! reads of freed or uninitialised memory, overflows of blocks never freed.
//!
//! Blocks allocated before goheap read its settings (the first allocation
//! of the process, by the C library or the loader) have no header; they
//! are recognised (the pointer is the object's start, which a checked
//! block's never is) and served by the normal paths.
//!
//! Errors are reported through `error::report` (stack buffer, write(2)),
//! so nothing here allocates through goheap while reporting. Under
//! `GOHEAP_ON_ERROR=warn` a block with a broken canary or fill is leaked.

use crate::arena::{self, FREED_SPAN};
use crate::error::report;
use crate::malloc;
use crate::platform::lock::Locked;
use crate::semantics::MAX_SIZE;
use crate::sizeclass::object_index;
use crate::span::{STATE_LARGE, STATE_SMALL};
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Set from `GOHEAP_DEBUG` by init when the library is loaded; blocks
/// served before that (by the loader, the C library, earlier constructors)
/// have no header, and debug mode treats them as plain blocks.
pub fn set_enabled(v: bool) {
    ENABLED.store(v, Ordering::Relaxed);
}

/// Is debug mode on? The ffi entry points test this first.
#[inline(always)]
pub fn on() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

const HDR: usize = 16;
/// The largest offset from an object's start to its block the header can
/// record (`tag` keeps it in 32 bits): an alignment's worth.
const MAX_HEADER_OFFSET: usize = 1 << 31;
const MIN_CANARY: usize = 8;
const CANARY: u8 = 0xca;
const FREED: u8 = 0xdf;
const FREED_STATE: u64 = 0x5bd1_e995_f00d_d00d;

/// Quarantine sizes: allocations retire blocks above the soft limits,
/// frees only at the hard ones.
const Q_SLOTS: usize = 4096;
const Q_SOFT_SLOTS: usize = 1024;
const Q_SOFT_BYTES: usize = 16 << 20;
const Q_HARD_BYTES: usize = 64 << 20;
/// Objects larger than this skip the quarantine (filling and checking them
/// would touch every page of them).
const Q_MAX_OBJECT: usize = 1 << 20;

fn check32(user: usize, size: usize, off: usize, freed: bool) -> u64 {
    let mut h = (user as u64) ^ (size as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((off as u64) << 17);
    if freed {
        h ^= FREED_STATE;
    }
    h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 29)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 32)) & 0xffff_ffff
}

fn tag(user: usize, size: usize, off: usize, freed: bool) -> u64 {
    ((off as u64) << 32) | check32(user, size, off, freed)
}

/// A checked block's geometry.
#[derive(Clone, Copy)]
struct Block {
    start: usize,
    user: usize,
    size: usize,
    end: usize,
}

enum Found {
    Block(Block),
    /// Not a checked block: hand it to the normal path, which frees a
    /// headerless block or reports what is wrong with the pointer.
    Plain,
    /// A bad pointer: report this kind.
    Bad(&'static [u8]),
}

/// Read the 16-byte header below `user`.
///
/// # Safety
/// `user - 16 .. user` lies inside a live object of the heap.
unsafe fn header(user: usize) -> (usize, u64) {
    // SAFETY: per the contract; the header is 8-byte aligned.
    unsafe { (*((user - HDR) as *const usize), *((user - 8) as *const u64)) }
}

/// Classify pointer `p` (non-null).
fn find(p: usize) -> Found {
    let mut s = arena::span_of(p);
    if s.is_null() || s == FREED_SPAN {
        // Past a large object's first page (see `arena::large_covering`).
        s = arena::large_covering(p);
        if s.is_null() {
            return Found::Plain;
        }
    }
    // SAFETY: span records in the page map are never unmapped.
    let sp = unsafe { &*s };
    let (start, end) = match sp.state.load(Ordering::Acquire) {
        STATE_SMALL => {
            let idx = object_index(sp.div_mul, p.wrapping_sub(sp.base));
            if idx >= sp.nelems as usize {
                return Found::Plain;
            }
            let start = sp.base + idx * sp.elemsize as usize;
            if start == p {
                return Found::Plain;
            }
            if !sp.is_allocated(idx) || sp.is_freed_remotely(idx) {
                // Inside a free slot: a quarantined block left it already.
                return Found::Bad(b"double free");
            }
            (start, start + sp.elemsize as usize)
        }
        STATE_LARGE => {
            if p == sp.base {
                return Found::Plain;
            }
            (sp.base, sp.base + sp.bytes())
        }
        _ => return Found::Plain,
    };
    if p - start < HDR || !p.is_multiple_of(8) {
        return Found::Bad(b"invalid pointer");
    }
    // SAFETY: start <= p - 16 and p < end: the header is inside the object.
    let (size, t) = unsafe { header(p) };
    let off = (t >> 32) as usize;
    if off != p - start || size > end - p || end - p - size < MIN_CANARY {
        return Found::Bad(b"invalid pointer");
    }
    if t == tag(p, size, off, true) {
        return Found::Bad(b"double free");
    }
    if t != tag(p, size, off, false) {
        return Found::Bad(b"invalid pointer");
    }
    Found::Block(Block { start, user: p, size, end })
}

/// First byte of `[a, b)` that is not `v`, if any.
///
/// # Safety
/// `[a, b)` is readable.
unsafe fn first_not(a: usize, b: usize, v: u8) -> Option<usize> {
    let w = u64::from_ne_bytes([v; 8]);
    let mut i = a;
    while i < b && !i.is_multiple_of(8) {
        // SAFETY: inside [a, b).
        if unsafe { *(i as *const u8) } != v {
            return Some(i);
        }
        i += 1;
    }
    while i + 8 <= b {
        // SAFETY: an aligned word inside [a, b).
        if unsafe { *(i as *const u64) } != w {
            break;
        }
        i += 8;
    }
    while i < b {
        // SAFETY: inside [a, b).
        if unsafe { *(i as *const u8) } != v {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A new checked block of `size` bytes aligned to `align` (a power of two);
/// null when out of memory.
fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    retire_some(b"malloc");
    let off = align.max(HDR);
    let Some(total) = size.checked_add(off + MIN_CANARY) else { return null_mut() };
    if total > MAX_SIZE {
        return null_mut();
    }
    let b = if align <= HDR { malloc::alloc(total, zero) } else { malloc::alloc_aligned(align, total) };
    if b.is_null() {
        return b;
    }
    let start = b as usize;
    let end = start + malloc::usable_size(b, b"malloc");
    let user = start + off;
    // SAFETY: [start, end) is the fresh object; the header and canary lie in it.
    unsafe {
        *((user - HDR) as *mut usize) = size;
        *((user - 8) as *mut u64) = tag(user, size, off, false);
        core::ptr::write_bytes((user + size) as *mut u8, CANARY, end - user - size);
    }
    user as *mut u8
}

/// Verify `b`'s canary; report an overflow as `func` and return false.
fn canary_ok(b: &Block, func: &[u8]) -> bool {
    // SAFETY: the canary lies inside the live object.
    if unsafe { first_not(b.user + b.size, b.end, CANARY) }.is_some() {
        report(func, b"heap overflow past block", b.user, Some(b.size));
        return false;
    }
    true
}

/// Free checked block `b` (already verified): fill, quarantine, retire.
fn release(b: Block, func: &[u8]) {
    if !canary_ok(&b, func) {
        return; // warn mode: leak it, its neighbourhood is suspect
    }
    let off = b.user - b.start;
    // SAFETY: the block is live and the caller gives it up.
    unsafe { *((b.user - 8) as *mut u64) = tag(b.user, b.size, off, true) };
    if b.end - b.start > Q_MAX_OBJECT {
        // SAFETY: a live object of the heap, given up by the caller.
        unsafe { malloc::free_unhooked(b.start as *mut u8, b"free") };
        return;
    }
    // SAFETY: as above; [user, end) belongs to the block.
    unsafe { core::ptr::write_bytes(b.user as *mut u8, FREED, b.end - b.user) };
    let bytes = b.end - b.start;
    loop {
        let mut q = Q.lock();
        if q.len < Q_SLOTS && q.bytes + bytes <= Q_HARD_BYTES {
            q.push(b, bytes);
            return;
        }
        let old = q.pop();
        drop(q);
        if let Some(old) = old {
            retire(old, func);
        }
    }
}

/// Return a quarantined block to the allocator after checking that nothing
/// wrote to it since it was freed.
fn retire(b: Block, func: &[u8]) {
    // SAFETY: the quarantine still holds the object, so [start, end) is ours.
    let (size, t) = unsafe { header(b.user) };
    // SAFETY: as above.
    let bad = unsafe { first_not(b.user, b.end, FREED) }.is_some();
    if bad || size != b.size || t != tag(b.user, b.size, b.user - b.start, true) {
        report(func, b"write after free in block", b.user, Some(b.size));
        return; // warn mode: leak it
    }
    // SAFETY: a live object that only the quarantine referred to.
    unsafe { malloc::free_unhooked(b.start as *mut u8, b"free") };
}

/// Allocating entry points retire the oldest block once the quarantine is
/// over its soft limits, so reused memory is checked before it is handed
/// out again.
fn retire_some(func: &[u8]) {
    let mut q = Q.lock();
    if q.len <= Q_SOFT_SLOTS && q.bytes <= Q_SOFT_BYTES {
        return;
    }
    let old = q.pop();
    drop(q);
    if let Some(old) = old {
        retire(old, func);
    }
}

struct Quarantine {
    ring: [Block; Q_SLOTS],
    head: usize,
    len: usize,
    bytes: usize,
}

impl Quarantine {
    fn push(&mut self, b: Block, bytes: usize) {
        let i = (self.head + self.len) % Q_SLOTS;
        self.ring[i] = b;
        self.len += 1;
        self.bytes += bytes;
    }
    fn pop(&mut self) -> Option<Block> {
        if self.len == 0 {
            return None;
        }
        let b = self.ring[self.head];
        self.head = (self.head + 1) % Q_SLOTS;
        self.len -= 1;
        self.bytes -= b.end - b.start;
        Some(b)
    }
}

const NO_BLOCK: Block = Block { start: 0, user: 0, size: 0, end: 0 };
static Q: Locked<Quarantine> = Locked::new(Quarantine { ring: [NO_BLOCK; Q_SLOTS], head: 0, len: 0, bytes: 0 });

/// The quarantine's lock, for fork handling. It is a leaf: nothing else is
/// locked while it is held.
pub fn mutex() -> &'static crate::platform::lock::Mutex {
    &Q.mutex
}

// ---- the entry points, with C's conventions (as in semantics.rs) ----

fn enomem() -> *mut c_void {
    crate::platform::os::set_errno(libc::ENOMEM);
    null_mut()
}

pub fn malloc(size: usize) -> *mut c_void {
    let p = alloc(size, 1, false);
    if p.is_null() {
        return enomem();
    }
    p as *mut c_void
}

pub fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else { return enomem() };
    let p = alloc(total, 1, true);
    if p.is_null() {
        return enomem();
    }
    p as *mut c_void
}

/// The aligned family's common part (debug mode's `AlignedCore`): null on
/// failure, errno left to the caller.
pub fn aligned(align: usize, size: usize) -> *mut c_void {
    if size > MAX_SIZE || align > MAX_SIZE / 2 + 1 {
        return null_mut();
    }
    if align > MAX_HEADER_OFFSET {
        // The header's offset field has 32 bits: a block this aligned
        // (2^32 and up: nothing but tests ask for that) is a plain one,
        // unchecked, which `find` tells by its address (a span's start).
        retire_some(b"malloc");
        return malloc::alloc_aligned(align, size) as *mut c_void;
    }
    alloc(size, align, false) as *mut c_void
}

/// # Safety
/// `p` is NULL or a block from goheap.
pub unsafe fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let e = crate::platform::os::errno();
    free_as(p as usize, b"free");
    crate::platform::os::set_errno(e);
}

fn free_as(p: usize, func: &'static [u8]) {
    match find(p) {
        // SAFETY: the normal path checks the pointer itself.
        Found::Plain => unsafe { malloc::free_unhooked(p as *mut u8, func) },
        Found::Bad(what) => report(func, what, p, None),
        Found::Block(b) => release(b, func),
    }
}

/// # Safety
/// `p` is NULL or a block from goheap.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    match find(p as usize) {
        Found::Plain => malloc::usable_size(p as *mut u8, b"malloc_usable_size"),
        Found::Bad(what) => {
            report(b"malloc_usable_size", what, p as usize, None);
            0
        }
        Found::Block(b) => b.size,
    }
}

/// What debug mode knows of `p` (non-null, in goheap's heap), without
/// reporting: the macOS zone's `size` is asked about any pointer and must
/// answer 0 for what is not a live block. Some(requested size) for a live
/// checked block; Some(0) for what `usable_size` would report (freed,
/// quarantined, inside a block); None for a pointer that is no checked
/// block's (a headerless block's start, or not in a span in use), which
/// the caller looks up as a plain block.
#[cfg(target_os = "macos")]
pub fn live_size(p: usize) -> Option<usize> {
    match find(p) {
        Found::Block(b) => Some(b.size),
        Found::Bad(_) => Some(0),
        Found::Plain => None,
    }
}

/// # Safety
/// `p` is NULL or a block from goheap.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return null_mut();
    }
    let addr = p as usize;
    let (old, block) = match find(addr) {
        Found::Plain => {
            let n = malloc::usable_size(p as *mut u8, b"realloc");
            if n == 0 {
                crate::platform::os::set_errno(libc::EINVAL);
                return null_mut();
            }
            (n, None)
        }
        Found::Bad(what) => {
            report(b"realloc", what, addr, None);
            crate::platform::os::set_errno(libc::EINVAL);
            return null_mut();
        }
        Found::Block(b) => {
            if !canary_ok(&b, b"realloc") {
                crate::platform::os::set_errno(libc::EINVAL);
                return null_mut();
            }
            (b.size, Some(b))
        }
    };
    if size > MAX_SIZE {
        return enomem();
    }
    let q = alloc(size, 1, false);
    if q.is_null() {
        return enomem();
    }
    // SAFETY: both blocks are live and at least min(old, size) bytes long.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q, old.min(size)) };
    match block {
        Some(b) => release(b, b"realloc"),
        // SAFETY: a live headerless block, given up.
        None => unsafe { malloc::free_unhooked(p as *mut u8, b"realloc") },
    }
    q as *mut c_void
}

/// Debug mode's sized free (C23's free_sized and free_aligned_sized, C++'s
/// sized operator delete) of `p` (non-null), named `func`: report a `size`
/// other than the checked block's requested size, and (with `align`
/// non-zero) a `p` not aligned to `align`; then free `p` as `free` does.
/// Headerless blocks and bad pointers are left to that free (which reports
/// the latter). Cold and never inlined, so the sized frees' fast path keeps
/// no frame.
///
/// # Safety
/// `p` is a block from goheap.
#[cold]
#[inline(never)]
pub unsafe fn free_sized(p: *mut c_void, size: usize, align: usize, func: &'static [u8]) {
    if let Found::Block(b) = find(p as usize) {
        let mut what = [0u8; 64];
        if b.size != size {
            report(func, crate::error::given(&mut what, b"size ", size), b.user, Some(b.size));
        }
        if align != 0 && (!align.is_power_of_two() || !b.user.is_multiple_of(align)) {
            let what = crate::error::given(&mut what, b"alignment ", align);
            report(func, what, b.user, Some(b.size));
        }
    }
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}
