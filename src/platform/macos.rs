//! macOS: the only module that calls mmap, madvise and munmap there; the
//! same functions, with the same contracts, as `linux.rs` (see it for the
//! four memory states). What differs, and why:
//!
//! * **Releasing pages** (`unused`) maps fresh anonymous memory over the
//!   range (`mmap(MAP_FIXED)`), not `madvise`: the `Os` contract is that a
//!   released page reads back as zero (the page allocator marks it
//!   scavenged and calloc then skips its memset), and neither
//!   `MADV_FREE_REUSABLE` nor macOS's `MADV_DONTNEED` promises that — a
//!   page the kernel did not get round to reclaiming keeps its old bytes.
//!   `MADV_FREE_REUSE` would also have to run before every reuse, and the
//!   heap calls `used` on every page allocation, released or not: a system
//!   call per span. The replacement mapping drops the pages at once (the
//!   task's footprint falls, as with REUSABLE) and is demand-zero; jemalloc
//!   purges the same way on macOS when it needs zeroed pages. If the
//!   kernel refuses, XNU keeps the old mapping and `unused` reports false.
//! * **OS pages** are 16 KiB on Apple Silicon (`OS_PAGE`), larger than
//!   goheap's 8 KiB pages: the scavenger only ever releases whole OS pages
//!   (`pagealloc::SCAV_GROUP`). Intel Macs have 4 KiB pages, as Linux.
//! * **errno** is `__error()`; the environment is `_NSGetEnviron()` (a
//!   dylib cannot refer to the executable's `environ`).
//! * **No cancellation points**: Linux goes through syscall(2); macOS's
//!   `syscall` is deprecated and its non-cancelling variants are private,
//!   so the output calls run with cancellation disabled
//!   (`pthread_setcancelstate`), which gives the same guarantee.
//! * A thread names itself (`pthread_setname_np` takes only the name), so
//!   `spawn_thread` starts a trampoline that does that, then runs `f`.
//!
//! Nothing here allocates, panics or formats: these run inside malloc.

use super::posix::timed;
pub use super::posix::{
    address_space_limited, block_signals, expand_pid, getpid, nanotime, nonresident, restore_signals, sleep_ms, syscalls_timed,
    time_syscalls, write_all, write_stderr, SignalMask, SyscallStats, MADVISE, MMAP, MUNMAP,
};
use core::ffi::{c_void, CStr};
use core::ptr;

/// The granularity of the OS's page tables: 16 KiB for arm64 processes on
/// Apple Silicon, 4 KiB on Intel (and for x86-64 processes under Rosetta).
#[cfg(target_arch = "aarch64")]
pub const OS_PAGE: usize = 16384;
#[cfg(not(target_arch = "aarch64"))]
pub const OS_PAGE: usize = 4096;

const ANON: i32 = libc::MAP_PRIVATE | libc::MAP_ANON;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

fn mmap(addr: usize, size: usize, prot: i32, flags: i32) -> Option<usize> {
    mmap_counted(&MMAP, addr, size, prot, flags)
}

/// mmap(2) of anonymous memory, counted in `st`.
fn mmap_counted(st: &SyscallStats, addr: usize, size: usize, prot: i32, flags: i32) -> Option<usize> {
    // SAFETY: anonymous mappings only; with MAP_FIXED the callers own the range they replace.
    let p = timed(st, || unsafe { libc::mmap(addr as *mut c_void, size, prot, flags, -1, 0) });
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Reserve `size` bytes of address space, at `hint` if the kernel agrees.
pub fn reserve(hint: usize, size: usize) -> Option<usize> {
    mmap(hint, size, libc::PROT_NONE, ANON)
}

/// Reserved → Prepared: make `[addr, addr+size)` readable and writable.
pub fn map(addr: usize, size: usize) -> bool {
    mmap(addr, size, RW, ANON | libc::MAP_FIXED) == Some(addr)
}

/// Prepared → Ready: nothing to do (see the module comment on REUSE).
#[inline]
pub fn used(_addr: usize, _size: usize) {}

/// Ready → Prepared: drop the physical pages; the range stays mapped and
/// reads back as zero (a fresh demand-zero mapping over it, see the module
/// comment). `addr` and `size` are multiples of `OS_PAGE`.
pub fn unused(addr: usize, size: usize) -> bool {
    // Counted once, as the madvise it stands for (Linux counts releases
    // there), so the summary's mmap line means the same on both systems.
    mmap_counted(&MADVISE, addr, size, RW, ANON | libc::MAP_FIXED) == Some(addr)
}

/// Any state → Reserved (guard regions).
pub fn fault(addr: usize, size: usize) -> bool {
    mmap(addr, size, libc::PROT_NONE, ANON | libc::MAP_FIXED) == Some(addr)
}

/// Any state → None: return the address space.
pub fn free(addr: usize, size: usize) {
    // SAFETY: the caller owns the range and nothing refers to it any more.
    timed(&MUNMAP, || unsafe {
        libc::munmap(addr as *mut c_void, size);
    });
}

/// None → Ready in one step, anywhere: for goheap's own metadata.
pub fn alloc(size: usize) -> Option<usize> {
    mmap(0, size, RW, ANON)
}

/// What a new thread of goheap's needs: its function and its name.
struct Start {
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    name: [u8; 64],
}

/// The thread side of `spawn_thread`: name itself, free the record, run.
extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: arg is the Start record spawn_thread wrote into its own page.
    let (f, name) = unsafe { ((*(arg as *const Start)).f, (*(arg as *const Start)).name) };
    free(arg as usize, OS_PAGE);
    // SAFETY: name is NUL-terminated (spawn_thread leaves the last byte 0).
    unsafe { libc::pthread_setname_np(name.as_ptr() as *const libc::c_char) };
    f(ptr::null_mut())
}

