//! Linux: the only module that calls mmap, madvise and munmap.
//!
//! Address space moves through the four states of the Go runtime's
//! malloc.go (see `Os`), and each function here is named for one
//! transition; `fault` takes any state back to Reserved (guard regions).
//!
//! * **Reserved**: address space is ours but inaccessible (PROT_NONE); costs
//!   nothing but page-table bookkeeping.
//! * **Prepared**: readable and writable, but the OS may not have backed it
//!   with physical memory yet; on Linux an anonymous mapping is Prepared and
//!   Ready at once, so `used` is only a hint.
//! * **Ready**: in use.
//!
//! `unused` uses MADV_DONTNEED, so a page that went Ready → Prepared reads
//! back as zero. The page allocator relies on that: a page marked scavenged
//! is known to be zero, which lets calloc skip its memset.
//!
//! Nothing here allocates, panics or formats: these run inside malloc.

use super::posix::timed;
pub use super::posix::{
    address_space_limited, block_signals, expand_pid, getpid, nanotime, nonresident, restore_signals, sleep_ms, syscalls_timed,
    time_syscalls, write_all, write_stderr, SignalMask, SyscallStats, MADVISE, MMAP, MUNMAP,
};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The granularity of the OS's page tables on x86-64 Linux (goheap's own
/// pages are larger).
pub const OS_PAGE: usize = 4096;

/// Reserve `size` bytes of address space, at `hint` if the kernel agrees.
/// Returns the base of the reservation, which may differ from `hint`.
pub fn reserve(hint: usize, size: usize) -> Option<usize> {
    // SAFETY: an anonymous PROT_NONE mapping touches no existing memory (no MAP_FIXED).
    let p = timed(&MMAP, || unsafe {
        libc::mmap(hint as *mut libc::c_void, size, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0)
    });
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p as usize)
    }
}

/// Reserved → Prepared: make `[addr, addr+size)` readable and writable.
/// Returns false when the kernel refuses (out of memory, `ulimit -v`).
pub fn map(addr: usize, size: usize) -> bool {
    // SAFETY: the caller owns [addr, addr+size) as a Reserved region; MAP_FIXED replaces only it.
    let p = timed(&MMAP, || unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    });
    p as usize == addr
}

/// Prepared → Ready. Anonymous memory on Linux is usable once mapped, so this
/// is a no-op kept for the state machine (and a future huge-page policy).
#[inline]
pub fn used(_addr: usize, _size: usize) {}

/// Ready → Prepared: give the physical pages back; the range stays mapped
/// and reads back as zero.
pub fn unused(addr: usize, size: usize) -> bool {
    // SAFETY: the caller owns the range and holds no live data in it.
    timed(&MADVISE, || unsafe { libc::madvise(addr as *mut libc::c_void, size, libc::MADV_DONTNEED) == 0 })
}

/// Any state → Reserved: make the range inaccessible again (catches stray
/// accesses; used for guard regions).
pub fn fault(addr: usize, size: usize) -> bool {
    // SAFETY: the caller owns the range; replacing it with PROT_NONE drops its contents.
    let p = timed(&MMAP, || unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    });
    p as usize == addr
}

/// Any state → None: return the address space.
pub fn free(addr: usize, size: usize) {
    // SAFETY: the caller owns the range and nothing refers to it any more.
    timed(&MUNMAP, || unsafe {
        libc::munmap(addr as *mut libc::c_void, size);
    });
}

/// None → Ready in one step, anywhere: for goheap's own metadata.
pub fn alloc(size: usize) -> Option<usize> {
    // SAFETY: anonymous mapping without MAP_FIXED, touches nothing that exists.
    let p = timed(&MMAP, || unsafe {
        libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    });
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p as usize)
    }
}

/// Start a detached thread of goheap's own (256 KiB stack) running `f`,
/// named `name`; false if pthread_create failed. pthread_create allocates:
/// call only where this thread holds no goheap lock.
///
/// The thread blocks every signal (it inherits a full mask): the program's
/// signal handlers run on its own threads, never on goheap's, which hold
/// heap locks (a handler that forks there would have to wait for them).
pub fn spawn_thread(f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void, name: &core::ffi::CStr) -> bool {
    // SAFETY: plain pthread calls on a local attribute object and local
    // signal sets; the thread function has the required signature and
    // takes no argument.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut tid: libc::pthread_t = 0;
        // Counted first: the thread may be done before pthread_create returns.
        OWN_THREADS.fetch_add(1, Ordering::Relaxed);
        let rc = libc::pthread_create(&mut tid, &attr, f, core::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            OWN_THREADS.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        libc::pthread_setname_np(tid, name.as_ptr());
    }
    true
}

/// goheap's own threads running (`spawn_thread`'s, until `own_thread_exits`).
static OWN_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Are goheap's own threads all that is left of the process? glibc ends a
/// process (exit(0)) when its last thread exits, and goheap's threads count
/// as threads: a program whose main thread called pthread_exit, and whose
/// other threads are gone, would live on with goheap's alone, forever, its
/// signals pending (they block them all). The main thread is then a zombie
/// (`/proc/self/stat`'s state), still counted in `/proc/self/status`'s
/// "Threads:". One read a tick while the main thread lives; two after.
pub fn only_own_threads_left() -> bool {
    let mut buf = [0u8; 512];
    let n = read_file(c"/proc/self/stat", &mut buf);
    // The state follows the command name, which ends with the last ')'.
    let Some(close) = buf[..n].iter().rposition(|&c| c == b')') else { return false };
    if buf.get(close + 2) != Some(&b'Z') {
        return false;
    }
    let mut st = [0u8; 4096];
    let n = read_file(c"/proc/self/status", &mut st);
    let Some(at) = st[..n].windows(9).position(|w| w == b"Threads:\t") else { return false };
    let threads = st[at + 9..n].iter().take_while(|c| c.is_ascii_digit()).fold(0usize, |v, &c| v * 10 + (c - b'0') as usize);
    threads != 0 && threads - 1 <= OWN_THREADS.load(Ordering::Relaxed)
}

