//! A mutex that never allocates: spin briefly, then sleep on a futex (on
//! macOS, its equivalent `__ulock_wait`/`__ulock_wake`).
//!
//! Every lock on a path that malloc or free can reach is one of these
//! (docs/DESIGN.md: parking_lot's contended path allocates). The state is one
//! futex word: 0 unlocked, else the holder's thread id (`thread_id`, 31
//! bits) with the top bit (`WAITERS`) set when a thread may be sleeping on
//! it. The holder being in the word itself (set by the same compare-and-swap
//! that takes the lock, so there is no moment where the lock is held and
//! its holder unknown) lets the fork handlers tell the locks the forking
//! thread holds — because fork was called from a signal handler that
//! interrupted goheap — from those other threads hold (`init`, `sigfork`).

use super::tls;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

pub struct Mutex {
    state: AtomicU32,
}

const SPINS: u32 = 100;
const WAITERS: u32 = 1 << 31;
const ID_MASK: u32 = WAITERS - 1;

/// Ids handed to threads the first time they take a goheap lock.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// This thread's lock id: non-zero, 31 bits, unique among the threads of
/// the process (ids are never reused; 2^31 threads taking goheap locks
/// would wrap). A fork child's thread keeps the id its parent thread had.
#[inline]
pub fn thread_id() -> u32 {
    let id = tls::lock_id::get() as u32;
    if id != 0 {
        return id;
    }
    new_thread_id()
}

#[cold]
fn new_thread_id() -> u32 {
    let mut id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & ID_MASK;
    if id == 0 {
        id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & ID_MASK;
    }
    tls::lock_id::set(id as usize);
    id
}

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}

impl Mutex {
    pub const fn new() -> Self {
        Mutex { state: AtomicU32::new(0) }
    }

    #[inline]
    pub fn lock(&self) {
        let me = thread_id();
        if self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended(me);
        }
    }

    #[cold]
    fn lock_contended(&self, me: u32) {
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == 0 && self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
            core::hint::spin_loop();
        }
        loop {
            let v = self.state.load(Ordering::Relaxed);
            if v == 0 {
                // Taken after (possibly) sleeping: keep WAITERS, since other
                // threads may still sleep; the unlock then wakes one.
                if self.state.compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return;
                }
                continue;
            }
            // Mark "locked with sleepers"; whoever unlocks will wake one.
            if v & WAITERS == 0 && self.state.compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                continue;
            }
            futex_wait(&self.state, v | WAITERS);
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) & WAITERS != 0 {
            futex_wake(&self.state);
        }
    }

    /// In a child after fork only one thread exists: whatever state the lock
    /// had belongs to the parent's threads, so it is simply reset.
    pub fn reset_after_fork(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// The id of the thread holding the lock (`thread_id`), 0 if free.
    pub fn holder(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & ID_MASK
    }

    /// Whether the calling thread holds the lock: only possible, outside
    /// the code between its own lock and unlock, in a signal handler that
    /// interrupted that code (or in the fork child of such a handler).
    pub fn held_by_me(&self) -> bool {
        self.holder() == thread_id()
    }
}

#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the futex word is a live AtomicU32; a spurious return is handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

#[cfg(target_os = "linux")]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as above; waking never touches memory besides the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
}

// macOS has no futex; its equivalent is the ulock pair that libc++'s and
// Rust's own synchronisation use (exported by libsystem_kernel since 10.12,
// not in a public header). os_unfair_lock would hide the word, and the
// holder's id in it is what the fork handlers need.
#[cfg(target_os = "macos")]
extern "C" {
    fn __ulock_wait(operation: u32, addr: *mut core::ffi::c_void, value: u64, timeout_us: u32) -> i32;
    fn __ulock_wake(operation: u32, addr: *mut core::ffi::c_void, wake_value: u64) -> i32;
}
/// Compare the 32-bit word with `value`, sleep while equal (xnu's ulock.h).
#[cfg(target_os = "macos")]
const UL_COMPARE_AND_WAIT: u32 = 1;
/// Return the error instead of setting errno (callers inside malloc keep errno).
#[cfg(target_os = "macos")]
const ULF_NO_ERRNO: u32 = 0x0100_0000;

#[cfg(target_os = "macos")]
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the word is a live AtomicU32; no timeout; a spurious return is handled by the caller's loop.
    unsafe { __ulock_wait(UL_COMPARE_AND_WAIT | ULF_NO_ERRNO, word.as_ptr() as *mut core::ffi::c_void, expected as u64, 0) };
}

#[cfg(target_os = "macos")]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as above; wakes one waiter, touches no memory besides the word.
    unsafe { __ulock_wake(UL_COMPARE_AND_WAIT | ULF_NO_ERRNO, word.as_ptr() as *mut core::ffi::c_void, 0) };
}

/// Data guarded by a `Mutex`, reachable only through a guard.
pub struct Locked<T> {
    pub mutex: Mutex,
    data: UnsafeCell<T>,
}

// SAFETY: all access to `data` goes through the mutex.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub const fn new(v: T) -> Self {
        Locked { mutex: Mutex::new(), data: UnsafeCell::new(v) }
    }

    #[inline]
    pub fn lock(&self) -> Guard<'_, T> {
        self.mutex.lock();
        Guard { owner: self }
    }

    /// The guarded value's address (for identity checks; not for access).
    pub fn data_ptr(&self) -> *const T {
        self.data.get()
    }

    /// Access without the lock, for the single-threaded child after fork and
    /// for callers that already hold `mutex` through other means.
    ///
    /// # Safety
    /// The caller must guarantee exclusive access.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_unchecked(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's promise.
        unsafe { &mut *self.data.get() }
    }
}

pub struct Guard<'a, T> {
    owner: &'a Locked<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the mutex is held.
        unsafe { &*self.owner.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the mutex is held, exclusively.
        unsafe { &mut *self.owner.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.owner.mutex.unlock();
    }
}
