//! Stacks without malloc: libgcc's `_Unwind_Backtrace`, with goheap's own
//! frames cut off at the last registered entry point.
//!
//! On Linux the unwinder is looked up when profiling is switched on
//! (`load_unwinder`), not linked: libgcc_s would otherwise be mapped into
//! every program that preloads goheap, profiling or not (C++ programs, and
//! glibc's thread cancellation, load it anyway).

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

type BacktraceFn = unsafe extern "C" fn(TraceFn, *mut c_void) -> c_int;
type GetFn = unsafe extern "C" fn(*mut UnwindContext) -> usize;

/// The unwinder's `_Unwind_Backtrace`, `_Unwind_GetIP` and
/// `_Unwind_GetRegionStart` (0 until `load_unwinder` found them).
static UNWINDER: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

#[cfg(not(target_os = "linux"))]
extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetRegionStart(ctx: *mut UnwindContext) -> usize;
}

/// Find the unwinder's functions (loading libgcc_s.so.1 on Linux if the
/// program has not): false if they cannot be had. Start-up only.
pub fn load_unwinder() -> bool {
    #[cfg(target_os = "linux")]
    let fns = {
        let lib = c"libgcc_s.so.1";
        use crate::platform::os::find_function;
        [find_function(c"_Unwind_Backtrace", lib), find_function(c"_Unwind_GetIP", lib), find_function(c"_Unwind_GetRegionStart", lib)]
    };
    #[cfg(not(target_os = "linux"))]
    let fns = [_Unwind_Backtrace as *const () as usize, _Unwind_GetIP as *const () as usize, _Unwind_GetRegionStart as *const () as usize];
    if fns.contains(&0) {
        return false;
    }
    for (slot, f) in UNWINDER.iter().zip(fns) {
        slot.store(f, Ordering::Release);
    }
    true
}

/// The unwinder function in slot `i` (see `UNWINDER`), loaded.
#[inline]
fn unwinder(i: usize) -> usize {
    UNWINDER[i].load(Ordering::Acquire)
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
    // SAFETY: slots 1 and 2 hold the unwinder's _Unwind_GetIP and
    // _Unwind_GetRegionStart (we are called by its _Unwind_Backtrace, which
    // `capture` only calls once they are loaded); ctx is its context for the
    // current frame.
    let (pc, start) = unsafe {
        let (get_ip, region_start) = (core::mem::transmute::<usize, GetFn>(unwinder(1)), core::mem::transmute::<usize, GetFn>(unwinder(2)));
        (get_ip(ctx), region_start(ctx))
    };
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
    let backtrace = unwinder(0);
    if backtrace == 0 {
        return 0; // profiling is only on once the unwinder is loaded
    }
    // SAFETY: slot 0 holds the unwinder's _Unwind_Backtrace; trace_frame
    // matches its callback type and t outlives the call.
    unsafe { core::mem::transmute::<usize, BacktraceFn>(backtrace)(trace_frame, &mut t as *mut Trace as *mut c_void) };
    // Without a recognised entry point (never expected), keep everything
    // but this function's own frames.
    let from = t.last_entry.map_or(2.min(t.n), |i| i + 1);
    let depth = (t.n - from).min(MAX_DEPTH);
    out[..depth].copy_from_slice(&t.pcs[from..from + depth]);
    depth
}
