//! goheap: a malloc for C and C++ programs built on the Go runtime's
//! allocator design. See `README.md` for use and `../shared/DESIGN.md` for
//! the layers; each layer is one module here, bottom to top:
//!
//! | module      | Go runtime        | role                                        |
//! |-------------|-------------------|---------------------------------------------|
//! | `os`        | mem_linux.go      | reserve / map / used / unused / free        |
//! | `arena`     | mheap.go arenas   | 64 MiB arenas, address → span map           |
//! | `pagealloc` | mpagealloc.go     | radix tree of page summaries, first fit     |
//! | `fixalloc`  | mfixalloc.go      | off-heap metadata records                   |
//! | `sizeclass` | sizeclasses.go    | size classes and divMagic                   |
//! | `span`      | mspan             | a run of pages: alloc bits, alloc cache     |
//! | `central`   | mcentral.go       | per-class lists of spans no cache holds     |
//! | `cache`     | mcache.go         | per-thread active spans                     |
//! | `heap`      | mheap.go          | spans and large objects from pages; growth  |
//! | `scavenge`  | mgcscavenge.go    | returning idle free pages to the OS         |
//! | `malloc`    | malloc.go         | routing requests; free and its checks       |
//! | `debug`     | —                 | GOHEAP_DEBUG: headers, canaries, quarantine |
//! | `ffi`       | —                 | the C symbols, errno                        |
//! | `cxx`       | —                 | C++'s operator new/delete (`cxx/operators.cc`) |
//! | `stats`     | mstats.go         | heap statistics, the exit summary           |
//! | `profile`   | mprof.go          | sampled heap profile (GOHEAP_PROFILE)       |
//! | `series`    | —                 | statistics over time (GOHEAP_STATS_INTERVAL) |
#![allow(clippy::missing_safety_doc)]

pub mod arena;
pub mod cache;
pub mod central;
pub mod check;
pub mod config;
#[cfg(all(feature = "export", target_os = "linux", target_arch = "x86_64"))]
mod cxx;
pub mod debug;
pub mod error;
pub mod ffi;
pub mod fixalloc;
pub mod heap;
pub mod hooks;
pub mod init;
pub mod lock;
pub mod malloc;
pub mod os;
pub mod pagealloc;
pub mod profile;
pub mod scavenge;
pub mod series;
pub mod sizeclass;
pub mod span;
pub mod stats;

/// Rust-side allocations inside the library (none on allocation paths; a
/// dependency might make some) must never reach the exported malloc: they
/// get whole pages straight from the OS.
#[cfg(feature = "export")]
mod internal_alloc {
    use core::alloc::{GlobalAlloc, Layout};

    struct OsPages;

    const fn pages(l: &Layout) -> usize {
        (l.size() + l.align() + crate::os::OS_PAGE - 1) & !(crate::os::OS_PAGE - 1)
    }

    // SAFETY: every block is its own mapping, page aligned, large enough for size + align.
    unsafe impl GlobalAlloc for OsPages {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if l.align() > crate::os::OS_PAGE {
                return core::ptr::null_mut();
            }
            crate::os::alloc(pages(&l)).unwrap_or(0) as *mut u8
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            crate::os::free(p as usize, pages(&l));
        }
    }

    #[global_allocator]
    static GLOBAL: OsPages = OsPages;
}
