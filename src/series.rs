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

use crate::platform::lock::Mutex;
use crate::platform::out::Line;
use crate::platform::{os, Os, SYS};
use crate::{settings, stats};
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

const DEFAULT_PATH: &[u8] = b"goheap-stats.%p.tsv";

static STARTED: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);
/// Serialises lines (the thread's and the one at exit).
static WRITE_LOCK: Mutex = Mutex::new();
/// A write failed and was reported: later failures are not.
static WRITE_FAILED: AtomicBool = AtomicBool::new(false);

/// After a write to the series: the first failure (a full disk, a quota)
/// is reported on stderr, once: a time series with holes must not pass for
/// a complete one, nor may every line add a message. Later lines are still
/// tried.
fn check_write(r: Result<(), i32>) {
    let Err(e) = r else { return };
    if WRITE_FAILED.swap(true, Ordering::Relaxed) {
        return;
    }
    let name: &[u8] = match e {
        libc::ENOSPC => b" (ENOSPC, no space left on device)",
        libc::EDQUOT => b" (EDQUOT, disk quota exceeded)",
        libc::EFBIG => b" (EFBIG, file too large)",
        libc::EIO => b" (EIO, input/output error)",
        _ => b"",
    };
    Line::stderr()
        .s(b"goheap: writing the statistics time series (GOHEAP_STATS_FILE) failed: errno ")
        .n(e as u64, 0)
        .s(name)
        .s(b"; the series is incomplete (not reported again)\n")
        .flush();
}

/// Start the writer if `GOHEAP_STATS_INTERVAL` is set (library constructor).
pub fn start_if_configured() {
    if settings::STATS_INTERVAL_MS.load(Ordering::Relaxed) == 0 || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(fd) = os::create_file(settings::STATS_FILE.get().unwrap_or(DEFAULT_PATH)) else {
        os::write_stderr(b"goheap: cannot open GOHEAP_STATS_FILE; no statistics over time\n");
        return;
    };
    FD.store(fd, Ordering::Relaxed);
    OWNER_PID.store(os::getpid(), Ordering::Relaxed);
    START_NS.store(os::nanotime(), Ordering::Relaxed);
    check_write(SYS.write(fd, b"time_ms\tbytes_in_use\tbytes_in_spans\tbytes_retained_free\tbytes_released\tbytes_mapped\trss\n"));
    if !SYS.spawn_thread(worker, c"goheap-stats") {
        os::write_stderr(b"goheap: cannot start the GOHEAP_STATS_INTERVAL thread\n");
    }
}

/// One line: the figures now. Holds `WRITE_LOCK` while writing.
fn write_line() {
    let mut st = stats::goheap_stats::zeroed();
    stats::collect(&mut st);
    let rss = stats::rss_bytes();
    let ms = (os::nanotime() - START_NS.load(Ordering::Relaxed)) / 1_000_000;
    // One line, one write (the buffer holds a whole line).
    let mut line = Line::new(FD.load(Ordering::Relaxed));
    for (i, v) in [
        ms,
        st.bytes_in_use as u64,
        st.bytes_in_spans as u64,
        st.bytes_retained_free as u64,
        st.bytes_released as u64,
        st.bytes_mapped as u64,
        rss as u64,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            line.s(b"\t");
        }
        line.n(v, 0);
    }
    line.s(b"\n").flush();
    check_write(line.error().map_or(Ok(()), Err));
}

fn sleep_until(deadline_ns: u64) {
    loop {
        let now = os::nanotime();
        if now >= deadline_ns {
            return;
        }
        // An interrupted sleep is resumed by the loop.
        os::sleep_ns(deadline_ns - now);
    }
}

extern "C" fn worker(_: *mut c_void) -> *mut c_void {
    let interval = settings::STATS_INTERVAL_MS.load(Ordering::Relaxed) * 1_000_000;
    let mut next = START_NS.load(Ordering::Relaxed);
    loop {
        WRITE_LOCK.lock();
        write_line();
        WRITE_LOCK.unlock();
        // On schedule from the start, so times do not drift by the work
        // done; ticks missed while the thread could not run (a busy
        // machine, a stopped process) are skipped, not caught up with a
        // burst of lines (which could share a millisecond).
        next += interval;
        let now = os::nanotime();
        if next <= now {
            next += ((now - next) / interval + 1) * interval;
        }
        sleep_until(next);
        if os::only_own_threads_left() {
            // The program's threads are gone (its main thread called
            // pthread_exit): leave, so that glibc ends the process.
            os::own_thread_exits();
            return core::ptr::null_mut();
        }
    }
}

/// At exit: a last line, then no more (the lock stays held). Called by
/// init's exit hook.
pub fn at_exit() {
    if FD.load(Ordering::Relaxed) >= 0 && OWNER_PID.load(Ordering::Relaxed) == os::getpid() {
        let e = os::errno();
        WRITE_LOCK.lock();
        write_line();
        os::set_errno(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_substituted() {
        let mut out = [0u8; settings::PATH_MAX];
        assert!(os::expand_pid(b"/tmp/s.%p.tsv", &mut out));
        let len = out.iter().position(|&c| c == 0).unwrap();
        let s = core::str::from_utf8(&out[..len]).unwrap();
        // SAFETY: getpid has no preconditions.
        let want = std::format!("/tmp/s.{}.tsv", unsafe { libc::getpid() });
        assert_eq!(s, want);
    }
}
