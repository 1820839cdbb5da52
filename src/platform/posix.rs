//! What Linux and macOS do the same way through POSIX: re-exported by
//! both `linux` and `macos`, so each name is defined once. Built on the
//! few calls each platform makes its own way (`sys_write`, `errno`,
//! `sleep_ns`: raw syscalls on Linux, cancellation disabled on macOS).

use super::os::{errno, sleep_ns, sys_write, OS_PAGE};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether an address-space limit (RLIMIT_AS, `ulimit -v`) is in force.
pub fn address_space_limited() -> bool {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) == 0 && r.rlim_cur != libc::RLIM_INFINITY }
}

/// `path` with each `%p` replaced by the process id, NUL-terminated, into
/// `out`; false if it does not fit.
pub fn expand_pid(path: &[u8], out: &mut [u8]) -> bool {
    let mut digits = [0u8; 20];
    let nd = super::out::fmt_u64(getpid() as u64, &mut digits);
    let mut n = 0;
    let mut i = 0;
    while i < path.len() {
        let piece: &[u8] = if path[i] == b'%' && path.get(i + 1) == Some(&b'p') {
            i += 2;
            &digits[..nd]
        } else {
            i += 1;
            &path[i - 1..i]
        };
        if n + piece.len() >= out.len() {
            return false;
        }
        out[n..n + piece.len()].copy_from_slice(piece);
        n += piece.len();
    }
    if n >= out.len() {
        return false;
    }
    out[n] = 0;
    true
}

/// This process's id.
pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Monotonic time in nanoseconds (for pacing and statistics).
pub fn nanotime() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Write a message to stderr without allocating (errors are ignored: there
/// is nowhere left to report them).
pub fn write_stderr(msg: &[u8]) {
    let _ = write_all(2, msg);
}

/// Write all of `msg` to `fd` without allocating; short writes and EINTR
/// are retried. Err(errno) on failure (EIO for a write of nothing).
pub fn write_all(fd: i32, msg: &[u8]) -> Result<(), i32> {
    let mut off = 0;
    while off < msg.len() {
        let n = sys_write(fd, &msg[off..]);
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return Err(if n < 0 { errno() } else { libc::EIO });
        }
        off += n as usize;
    }
    Ok(())
}

/// Sleep for `ms` milliseconds; a signal may end the sleep early. Never a
/// cancellation point (see `sleep_ns`).
pub fn sleep_ms(ms: u64) {
    sleep_ns(ms.saturating_mul(1_000_000));
}

/// Time spent in the OS layer, for the exit summary: calls and (while
/// `time_syscalls` is on) nanoseconds per system call (`MMAP`, `MADVISE`, `MUNMAP`), relaxed counters. On
/// macOS `MADVISE` counts page releases (`unused`), which are mmap calls there.
pub struct SyscallStats {
    pub calls: AtomicU64,
    pub ns: AtomicU64,
}

pub static MMAP: SyscallStats = SyscallStats { calls: AtomicU64::new(0), ns: AtomicU64::new(0) };
pub static MADVISE: SyscallStats = SyscallStats { calls: AtomicU64::new(0), ns: AtomicU64::new(0) };
pub static MUNMAP: SyscallStats = SyscallStats { calls: AtomicU64::new(0), ns: AtomicU64::new(0) };

/// Whether system calls are timed (`time_syscalls`).
static TIMED: AtomicBool = AtomicBool::new(false);

/// Time the system calls from now on (the exit summary was asked for):
/// otherwise they are only counted, and the clock's code in the C library
/// (with the pages around it) is never touched, which keeps it out of a
/// small program's resident set.
pub fn time_syscalls(on: bool) {
    TIMED.store(on, Ordering::Relaxed);
}

/// Are system calls timed (so `SyscallStats::ns` means something)?
pub fn syscalls_timed() -> bool {
    TIMED.load(Ordering::Relaxed)
}

/// Run one system call and count it, and time it if asked to (the clock
/// is read without a system call where the platform can: nanoseconds,
/// next to a system call's microseconds).
#[inline]
pub(super) fn timed<R>(st: &SyscallStats, f: impl FnOnce() -> R) -> R {
    if !TIMED.load(Ordering::Relaxed) {
        st.calls.fetch_add(1, Ordering::Relaxed);
        return f();
    }
    let t0 = nanotime();
    let r = f();
    st.ns.fetch_add(nanotime().wrapping_sub(t0), Ordering::Relaxed);
    st.calls.fetch_add(1, Ordering::Relaxed);
    r
}

/// The runs of OS pages inside `[addr, addr+size)` that are not resident
/// (mincore's low bit clear), highest first, a batch of pages at a time,
/// until `f` returns false. The range is rounded inward to whole OS pages
/// (goheap's pages are smaller than an OS page on Apple Silicon).
pub fn nonresident(addr: usize, size: usize, f: &mut dyn FnMut(usize, usize) -> bool) {
    let lo = addr.next_multiple_of(OS_PAGE);
    let mut hi = (addr + size) & !(OS_PAGE - 1);
    let mut vec = [0u8; 512];
    // The run being extended downwards: (start, end); empty while equal.
    let mut run = (hi, hi);
    while hi > lo {
        let n = ((hi - lo) / OS_PAGE).min(vec.len());
        let start = hi - n * OS_PAGE;
        // SAFETY: a mapped range of whole OS pages; vec holds n entries.
        if unsafe { libc::mincore(start as *mut libc::c_void, n * OS_PAGE, vec.as_mut_ptr().cast()) } != 0 {
            return;
        }
        for i in (0..n).rev() {
            let page = start + i * OS_PAGE;
            if vec[i] & 1 == 0 {
                if run.0 == run.1 {
                    run.1 = page + OS_PAGE;
                }
                run.0 = page;
            } else if run.0 != run.1 {
                if !f(run.0, run.1 - run.0) {
                    return;
                }
                run = (page, page);
            }
        }
        hi = start;
    }
    if run.0 != run.1 {
        f(run.0, run.1 - run.0);
    }
}

/// The calling thread's signal mask before `block_signals`.
pub struct SignalMask(libc::sigset_t);

/// Block every signal on the calling thread until `restore_signals`: for a
/// stretch of work that a fork from a signal handler must not land in the
/// middle of (the child would repair what the interrupted work then goes
/// on to finish).
pub fn block_signals() -> SignalMask {
    // SAFETY: plain calls on local signal sets.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        SignalMask(old)
    }
}

/// Restore the mask `block_signals` saved.
pub fn restore_signals(m: SignalMask) {
    // SAFETY: a mask saved by `block_signals` on this thread.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &m.0, core::ptr::null_mut()) };
}