/// A thread of goheap's own is about to return: if it is the process's
/// last, glibc then ends the process with exit(0), as for any last thread.
pub fn own_thread_exits() {
    OWN_THREADS.fetch_sub(1, Ordering::Relaxed);
}

// The system calls below that glibc's wrappers make cancellation points
// (write, read, open, close, nanosleep) are made through syscall(2), which
// is not one: none of goheap's functions, malloc_stats and the reports at
// exit included, may be where a thread with a cancel request pending is
// cancelled (glibc writes its own reports with its non-cancelling calls).
// A thread cancelled there would also leave the lock it holds (the
// profile's, while dumping) held forever.

/// write(2), never a cancellation point.
pub fn sys_write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: the pointer and length describe a live slice.
    unsafe { libc::syscall(libc::SYS_write, fd as libc::c_long, buf.as_ptr(), buf.len()) as isize }
}

/// read(2), never a cancellation point.
pub fn sys_read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: the pointer and length describe a live, writable slice.
    unsafe { libc::syscall(libc::SYS_read, fd as libc::c_long, buf.as_mut_ptr(), buf.len()) as isize }
}

/// open(2) (as openat relative to the working directory), never a
/// cancellation point.
pub fn sys_open(path: &core::ffi::CStr, flags: i32, mode: u32) -> i32 {
    // SAFETY: a NUL-terminated path; the kernel copies it.
    unsafe {
        libc::syscall(libc::SYS_openat, libc::AT_FDCWD as libc::c_long, path.as_ptr(), flags as libc::c_long, mode as libc::c_long) as i32
    }
}

/// close(2), never a cancellation point.
pub fn sys_close(fd: i32) -> i32 {
    // SAFETY: closing a descriptor touches no memory.
    unsafe { libc::syscall(libc::SYS_close, fd as libc::c_long) as i32 }
}

/// Sleep for `ns` nanoseconds (less if a signal interrupts), never a
/// cancellation point.
pub fn sleep_ns(ns: u64) {
    let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long };
    // SAFETY: ts is a valid timespec; no remainder is asked for.
    unsafe { libc::syscall(libc::SYS_nanosleep, &ts as *const libc::timespec, ptr::null_mut::<libc::timespec>()) };
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Call `f` with each environment entry; false if `environ` is not set up.
pub fn for_each_env(f: &mut dyn FnMut(&[u8])) -> bool {
    // SAFETY: environ is the C library's environment array, NULL-terminated,
    // and nothing modifies it while the process starts up.
    let mut e = unsafe { environ };
    if e.is_null() {
        return false;
    }
    loop {
        // SAFETY: e points into the NULL-terminated environ array.
        let entry = unsafe { *e };
        if entry.is_null() {
            return true;
        }
        // SAFETY: each environ entry is a NUL-terminated C string.
        f(unsafe { core::ffi::CStr::from_ptr(entry) }.to_bytes());
        // SAFETY: still inside the array (we stop at its NULL).
        e = unsafe { e.add(1) };
    }
}

/// A close-on-exec duplicate of stderr (for output at exit, when programs
/// such as coreutils have already closed fd 2), or -1.
pub fn dup_stderr() -> i32 {
    // SAFETY: fcntl on fd 2 with F_DUPFD_CLOEXEC only creates a new descriptor.
    unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 10) }
}

/// Create (or truncate) the file `template` names, `%p` replaced by the
/// process id, for writing: its close-on-exec descriptor, or Err(errno)
/// (ENAMETOOLONG when the name is empty or too long).
pub fn create_file(template: &[u8]) -> Result<i32, i32> {
    let mut path = [0u8; 4096];
    if !expand_pid(template, &mut path) || path[0] == 0 {
        return Err(libc::ENAMETOOLONG);
    }
    let Ok(path) = core::ffi::CStr::from_bytes_until_nul(&path) else { return Err(libc::ENAMETOOLONG) };
    let fd = sys_open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// Read up to `buf.len()` bytes of a (small, /proc) file into `buf`; the
/// number of bytes read (0 on any error).
pub fn read_file(path: &core::ffi::CStr, buf: &mut [u8]) -> usize {
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

/// Abort the process (SIGABRT, as glibc does for heap corruption).
/// The address of function `name` in the process, loading library `lib`
/// if no object loaded yet defines it; 0 if neither does. dlopen may call
/// malloc: call this at start-up, where no goheap lock is held.
pub fn find_function(name: &core::ffi::CStr, lib: &core::ffi::CStr) -> usize {
    // SAFETY: NUL-terminated names; dlsym and dlopen only read them.
    unsafe {
        let mut f = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        if f.is_null() {
            let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if !h.is_null() {
                f = libc::dlsym(h, name.as_ptr());
            }
        }
        f as usize
    }
}

pub fn abort() -> ! {
    // SAFETY: abort never returns and needs no state.
    unsafe { libc::abort() }
}

#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

#[inline]
pub fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = v }
}
