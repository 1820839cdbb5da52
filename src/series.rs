//! Statistics over time: with `GOHEAP_STATS_INTERVAL=100ms`, a thread of its
//! own (`goheap-stats`) appends one tab-separated line per interval to
//! `GOHEAP_STATS_FILE` (default `goheap-stats.<pid>.tsv` in the working
//! directory; `%p` in the name is replaced by the process id):
//!
//! ```text
//! time_ms bytes_in_use bytes_in_spans bytes_retained_free bytes_released bytes_mapped rss
//! ```
//!
//! A first line at start, then one per interval, and a last one at exit.
//! The thread is dedicated rather than the scavenger's, which starts only
//! once there is free memory to release and not at all with
//! `GOHEAP_BACKGROUND=0`. It is started by the library constructor (no
//! goheap lock is held there; pthread_create calls calloc) and never
//! allocates: each line is formatted in a stack buffer and written with one
//! write(2), so no reader ever sees a half-written line from a live writer.
//!
//! fork: the child has no writer thread and writes nothing (not even the
//! exit line) to its parent's file; a program started with `exec` under the
//! same environment starts a series of its own (with the default name, in
//! its own file).

use crate::lock::Mutex;
use crate::os;
use crate::stats;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// Interval in milliseconds; 0 = no time series.
pub static INTERVAL_MS: AtomicU64 = AtomicU64::new(0);

const PATH_MAX: usize = 4096;
/// `GOHEAP_STATS_FILE`, NUL-terminated (empty = the default name).
static mut PATH: [u8; PATH_MAX] = [0; PATH_MAX];
const DEFAULT_PATH: &[u8] = b"goheap-stats.%p.tsv";

static STARTED: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);
/// Serialises lines (the thread's and the one at exit).
static WRITE_LOCK: Mutex = Mutex::new();

/// `GOHEAP_STATS_FILE=path`; false if empty or too long.
pub fn set_path(path: &[u8]) -> bool {
    if path.is_empty() || path.len() >= PATH_MAX {
        return false;
    }
    // SAFETY: settings are read once, before the writer thread exists.
    unsafe {
        let dst = &mut *core::ptr::addr_of_mut!(PATH);
        dst[..path.len()].copy_from_slice(path);
        dst[path.len()] = 0;
    }
    true
}

/// Start the writer if `GOHEAP_STATS_INTERVAL` is set (library constructor).
pub fn start_if_configured() {
    if INTERVAL_MS.load(Ordering::Relaxed) == 0 || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: PATH was written while settings were read, before this.
    let p = unsafe { &*core::ptr::addr_of!(PATH) };
    let len = p.iter().position(|&c| c == 0).unwrap_or(0);
    let mut full = [0u8; PATH_MAX];
    if !os::expand_pid(if len == 0 { DEFAULT_PATH } else { &p[..len] }, &mut full) {
        return;
    }
    // SAFETY: full is NUL-terminated.
    let fd = unsafe {
        libc::open(full.as_ptr() as *const libc::c_char, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644)
    };
    if fd < 0 {
        os::write_stderr(b"goheap: cannot open GOHEAP_STATS_FILE; no statistics over time\n");
        return;
    }
    FD.store(fd, Ordering::Relaxed);
    // SAFETY: getpid has no preconditions.
    OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    START_NS.store(os::nanotime(), Ordering::Relaxed);
    os::write_fd(fd, b"time_ms\tbytes_in_use\tbytes_in_spans\tbytes_retained_free\tbytes_released\tbytes_mapped\trss\n");
    if !os::spawn_thread(worker, c"goheap-stats") {
        os::write_stderr(b"goheap: cannot start the GOHEAP_STATS_INTERVAL thread\n");
    }
}

/// One line: the figures now. Holds `WRITE_LOCK` while writing.
fn write_line() {
    let mut st = stats::goheap_stats::zeroed();
    stats::collect(&mut st);
    let rss = stats::rss_bytes();
    let ms = (os::nanotime() - START_NS.load(Ordering::Relaxed)) / 1_000_000;
    let mut buf = [0u8; 256];
    let mut n = 0;
    for (i, v) in [ms, st.bytes_in_use as u64, st.bytes_in_spans as u64, st.bytes_retained_free as u64, st.bytes_released as u64, st.bytes_mapped as u64, rss as u64]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            buf[n] = b'\t';
            n += 1;
        }
        n += stats::fmt_u64(v, &mut buf[n..]);
    }
    buf[n] = b'\n';
    n += 1;
    os::write_fd(FD.load(Ordering::Relaxed), &buf[..n]);
}

fn sleep_until(deadline_ns: u64) {
    loop {
        let now = os::nanotime();
        if now >= deadline_ns {
            return;
        }
        let d = deadline_ns - now;
        let ts = libc::timespec { tv_sec: (d / 1_000_000_000) as libc::time_t, tv_nsec: (d % 1_000_000_000) as libc::c_long };
        // SAFETY: ts is a valid timespec; an interrupted sleep is resumed by the loop.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
    }
}

extern "C" fn worker(_: *mut c_void) -> *mut c_void {
    let interval = INTERVAL_MS.load(Ordering::Relaxed) * 1_000_000;
    let mut next = START_NS.load(Ordering::Relaxed);
    loop {
        WRITE_LOCK.lock();
        write_line();
        WRITE_LOCK.unlock();
        // On schedule from the start, so times do not drift by the work done.
        next += interval;
        sleep_until(next);
    }
}

/// At exit: a last line, then no more (the lock stays held).
extern "C" fn at_exit() {
    // SAFETY: getpid has no preconditions.
    if FD.load(Ordering::Relaxed) >= 0 && OWNER_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() } {
        let e = os::errno();
        WRITE_LOCK.lock();
        write_line();
        os::set_errno(e);
    }
}

#[used]
#[link_section = ".fini_array"]
static FINI_ARRAY: extern "C" fn() = at_exit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_substituted() {
        let mut out = [0u8; PATH_MAX];
        assert!(os::expand_pid(b"/tmp/s.%p.tsv", &mut out));
        let len = out.iter().position(|&c| c == 0).unwrap();
        let s = core::str::from_utf8(&out[..len]).unwrap();
        // SAFETY: getpid has no preconditions.
        let want = std::format!("/tmp/s.{}.tsv", unsafe { libc::getpid() });
        assert_eq!(s, want);
    }
}