/// Start a detached thread of goheap's own (256 KiB stack, every signal
/// blocked) running `f`, named `name`; false if pthread_create failed.
/// pthread_create allocates: call only where this thread holds no goheap lock.
pub fn spawn_thread(f: extern "C" fn(*mut c_void) -> *mut c_void, name: &CStr) -> bool {
    let Some(page) = alloc(OS_PAGE) else { return false };
    let mut start = Start { f, name: [0; 64] };
    let n = name.to_bytes().len().min(63);
    start.name[..n].copy_from_slice(&name.to_bytes()[..n]);
    // SAFETY: a fresh page, large and aligned enough for a Start.
    unsafe { ptr::write(page as *mut Start, start) };
    // SAFETY: plain pthread calls on a local attribute object and local
    // signal sets; the trampoline has the required signature.
    let rc = unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut tid: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut tid, &attr, trampoline, page as *mut c_void);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        free(page, OS_PAGE);
        return false;
    }
    true
}

extern "C" {
    fn pthread_setcancelstate(state: i32, old: *mut i32) -> i32;
}
/// `<pthread.h>`'s value on macOS (the libc crate does not have it there).
const PTHREAD_CANCEL_DISABLE: i32 = 0;

/// Run `f` with this thread's cancellation disabled (see the module comment).
#[inline]
fn no_cancel<R>(f: impl FnOnce() -> R) -> R {
    let mut old = 0;
    // SAFETY: pthread_setcancelstate only writes the old state into `old`.
    unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
    let r = f();
    // SAFETY: as above; restores the caller's state.
    unsafe { pthread_setcancelstate(old, &mut old) };
    r
}

/// write(2), never a cancellation point.
pub fn sys_write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: the pointer and length describe a live slice.
    no_cancel(|| unsafe { libc::write(fd, buf.as_ptr() as *const c_void, buf.len()) })
}

/// read(2), never a cancellation point.
pub fn sys_read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: the pointer and length describe a live, writable slice.
    no_cancel(|| unsafe { libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len()) })
}

/// open(2), never a cancellation point.
pub fn sys_open(path: &CStr, flags: i32, mode: u32) -> i32 {
    // SAFETY: a NUL-terminated path; the kernel copies it.
    no_cancel(|| unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) })
}

/// close(2), never a cancellation point.
pub fn sys_close(fd: i32) -> i32 {
    // SAFETY: closing a descriptor touches no memory.
    no_cancel(|| unsafe { libc::close(fd) })
}

/// Sleep for `ns` nanoseconds (less if a signal interrupts), never a
/// cancellation point.
pub fn sleep_ns(ns: u64) {
    let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long };
    // SAFETY: ts is a valid timespec; no remainder is asked for.
    no_cancel(|| unsafe { libc::nanosleep(&ts, ptr::null_mut()) });
}

/// Call `f` with each environment entry; false if the environment is not
/// set up yet.
pub fn for_each_env(f: &mut dyn FnMut(&[u8])) -> bool {
    // SAFETY: _NSGetEnviron returns the address of the process's environ
    // pointer, which libdyld sets before any image's code runs.
    let mut e = unsafe { *libc::_NSGetEnviron() } as *const *const libc::c_char;
    if e.is_null() {
        return false;
    }
    loop {
        // SAFETY: e points into the NULL-terminated environment array.
        let entry = unsafe { *e };
        if entry.is_null() {
            return true;
        }
        // SAFETY: each entry is a NUL-terminated C string.
        f(unsafe { CStr::from_ptr(entry) }.to_bytes());
        // SAFETY: still inside the array (we stop at its NULL).
        e = unsafe { e.add(1) };
    }
}

/// A close-on-exec duplicate of stderr (for output at exit), or -1.
pub fn dup_stderr() -> i32 {
    // SAFETY: fcntl on fd 2 with F_DUPFD_CLOEXEC only creates a new descriptor.
    unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 10) }
}

/// Create (or truncate) the file `template` names, `%p` replaced by the
/// process id: its close-on-exec descriptor, or Err(errno).
pub fn create_file(template: &[u8]) -> Result<i32, i32> {
    let mut path = [0u8; 1024];
    if !expand_pid(template, &mut path) || path[0] == 0 {
        return Err(libc::ENAMETOOLONG);
    }
    let Ok(path) = CStr::from_bytes_until_nul(&path) else { return Err(libc::ENAMETOOLONG) };
    let fd = sys_open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// Are goheap's own threads all that is left of the process (see the
/// Linux version)? Not detected on macOS: a program whose main thread
/// calls pthread_exit while goheap's background thread runs keeps running
/// after its other threads are gone.
pub fn only_own_threads_left() -> bool {
    false
}

/// A thread of goheap's own is about to return (see the Linux version).
pub fn own_thread_exits() {}

/// Read up to `buf.len()` bytes of a small file into `buf`; the number of
/// bytes read (0 on any error — macOS has no /proc, so the statistics'
/// resident-memory figures read 0 there).
pub fn read_file(path: &CStr, buf: &mut [u8]) -> usize {
    let fd = sys_open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return 0;
    }
    let mut n = 0;
    while n < buf.len() {
        let r = sys_read(fd, &mut buf[n..]);
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    sys_close(fd);
    n
}

/// Abort the process (SIGABRT).
pub fn abort() -> ! {
    // SAFETY: abort never returns and needs no state.
    unsafe { libc::abort() }
}

#[inline]
pub fn errno() -> i32 {
    // SAFETY: __error returns this thread's errno slot, always valid.
    unsafe { *libc::__error() }
}

#[inline]
pub fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__error() = v }
}
