//! A mutex that never allocates: spin briefly, then sleep on a futex.
//!
//! Every lock on a path that malloc or free can reach is one of these
//! (docs/DESIGN.md: parking_lot's contended path allocates). The state is the
//! classic three-value futex word: 0 unlocked, 1 locked, 2 locked with
//! possible sleepers.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

pub struct Mutex {
    state: AtomicU32,
}

const SPINS: u32 = 100;

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
        if self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == 0 && self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
            core::hint::spin_loop();
        }
        // Mark "locked with sleepers"; whoever unlocks will wake one.
        while self.state.swap(2, Ordering::Acquire) != 0 {
            futex_wait(&self.state, 2);
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
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
}

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

fn futex_wake(word: &AtomicU32) {
    // SAFETY: as above; waking never touches memory besides the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
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
