//! Error reports, written with write(2) from a stack buffer: a heap that
//! just found corruption must not allocate to say so.
//!
//! Misuse by the program (a bad pointer, a heap overflow, a write after
//! free) aborts by default, as glibc does. With `GOHEAP_ON_ERROR=warn` it is
//! reported and the program goes on: `report` returns and its caller leaks
//! whatever the bad pointer refers to, never touching the heap with it.
//! Internal invariants (`fatal`) always abort.
//!
//! Warn mode reports each *site* once. A site is the triple (function,
//! kind, address of the bad pointer): Rust has no stable way to read the
//! caller's return address, and a program that repeats one bug on one
//! pointer is the case that floods stderr. Sites are remembered in a fixed
//! table of `SEEN` hashes (when it is full, new sites are still reported),
//! and at most `MAX_REPORTS` messages are printed in all, then one
//! "further errors suppressed" line.

use crate::platform::os;
use crate::platform::out::Line;
use crate::settings;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Messages printed in warn mode, at most.
pub const MAX_REPORTS: usize = 100;
static REPORTS: AtomicUsize = AtomicUsize::new(0);
/// Hashes of the sites already reported (0 = empty slot).
const SEEN_SLOTS: usize = 256;
static SEEN: [AtomicU64; SEEN_SLOTS] = [const { AtomicU64::new(0) }; SEEN_SLOTS];

/// An internal invariant broke: say so and abort.
#[cold]
pub fn fatal(msg: &[u8]) -> ! {
    Line::stderr().s(b"goheap: fatal error: ").s(msg).s(b"\n").flush();
    os::abort()
}

/// Is warn mode on (misuse reports return)?
#[inline]
pub fn warn_mode() -> bool {
    settings::ON_ERROR_WARN.load(Ordering::Relaxed)
}

fn site_hash(func: &[u8], what: &[u8], addr: usize) -> u64 {
    // FNV-1a over the names, then a multiplicative mix of the address.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in func.iter().chain(b"/".iter()).chain(what.iter()) {
        h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^= (addr as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h | 1
}

/// True the first time this site is seen (or when the table is full).
fn first_report(h: u64) -> bool {
    let mut i = (h as usize >> 1) % SEEN_SLOTS;
    for _ in 0..SEEN_SLOTS {
        match SEEN[i].compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(v) if v == h => return false,
            Err(_) => i = (i + 1) % SEEN_SLOTS,
        }
    }
    true
}

/// The program handed `func` a bad block: report it glibc-style
/// (`goheap: free(): double free 0x...`, with ` (size N)` when `size` is
/// given) and abort; in warn mode report it once per site and return, and
/// the caller must then leave the block alone. errno is preserved.
#[cold]
#[inline(never)]
pub fn report(func: &[u8], what: &[u8], addr: usize, size: Option<usize>) {
    let warn = warn_mode();
    if warn && !first_report(site_hash(func, what, addr)) {
        return;
    }
    let e = os::errno();
    // One buffer, one write: the report cannot interleave with another.
    let mut b = Line::stderr();
    let n = if warn { REPORTS.fetch_add(1, Ordering::Relaxed) } else { 0 };
    if n < MAX_REPORTS {
        b.s(b"goheap: ").s(func).s(b"(): ").s(what).s(b" ").hex(addr);
        if let Some(sz) = size {
            b.s(b" (size ").n(sz as u64, 0).s(b")");
        }
        b.s(b"\n");
    } else if n == MAX_REPORTS {
        b.s(b"goheap: further errors suppressed (GOHEAP_ON_ERROR=warn reports at most ");
        b.n(MAX_REPORTS as u64, 0).s(b")\n");
    }
    b.flush();
    if !warn {
        os::abort()
    }
    os::set_errno(e);
}

/// A bad pointer passed to `func` (`what` is "double free" or "invalid
/// pointer"): see `report`. Returns only in warn mode.
#[cold]
#[inline(never)]
pub fn bad_pointer(func: &[u8], what: &[u8], addr: usize) {
    report(func, what, addr, None)
}

/// "`label` `v` given for block" in `buf`.
pub fn given<'a>(buf: &'a mut [u8; 64], label: &[u8], v: usize) -> &'a [u8] {
    let mut n = label.len();
    buf[..n].copy_from_slice(label);
    n += crate::platform::out::fmt_u64(v as u64, &mut buf[n..]);
    let tail = b" given for block";
    buf[n..n + tail.len()].copy_from_slice(tail);
    &buf[..n + tail.len()]
}
