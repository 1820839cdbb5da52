//! The platform layer: everything goheap needs from the operating system,
//! and nothing else. Above it, no module makes a system call.
//!
//! * `Os`: the trait the memory layers are generic over (address space in
//!   the four states of the Go runtime's malloc.go, metadata pages, output,
//!   sleep, threads, the environment). `Sys` is this platform's
//!   implementation, a zero-sized type, so generic code compiles to direct
//!   calls; tests substitute a fake that counts calls and can refuse any.
//! * `os`: this platform's functions themselves (errno, clocks, files):
//!   `linux.rs` or `macos.rs`, with the same names and contracts.
//! * `lock`: a mutex that never allocates; `tls`: thread-local words that
//!   never allocate; `out`: formatting and writing without allocation.

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub use linux as os;
#[cfg(target_os = "macos")]
pub mod macos;
#[cfg(target_os = "macos")]
pub use macos as os;

pub mod lock;
pub mod out;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod posix;
pub mod tls;

/// `x` rounded up to a multiple of `a`, a power of two.
pub const fn align_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

/// This platform's `Os`: each method is `os`'s function of the same name
/// (`alloc` for `alloc_metadata`). Zero-sized, so generic code compiles to
/// direct calls.
#[derive(Clone, Copy, Default)]
pub struct Sys;

/// The one instance of `Sys` (it has no state).
pub const SYS: Sys = Sys;

impl Os for Sys {
    #[inline]
    fn reserve(&self, hint: usize, size: usize) -> Option<usize> {
        os::reserve(hint, size)
    }
    #[inline]
    fn map(&self, addr: usize, size: usize) -> bool {
        os::map(addr, size)
    }
    #[inline]
    fn used(&self, addr: usize, size: usize) {
        os::used(addr, size)
    }
    #[inline]
    fn unused(&self, addr: usize, size: usize) -> bool {
        os::unused(addr, size)
    }
    #[inline]
    fn free(&self, addr: usize, size: usize) {
        os::free(addr, size)
    }
    fn nonresident(&self, addr: usize, size: usize, f: &mut dyn FnMut(usize, usize) -> bool) {
        os::nonresident(addr, size, f)
    }
    #[inline]
    fn alloc_metadata(&self, size: usize) -> Option<usize> {
        os::alloc(size)
    }
    fn write(&self, fd: i32, bytes: &[u8]) -> Result<(), i32> {
        os::write_all(fd, bytes)
    }
    fn sleep_ms(&self, ms: u64) {
        os::sleep_ms(ms)
    }
    fn spawn_thread(&self, f: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void, name: &core::ffi::CStr) -> bool {
        os::spawn_thread(f, name)
    }
    fn for_each_env(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        os::for_each_env(f)
    }
}

/// What the allocator's memory layers ask of the operating system.
///
/// Address space moves through the four states of Go's malloc.go:
///
/// ```text
///   None ──reserve──▶ Reserved ──map──▶ Prepared ──used──▶ Ready
///    ▲                   │                   ▲              │
///    └──────free─────────┘                   └───unused─────┘
/// ```
///
/// A page that went Ready → Prepared (`unused`) must read back as zero:
/// the page allocator relies on that to let calloc skip its memset.
pub trait Os {
    /// Reserve `size` bytes of address space, at `hint` if the OS agrees
    /// (0: anywhere). Returns the base, which may differ from `hint`.
    fn reserve(&self, hint: usize, size: usize) -> Option<usize>;
    /// Reserved → Prepared: make the range readable and writable. False
    /// when the OS refuses (out of memory, an address-space limit).
    fn map(&self, addr: usize, size: usize) -> bool;
    /// Prepared → Ready: the range is about to be used.
    fn used(&self, addr: usize, size: usize);
    /// Ready → Prepared: give the physical pages back; the range stays
    /// mapped and reads back as zero. False if the OS refused (the memory
    /// then stays resident and must not be counted as released).
    fn unused(&self, addr: usize, size: usize) -> bool;
    /// Any state → None.
    fn free(&self, addr: usize, size: usize);
    /// Call `f(addr, len)` for each run of whole OS pages inside Ready
    /// range `[addr, addr+size)` that is not resident (never touched,
    /// released, or swapped out), highest first, while `f` returns true: a
    /// hint, which may leave runs out. Nothing if the OS cannot tell.
    fn nonresident(&self, addr: usize, size: usize, f: &mut dyn FnMut(usize, usize) -> bool);
    /// None → Ready anywhere, zeroed: pages for goheap's own metadata.
    fn alloc_metadata(&self, size: usize) -> Option<usize>;
    /// Write all of `bytes` to `fd`, or Err(errno).
    fn write(&self, fd: i32, bytes: &[u8]) -> Result<(), i32>;
    /// Sleep for `ms` milliseconds (an interruption may end it early).
    fn sleep_ms(&self, ms: u64);
    /// Start a detached thread of goheap's own running `f`, with every
    /// signal blocked (the program's handlers never run on it); false if
    /// the OS refused. Creating a thread may call malloc: call it only
    /// where this thread holds no goheap lock.
    fn spawn_thread(&self, f: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void, name: &core::ffi::CStr) -> bool;
    /// Call `f` with each `NAME=value` entry of the process environment,
    /// without allocating. False if the environment is not set up yet (the
    /// first malloc can come before the C library has done so).
    fn for_each_env(&self, f: &mut dyn FnMut(&[u8])) -> bool;
}
