//! Stacks without malloc: libgcc's `_Unwind_Backtrace`, with goheap's own
//! frames cut off at the last registered entry point.

use super::MAX_DEPTH;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Frames looked at for goheap's own entry points before the kept ones.
const SKIP_WINDOW: usize = 16;

/// Room for every registered entry point.
const MAX_ENTRIES: usize = 64;
static ENTRIES: [AtomicUsize; MAX_ENTRIES] = [const { AtomicUsize::new(0) }; MAX_ENTRIES];
static NUM_ENTRIES: AtomicUsize = AtomicUsize::new(0);

/// Register functions whose frames are goheap's own (the C symbols, the
/// hooks): a stack is kept from below the last of them. Called at start-up,
/// before profiling is on; entries beyond the table's room are dropped.
pub fn add_entry_points(fns: &[usize]) {
    for &f in fns {
        let i = NUM_ENTRIES.load(Ordering::Relaxed);
        if f == 0 || i == MAX_ENTRIES || ENTRIES[..i].iter().any(|e| e.load(Ordering::Relaxed) == f) {
            continue;
        }
        ENTRIES[i].store(f, Ordering::Relaxed);
        NUM_ENTRIES.store(i + 1, Ordering::Release);
    }
}

type UnwindContext = c_void;
type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;
const URC_NO_REASON: c_int = 0;
const URC_NORMAL_STOP: c_int = 4;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetRegionStart(ctx: *mut UnwindContext) -> usize;
}

struct Trace {
    pcs: [usize; SKIP_WINDOW + MAX_DEPTH],
    n: usize,
    /// Index of the last frame (in the skip window) that is a goheap entry point.
    last_entry: Option<usize>,
    entries: [usize; MAX_ENTRIES],
    num_entries: usize,
}

/// The registered entry points, copied once per capture.
fn entry_points() -> ([usize; MAX_ENTRIES], usize) {
    let n = NUM_ENTRIES.load(Ordering::Acquire);
    let mut e = [0usize; MAX_ENTRIES];
    for (d, s) in e[..n].iter_mut().zip(ENTRIES.iter()) {
        *d = s.load(Ordering::Relaxed);
    }
    (e, n)
}

extern "C" fn trace_frame(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Trace that `capture` passed, live for the whole walk.
    let t = unsafe { &mut *(arg as *mut Trace) };
    // SAFETY: ctx is the unwinder's context for the current frame.
    let (pc, start) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetRegionStart(ctx)) };
    if pc == 0 {
        return URC_NORMAL_STOP;
    }
    if t.n < SKIP_WINDOW && start != 0 && t.entries[..t.num_entries].contains(&start) {
        t.last_entry = Some(t.n);
    }
    t.pcs[t.n] = pc;
    t.n += 1;
    // Stop once MAX_DEPTH frames past the skip window's last entry are in.
    let keep_from = t.last_entry.map_or(0, |i| i + 1);
    if t.n == t.pcs.len() || (t.n >= SKIP_WINDOW && t.n - keep_from >= MAX_DEPTH) {
        return URC_NORMAL_STOP;
    }
    URC_NO_REASON
}

/// The caller's stack into `out`, goheap's own frames cut off: its depth.
#[inline(never)]
pub(super) fn capture(out: &mut [usize; MAX_DEPTH]) -> usize {
    let (entries, num_entries) = entry_points();
    let mut t = Trace { pcs: [0; SKIP_WINDOW + MAX_DEPTH], n: 0, last_entry: None, entries, num_entries };
    // SAFETY: trace_frame matches the unwinder's callback type and t
    // outlives the call.
    unsafe { _Unwind_Backtrace(trace_frame, &mut t as *mut Trace as *mut c_void) };
    // Without a recognised entry point (never expected), keep everything
    // but this function's own frames.
    let from = t.last_entry.map_or(2.min(t.n), |i| i + 1);
    let depth = (t.n - from).min(MAX_DEPTH);
    out[..depth].copy_from_slice(&t.pcs[from..from + depth]);
    depth
}
